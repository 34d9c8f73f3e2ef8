// `shaddock start`'s shutdown: a signal sent the moment it says "Ready" is handled, and a
// shutdown that cannot finish (here: the cluster's Redis stops answering) does not leave
// the process hanging: after its deadline it exits 1 and says where it was stuck.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCli, stopCli } from '../fixtures/cli-process.js';
import { freePort, startRedis, stopRedis } from '../fixtures/redis-server.js';

describe('shutdown', () => {
  it('a SIGTERM sent the moment the banner says "Ready" is a clean shutdown (exit 0), not a kill', async () => {
    // Scripts and supervisors signal as soon as they read the banner's last line: the
    // handlers must be in place before it is printed.
    const dir = mkdtempSync(join(tmpdir(), 'shaddock-ready-'));
    try {
      for (let i = 0; i < 5; i++) {
        const node = await startCli(['--data', dir, '--host', '127.0.0.1', '--http-port', '0', '--hybrid-port', '0', '--sio-port', '0', '--mqtt-port', '0', '--ntfy-port', '0'], {}, 'SIGTERM');
        assert.equal(await node.exit, 0, `start ${i + 1}: exit status (null: killed by the signal itself)`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('shutdown deadline', () => {
  let redis: ChildProcess | undefined;
  after(async () => {
    if (redis) {
      redis.kill('SIGCONT');
      await stopRedis(redis);
    }
  });

  it('a node whose Redis stops answering exits within the deadline, naming the step it was stuck on', async () => {
    const port = await freePort();
    redis = await startRedis(port);
    const node = await startCli(
      ['--redis', `redis://127.0.0.1:${port}`, '--node-id', 'frozen', '--host', '127.0.0.1', '--http-port', '0', '--hybrid-port', '0', '--sio-port', '0', '--mqtt-port', '0', '--ntfy-port', '0'],
      { SHADDOCK_ADMIN_PASSWORD: 'test-admin-password' },
    );
    // Frozen, not gone: connections stay open and commands get no answer, the case a
    // reconnect or an error would not catch.
    redis.kill('SIGSTOP');
    const started = Date.now();
    const code = await stopCli(node, 'SIGTERM');
    const took = Date.now() - started;
    assert.equal(code, 1, 'exit status 1: the shutdown did not complete');
    assert.ok(took >= 9_000, `exited after ${took} ms, before the 10 s deadline: the shutdown did not hang as it should have`);
    assert.match(node.stdout(), /shutdown did not finish within 10 s \(stuck [a-z ]+\); exiting/);
  });
});
