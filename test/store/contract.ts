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
import type { NewMessage, Storage, StoredMessage, Target } from '../../src/store/store.js';

const ALL: Target = { all: true, clientIds: [], tags: [] };
const HOUR = 3600;

function message(apikey: ApiKey, data: unknown, over: Partial<NewMessage> = {}): NewMessage {
  return { apikey, target: ALL, event: 'onMsg', data, ttlSeconds: HOUR, ...over };
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

      void it('rotates the secret and keeps everything else', async () => {
        const app = await s.apps.createApp({ name: 'rotating' });
        const rotated = await s.apps.rotateSecret(app.apikey);
        assert.ok(rotated);
        assert.notEqual(rotated.secret, app.secret);
        assert.ok(rotated.secret.length >= 43);
        assert.deepEqual({ ...rotated, secret: app.secret }, app);
        assert.equal((await s.apps.getApp(app.apikey))?.secret, rotated.secret);
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
        for (const m of [await s.messages.get(app, stored.id), (await s.messages.readAfter(app, asMessageId(0), 1))[0]]) {
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
  });
}
