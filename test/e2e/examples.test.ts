import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startTestServer, type TestServer } from '../fixtures/test-server.js';
import { waitFor } from '../fixtures/wait.js';

const ROOT = new URL('../..', import.meta.url).pathname;

describe('the documented examples work', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.close();
  });

  it('examples/pomelo-client.mjs enters and prints a push from curl', async () => {
    const child = spawn(process.execPath, ['examples/pomelo-client.mjs', `ws://127.0.0.1:${t.server.hybridPort}`, 'doc-client'], {
      cwd: ROOT,
      env: { ...process.env, APIKEY: t.app.apikey },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise((resolve) => child.on('close', resolve));
    try {
      await waitFor(() => out.includes('entered'), { timeoutMs: 10_000, message: `example did not enter: ${out}` });
      assert.match(out, /entered \{"code":200,"msg":"add ok"\}/);
      const curl = spawn('curl', [
        '-sS', '-X', 'POST', `${t.httpUrl}/api/v1/apps/${t.app.apikey}/messages`,
        '-H', `Authorization: Bearer ${t.app.secret}`, '-H', 'content-type: application/json',
        '-d', '{"data": {"title": "hello", "msg": "你好"}}',
      ]);
      await new Promise((resolve) => curl.on('close', resolve));
      await waitFor(() => out.includes('push onMsg'), { timeoutMs: 10_000, message: `no push printed: ${out}` });
      assert.match(out, /push onMsg \{"msg":\{"title":"hello","msg":"你好"\},"id":1\}/);
    } finally {
      child.kill();
      await exited;
    }
  });
});
