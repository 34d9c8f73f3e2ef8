import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { classifyFilter } from '../../../src/connectors/mqtt/mqtt-topics.js';
import { parsePushRequest } from '../../../src/connectors/mqtt/push-request.js';

describe('MQTT topic scheme', () => {
  const client = { apikey: 'K', clientId: 'phone' };
  const manager = { apikey: 'K', clientId: undefined };

  it('lets a client subscribe its app broadcast, its own topic and tags', () => {
    assert.deepEqual(classifyFilter('apps/K/all', client), { kind: 'all' });
    assert.deepEqual(classifyFilter('apps/K/clients/phone', client), { kind: 'own' });
    assert.deepEqual(classifyFilter('apps/K/tags/news', client), { kind: 'tag', tag: 'news' });
    assert.deepEqual(classifyFilter('apps/K/tags/city/paris', client), { kind: 'tag', tag: 'city/paris' });
  });

  it('refuses other apps, other clients, wildcards, shared subscriptions and manager topics to clients', () => {
    for (const f of [
      'apps/OTHER/all',
      'apps/K/clients/tablet',
      'apps/K/clients/phone/x',
      'apps/K/tags/',
      'apps/K/#',
      'apps/K/+',
      'apps/K/tags/+',
      '#',
      '$share/g/apps/K/all',
      'apps/K/presence',
      'apps/K/push',
      'apps/K',
      '',
    ]) {
      assert.equal(classifyFilter(f, client).kind, 'forbidden', f);
    }
  });

  it('lets a manager subscribe presence only', () => {
    assert.deepEqual(classifyFilter('apps/K/presence', manager), { kind: 'presence' });
    assert.equal(classifyFilter('apps/K/all', manager).kind, 'forbidden');
    assert.equal(classifyFilter('apps/OTHER/presence', manager).kind, 'forbidden');
  });
});

describe('manager push payload', () => {
  const parse = (s: string): ReturnType<typeof parsePushRequest> => parsePushRequest(Buffer.from(s));

  it('reads a broadcast, a push to clients and tags, event and ttl', () => {
    assert.deepEqual(parse('{"data":{"a":1}}'), { ok: true, value: { event: 'onMsg', data: { a: 1 }, target: { all: true, clientIds: [], tags: [] } } });
    assert.deepEqual(parse('{"event":"onPromo","data":null,"to":{"clientIds":["a"],"tags":["t"]},"ttl":60}'), {
      ok: true,
      value: { event: 'onPromo', data: null, target: { all: false, clientIds: ['a'], tags: ['t'] }, ttlSeconds: 60 },
    });
    assert.deepEqual(parse('{"data":1,"to":{}}'), { ok: true, value: { event: 'onMsg', data: 1, target: { all: true, clientIds: [], tags: [] } } });
  });

  it('says what is wrong', () => {
    for (const [body, why] of [
      ['nope', 'not JSON'],
      ['[1]', 'JSON object'],
      ['{}', '"data"'],
      // What a string event may hold is the hub's push rule (test/hub/push-rules.test.ts).
      ['{"data":1,"event":5}', '"event"'],
      ['{"data":1,"to":[]}', '"to"'],
      ['{"data":1,"to":{"clientIds":"a"}}', 'to.clientIds'],
      ['{"data":1,"to":{"clientIds":[""]}}', 'to.clientIds'],
      ['{"data":1,"to":{"tags":[1]}}', 'to.tags'],
      ['{"data":1,"ttl":0}', '"ttl"'],
      ['{"data":1,"ttl":1.5}', '"ttl"'],
    ] as const) {
      const r = parse(body);
      assert.equal(r.ok, false, body);
      if (!r.ok) assert.ok(r.why.includes(why), `${body}: ${r.why}`);
    }
  });
});
