// The pure parts of the ntfy front door against ntfy's own behaviour (server/actions.go,
// server/types.go, util/time.go, util/util.go of binwiederhier/ntfy).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseActions } from '../../../src/protocol/ntfy/actions.js';
import { NtfyError } from '../../../src/protocol/ntfy/errors.js';
import { decodeId, encodeId, idSalt, isMessageIdShape, ntfyContent, parseDuration, parseFutureTime, parsePriority, parseSince, passes, topicFor } from '../../../src/protocol/ntfy/message.js';
import { decodeEncodedWords, paramReader, readJsonPublish, readPublish } from '../../../src/protocol/ntfy/publish.js';

const code = (fn: () => unknown): number | undefined => {
  try {
    fn();
  } catch (err) {
    if (err instanceof NtfyError) return err.code;
    throw err;
  }
  return undefined;
};

describe('ntfy ids', () => {
  it('12 characters of [A-Za-z0-9], reversible for every safe id, per app salt, kinds kept apart', () => {
    const salt = idSalt('some-apikey');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (n) => {
        const id = encodeId(salt, n);
        assert.ok(isMessageIdShape(id), id);
        assert.deepEqual(decodeId(salt, id), { n, kind: 'message' });
        assert.deepEqual(decodeId(salt, encodeId(salt, n, 'scheduled')), { n, kind: 'scheduled' });
      }),
    );
    assert.equal(decodeId(salt === 'zz' ? 'yy' : 'zz', encodeId(salt, 5)), undefined, 'another app\'s id is unknown here');
    assert.equal(decodeId(salt, 'short'), undefined);
    assert.equal(decodeId(salt, `${salt}x000000000`), undefined);
  });
});

describe('ntfy parameters', () => {
  it('priority: 1-5 and ntfy\'s names (util.ParsePriority); anything else is 40007', () => {
    const names: [string, number][] = [['1', 1], ['min', 1], ['2', 2], ['low', 2], ['3', 3], ['default', 3], ['4', 4], ['HIGH', 4], ['5', 5], ['max', 5], ['urgent', 5]];
    for (const [s, n] of names) assert.equal(parsePriority(s), n, s);
    assert.equal(parsePriority(''), undefined);
    assert.equal(code(() => parsePriority('6')), 40007);
    assert.equal(code(() => parsePriority('0')), 40007);
  });

  it('durations as Go and ntfy read them; future times; since markers (server.go parseSince)', () => {
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('1.5h'), 5_400_000);
    assert.equal(parseDuration('30min'), 1_800_000);
    assert.equal(parseDuration('2d'), 172_800_000);
    assert.equal(parseDuration('10 minutes'), 600_000);
    assert.equal(parseDuration('tomorrow'), undefined);
    const now = 1_700_000_000_000;
    assert.equal(parseFutureTime('1700000100', now), 1_700_000_100_000);
    assert.equal(parseFutureTime('1600000000', now), undefined, 'a Unix time in the past is no delay');
    assert.equal(parseFutureTime('30m', now), now + 1_800_000);
    assert.deepEqual(parseSince('', false, now), { kind: 'none' });
    assert.deepEqual(parseSince('', true, now), { kind: 'all' }, 'poll without since: all');
    assert.deepEqual(parseSince('all', false, now), { kind: 'all' });
    assert.deepEqual(parseSince('latest', false, now), { kind: 'latest' });
    assert.deepEqual(parseSince('Abcdefghijk1', false, now), { kind: 'id', id: 'Abcdefghijk1' });
    assert.deepEqual(parseSince('1700000000', false, now), { kind: 'time', unix: 1_700_000_000 });
    assert.deepEqual(parseSince('10m', false, now), { kind: 'time', unix: 1_700_000_000 - 600 });
    assert.equal(code(() => parseSince('2d', false, now)), 40008, 'since takes Go durations only (no days), as ntfy');
    assert.equal(code(() => parseSince('yesterday', false, now)), 40008);
  });

  it('a duration made to backtrack (`1ms` × 40: `1m`+`s` or `1ms`) is answered at once, not in exponential time (ReDoS)', () => {
    const evil = `${'1ms'.repeat(40)}x`;
    const started = Date.now();
    assert.equal(parseDuration(evil), undefined);
    assert.equal(parseDuration(`${'1ms'.repeat(20)}x`), undefined);
    assert.equal(code(() => parseSince(`${'1ms'.repeat(20)}x`, false, 0)), 40008);
    assert.equal(parseFutureTime(evil, 0), undefined);
    assert.ok(Date.now() - started < 500, `took ${Date.now() - started} ms`);
    assert.equal(parseDuration('1ms'.repeat(20)), 20, 'a long valid one still reads');
  });

  it('RFC 2047 encoded header values are decoded, as Go\'s mime.WordDecoder', () => {
    assert.equal(decodeEncodedWords('=?UTF-8?B?8J+QtiBkb2c=?='), '🐶 dog');
    assert.equal(decodeEncodedWords('=?utf-8?q?Hello_World=21?='), 'Hello World!');
    assert.equal(decodeEncodedWords('plain'), 'plain');
  });
});

