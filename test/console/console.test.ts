// The web console in a real browser: Debian's chromium, headless, driven by
// playwright-core, against a real server with real Pomelo clients. It also takes the
// screenshots of docs/console.md: into docs/console/*.png with
// SHADDOCK_UPDATE_SCREENSHOTS=1, into a scratch folder otherwise (so a test run does not
// rewrite tracked files).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { CONSOLE_DIST_DIR } from '../../src/api/console-files.js';
import { asApiKey } from '../../src/ids.js';
import type { App } from '../../src/store/store.js';
import { allocateConnectionId, type Connection } from '../../src/hub/connection.js';
import { PomeloClient } from '../fixtures/pomelo-client.js';
import { startTestServer, TEST_ADMIN_PASSWORD, type TestServer } from '../fixtures/test-server.js';
import { waitFor } from '../fixtures/wait.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const CONSOLE_SRC = fileURLToPath(new URL('../../console/', import.meta.url));
const SHOTS =
  process.env['SHADDOCK_UPDATE_SCREENSHOTS'] === '1' ? fileURLToPath(new URL('../../docs/console/', import.meta.url)) : join(tmpdir(), 'shaddock-console-shots');

/** The newest modification time of the console's sources, ms. */
function newestSource(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    if (name === 'dist' || name === 'node_modules') continue;
    const path = join(dir, name);
    const st = statSync(path);
    newest = Math.max(newest, st.isDirectory() ? newestSource(path) : st.mtimeMs);
  }
  return newest;
}

/** Builds console/dist (as `npm run build:console` does) when it is missing or older than its sources. */
async function ensureConsoleBuilt(): Promise<void> {
  const index = join(CONSOLE_DIST_DIR, 'index.html');
  if (existsSync(index) && statSync(index).mtimeMs >= newestSource(CONSOLE_SRC)) return;
  const { build } = await import('vite');
  await build({ root: CONSOLE_SRC, logLevel: 'warn' });
}

/** A stand-in connection for the 10,000-client test: the hub sees a client, no socket is needed. */
function fakeConnection(): Connection & { closed: boolean } {
  return {
    id: allocateConnectionId(),
    connector: 'ws',
    encoder: { encodeMessage: () => null, encodeEvent: () => null },
    remoteAddress: '127.0.0.1',
    connectedAt: Date.now(),
    bufferedBytes: 0,
    closed: false,
    write() {},
    close() {
      this.closed = true;
    },
  };
}

