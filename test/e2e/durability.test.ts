import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCli, stopCli } from '../fixtures/cli-process.js';

const ports = ['--host', '127.0.0.1', '--http-port', '0', '--hybrid-port', '0', '--sio-port', '0', '--mqtt-port', '0', '--ntfy-port', '0'];
const field = (banner: string, re: RegExp): string => {
  const m = re.exec(banner);
  assert.ok(m?.[1], `banner: ${banner}`);
  return m[1];
};

describe('durable before accepted', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shaddock-kill9-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('kill -9 of the server right after a stream of 202s loses none of them', async () => {
    const first = await startCli(['--data', dir, ...ports]);
    first.child.unref();
    const apikey = field(first.banner, /apikey\s+(\S+)/);
    const secret = field(first.banner, /secret\s+(\S+)/);
    const url = field(first.banner, /HTTP API\s+(\S+)/);
    const accepted: number[] = [];
    const push = (i: number) =>
      fetch(`${url}/api/v1/apps/${apikey}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ data: { i, text: '持久' }, to: { clientIds: ['nobody'] } }),
      });
    // Several pushes in flight at once; SIGKILL lands while they are still coming.
    let i = 0;
    const workers = Array.from({ length: 8 }, async () => {
      for (;;) {
        let res: Response;
        try {
          res = await push(i++);
        } catch {
          return; // the server is gone
        }
        if (res.status !== 202) return;
        accepted.push(((await res.json()) as { id: number }).id);
        if (accepted.length === 300) first.child.kill('SIGKILL');
      }
    });
    await Promise.all(workers);
    await first.exit;
    assert.ok(accepted.length >= 300, `only ${accepted.length} accepted`);

    const second = await startCli(['--data', dir, ...ports]);
    try {
      const url2 = field(second.banner, /HTTP API\s+(\S+)/);
      const stored = new Set<number>();
      let before: number | null = null;
      do {
        const q: string = before === null ? '' : `&before=${before}`;
        const page = (await (await fetch(`${url2}/api/v1/apps/${apikey}/messages?limit=500${q}`, { headers: { authorization: `Bearer ${secret}` } })).json()) as {
          messages: { id: number }[];
          nextBefore: number | null;
        };
        for (const m of page.messages) stored.add(m.id);
        before = page.nextBefore;
      } while (before !== null);
      const lost = accepted.filter((id) => !stored.has(id));
      assert.deepEqual(lost, [], `${lost.length} of ${accepted.length} accepted messages lost`);
    } finally {
      await stopCli(second);
    }
  });
});
