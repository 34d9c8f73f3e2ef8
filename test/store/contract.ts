// The Storage contract: what every implementation (SQLite now, Redis later) must do.
// Run it from an implementation's test file:
//
//   runStorageContract('sqlite :memory:', () => openSqliteStorage(':memory:'));
//
// `open` is called before every test and must return an empty storage; the suite
// closes it after the test.
//
// node:test's describe/it return promises the runner itself awaits; `void` marks that.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import fc from 'fast-check';
import { asApiKey, asClientId, asMessageId, type ApiKey, type MessageId } from '../../src/ids.js';
import type { ClientRef, NewMessage, Storage, StoredMessage, Target } from '../../src/store/store.js';

const ALL: Target = { all: true, clientIds: [], tags: [] };
const HOUR = 3600;
const DAY_MS = 24 * 3600 * 1000;
/** Clients unseen this long are swept; every implementation keeps this default. */
const CLIENT_RETENTION_MS = 30 * DAY_MS;

function message(apikey: ApiKey, data: unknown, over: Partial<NewMessage> = {}): NewMessage {
  return { apikey, targeted: 0, target: ALL, event: 'onMsg', data, ttlSeconds: HOUR, ...over };
}

const cid = asClientId;
const mid = asMessageId;

/** A target naming clients and tags (not `all`). */
function to(clientIds: readonly string[], tags: readonly string[] = []): Target {
  return { all: false, clientIds: clientIds.map(cid), tags };
}

function client(clientId: string, tags: readonly string[] = []): ClientRef {
  return { clientId: cid(clientId), tags };
}

const ids = (msgs: readonly StoredMessage[]): number[] => msgs.map((m) => m.id);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