describe('ntfy actions (docs "Action buttons", server/actions.go)', () => {
  it('the short form: positional action, label, url; key=value; quotes; several actions with ;', () => {
    const [a, b] = parseActions('view, Open portal, https://home.nest.com/, clear=true; http, "Turn, down", https://api.nest.com/, method=put, headers.Authorization=Bearer x, body=\'{"temperature": 65}\'');
    assert.deepEqual({ ...a, id: '' }, { id: '', action: 'view', label: 'Open portal', url: 'https://home.nest.com/', clear: true });
    assert.deepEqual({ ...b, id: '' }, {
      id: '',
      action: 'http',
      label: 'Turn, down',
      url: 'https://api.nest.com/',
      clear: false,
      method: 'PUT',
      headers: { Authorization: 'Bearer x' },
      body: '{"temperature": 65}',
    });
    const [c] = parseActions('action=broadcast, label=Take picture, extras.cmd=pic, extras.camera=front, intent=io.heckel.ntfy.USER_ACTION');
    assert.deepEqual({ ...c, id: '' }, { id: '', action: 'broadcast', label: 'Take picture', clear: false, intent: 'io.heckel.ntfy.USER_ACTION', extras: { cmd: 'pic', camera: 'front' } });
  });

  it('the JSON form, and ntfy\'s refusals (40018) with its reasons', () => {
    const [a] = parseActions('[{"action":"VIEW","label":"Open","url":"https://x","clear":true}]');
    assert.deepEqual([a!.action, a!.clear], ['view', true]);
    const reason = (s: string): string => {
      try {
        parseActions(s);
      } catch (err) {
        assert.ok(err instanceof NtfyError);
        assert.equal(err.code, 40018);
        return err.message;
      }
      return 'no error';
    };
    assert.match(reason('jump, Label'), /parameter 'action' cannot be 'jump'/);
    assert.match(reason('view'), /parameter 'label' is required/);
    assert.match(reason('view, Open'), /parameter 'url' is required for action 'view'/);
    assert.match(reason('http, X, https://x, method=GET, body=y'), /parameter 'body' cannot be set if method is GET/);
    assert.match(reason('view, a, https://a, clear=maybe'), /parameter 'clear' cannot be 'maybe'/);
    assert.match(reason('view, a, https://a, wat=1'), /key 'wat' unknown/);
    assert.match(reason('view, a, "https://a'), /unexpected end of input/);
    assert.match(reason('[{"action":'), /JSON error/);
    assert.match(reason('view,a,https://a;view,b,https://b;view,c,https://c;view,d,https://d'), /only 3 actions allowed/);
  });

  it('never throws anything but NtfyError on any input (fuzz)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => {
        try {
          parseActions(s);
        } catch (err) {
          assert.ok(err instanceof NtfyError, `${String(err)} for ${JSON.stringify(s)}`);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('ntfy publish and message mapping', () => {
  const limits = { maxMessageBytes: 4096, delayMinMs: 10_000, delayMaxMs: 3 * 86_400_000 };
  it('readPublish: headers win over the query; message= with \\n; an empty body keeps message=; bodies are trimmed', () => {
    const read = paramReader({ 'x-title': 'From header' }, new URLSearchParams('title=From+query&message=a\\nb&tags=x,,y'));
    const d = readPublish(read, Buffer.alloc(0), limits, 0);
    assert.deepEqual([d.title, d.message, d.tags], ['From header', 'a\nb', ['x', 'y']]);
    assert.equal(readPublish(paramReader({}, new URLSearchParams()), Buffer.from('  hi \n'), limits, 0).message, 'hi');
    assert.equal(readPublish(paramReader({}, new URLSearchParams('up=1')), Buffer.from('  hi \n'), limits, 0).message, '  hi \n');
  });

  it('readJsonPublish: 2× the message limit (transformBodyJSON), else 41303', () => {
    assert.equal(code(() => readJsonPublish(Buffer.alloc(8193, 32), 4096)), 41303);
    assert.equal(readJsonPublish(Buffer.from('{"topic":"t"}'), 4096).body.toString(), 'triggered');
    // Fields of the wrong type, as Go's json.Unmarshal into ntfy's publishMessage refuses them.
    for (const bad of ['{"topic":"t","actions":"view, x, https://x"}', '{"topic":"t","markdown":"yes"}', '{"topic":"t","tags":"a,b"}', '{"topic":"t","title":5}']) {
      assert.equal(code(() => readJsonPublish(Buffer.from(bad), 4096)), 40024, bad);
    }
  });

  it('ntfyContent and topicFor: how any push reads to a subscriber', () => {
    assert.deepEqual(ntfyContent('x'), { message: 'x' });
    assert.deepEqual(ntfyContent(null), { message: 'triggered' });
    assert.deepEqual(ntfyContent([1, 2]), { message: '[1,2]' });
    assert.deepEqual(ntfyContent({ message: 'm', priority: 9, tags: 'no', title: '' }), { message: 'm' }, 'fields of the wrong type are dropped');
    const msg = { id: 1, createdAt: 0, expiresAt: 0, data: 'x', target: { all: false, tags: ['b', 'a'] } };
    assert.equal(topicFor(msg, ['a', 'b'], false), 'b');
    assert.equal(topicFor(msg, ['c'], false), undefined);
    assert.equal(topicFor({ ...msg, target: { all: true, tags: [] } }, ['c', 'd'], false), 'c');
    assert.ok(passes({ priorities: [3] }, 'id', { message: 'x' }));
    assert.ok(!passes({ tags: ['a', 'b'] }, 'id', { message: 'x', tags: ['a'] }));
  });
});