const noChromium = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install -y chromium): the browser tests are skipped`;

describe('console in a real browser', { skip: noChromium, timeout: 120_000 }, () => {
  let t: TestServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let base: string;
  const clients: PomeloClient[] = [];
  const pageErrors: string[] = [];
  const foreignRequests: string[] = [];

  // Created in the app test, used by the ones after it.
  let apikey = '';
  let phone: PomeloClient;
  let pushedId = 0;

  // The steps build on each other: after one fails, the rest are skipped, not timed out one by one.
  let failed: string | undefined;
  const step = (name: string, fn: () => Promise<void> | void): void => {
    it(name, async (tc) => {
      if (failed !== undefined) {
        tc.skip(`an earlier step failed: ${failed}`);
        return;
      }
      try {
        await fn();
      } catch (err) {
        failed = name;
        throw err;
      }
    });
  };

  const shot = async (name: string, fullPage = false): Promise<void> => {
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage });
  };
  const text = async (selector: string): Promise<string> => ((await page.locator(selector).first().textContent()) ?? '').trim();
  const waitText = async (selector: string, want: string | RegExp, timeoutMs = 3000): Promise<void> => {
    let last = '';
    try {
      await waitFor(
        async () => {
          last = await text(selector);
          return typeof want === 'string' ? last === want : want.test(last);
        },
        { timeoutMs, intervalMs: 25, message: `${selector} to read ${String(want)}` },
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}; it reads "${last}"`, { cause: err });
    }
  };
  const appOnServer = (): Promise<App | undefined> => t.server.storage.apps.getApp(asApiKey(apikey));
  const connect = async (clientId: string, tags: string[] = []): Promise<PomeloClient> => {
    const c = await PomeloClient.connect({ host: '127.0.0.1', port: t.server.hybridPort, transport: 'ws' });
    clients.push(c);
    const res = await c.request('connector.entryHandler.enter', { apikey, clientId, role: 'client', tags });
    assert.deepEqual(res, { code: 200, msg: 'add ok' });
    return c;
  };

  before(async () => {
    await ensureConsoleBuilt();
    mkdirSync(SHOTS, { recursive: true });
    t = await startTestServer();
    base = t.httpUrl;
    const home = await fetch(`${base}/`);
    const html = await home.text();
    if (!home.ok || !html.includes('<div id="root">')) {
      throw new Error(`GET / does not serve the console (${home.status} ${html.slice(0, 120)}): is serveConsoleFile mounted?`);
    }
    // launch() starts chromium with a fresh, temporary user-data-dir of its own.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
    context = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1, locale: 'en-US' });
    page = await context.newPage();
    page.setDefaultTimeout(5000);
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('request', (req) => {
      const url = req.url();
      if (!url.startsWith(`${base}/`) && !url.startsWith('data:')) foreignRequests.push(url);
    });
  });

  after(async () => {
    for (const c of clients) await c.close();
    await context?.close();
    await browser?.close();
    await t?.close();
  });

  step('refuses a wrong password with a clear message', async () => {
    await page.goto(`${base}/`);
    await page.locator('input[name=password]').waitFor();
    await shot('login');
    await page.fill('input[name=username]', 'admin');
    await page.fill('input[name=password]', 'not-the-password');
    await page.click('button[type=submit]');
    await waitText('[data-testid=login-error]', 'Wrong username or password.');
    assert.equal(await page.locator('[data-testid=apps-table]').count(), 0, 'still on the login page');
    assert.deepEqual(await context.cookies(), [], 'no session cookie');
    await shot('login-refused');
  });

  step('logs in with the admin account: an HttpOnly, SameSite=Strict session cookie', async () => {
    await page.fill('input[name=username]', 'admin');
    await page.fill('input[name=password]', TEST_ADMIN_PASSWORD);
    await page.click('button[type=submit]');
    await page.locator('[data-testid=apps-table]').waitFor();
    assert.equal(await text('[data-testid=username]'), 'admin');
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'shaddock_session');
    assert.ok(session, 'session cookie set');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.equal(session.path, '/');
    // The page's scripts cannot read it.
    assert.equal(await page.evaluate(() => document.cookie.includes('shaddock_session')), false);
    // A reload keeps the session.
    await page.reload();
    await page.locator('[data-testid=apps-table]').waitFor();
    await page.locator('tr', { hasText: 'demo' }).waitFor();
    await shot('apps');
  });

  step('protects the API against cross-site requests: a change without the CSRF token is refused', async () => {
    const status = await page.evaluate(async () => {
      const res = await fetch('/api/v1/apps', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"csrf"}' });
      return res.status;
    });
    assert.equal(status, 403);
    assert.equal((await t.server.storage.apps.listApps()).some((a) => a.name === 'csrf'), false);
  });

  step('creates an app, shows its apikey, edits settings, reveals and rotates the secret after a confirmation', async () => {
    await page.fill('[data-testid=create-app] input[name=name]', 'shop');
    await page.fill('[data-testid=create-app] input[name=ttl]', '3600');
    await page.click('[data-testid=create-app] button[type=submit]');
    await page.locator('[data-testid=settings-form]').waitFor();
    apikey = await text('[data-testid=apikey]');
    const created = await appOnServer();
    assert.ok(created, 'the app exists on the server');
    assert.equal(created.name, 'shop');
    assert.equal(created.messageTtlSeconds, 3600);
    assert.match(page.url(), new RegExp(`/apps/${apikey}/settings$`));

    // Hidden until revealed.
    assert.ok(!(await text('[data-testid=secret]')).includes(created.secret));
    await page.click('[data-testid=reveal-secret]');
    await waitText('[data-testid=secret]', created.secret);

    // Settings: TTL and client tokens.
    await page.fill('[data-testid=settings-form] input[name=messageTtlSeconds]', '7200');
    await page.check('[data-testid=settings-form] input[name=requireClientToken]');
    await page.click('[data-testid=settings-form] button[type=submit]');
    await waitFor(async () => (await appOnServer())?.messageTtlSeconds === 7200, {
      timeoutMs: 3000,
      message: 'the TTL to be saved',
    });
    assert.equal((await appOnServer())?.requireClientToken, true);
    // The ntfy port's access settings are the app's too.
    await page.selectOption('[data-testid=settings-form] select[name=ntfyAnonymousAccess]', 'write-only');
    await page.check('[data-testid=settings-form] input[name=ntfyTokensCanPublish]');
    await page.click('[data-testid=settings-form] button[type=submit]');
    await waitFor(async () => (await appOnServer())?.ntfyAnonymousAccess === 'write-only', {
      timeoutMs: 3000,
      message: 'ntfyAnonymousAccess to be saved',
    });
    assert.equal((await appOnServer())?.ntfyTokensCanPublish, true);
    // Back off, so the test's clients can connect without a token.
    await page.uncheck('[data-testid=settings-form] input[name=requireClientToken]');
    await page.click('[data-testid=settings-form] button[type=submit]');
    await waitFor(async () => (await appOnServer())?.requireClientToken === false, {
      timeoutMs: 3000,
      message: 'requireClientToken to be saved',
    });

    // Rotate: a confirmation first; cancelling changes nothing.
    await page.click('[data-testid=rotate-secret]');
    await page.locator('dialog[open]').waitFor();
    await page.click('dialog[open] button:has-text("Cancel")');
    await page.locator('dialog').waitFor({ state: 'detached' });
    assert.equal((await appOnServer())?.secret, created.secret);
    await page.click('[data-testid=rotate-secret]');
    await page.locator('dialog[open]').waitFor();
    await shot('rotate-secret');
    await page.click('dialog[open] [data-testid=confirm]');
    await waitFor(async () => (await appOnServer())?.secret !== created.secret, {
      timeoutMs: 3000,
      message: 'the secret to rotate',
    });
    const rotated = await appOnServer();
    assert.ok(rotated);
    await waitText('[data-testid=secret]', rotated.secret);
    await page.click('[data-testid=reveal-secret]'); // hide it again for the screenshot
    await shot('settings', true);
  });

  step('shows a real client within a second of its join, with connector, tags and connected-since; search and total', async () => {
    await page.click('[data-testid=tab-clients]');
    await waitText('[data-testid=clients-total]', '0 online');
    phone = await connect('phone-1', ['news']);
    const joined = Date.now();
    const row = page.locator('tr[data-client-id="phone-1"]');
    await row.waitFor({ timeout: 1000 });
    const seenAfter = Date.now() - joined;
    assert.ok(seenAfter <= 1000, `seen after ${seenAfter} ms`);
    const cells = (await row.locator('td').allTextContents()).map((s) => s.trim());
    assert.equal(cells[1], 'phone-1');
    assert.equal(cells[2], 'hybrid-ws');
    assert.equal(cells[3], 'news');
    assert.match(cells[4] ?? '', /^\d+ s ago$/);

    await connect('tablet-2', ['news', 'sport']);
    await connect('watch-3');
    await waitText('[data-testid=clients-total]', '3 online', 1000);
    await page.fill('[data-testid=client-search]', 'TAB');
    await waitText('[data-testid=clients-total]', '1 matching');
    assert.deepEqual(await page.locator('tbody tr[data-client-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-client-id'))), [
      'tablet-2',
    ]);
    await page.fill('[data-testid=client-search]', '');
    await waitText('[data-testid=clients-total]', '3 online');
    await page.check('tr[data-client-id="phone-1"] input[type=checkbox]');
    await shot('clients');
  });

  step('pushes from the composer; the client receives it with the id the console shows', async () => {
    await page.click('[data-testid=tab-push]');
    // phone-1 was ticked in the client list: the composer targets it.
    assert.equal(await page.locator('input[name=target][value=clients]').isChecked(), true);
    assert.match(await text('[data-testid=selected-clients]'), /phone-1/);
    await page.fill('input[name=title]', 'Flash sale');
    await page.fill('textarea[name=msg]', '20% off until midnight');
    await page.fill('input[name=ttl]', '600');
    const received = phone.waitFor('onMsg', undefined, 5000);
    await page.click('[data-testid=push-send]');
    await page.locator('[data-testid=push-result]').waitFor();
    pushedId = Number((await text('[data-testid=push-result-id]')).replace('#', ''));
    assert.ok(pushedId > 0);
    const [body] = await received;
    assert.deepEqual(body, { msg: { title: 'Flash sale', msg: '20% off until midnight' }, id: pushedId });
    await shot('push');

    // Raw JSON to a tag: tablet-2 and phone-1 have "news".
    await page.click('button[role=radio]:has-text("Raw JSON")');
    await page.fill('textarea[name=json]', '{"kind": "digest", "items": [1, 2, 3]}');
    await page.check('input[name=target][value=tags]');
    await page.fill('input[name=tags]', 'news');
    const tagged = phone.waitFor('onMsg', (b) => (b as { id?: number }).id !== pushedId, 5000);
    await page.click('[data-testid=push-send]');
    await waitText('[data-testid=push-result-id]', `#${pushedId + 1}`);
    assert.match(await text('[data-testid=push-result]'), /targeted 2 clients/);
    const [digest] = await tagged;
    assert.deepEqual(digest, { msg: { kind: 'digest', items: [1, 2, 3] }, id: pushedId + 1 });
  });

  step('shows the history with receipts that change live as the client acks', async () => {
    await page.click('[data-testid=tab-history]');
    const row = `tr[data-message-id="${pushedId}"]`;
    await page.locator(row).waitFor();
    assert.match(await text(`${row} td:nth-child(4)`), /phone-1/);
    assert.match(await text(`${row} td:nth-child(5)`), /Flash sale/);
    await waitText(`${row} td[data-receipt=targeted]`, '1');
    await waitText(`${row} td[data-receipt=delivered] .num`, '1');
    assert.equal(await text(`${row} td[data-receipt=acked] .num`), '0');
    phone.notify('shaddock.client.ack', { id: pushedId });
    await waitText(`${row} td[data-receipt=acked] .num`, '1', 3000);
    // Recipients of the push to a named client.
    await page.click(row);
    await page.locator('tr.detail .state.acked').waitFor();
    await shot('history');
  });

  step('charts clients online and messages per second', async () => {
    await page.click('[data-testid=tab-charts]');
    await page.locator('[data-testid=chart-online] canvas').waitFor();
    await page.locator('[data-testid=chart-rates] canvas').waitFor();
    // The newest sample: three clients online; deliveries were charted when the pushes went out.
    await waitText('[data-testid="now-online"]', '3');
    assert.equal(await text('[data-testid="max-online"]'), '3');
    assert.ok(Number(await text('[data-testid="max-delivered/s"]')) > 0, 'the pushes show as deliveries per second');
  });

  step('drops a client from the list within a second of its disconnect', async () => {
    await page.click('[data-testid=tab-clients]');
    await page.locator('tr[data-client-id="watch-3"]').waitFor();
    const watch = clients[2]!;
    await watch.close();
    const left = Date.now();
    await page.locator('tr[data-client-id="watch-3"]').waitFor({ state: 'detached', timeout: 1000 });
    const goneAfter = Date.now() - left;
    assert.ok(goneAfter <= 1000, `gone after ${goneAfter} ms`);
    await waitText('[data-testid=clients-total]', '2 online');
  });

  step('stays responsive with 10,000 clients online (paged list, search, charts)', async () => {
    const conns = Array.from({ length: 10_000 }, fakeConnection);
    const started = Date.now();
    for (let i = 0; i < conns.length; i += 500) {
      await Promise.all(
        conns.slice(i, i + 500).map((c, j) => t.server.hub.enterClient(c, { apikey, clientId: `device-${String(i + j).padStart(5, '0')}` })),
      );
    }
    const entered = Date.now() - started;
    try {
      await waitText('[data-testid=clients-total]', '10,002 online', 2000);
      assert.equal(await page.locator('tbody tr[data-client-id]').count(), 100, 'one page of 100 rows');
      await waitText('[data-testid=clients-range]', '1–100 of 10,002');

      await page.click('[data-testid=clients-next]');
      await waitText('[data-testid=clients-range]', '101–200 of 10,002', 1000);

      let t0 = Date.now();
      await page.fill('[data-testid=client-search]', 'device-0999');
      await waitText('[data-testid=clients-total]', '10 matching', 1000);
      const searchMs = Date.now() - t0;
      await page.fill('[data-testid=client-search]', '');
      await waitText('[data-testid=clients-total]', '10,002 online', 1000);

      // A join still shows within a second with 10,000 others online.
      t0 = Date.now();
      await connect('aaa-late-joiner');
      await page.locator('tr[data-client-id="aaa-late-joiner"]').waitFor({ timeout: 1000 });
      const joinMs = Date.now() - t0;
      await shot('clients-10k');

      // The page's main thread is free: a round trip through it is quick.
      t0 = Date.now();
      await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => resolve(null))));
      const frameMs = Date.now() - t0;
      assert.ok(frameMs < 250, `a frame took ${frameMs} ms`);
      console.log(`# 10,000 clients: entered in ${entered} ms; search ${searchMs} ms; a join seen in ${joinMs} ms; a frame ${frameMs} ms`);

      // The charts follow: 10,003 online, and a broadcast to all of them is 10,003 deliveries.
      await page.click('[data-testid=tab-charts]');
      await waitText('[data-testid="now-online"]', '10,003');
      const app = await appOnServer();
      assert.ok(app);
      const res = await fetch(`${base}/api/v1/apps/${apikey}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${app.secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ data: { title: 'to everyone', msg: 'hello 10,003 clients' } }),
      });
      assert.equal(res.status, 202);
      // 10,003 writes within one sampling period (a little over a second: a rate a little under 10,003/s).
      await waitFor(async () => Number((await text('[data-testid="max-delivered/s"]')).replace(/,/g, '')) >= 5000, {
        timeoutMs: 3000,
        message: 'the broadcast to show as thousands of deliveries per second in the chart',
      });
      await shot('charts', true);
    } finally {
      for (const c of conns) {
        c.closed = true;
        t.server.hub.leave(c);
      }
    }
    await page.click('[data-testid=tab-clients]');
    await waitText('[data-testid=clients-total]', '3 online', 2000);
  });

  step('logs out: the session ends and the login page is back', async () => {
    await page.click('button:has-text("Log out")');
    await page.locator('input[name=password]').waitFor();
    const status = await page.evaluate(async () => (await fetch('/api/v1/session')).status);
    assert.equal(status, 401);
    // An app page now asks to log in again.
    await page.goto(`${base}/apps/${apikey}/clients`);
    await page.locator('input[name=password]').waitFor();
  });

  it('loaded nothing from other origins and threw no page errors', () => {
    assert.deepEqual(foreignRequests, []);
    assert.deepEqual(pageErrors, []);
  });
});