export function runStorageContract(name: string, open: () => Promise<Storage> | Storage): void {
  void describe(`Storage contract: ${name}`, () => {
    let s: Storage;

    beforeEach(async () => {
      s = await open();
    });
    afterEach(async () => {
      await s.close();
    });

    async function newApp(appName = 'app'): Promise<ApiKey> {
      return (await s.apps.createApp({ name: appName })).apikey;
    }

    void describe('apps', () => {
      void it('creates an app with defaults and gets it back', async () => {
        const before = Date.now();
        const app = await s.apps.createApp({ name: 'Shop' });
        assert.equal(app.name, 'Shop');
        assert.equal(app.messageTtlSeconds, 86400);
        assert.equal(app.requireClientToken, false);
        // ntfy's own default (auth-default-access read-write); tokens read, publish when allowed.
        assert.equal(app.ntfyAnonymousAccess, 'read-write');
        assert.equal(app.ntfyTokensCanPublish, false);
        assert.ok(app.createdAt >= before && app.createdAt <= Date.now());
        assert.match(app.apikey, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
        assert.deepEqual(await s.apps.getApp(app.apikey), app);
      });

      void it('creates an app with its own message TTL', async () => {
        const app = await s.apps.createApp({ name: 'short', messageTtlSeconds: 60 });
        assert.equal(app.messageTtlSeconds, 60);
        assert.equal((await s.apps.getApp(app.apikey))?.messageTtlSeconds, 60);
      });

      void it('gives every app a different apikey and a long, different secret', async () => {
        const apps = await Promise.all(range(1, 10).map((i) => s.apps.createApp({ name: `a${i}` })));
        assert.equal(new Set(apps.map((a) => a.apikey)).size, 10);
        assert.equal(new Set(apps.map((a) => a.secret)).size, 10);
        for (const a of apps) {
          assert.ok(a.secret.length >= 43, `secret ${a.secret} is shorter than 43 characters`);
          assert.notEqual(a.secret, a.apikey);
        }
      });

      void it('returns undefined for an unknown apikey', async () => {
        assert.equal(await s.apps.getApp(asApiKey('no-such-app')), undefined);
        assert.equal(await s.apps.updateApp(asApiKey('no-such-app'), { name: 'x' }), undefined);
        assert.equal(await s.apps.rotateSecret(asApiKey('no-such-app')), undefined);
        assert.equal(await s.apps.deleteApp(asApiKey('no-such-app')), false);
      });

      void it('lists the apps', async () => {
        const a = await s.apps.createApp({ name: 'a' });
        const b = await s.apps.createApp({ name: 'b' });
        const listed = await s.apps.listApps();
        assert.deepEqual(listed.find((x) => x.apikey === a.apikey), a);
        assert.deepEqual(listed.find((x) => x.apikey === b.apikey), b);
      });

      void it('updates only the given settings', async () => {
        const app = await s.apps.createApp({ name: 'before' });
        const renamed = await s.apps.updateApp(app.apikey, { name: 'after' });
        assert.deepEqual(renamed, { ...app, name: 'after' });
        const tightened = await s.apps.updateApp(app.apikey, { messageTtlSeconds: 30, requireClientToken: true });
        assert.deepEqual(tightened, { ...app, name: 'after', messageTtlSeconds: 30, requireClientToken: true });
        const relaxed = await s.apps.updateApp(app.apikey, { requireClientToken: false });
        assert.equal(relaxed?.requireClientToken, false);
        assert.deepEqual(await s.apps.updateApp(app.apikey, {}), relaxed);
        assert.deepEqual(await s.apps.getApp(app.apikey), relaxed);
      });

      void it('updates the ntfy access settings, each on its own, and lists them', async () => {
        const app = await s.apps.createApp({ name: 'ntfy-settings' });
        const denied = await s.apps.updateApp(app.apikey, { ntfyAnonymousAccess: 'deny' });
        assert.deepEqual(denied, { ...app, ntfyAnonymousAccess: 'deny' });
        assert.deepEqual(await s.apps.getApp(app.apikey), denied, 'a read after the update sees it (no stale cache)');
        const publishing = await s.apps.updateApp(app.apikey, { ntfyTokensCanPublish: true });
        assert.deepEqual(publishing, { ...app, ntfyAnonymousAccess: 'deny', ntfyTokensCanPublish: true });
        for (const access of ['write-only', 'read-only', 'read-write'] as const) {
          assert.equal((await s.apps.updateApp(app.apikey, { ntfyAnonymousAccess: access }))?.ntfyAnonymousAccess, access);
          assert.equal((await s.apps.getApp(app.apikey))?.ntfyAnonymousAccess, access);
        }
        const back = await s.apps.updateApp(app.apikey, { ntfyTokensCanPublish: false, name: 'renamed' });
        assert.deepEqual(back, { ...app, name: 'renamed' });
        assert.deepEqual((await s.apps.listApps()).find((x) => x.apikey === app.apikey), back);
      });

      void it('rotates the secret and keeps everything else', async () => {
        const app = await s.apps.createApp({ name: 'rotating' });
        const rotated = await s.apps.rotateSecret(app.apikey);
        assert.ok(rotated);
        assert.notEqual(rotated.secret, app.secret);
        assert.ok(rotated.secret.length >= 43);
        assert.deepEqual({ ...rotated, secret: app.secret }, app);
        assert.equal((await s.apps.getApp(app.apikey))?.secret, rotated.secret);
        // No grace period: the old secret is not kept as a valid previous one.
        assert.equal(await s.apps.previousSecret(app.apikey, Date.now()), undefined);
      });

      void it('keeps the replaced secret valid for the grace period, then not', async () => {
        const app = await s.apps.createApp({ name: 'graceful' });
        const now = 1_800_000_000_000;
        const rotated = await s.apps.rotateSecret(app.apikey, { graceSeconds: 60, now });
        assert.ok(rotated);
        assert.notEqual(rotated.secret, app.secret);
        assert.deepEqual({ ...rotated, secret: app.secret }, app);
        assert.equal(await s.apps.previousSecret(app.apikey, now), app.secret);
        assert.equal(await s.apps.previousSecret(app.apikey, now + 59_999), app.secret);
        assert.equal(await s.apps.previousSecret(app.apikey, now + 60_000), undefined, 'the grace period ends at now + graceSeconds');
        assert.equal(await s.apps.previousSecret(app.apikey, now + 3_600_000), undefined);
        // The app itself is unchanged by the grace bookkeeping.
        assert.deepEqual(await s.apps.getApp(app.apikey), rotated);
      });

      void it('a second rotation replaces the previous secret; without grace it ends the first grace at once', async () => {
        const app = await s.apps.createApp({ name: 'twice' });
        const now = 1_800_000_000_000;
        const first = await s.apps.rotateSecret(app.apikey, { graceSeconds: 3600, now });
        const second = await s.apps.rotateSecret(app.apikey, { graceSeconds: 3600, now: now + 1000 });
        assert.ok(first && second);
        assert.equal(await s.apps.previousSecret(app.apikey, now + 2000), first.secret, 'only the last replaced secret has grace');
        await s.apps.rotateSecret(app.apikey, { now: now + 3000 });
        assert.equal(await s.apps.previousSecret(app.apikey, now + 3000), undefined);
      });

      void it('refuses a bad grace period with STORE_INVALID and rotates nothing', async () => {
        const app = await s.apps.createApp({ name: 'strict' });
        for (const graceSeconds of [-1, 1.5, Number.NaN, 31 * 86400]) {
          await assert.rejects(s.apps.rotateSecret(app.apikey, { graceSeconds }), { name: 'StoreError', code: 'STORE_INVALID' }, String(graceSeconds));
        }
        assert.equal((await s.apps.getApp(app.apikey))?.secret, app.secret);
        assert.equal(await s.apps.previousSecret(asApiKey('no-such-app'), Date.now()), undefined);
      });

      void it('deletes an app', async () => {
        const gone = await newApp('gone');
        const kept = await newApp('kept');
        assert.equal(await s.apps.deleteApp(gone), true);
        assert.equal(await s.apps.getApp(gone), undefined);
        assert.equal(await s.apps.deleteApp(gone), false);
        const listed = (await s.apps.listApps()).map((a) => a.apikey);
        assert.ok(!listed.includes(gone));
        assert.ok(listed.includes(kept));
      });
    });

    void describe('admins', () => {
      void it('verifies the right password only', async () => {
        await s.admins.setAdminPassword('root', 'correct horse battery staple');
        assert.equal(await s.admins.verifyAdmin('root', 'correct horse battery staple'), true);
        assert.equal(await s.admins.verifyAdmin('root', 'correct horse battery stapl'), false);
        assert.equal(await s.admins.verifyAdmin('root', ''), false);
        assert.equal(await s.admins.verifyAdmin('ROOT', 'correct horse battery staple'), false);
      });

      void it('rejects an unknown user', async () => {
        assert.equal(await s.admins.verifyAdmin('nobody', 'anything'), false);
      });

      void it('replaces a password', async () => {
        await s.admins.setAdminPassword('ops', 'first');
        const [created] = (await s.admins.listAdmins()).filter((a) => a.username === 'ops');
        await s.admins.setAdminPassword('ops', '第二个密码');
        assert.equal(await s.admins.verifyAdmin('ops', 'first'), false);
        assert.equal(await s.admins.verifyAdmin('ops', '第二个密码'), true);
        const listed = (await s.admins.listAdmins()).filter((a) => a.username === 'ops');
        assert.equal(listed.length, 1);
        assert.deepEqual(listed[0], created);
      });

      void it('lists admins without their hashes', async () => {
        const before = Date.now();
        await s.admins.setAdminPassword('alice', 'a');
        await s.admins.setAdminPassword('bob', 'b');
        const listed = (await s.admins.listAdmins()).filter((a) => a.username === 'alice' || a.username === 'bob');
        assert.deepEqual(
          listed.map((a) => a.username).sort(),
          ['alice', 'bob'],
        );
        for (const a of listed) {
          assert.deepEqual(Object.keys(a).sort(), ['createdAt', 'username']);
          assert.ok(a.createdAt >= before && a.createdAt <= Date.now());
        }
      });
    });

    void describe('messages', () => {
      void it('assigns ids 1, 2, 3… per app, independently', async () => {
        const a = await newApp('a');
        const b = await newApp('b');
        const got: [ApiKey, number][] = [];
        for (const app of [a, b, a, a, b, a]) got.push([app, (await s.messages.append(message(app, 'x'))).id]);
        assert.deepEqual(got, [
          [a, 1],
          [b, 1],
          [a, 2],
          [a, 3],
          [b, 2],
          [a, 4],
        ]);
      });

      void it('returns what it stored, with times', async () => {
        const app = await newApp();
        const before = Date.now();
        const input = message(app, { text: 'hi' }, {
          target: { all: false, clientIds: [asClientId('c1')], tags: ['vip'] },
          targeted: 3,
          event: 'onNews',
          ttlSeconds: 120,
        });
        const stored = await s.messages.append(input);
        assert.equal(stored.id, 1);
        assert.ok(stored.createdAt >= before && stored.createdAt <= Date.now());
        assert.equal(stored.expiresAt, stored.createdAt + 120_000);
        assert.deepEqual(stored, { ...input, id: stored.id, createdAt: stored.createdAt, expiresAt: stored.expiresAt });
        assert.deepEqual(await s.messages.get(app, stored.id), stored);
      });

      void it('gets a message by app and id only', async () => {
        const a = await newApp('a');
        const b = await newApp('b');
        const m = await s.messages.append(message(a, 1));
        assert.deepEqual(await s.messages.get(a, m.id), m);
        assert.equal(await s.messages.get(a, asMessageId(2)), undefined);
        assert.equal(await s.messages.get(b, m.id), undefined);
      });

      void it('rejects a message for an unknown app', async () => {
        await assert.rejects(s.messages.append(message(asApiKey('no-such-app'), 1)), { code: 'STORE_UNKNOWN_APP' });
      });

      void it('never reuses the id of a deleted newest message', async () => {
        const app = await newApp();
        await s.messages.append(message(app, 'kept'));
        const doomed = await s.messages.append(message(app, 'expires', { ttlSeconds: 0 }));
        assert.equal(doomed.id, 2);
        assert.equal(await s.messages.sweepExpired(Date.now()), 1);
        assert.equal(await s.messages.get(app, doomed.id), undefined);
        assert.equal((await s.messages.append(message(app, 'next'))).id, 3);
      });

      void it('never reuses ids after a sweep emptied the app', async () => {
        const app = await newApp();
        for (let i = 0; i < 5; i++) await s.messages.append(message(app, i));
        assert.equal(await s.messages.sweepExpired(Date.now() + 2 * HOUR * 1000), 5);
        assert.deepEqual(await s.messages.history(app, { limit: 10 }), []);
        assert.equal((await s.messages.append(message(app, 'after'))).id, 6);
      });

      void it('reads after an id, in order, at most limit', async () => {
        const app = await newApp();
        const other = await newApp('other');
        for (let i = 1; i <= 10; i++) {
          await s.messages.append(message(app, i));
          await s.messages.append(message(other, -i));
        }
        const first = await s.messages.readAfter(app, asMessageId(0), 4);
        assert.deepEqual(ids(first), [1, 2, 3, 4]);
        assert.deepEqual(first.map((m) => m.data), [1, 2, 3, 4]);
        assert.ok(first.every((m) => m.apikey === app));
        assert.deepEqual(ids(await s.messages.readAfter(app, asMessageId(4), 4)), [5, 6, 7, 8]);
        assert.deepEqual(ids(await s.messages.readAfter(app, asMessageId(8), 4)), [9, 10]);
        assert.deepEqual(ids(await s.messages.readAfter(app, asMessageId(10), 4)), []);
        assert.deepEqual(ids(await s.messages.readAfter(app, asMessageId(0), 100)), range(1, 10));
        assert.deepEqual(await s.messages.readAfter(app, asMessageId(0), 0), []);
      });

      void it('reads only unexpired messages, while expired ones still take an id', async () => {
        const app = await newApp();
        await s.messages.append(message(app, 'live 1'));
        await s.messages.append(message(app, 'dead', { ttlSeconds: 0 }));
        await s.messages.append(message(app, 'live 2'));
        const read = await s.messages.readAfter(app, asMessageId(0), 10);
        assert.deepEqual(ids(read), [1, 3]);
        assert.deepEqual(read.map((m) => m.data), ['live 1', 'live 2']);
        // The limit counts returned messages, not skipped ones.
        assert.deepEqual(ids(await s.messages.readAfter(app, asMessageId(0), 2)), [1, 3]);
      });

      void it('pages history newest first', async () => {
        const app = await newApp();
        const other = await newApp('other');
        for (let i = 1; i <= 7; i++) {
          await s.messages.append(message(app, i));
          await s.messages.append(message(other, i));
        }
        const seen: number[][] = [];
        let before: MessageId | undefined;
        for (;;) {
          const page = await s.messages.history(app, before === undefined ? { limit: 3 } : { limit: 3, before });
          if (page.length === 0) break;
          assert.ok(page.every((m) => m.apikey === app));
          seen.push(ids(page));
          before = page[page.length - 1]?.id;
        }
        assert.deepEqual(seen, [
          [7, 6, 5],
          [4, 3, 2],
          [1],
        ]);
        assert.deepEqual(ids(await s.messages.history(app, { limit: 100, before: asMessageId(3) })), [2, 1]);
        assert.deepEqual(await s.messages.history(app, { limit: 0 }), []);
        assert.deepEqual(await s.messages.history(asApiKey('no-such-app'), { limit: 10 }), []);
      });

      void it('sweeps expired messages and counts them', async () => {
        const app = await newApp();
        const now = Date.now();
        const dead = await s.messages.append(message(app, 'dead', { ttlSeconds: 0 }));
        const soon = await s.messages.append(message(app, 'soon', { ttlSeconds: 60 }));
        const late = await s.messages.append(message(app, 'late', { ttlSeconds: HOUR }));
        assert.equal(await s.messages.sweepExpired(now - 1000), 0);
        assert.equal(await s.messages.sweepExpired(dead.expiresAt), 1);
        assert.equal(await s.messages.get(app, dead.id), undefined);
        assert.equal(await s.messages.sweepExpired(dead.expiresAt), 0);
        // expiresAt is the first instant at which a message is expired.
        assert.equal(await s.messages.sweepExpired(soon.expiresAt - 1), 0);
        assert.equal(await s.messages.sweepExpired(soon.expiresAt), 1);
        assert.deepEqual(ids(await s.messages.history(app, { limit: 10 })), [late.id]);
        assert.equal(await s.messages.sweepExpired(late.expiresAt + 1), 1);
        assert.deepEqual(await s.messages.history(app, { limit: 10 }), []);
      });

      void it('deletes an app with its messages', async () => {
        const gone = await newApp('gone');
        const kept = await newApp('kept');
        for (let i = 0; i < 3; i++) {
          await s.messages.append(message(gone, i));
          await s.messages.append(message(kept, i));
        }
        assert.equal(await s.apps.deleteApp(gone), true);
        assert.equal(await s.messages.get(gone, asMessageId(1)), undefined);
        assert.deepEqual(await s.messages.readAfter(gone, asMessageId(0), 10), []);
        assert.deepEqual(await s.messages.history(gone, { limit: 10 }), []);
        await assert.rejects(s.messages.append(message(gone, 'late')), { code: 'STORE_UNKNOWN_APP' });
        assert.deepEqual(ids(await s.messages.readAfter(kept, asMessageId(0), 10)), [1, 2, 3]);
      });

      void it('gives 200 concurrent appends unique, increasing ids', async () => {
        const app = await newApp();
        const stored = await Promise.all(range(1, 200).map((i) => s.messages.append(message(app, { i }))));
        assert.deepEqual(
          ids(stored).sort((x, y) => x - y),
          range(1, 200),
        );
        const read = await s.messages.readAfter(app, asMessageId(0), 500);
        assert.deepEqual(ids(read), range(1, 200));
        const byId = new Map(stored.map((m) => [m.id as number, m.data]));
        for (const m of read) assert.deepEqual(m.data, byId.get(m.id));
      });

      void it('round-trips Unicode exactly', async () => {
        const app = await newApp();
        const input = message(
          app,
          { 标题: '你好，世界', 正文: '推送消息：测试 🍊 柚子', list: ['北京', '上海', '𠀀𪚥'], nfd: 'e\u0301', nfc: 'é' },
          {
            event: 'onMsg·消息',
            target: { all: false, clientIds: [asClientId('设备-001'), asClientId('🍊')], tags: ['用户', 'vip'] },
          },
        );
        const stored = await s.messages.append(input);
        for (const m of [
          await s.messages.get(app, stored.id),
          (await s.messages.readAfter(app, asMessageId(0), 1))[0],
          (await s.messages.readFor(app, client('设备-001'), asMessageId(0), 1))[0],
          (await s.messages.readFor(app, client('x', ['用户']), asMessageId(0), 1))[0],
        ]) {
          assert.ok(m);
          assert.deepEqual(m.data, input.data);
          assert.equal(m.event, input.event);
          assert.deepEqual(m.target, input.target);
        }
        const named = await s.apps.createApp({ name: '柚子推送 🍊' });
        assert.equal((await s.apps.getApp(named.apikey))?.name, '柚子推送 🍊');
      });

      void it('round-trips JSON payloads of every kind', async () => {
        const app = await newApp();
        const samples: unknown[] = [
          null,
          true,
          false,
          0,
          -1,
          3.141592653589793,
          1e300,
          -5e-324,
          Number.MAX_SAFE_INTEGER,
          '',
          'plain',
          'quotes " and \\ backslashes\n\t\u0000 and \u2028',
          [],
          [1, 'two', null, [3], { four: 4 }],
          {},
          { nested: { deeper: { deepest: [true, { k: null }] } }, '': 'empty key', 'a.b': 1 },
        ];
        for (const data of samples) {
          const stored = await s.messages.append(message(app, data));
          assert.deepEqual((await s.messages.get(app, stored.id))?.data, data);
        }
        await fc.assert(
          fc.asyncProperty(fc.jsonValue({ stringUnit: 'binary', maxDepth: 4 }), async (data) => {
            const stored = await s.messages.append(message(app, data));
            // JSON has no -0: what comes back is the value's JSON form.
            const expected: unknown = JSON.parse(JSON.stringify(data));
            assert.deepEqual((await s.messages.get(app, stored.id))?.data, expected);
          }),
          { numRuns: 100 },
        );
      });
    });

    void describe('bad input', () => {
      void it('rejects a bad message with STORE_INVALID, storing nothing and spending no id', async () => {
        const app = await newApp();
        const bad: Partial<NewMessage>[] = [
          { data: undefined },
          { data: () => 1 },
          { ttlSeconds: -1 },
          { ttlSeconds: 1.5 },
          { ttlSeconds: Number.NaN },
          // Its expiry time would not be a safe integer.
          { ttlSeconds: Number.MAX_SAFE_INTEGER },
          { targeted: -1 },
          { targeted: 0.5 },
        ];
        for (const over of bad) {
          await assert.rejects(s.messages.append(message(app, 1, over)), { name: 'StoreError', code: 'STORE_INVALID' }, JSON.stringify(over));
        }
        assert.equal(await s.messages.lastId(app), 0);
        assert.deepEqual(await s.messages.history(app, { limit: 10 }), []);
        assert.equal((await s.messages.append(message(app, 1))).id, 1);
      });

      void it('keeps STORE_UNKNOWN_APP for an unknown app, also when the input is fine', async () => {
        const nowhere = asApiKey('no-such-app');
        await assert.rejects(s.messages.append(message(nowhere, 1)), { code: 'STORE_UNKNOWN_APP' });
        await assert.rejects(s.clients.touch(nowhere, cid('c'), { startAfter: mid(0), now: 1 }), { code: 'STORE_UNKNOWN_APP' });
        await assert.rejects(s.clients.setTags(nowhere, cid('c'), ['t']), { code: 'STORE_UNKNOWN_APP' });
      });
    });

    void describe('messages: append stores targeted', () => {
      void it('returns and reads back how many clients were targeted', async () => {
        const app = await newApp();
        const stored = await s.messages.append(message(app, 'x', { targeted: 42 }));
        assert.equal(stored.targeted, 42);
        assert.equal((await s.messages.get(app, stored.id))?.targeted, 42);
        assert.equal((await s.messages.readAfter(app, mid(0), 1))[0]?.targeted, 42);
        assert.equal((await s.messages.readFor(app, client('anyone'), mid(0), 1))[0]?.targeted, 42);
        assert.deepEqual((await s.messages.history(app, { limit: 1 }))[0]?.receipt, { targeted: 42, delivered: 0, acked: 0, skipped: 0 });
      });
    });

    void describe('messages: readFor', () => {
      // 1 all · 2 c1 · 3 c2 · 4 vip · 5 other · 6 nobody · 7 c1 + vip · 8 vip + gold
      // 9 all + c2 + other · 10 c1 named twice, gold twice
      async function mixed(app: ApiKey): Promise<void> {
        const targets: Target[] = [
          ALL,
          to(['c1']),
          to(['c2']),
          to([], ['vip']),
          to([], ['other']),
          to([]),
          to(['c1'], ['vip']),
          to([], ['vip', 'gold']),
          { all: true, clientIds: [cid('c2')], tags: ['other'] },
          to(['c1', 'c1'], ['gold', 'gold']),
        ];
        for (const [i, target] of targets.entries()) await s.messages.append(message(app, i + 1, { target }));
      }

      void it('reads what targets the client: all, its clientId, any of its tags', async () => {
        const app = await newApp();
        await mixed(app);
        const read = async (ref: ClientRef): Promise<number[]> => ids(await s.messages.readFor(app, ref, mid(0), 100));
        assert.deepEqual(await read(client('c1')), [1, 2, 7, 9, 10]);
        assert.deepEqual(await read(client('c2')), [1, 3, 9]);
        assert.deepEqual(await read(client('c3', ['vip'])), [1, 4, 7, 8, 9]);
        assert.deepEqual(await read(client('c3', ['other'])), [1, 5, 9]);
        assert.deepEqual(await read(client('c3', ['gold'])), [1, 8, 9, 10]);
        assert.deepEqual(await read(client('c1', ['vip', 'gold'])), [1, 2, 4, 7, 8, 9, 10]);
        assert.deepEqual(await read(client('c2', ['other', 'vip'])), [1, 3, 4, 5, 7, 8, 9]);
        // Nobody is targeted by message 6, and a tag is not a clientId nor the reverse.
        assert.deepEqual(await read(client('stranger')), [1, 9]);
        assert.deepEqual(await read(client('vip', ['c1'])), [1, 9]);
      });

      void it('returns whole messages, each once however many ways it matches', async () => {
        const app = await newApp();
        await mixed(app);
        const read = await s.messages.readFor(app, client('c1', ['vip', 'gold', 'vip', 'other']), mid(0), 100);
        assert.deepEqual(ids(read), [1, 2, 4, 5, 7, 8, 9, 10]);
        for (const m of read) assert.deepEqual(m, await s.messages.get(app, m.id));
      });

      void it('reads after an id, in order, at most limit distinct messages', async () => {
        const app = await newApp();
        await mixed(app);
        const ref = client('c1', ['vip', 'gold']);
        const pages: number[][] = [];
        let after = mid(0);
        for (;;) {
          const page = await s.messages.readFor(app, ref, after, 2);
          if (page.length === 0) break;
          pages.push(ids(page));
          after = page[page.length - 1]?.id ?? after;
        }
        assert.deepEqual(pages, [[1, 2], [4, 7], [8, 9], [10]]);
        assert.deepEqual(ids(await s.messages.readFor(app, ref, mid(7), 100)), [8, 9, 10]);
        assert.deepEqual(ids(await s.messages.readFor(app, ref, mid(10), 100)), []);
        assert.deepEqual(await s.messages.readFor(app, ref, mid(0), 0), []);
        assert.deepEqual(await s.messages.readFor(app, ref, mid(0), -5), []);
      });

      void it('skips expired messages of every kind without counting them toward the limit', async () => {
        const app = await newApp();
        const dead = { ttlSeconds: 0 };
        await s.messages.append(message(app, 'dead all', dead)); // 1
        await s.messages.append(message(app, 'dead c1', { ...dead, target: to(['c1']) })); // 2
        await s.messages.append(message(app, 'dead vip', { ...dead, target: to([], ['vip']) })); // 3
        await s.messages.append(message(app, 'live c1', { target: to(['c1']) })); // 4
        await s.messages.append(message(app, 'dead vip', { ...dead, target: to([], ['vip']) })); // 5
        await s.messages.append(message(app, 'live vip', { target: to([], ['vip']) })); // 6
        await s.messages.append(message(app, 'live all')); // 7
        const ref = client('c1', ['vip']);
        assert.deepEqual(ids(await s.messages.readFor(app, ref, mid(0), 100)), [4, 6, 7]);
        assert.deepEqual(ids(await s.messages.readFor(app, ref, mid(0), 2)), [4, 6]);
        assert.deepEqual(ids(await s.messages.readFor(app, client('c1'), mid(0), 1)), [4]);
        assert.deepEqual(ids(await s.messages.readFor(app, client('x', ['vip']), mid(0), 1)), [6]);
        assert.deepEqual(ids(await s.messages.readFor(app, client('x'), mid(0), 1)), [7]);
      });

      void it('matches any of many tags, in id order', async () => {
        const app = await newApp();
        const tags = range(0, 19).map((i) => `tag-${i}`);
        // Message k is for tag-(20-k), so that order comes from ids only. The last names
        // three of the client's tags: one it reads through an arm of its own, and two past
        // the first eight tags (SQLite reads those through one shared arm).
        for (const tag of [...tags].reverse()) await s.messages.append(message(app, tag, { target: to([], [tag]) }));
        await s.messages.append(message(app, 'several', { target: to([], ['tag-17', 'tag-3', 'tag-18']) }));
        const mine = ['tag-19', 'tag-0', 'tag-3', 'tag-7', 'tag-9', 'tag-11', 'tag-12', 'tag-14', 'tag-15', 'tag-17', 'tag-18', 'unused'];
        const read = await s.messages.readFor(app, client('c', mine), mid(0), 100);
        assert.deepEqual(
          read.map((m) => m.data),
          ['tag-19', 'tag-18', 'tag-17', 'tag-15', 'tag-14', 'tag-12', 'tag-11', 'tag-9', 'tag-7', 'tag-3', 'tag-0', 'several'],
        );
        assert.deepEqual(ids(await s.messages.readFor(app, client('c', mine), mid(0), 3)), [1, 2, 3]);
        assert.deepEqual(ids(await s.messages.readFor(app, client('c', mine), mid(13), 3)), [17, 20, 21]);
        assert.deepEqual(ids(await s.messages.readFor(app, client('c', ['tag-18', 'x', 'y', 'z', 'w', 'v', 'u', 't', 'tag-17']), mid(0), 5)), [2, 3, 21]);
      });

      void it('keeps apps apart: same ids, clientIds and tags in another app', async () => {
        const a = await newApp('a');
        const b = await newApp('b');
        await s.messages.append(message(b, 'b all'));
        await s.messages.append(message(b, 'b c1', { target: to(['c1']) }));
        await s.messages.append(message(b, 'b vip', { target: to([], ['vip']) }));
        await s.messages.append(message(a, 'a c1', { target: to(['c1']) }));
        const ref = client('c1', ['vip']);
        const read = await s.messages.readFor(a, ref, mid(0), 100);
        assert.deepEqual(read.map((m) => [m.apikey, m.id, m.data]), [[a, 1, 'a c1']]);
        assert.deepEqual(
          (await s.messages.readFor(b, ref, mid(0), 100)).map((m) => m.data),
          ['b all', 'b c1', 'b vip'],
        );
        assert.deepEqual(await s.messages.readFor(asApiKey('no-such-app'), ref, mid(0), 100), []);
      });
    });

    void describe('messages: lastId', () => {
      void it('is the newest id ever appended, per app, also after a sweep', async () => {
        const a = await newApp('a');
        const b = await newApp('b');
        assert.equal(await s.messages.lastId(a), 0);
        assert.equal(await s.messages.lastId(asApiKey('no-such-app')), 0);
        for (let i = 0; i < 3; i++) await s.messages.append(message(a, i, { ttlSeconds: 0 }));
        await s.messages.append(message(b, 'b'));
        assert.equal(await s.messages.lastId(a), 3);
        assert.equal(await s.messages.lastId(b), 1);
        assert.equal(await s.messages.sweepExpired(Date.now()), 3);
        assert.equal(await s.messages.lastId(a), 3);
      });
    });

    void describe('messages: receipts', () => {
      void it('accumulates counters across batches', async () => {
        const app = await newApp();
        const other = await newApp('other');
        const m1 = await s.messages.append(message(app, 1, { targeted: 5 }));
        const m2 = await s.messages.append(message(app, 2, { targeted: 2, target: to([], ['vip']) }));
        const o1 = await s.messages.append(message(other, 1, { targeted: 1 }));
        const at = Date.now();
        await s.messages.recordReceipts([
          { apikey: app, id: m1.id, delivered: 3, acked: 0, at },
          { apikey: app, id: m2.id, delivered: 1, acked: 1, at },
          { apikey: app, id: m1.id, delivered: 1, acked: 2, at },
        ]);
        await s.messages.recordReceipts([{ apikey: app, id: m1.id, delivered: 1, acked: 2, at }]);
        await s.messages.recordReceipts([]);
        assert.deepEqual(await s.messages.receipt(app, m1.id), { receipt: { targeted: 5, delivered: 5, acked: 4, skipped: 0 }, recipients: [] });
        assert.deepEqual(await s.messages.receipt(app, m2.id), { receipt: { targeted: 2, delivered: 1, acked: 1, skipped: 0 }, recipients: [] });
        // Same id, other app: untouched.
        assert.deepEqual(await s.messages.receipt(other, o1.id), { receipt: { targeted: 1, delivered: 0, acked: 0, skipped: 0 }, recipients: [] });
        assert.deepEqual(
          (await s.messages.history(app, { limit: 10 })).map((m) => [m.id, m.receipt]),
          [
            [2, { targeted: 2, delivered: 1, acked: 1, skipped: 0 }],
            [1, { targeted: 5, delivered: 5, acked: 4, skipped: 0 }],
          ],
        );
      });

      void it('tracks each named recipient: first delivery and first ack times', async () => {
        const app = await newApp();
        const m = await s.messages.append(message(app, 'hi', { targeted: 3, target: to(['c2', 'c1', 'c2', 'c3']) }));
        const initial = await s.messages.receipt(app, m.id);
        assert.deepEqual(initial, {
          receipt: { targeted: 3, delivered: 0, acked: 0, skipped: 0 },
          recipients: [{ clientId: 'c2' }, { clientId: 'c1' }, { clientId: 'c3' }],
        });
        await s.messages.recordReceipts([
          { apikey: app, id: m.id, delivered: 2, acked: 0, deliveredTo: [cid('c1'), cid('c2')], at: 1000 },
        ]);
        await s.messages.recordReceipts([
          // Delivered again after a reconnect: keeps the first time. A client that was
          // not named gets no row.
          { apikey: app, id: m.id, delivered: 0, acked: 1, deliveredTo: [cid('c1'), cid('stranger')], ackedBy: [cid('c1')], at: 2000 },
          { apikey: app, id: m.id, delivered: 0, acked: 0, ackedBy: [cid('c1')], at: 3000 },
        ]);
        assert.deepEqual(await s.messages.receipt(app, m.id), {
          receipt: { targeted: 3, delivered: 2, acked: 1, skipped: 0 },
          recipients: [
            { clientId: 'c2', deliveredAt: 1000 },
            { clientId: 'c1', deliveredAt: 1000, ackedAt: 2000 },
            { clientId: 'c3' },
          ],
        });
      });

      void it('has no recipients for broadcasts and tag pushes', async () => {
        const app = await newApp();
        const all = await s.messages.append(message(app, 'all', { targeted: 2 }));
        const tagged = await s.messages.append(message(app, 'vip', { targeted: 2, target: to([], ['vip']) }));
        for (const m of [all, tagged]) {
          await s.messages.recordReceipts([{ apikey: app, id: m.id, delivered: 2, acked: 1, deliveredTo: [cid('c1')], ackedBy: [cid('c1')], at: 5 }]);
          assert.deepEqual(await s.messages.receipt(app, m.id), { receipt: { targeted: 2, delivered: 2, acked: 1, skipped: 0 }, recipients: [] });
        }
      });

      void it('ignores updates for messages that do not exist, applying the rest', async () => {
        const app = await newApp();
        const m = await s.messages.append(message(app, 'x', { target: to(['c1']) }));
        const gone = await s.messages.append(message(app, 'gone', { ttlSeconds: 0, target: to(['c1']) }));
        await s.messages.sweepExpired(Date.now());
        await s.messages.recordReceipts([
          { apikey: app, id: mid(99), delivered: 1, acked: 1, at: 1 },
          { apikey: app, id: gone.id, delivered: 1, acked: 1, deliveredTo: [cid('c1')], at: 1 },
          { apikey: asApiKey('no-such-app'), id: m.id, delivered: 1, acked: 1, at: 1 },
          { apikey: app, id: m.id, delivered: 1, acked: 0, deliveredTo: [cid('c1')], at: 7 },
        ]);
        assert.deepEqual(await s.messages.receipt(app, m.id), {
          receipt: { targeted: 0, delivered: 1, acked: 0, skipped: 0 },
          recipients: [{ clientId: 'c1', deliveredAt: 7 }],
        });
        assert.equal(await s.messages.receipt(app, gone.id), undefined);
        assert.equal(await s.messages.receipt(app, mid(99)), undefined);
        assert.equal(await s.messages.receipt(asApiKey('no-such-app'), m.id), undefined);
      });

      void it('rejects a batch with a bad update whole, with STORE_INVALID', async () => {
        const app = await newApp();
        const m = await s.messages.append(message(app, 'x', { target: to(['c1']) }));
        const good = { apikey: app, id: m.id, delivered: 1, acked: 1, deliveredTo: [cid('c1')], at: 1 };
        for (const bad of [{ delivered: -1 }, { acked: 0.5 }, { at: Number.NaN }]) {
          await assert.rejects(s.messages.recordReceipts([good, { ...good, ...bad }]), { code: 'STORE_INVALID' }, JSON.stringify(bad));
        }
        assert.deepEqual(await s.messages.receipt(app, m.id), {
          receipt: { targeted: 0, delivered: 0, acked: 0, skipped: 0 },
          recipients: [{ clientId: 'c1' }],
        });
      });
    });

    void describe('messages: ack ranges and skips', () => {
      /** Acked counts by message id, through history (newest first, pages of 500). */
      async function ackedById(app: ApiKey): Promise<Map<number, number>> {
        const out = new Map<number, number>();
        let before: MessageId | undefined;
        for (;;) {
          const page = await s.messages.history(app, { limit: 500, ...(before !== undefined ? { before } : {}) });
          for (const m of page) out.set(m.id, m.receipt.acked);
          if (page.length < 500) return out;
          before = page.at(-1)!.id;
        }
      }

      void it('counts one range over a backlog of any length: every message that targets the client, once', async () => {
        const app = await newApp();
        await s.clients.touch(app, cid('c1'), { startAfter: mid(0), addTags: ['vip'], now: 1 });
        // 1,500 messages (more than any in-memory window), five kinds in turn: three
        // target c1 (all, by name, by its tag), two do not.
        const kinds: Target[] = [ALL, to(['c1']), to([], ['vip']), to(['other']), to([], ['news'])];
        const mine = new Set<number>();
        for (let i = 0; i < 1500; i++) {
          const m = await s.messages.append(message(app, i, { target: kinds[i % 5]! }));
          if (i % 5 < 3) mine.add(m.id);
        }
        const at = Date.now();
        await s.messages.recordAcks([{ apikey: app, client: client('c1', ['vip']), after: mid(0), upTo: mid(1500), at }]);
        const acked = await ackedById(app);
        assert.equal(acked.size, 1500);
        for (const [id, n] of acked) assert.equal(n, mine.has(id) ? 1 : 0, `message ${id}`);
        assert.equal((await s.clients.get(app, cid('c1')))?.lastAckedId, 1500);
        // A named recipient gets its ack time.
        assert.deepEqual((await s.messages.receipt(app, mid(2)))?.recipients, [{ clientId: 'c1', ackedAt: at }]);
        // The same range again (another node's copy, a retry), or one that overlaps:
        // nothing is counted twice.
        await s.messages.recordAcks([
          { apikey: app, client: client('c1', ['vip']), after: mid(0), upTo: mid(1500), at },
          { apikey: app, client: client('c1', ['vip']), after: mid(700), upTo: mid(1200), at },
        ]);
        assert.deepEqual(await ackedById(app), acked);
        assert.equal((await s.clients.get(app, cid('c1')))?.lastAckedId, 1500);
      });

      void it('starts after the larger of `after` and the stored position; stops at upTo', async () => {
        const app = await newApp();
        await s.clients.touch(app, cid('c1'), { startAfter: mid(0), now: 1 });
        for (let i = 0; i < 10; i++) await s.messages.append(message(app, i));
        const at = Date.now();
        // Stored position 0, `after` 3 (a connection that began at 3 never had 1..3).
        await s.messages.recordAcks([{ apikey: app, client: client('c1'), after: mid(3), upTo: mid(5), at }]);
        // Stored position 5 now: a range from 2 counts only 6..7.
        await s.messages.recordAcks([{ apikey: app, client: client('c1'), after: mid(2), upTo: mid(7), at }]);
        // A range at or below the position counts nothing and never moves it back.
        await s.messages.recordAcks([{ apikey: app, client: client('c1'), after: mid(0), upTo: mid(4), at }]);
        const acked = await ackedById(app);
        assert.deepEqual(range(1, 10).map((id) => acked.get(id)), [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]);
        assert.equal((await s.clients.get(app, cid('c1')))?.lastAckedId, 7);
        // Another app's client of the same name, and an unknown client: only their own.
        const other = await newApp('other');
        await s.messages.append(message(other, 'o'));
        await s.messages.recordAcks([{ apikey: other, client: client('c1'), after: mid(0), upTo: mid(1), at }]);
        await s.messages.recordAcks([{ apikey: app, client: client('never-seen'), after: mid(9), upTo: mid(10), at }]);
        assert.equal((await ackedById(other)).get(1), 1);
        assert.equal((await ackedById(app)).get(10), 1);
        assert.equal(await s.clients.get(app, cid('never-seen')), undefined);
      });

      void it('counts a batch of many clients at once: each message once per range that holds it', async () => {
        const app = await newApp();
        const clients = Array.from({ length: 40 }, (_, i) => `c${i}`);
        for (const c of clients) await s.clients.touch(app, cid(c), { startAfter: mid(0), addTags: c === 'c7' ? ['vip'] : [], now: 1 });
        // 60 messages: mostly broadcasts, some to c3 by name, some to the tag of c7.
        const targets: Target[] = [];
        for (let i = 1; i <= 60; i++) {
          const target = i % 10 === 0 ? to(['c3']) : i % 15 === 0 ? to([], ['vip']) : ALL;
          targets.push(target);
          await s.messages.append(message(app, i, { target }));
        }
        // c5 skipped broadcast 12, and c3 its named message 20.
        await s.messages.recordSkips([
          { apikey: app, id: mid(12), clientId: cid('c5'), reason: 'PROTO_DOES_NOT_FIT', at: 1 },
          { apikey: app, id: mid(20), clientId: cid('c3'), reason: 'PROTO_DOES_NOT_FIT', at: 1 },
        ]);
        // Client i acks (i, i + 20]; c0 twice in the batch: (0, 10], then (5, 30].
        const at = Date.now();
        const ranges = clients.map((c, i) => ({ apikey: app, client: client(c, c === 'c7' ? ['vip'] : []), after: mid(i), upTo: mid(i + 20), at }));
        ranges.push({ apikey: app, client: client('c0'), after: mid(5), upTo: mid(30), at });
        ranges[0] = { ...ranges[0]!, upTo: mid(10) };
        await s.messages.recordAcks(ranges);
        // The same by brute force.
        const expected = new Map<number, number>();
        const spans = new Map<string, [number, number][]>();
        for (const r of ranges) spans.set(r.client.clientId, [...(spans.get(r.client.clientId) ?? []), [r.after, r.upTo]]);
        for (let id = 1; id <= 60; id++) {
          const t = targets[id - 1]!;
          let n = 0;
          for (const [c, list] of spans) {
            const targetsIt = t.all || t.clientIds.includes(cid(c)) || (c === 'c7' && t.tags.includes('vip'));
            const skipped = (c === 'c5' && id === 12) || (c === 'c3' && id === 20);
            // A client's ranges count once over their union (c0: (0, 30]).
            if (targetsIt && !skipped && list.some(([a, u]) => a < id && id <= u)) n++;
          }
          expected.set(id, n);
        }
        assert.deepEqual(await ackedById(app), expected);
        for (const [i, c] of clients.entries()) assert.equal((await s.clients.get(app, cid(c)))?.lastAckedId, c === 'c0' ? 30 : i + 20, c);
        assert.deepEqual((await s.messages.receipt(app, mid(10)))?.recipients, [{ clientId: 'c3', ackedAt: at }]);
        assert.deepEqual((await s.messages.receipt(app, mid(20)))?.recipients, [{ clientId: 'c3', skippedAt: 1, skipReason: 'PROTO_DOES_NOT_FIT' }]);
      });

      void it('counts nothing between the ranges of a batch', async () => {
        const app = await newApp();
        for (const c of ['a', 'b']) await s.clients.touch(app, cid(c), { startAfter: mid(0), now: 1 });
        for (let i = 0; i < 12; i++) await s.messages.append(message(app, i));
        const at = Date.now();
        await s.messages.recordAcks([
          { apikey: app, client: client('a'), after: mid(1), upTo: mid(3), at },
          { apikey: app, client: client('b'), after: mid(8), upTo: mid(10), at },
        ]);
        const acked = await ackedById(app);
        assert.deepEqual(range(1, 12).map((id) => acked.get(id)), [0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0]);
      });

      void it('does not count expired messages', async () => {
        const app = await newApp();
        await s.clients.touch(app, cid('c1'), { startAfter: mid(0), now: 1 });
        const short = await s.messages.append(message(app, 'short', { ttlSeconds: 0 }));
        const long = await s.messages.append(message(app, 'long'));
        await s.messages.recordAcks([{ apikey: app, client: client('c1'), after: mid(0), upTo: long.id, at: Date.now() }]);
        assert.equal((await s.messages.receipt(app, short.id))?.receipt.acked, 0);
        assert.equal((await s.messages.receipt(app, long.id))?.receipt.acked, 1);
      });

      void it('records a skip once per client, with its reason; the client\'s acks leave it out', async () => {
        const app = await newApp();
        await s.clients.touch(app, cid('c1'), { startAfter: mid(0), addTags: ['vip'], now: 1 });
        const named = await s.messages.append(message(app, 'big', { targeted: 2, target: to(['c1', 'c2']) }));
        const tagged = await s.messages.append(message(app, 'big', { target: to([], ['vip']) }));
        const after = await s.messages.append(message(app, 'small', { target: to(['c1']) }));
        await s.messages.recordSkips([
          { apikey: app, id: named.id, clientId: cid('c1'), reason: 'LIMIT_CLIENT_MAX_PACKET', at: 10 },
          { apikey: app, id: tagged.id, clientId: cid('c1'), reason: 'PROTO_DOES_NOT_FIT', at: 11 },
          // Again (a replay after a reconnect skips it again): counted once, first reason kept.
          { apikey: app, id: named.id, clientId: cid('c1'), reason: 'PROTO_DOES_NOT_FIT', at: 12 },
          // A message that no longer exists, or never did: ignored.
          { apikey: app, id: mid(99), clientId: cid('c1'), reason: 'PROTO_DOES_NOT_FIT', at: 12 },
        ]);
        await s.messages.recordSkips([]);
        await s.messages.recordAcks([{ apikey: app, client: client('c1', ['vip']), after: mid(0), upTo: after.id, at: 20 }]);
        assert.deepEqual(await s.messages.receipt(app, named.id), {
          receipt: { targeted: 2, delivered: 0, acked: 0, skipped: 1 },
          recipients: [{ clientId: 'c1', skippedAt: 10, skipReason: 'LIMIT_CLIENT_MAX_PACKET' }, { clientId: 'c2' }],
        });
        assert.deepEqual(await s.messages.receipt(app, tagged.id), { receipt: { targeted: 0, delivered: 0, acked: 0, skipped: 1 }, recipients: [] });
        assert.deepEqual(await s.messages.receipt(app, after.id), {
          receipt: { targeted: 0, delivered: 0, acked: 1, skipped: 0 },
          recipients: [{ clientId: 'c1', ackedAt: 20 }],
        });
        assert.deepEqual((await s.messages.history(app, { limit: 3 })).map((m) => m.receipt.skipped), [0, 1, 1]);
        // Another client of the same message is counted on its own.
        await s.messages.recordSkips([{ apikey: app, id: named.id, clientId: cid('c2'), reason: 'PROTO_DOES_NOT_FIT', at: 30 }]);
        assert.equal((await s.messages.receipt(app, named.id))?.receipt.skipped, 2);
        // Swept with its message.
        const gone = await s.messages.append(message(app, 'gone', { ttlSeconds: 0, target: to(['c1']) }));
        await s.messages.recordSkips([{ apikey: app, id: gone.id, clientId: cid('c1'), reason: 'PROTO_DOES_NOT_FIT', at: 1 }]);
        await s.messages.sweepExpired(Date.now());
        assert.equal(await s.messages.receipt(app, gone.id), undefined);
      });

      void it('rejects a bad skip or ack range with STORE_INVALID, recording nothing of its batch', async () => {
        const app = await newApp();
        await s.clients.touch(app, cid('c1'), { startAfter: mid(0), now: 1 });
        const m = await s.messages.append(message(app, 'x'));
        const skip = { apikey: app, id: m.id, clientId: cid('c1'), reason: 'PROTO_DOES_NOT_FIT', at: 1 };
        for (const bad of [{ id: mid(-1) }, { at: Number.NaN }, { reason: '' }]) {
          await assert.rejects(s.messages.recordSkips([skip, { ...skip, ...bad }]), { code: 'STORE_INVALID' }, JSON.stringify(bad));
        }
        const ack = { apikey: app, client: client('c1'), after: mid(0), upTo: m.id, at: 1 };
        for (const bad of [{ after: mid(-1) }, { upTo: mid(1.5) }, { at: Number.NaN }]) {
          await assert.rejects(s.messages.recordAcks([ack, { ...ack, ...bad }]), { code: 'STORE_INVALID' }, JSON.stringify(bad));
        }
        assert.deepEqual((await s.messages.receipt(app, m.id))?.receipt, { targeted: 0, delivered: 0, acked: 0, skipped: 0 });
        assert.equal((await s.clients.get(app, cid('c1')))?.lastAckedId, 0);
      });
    });

    void describe('messages: sweep and delete with targets and receipts', () => {
      void it('sweeps expired targeted messages: not read, no receipt, targets gone', async () => {
        const app = await newApp();
        const dead = await s.messages.append(message(app, 'dead', { ttlSeconds: 0, targeted: 1, target: to(['c1'], ['vip']) }));
        const live = await s.messages.append(message(app, 'live', { targeted: 1, target: to(['c1'], ['vip']) }));
        assert.equal(await s.messages.sweepExpired(Date.now()), 1);
        assert.equal(await s.messages.receipt(app, dead.id), undefined);
        assert.deepEqual(ids(await s.messages.readFor(app, client('c1', ['vip']), mid(0), 10)), [live.id]);
        assert.deepEqual((await s.messages.receipt(app, live.id))?.recipients, [{ clientId: 'c1' }]);
      });

      void it('deletes an app with its targets, receipts and clients', async () => {
        const gone = await newApp('gone');
        const kept = await newApp('kept');
        for (const app of [gone, kept]) {
          await s.messages.append(message(app, 'c1', { target: to(['c1'], ['vip']) }));
          await s.clients.touch(app, cid('c1'), { startAfter: mid(0), addTags: ['vip'], now: 1 });
        }
        assert.equal(await s.apps.deleteApp(gone), true);
        assert.equal(await s.clients.get(gone, cid('c1')), undefined);
        assert.equal(await s.messages.receipt(gone, mid(1)), undefined);
        assert.deepEqual(await s.messages.readFor(gone, client('c1', ['vip']), mid(0), 10), []);
        assert.equal(await s.messages.lastId(gone), 0);
        assert.equal((await s.clients.get(kept, cid('c1')))?.clientId, 'c1');
        assert.deepEqual(ids(await s.messages.readFor(kept, client('c1'), mid(0), 10)), [1]);
        assert.deepEqual((await s.messages.receipt(kept, mid(1)))?.recipients, [{ clientId: 'c1' }]);
      });
    });

    void describe('clients', () => {
      void it('starts a new client at startAfter, with its tags', async () => {
        const app = await newApp();
        const state = await s.clients.touch(app, cid('c1'), { startAfter: mid(17), addTags: ['vip', 'ios', 'vip'], now: 1000 });
        assert.deepEqual(state, {
          clientId: 'c1',
          tags: ['vip', 'ios'],
          lastAckedId: 17,
          lastDeliveredId: 17,
          firstSeenAt: 1000,
          lastSeenAt: 1000,
        });
        assert.deepEqual(await s.clients.get(app, cid('c1')), state);
        assert.equal(await s.clients.get(app, cid('c2')), undefined);
        assert.deepEqual((await s.clients.touch(app, cid('c2'), { startAfter: mid(0), now: 5 })).tags, []);
      });

      void it('keeps a known client positions and first-seen time, adds tags in order of first appearance', async () => {
        const app = await newApp();
        await s.clients.touch(app, cid('c1'), { startAfter: mid(5), addTags: ['b', 'a'], now: 1000 });
        await s.clients.savePositions([{ apikey: app, clientId: cid('c1'), ackedId: mid(7), deliveredId: mid(9) }]);
        const again = await s.clients.touch(app, cid('c1'), { startAfter: mid(100), addTags: ['c', 'a', 'd', 'c'], now: 2000 });
        assert.deepEqual(again, {
          clientId: 'c1',
          tags: ['b', 'a', 'c', 'd'],
          lastAckedId: 7,
          lastDeliveredId: 9,
          firstSeenAt: 1000,
          lastSeenAt: 2000,
        });
        const quiet = await s.clients.touch(app, cid('c1'), { startAfter: mid(0), now: 3000 });
        assert.deepEqual(quiet, { ...again, lastSeenAt: 3000 });
        assert.deepEqual(await s.clients.get(app, cid('c1')), quiet);
      });

      void it('replaces tags with setTags, creating an unknown client at position 0', async () => {
        const app = await newApp();
        await s.clients.touch(app, cid('c1'), { startAfter: mid(3), addTags: ['a', 'b'], now: 1000 });
        await s.clients.setTags(app, cid('c1'), ['z', 'a', 'z']);
        assert.deepEqual(await s.clients.get(app, cid('c1')), {
          clientId: 'c1',
          tags: ['z', 'a'],
          lastAckedId: 3,
          lastDeliveredId: 3,
          firstSeenAt: 1000,
          lastSeenAt: 1000,
        });
        await s.clients.setTags(app, cid('c1'), []);
        assert.deepEqual((await s.clients.get(app, cid('c1')))?.tags, []);

        const before = Date.now();
        await s.clients.setTags(app, cid('new'), ['vip']);
        const created = await s.clients.get(app, cid('new'));
        assert.ok(created);
        assert.deepEqual({ ...created, firstSeenAt: 0, lastSeenAt: 0 }, {
          clientId: 'new',
          tags: ['vip'],
          lastAckedId: 0,
          lastDeliveredId: 0,
          firstSeenAt: 0,
          lastSeenAt: 0,
        });
        assert.ok(created.firstSeenAt >= before && created.firstSeenAt <= Date.now());
        // When it connects it is a known client: it keeps position 0.
        const first = await s.clients.touch(app, cid('new'), { startAfter: mid(50), addTags: ['ios'], now: Date.now() });
        assert.equal(first.lastAckedId, 0);
        assert.deepEqual(first.tags, ['vip', 'ios']);
      });

      void it('moves positions forward only, in one batch, ignoring unknown clients', async () => {
        const app = await newApp();
        const other = await newApp('other');
        for (const a of [app, other]) await s.clients.touch(a, cid('c1'), { startAfter: mid(10), now: 1 });
        await s.clients.touch(app, cid('c2'), { startAfter: mid(10), now: 1 });
        await s.clients.savePositions([
          { apikey: app, clientId: cid('c1'), ackedId: mid(12) },
          { apikey: app, clientId: cid('c1'), deliveredId: mid(15) },
          { apikey: app, clientId: cid('c1'), ackedId: mid(11), deliveredId: mid(14) },
          { apikey: app, clientId: cid('c2'), ackedId: mid(3), deliveredId: mid(4) },
          { apikey: app, clientId: cid('ghost'), ackedId: mid(99), deliveredId: mid(99) },
          { apikey: app, clientId: cid('c1') },
        ]);
        await s.clients.savePositions([]);
        const c1 = await s.clients.get(app, cid('c1'));
        assert.deepEqual([c1?.lastAckedId, c1?.lastDeliveredId], [12, 15]);
        const c2 = await s.clients.get(app, cid('c2'));
        assert.deepEqual([c2?.lastAckedId, c2?.lastDeliveredId], [10, 10]);
        assert.equal(await s.clients.get(app, cid('ghost')), undefined);
        const elsewhere = await s.clients.get(other, cid('c1'));
        assert.deepEqual([elsewhere?.lastAckedId, elsewhere?.lastDeliveredId], [10, 10]);
      });

      void it('keeps the same clientId in two apps apart', async () => {
        const a = await newApp('a');
        const b = await newApp('b');
        await s.clients.touch(a, cid('c1'), { startAfter: mid(1), addTags: ['in-a'], now: 1 });
        await s.clients.touch(b, cid('c1'), { startAfter: mid(2), addTags: ['in-b'], now: 2 });
        await s.clients.setTags(b, cid('c1'), ['changed']);
        await s.clients.savePositions([{ apikey: b, clientId: cid('c1'), ackedId: mid(8) }]);
        assert.deepEqual(await s.clients.get(a, cid('c1')), {
          clientId: 'c1',
          tags: ['in-a'],
          lastAckedId: 1,
          lastDeliveredId: 1,
          firstSeenAt: 1,
          lastSeenAt: 1,
        });
        assert.deepEqual(await s.clients.get(b, cid('c1')), {
          clientId: 'c1',
          tags: ['changed'],
          lastAckedId: 8,
          lastDeliveredId: 2,
          firstSeenAt: 2,
          lastSeenAt: 2,
        });
      });

      void it('accepts tags of 1 to 128 characters and up to 256 per client', async () => {
        const app = await newApp();
        const many = range(1, 256).map((i) => `t${i}`);
        await s.clients.setTags(app, cid('c1'), ['x'.repeat(128), '标', ...many.slice(2)]);
        assert.equal((await s.clients.get(app, cid('c1')))?.tags.length, 256);
        // Already-held tags do not count twice.
        const touched = await s.clients.touch(app, cid('c1'), { startAfter: mid(0), addTags: ['标', 't3'], now: 1 });
        assert.equal(touched.tags.length, 256);
      });

      void it('rejects bad tags and positions with STORE_INVALID, changing nothing', async () => {
        const app = await newApp();
        const c = cid('c1');
        await s.clients.touch(app, c, { startAfter: mid(5), addTags: ['keep'], now: 1 });
        const over = range(1, 256).map((i) => `t${i}`);
        const badTags: unknown[][] = [[''], ['x'.repeat(129)], [...over, 'one too many'], [7], [null]];
        for (const tags of badTags) {
          const label = JSON.stringify(tags).slice(0, 40);
          await assert.rejects(s.clients.setTags(app, c, tags as string[]), { code: 'STORE_INVALID' }, label);
          await assert.rejects(s.clients.touch(app, c, { startAfter: mid(0), addTags: tags as string[], now: 2 }), { code: 'STORE_INVALID' }, label);
          await assert.rejects(s.clients.setTags(app, cid('fresh'), tags as string[]), { code: 'STORE_INVALID' }, label);
        }
        // The union would pass 256.
        await assert.rejects(s.clients.touch(app, c, { startAfter: mid(0), addTags: over, now: 2 }), { code: 'STORE_INVALID' });
        for (const startAfter of [-1, 1.5, Number.NaN]) {
          await assert.rejects(s.clients.touch(app, cid('fresh'), { startAfter: mid(startAfter), now: 2 }), { code: 'STORE_INVALID' });
        }
        await assert.rejects(s.clients.touch(app, c, { startAfter: mid(0), now: Number.NaN }), { code: 'STORE_INVALID' });
        for (const bad of [{ ackedId: mid(-1) }, { deliveredId: mid(2.5) }]) {
          await assert.rejects(
            s.clients.savePositions([{ apikey: app, clientId: c, ackedId: mid(9) }, { apikey: app, clientId: c, ...bad }]),
            { code: 'STORE_INVALID' },
          );
        }
        assert.deepEqual(await s.clients.get(app, c), {
          clientId: 'c1',
          tags: ['keep'],
          lastAckedId: 5,
          lastDeliveredId: 5,
          firstSeenAt: 1,
          lastSeenAt: 1,
        });
        assert.equal(await s.clients.get(app, cid('fresh')), undefined);
      });

      void it(`sweeps clients unseen for ${CLIENT_RETENTION_MS / DAY_MS} days, counting only messages`, async () => {
        const app = await newApp();
        const t0 = Date.now();
        await s.clients.touch(app, cid('old'), { startAfter: mid(0), now: t0 });
        await s.clients.touch(app, cid('recent'), { startAfter: mid(0), now: t0 + DAY_MS });
        await s.clients.touch(app, cid('back'), { startAfter: mid(0), now: t0 });
        await s.clients.touch(app, cid('back'), { startAfter: mid(0), now: t0 + 2 * DAY_MS });
        await s.messages.append(message(app, 'x'));
        assert.equal(await s.messages.sweepExpired(t0 + CLIENT_RETENTION_MS), 1);
        assert.ok(await s.clients.get(app, cid('old')), 'unseen exactly the retention: kept');
        assert.equal(await s.messages.sweepExpired(t0 + CLIENT_RETENTION_MS + 1), 0);
        assert.equal(await s.clients.get(app, cid('old')), undefined);
        assert.ok(await s.clients.get(app, cid('recent')));
        assert.ok(await s.clients.get(app, cid('back')));
        assert.equal(await s.messages.sweepExpired(t0 + 2 * DAY_MS + CLIENT_RETENTION_MS + 1), 0);
        assert.equal(await s.clients.get(app, cid('recent')), undefined);
        assert.equal(await s.clients.get(app, cid('back')), undefined);
      });
    });
  });
}
