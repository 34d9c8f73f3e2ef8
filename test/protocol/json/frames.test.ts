import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProtocolError, isProtocolError, type ProtocolErrorCode } from '../../../src/protocol/errors.js';
import {
  DEFAULT_MAX_DEPTH,
  MAX_TAGS,
  decodeJson,
  encodeEventFrame,
  encodeMessageFrame,
  encodeServerFrame,
  parseClientFrame,
  readRef,
  toClientFrame,
  type ClientFrame,
} from '../../../src/protocol/json/frames.js';

const LIMITS = { maxBytes: 64 * 1024 };

/** Valid frames, as a client writes them, and what the codec makes of them. */
const VALID: readonly { readonly name: string; readonly text: string; readonly frame: ClientFrame }[] = [
  {
    name: 'client enter, everything given',
    text: '{"type":"enter","apikey":"k","clientId":"c1","token":"t","lastId":7,"tags":["a","b"],"ref":1}',
    frame: { type: 'enter', role: 'client', apikey: 'k', clientId: 'c1', token: 't', lastId: 7, tags: ['a', 'b'], ref: 1 },
  },
  {
    name: 'client enter, minimal (role defaults to client)',
    text: '{"type":"enter","apikey":"k","clientId":"c1"}',
    frame: { type: 'enter', role: 'client', apikey: 'k', clientId: 'c1', token: undefined, lastId: undefined, tags: undefined, ref: undefined },
  },
  {
    name: 'client enter, explicit role, unknown fields ignored',
    text: '{"type":"enter","role":"client","apikey":"k","clientId":"c1","future":true}',
    frame: { type: 'enter', role: 'client', apikey: 'k', clientId: 'c1', token: undefined, lastId: undefined, tags: undefined, ref: undefined },
  },
  {
    name: 'manager enter with the app secret',
    text: '{"type":"enter","role":"manager","apikey":"k","secret":"s","ref":"m"}',
    frame: { type: 'enter', role: 'manager', apikey: 'k', secret: 's', userId: undefined, password: undefined, ref: 'm' },
  },
  {
    name: 'manager enter as an admin',
    text: '{"type":"enter","role":"manager","apikey":"k","userId":"root","password":"pw"}',
    frame: { type: 'enter', role: 'manager', apikey: 'k', secret: undefined, userId: 'root', password: 'pw', ref: undefined },
  },
  { name: 'ack', text: '{"type":"ack","id":42}', frame: { type: 'ack', id: 42, ref: undefined } },
  { name: 'subscribe', text: '{"type":"subscribe","tags":["x"],"ref":3}', frame: { type: 'subscribe', tags: ['x'], ref: 3 } },
  { name: 'unsubscribe, no tags', text: '{"type":"unsubscribe","tags":[]}', frame: { type: 'unsubscribe', tags: [], ref: undefined } },
  {
    name: 'push to all, default event',
    text: '{"type":"push","data":{"t":"推送"}}',
    frame: { type: 'push', event: 'onMsg', data: { t: '推送' }, to: undefined, ttl: undefined, ref: undefined },
  },
  {
    name: 'push to clients and tags, with event and ttl',
    text: '{"type":"push","event":"onNews","data":null,"to":{"clientIds":["a"],"tags":["t"]},"ttl":60,"ref":"p"}',
    frame: { type: 'push', event: 'onNews', data: null, to: { clientIds: ['a'], tags: ['t'] }, ttl: 60, ref: 'p' },
  },
  {
    name: 'push to clients only',
    text: '{"type":"push","data":1,"to":{"clientIds":["a","b"]}}',
    frame: { type: 'push', event: 'onMsg', data: 1, to: { clientIds: ['a', 'b'], tags: [] }, ttl: undefined, ref: undefined },
  },
  { name: 'ping', text: '{"type":"ping"}', frame: { type: 'ping', ref: undefined } },
];

/** Frames the codec refuses: the exact code, and the field the message must name. */
const INVALID: readonly { readonly text: string; readonly code: ProtocolErrorCode; readonly names: string }[] = [
  { text: 'not json', code: 'PROTO_BAD_JSON', names: 'not valid JSON' },
  { text: '{"type":"ping"', code: 'PROTO_BAD_JSON', names: 'not valid JSON' },
  { text: '', code: 'PROTO_BAD_JSON', names: 'not valid JSON' },
  { text: '[1,2]', code: 'PROTO_BAD_MESSAGE', names: 'JSON object' },
  { text: 'null', code: 'PROTO_BAD_MESSAGE', names: 'JSON object' },
  { text: '"ping"', code: 'PROTO_BAD_MESSAGE', names: 'JSON object' },
  { text: '{}', code: 'PROTO_BAD_MESSAGE', names: 'type: required' },
  { text: '{"type":3}', code: 'PROTO_BAD_MESSAGE', names: 'type: expected a string' },
  { text: '{"type":"hello"}', code: 'PROTO_BAD_MESSAGE', names: 'type: unknown type "hello"' },
  { text: '{"type":"enter","apikey":"k"}', code: 'PROTO_BAD_MESSAGE', names: 'clientId: required' },
  { text: '{"type":"enter","clientId":"c"}', code: 'PROTO_BAD_MESSAGE', names: 'apikey: required' },
  { text: '{"type":"enter","apikey":"k","clientId":5}', code: 'PROTO_BAD_MESSAGE', names: 'clientId:' },
  { text: '{"type":"enter","apikey":"k","clientId":"c","lastId":-1}', code: 'PROTO_BAD_MESSAGE', names: 'lastId:' },
  { text: '{"type":"enter","apikey":"k","clientId":"c","lastId":1.5}', code: 'PROTO_BAD_MESSAGE', names: 'lastId:' },
  { text: '{"type":"enter","apikey":"k","clientId":"c","lastId":"3"}', code: 'PROTO_BAD_MESSAGE', names: 'lastId:' },
  { text: '{"type":"enter","apikey":"k","clientId":"c","tags":"a"}', code: 'PROTO_BAD_MESSAGE', names: 'tags:' },
  { text: '{"type":"enter","apikey":"k","clientId":"c","tags":["a",""]}', code: 'PROTO_BAD_MESSAGE', names: 'tags.1:' },
  { text: `{"type":"enter","apikey":"k","clientId":"c","tags":["${'x'.repeat(129)}"]}`, code: 'PROTO_BAD_MESSAGE', names: 'tags.0:' },
  {
    text: JSON.stringify({ type: 'subscribe', tags: Array.from({ length: MAX_TAGS + 1 }, (_, i) => `t${i}`) }),
    code: 'PROTO_BAD_MESSAGE',
    names: 'tags:',
  },
  { text: '{"type":"enter","role":"admin","apikey":"k"}', code: 'PROTO_BAD_MESSAGE', names: 'role:' },
  { text: '{"type":"enter","role":"manager","apikey":"k"}', code: 'PROTO_BAD_MESSAGE', names: 'secret: required' },
  { text: '{"type":"enter","role":"manager","apikey":"k","userId":"root"}', code: 'PROTO_BAD_MESSAGE', names: 'secret: required' },
  { text: `{"type":"ping","ref":"${'r'.repeat(129)}"}`, code: 'PROTO_BAD_MESSAGE', names: 'ref:' },
  { text: '{"type":"ping","ref":{}}', code: 'PROTO_BAD_MESSAGE', names: 'ref:' },
  { text: '{"type":"ack"}', code: 'PROTO_BAD_MESSAGE', names: 'id: required' },
  { text: '{"type":"ack","id":"1"}', code: 'PROTO_BAD_MESSAGE', names: 'id:' },
  { text: '{"type":"ack","id":9007199254740992}', code: 'PROTO_BAD_MESSAGE', names: 'id:' },
  { text: '{"type":"subscribe"}', code: 'PROTO_BAD_MESSAGE', names: 'tags: required' },
  { text: '{"type":"push"}', code: 'PROTO_BAD_MESSAGE', names: 'data: required' },
  { text: '{"type":"push","data":1,"to":{}}', code: 'PROTO_BAD_MESSAGE', names: 'to: name clientIds or tags' },
  { text: '{"type":"push","data":1,"to":{"clientIds":[],"tags":[]}}', code: 'PROTO_BAD_MESSAGE', names: 'to: name clientIds or tags' },
  { text: '{"type":"push","data":1,"to":{"clientIds":[""]}}', code: 'PROTO_BAD_MESSAGE', names: 'to.clientIds.0:' },
  { text: '{"type":"push","data":1,"to":"all"}', code: 'PROTO_BAD_MESSAGE', names: 'to:' },
  // What an event name may hold is the hub's push rule (test/hub/push-rules.test.ts); the frame checks its type.
  { text: '{"type":"push","data":1,"event":5}', code: 'PROTO_BAD_MESSAGE', names: 'event:' },
  { text: '{"type":"push","data":1,"ttl":0}', code: 'PROTO_BAD_MESSAGE', names: 'ttl:' },
  { text: '{"type":"push","data":1,"ttl":1.5}', code: 'PROTO_BAD_MESSAGE', names: 'ttl:' },
];

function decodeError(run: () => unknown): ProtocolError {
  try {
    run();
  } catch (err) {
    assert.ok(isProtocolError(err), `expected a ProtocolError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ProtocolError');
}

describe('JSON client frames', () => {
  for (const v of VALID) {
    it(`decodes: ${v.name}`, () => {
      assert.deepEqual(parseClientFrame(v.text, LIMITS), v.frame);
      // Bytes and text decode alike.
      assert.deepEqual(parseClientFrame(Buffer.from(v.text), LIMITS), v.frame);
    });
  }

  for (const v of INVALID) {
    it(`refuses ${v.text.slice(0, 60)} with ${v.code}`, () => {
      const err = decodeError(() => parseClientFrame(v.text, LIMITS));
      assert.equal(err.code, v.code);
      assert.ok(err.message.includes(v.names), `"${err.message}" should name "${v.names}"`);
    });
  }

  it('checks the size before parsing, in UTF-8 bytes', () => {
    const text = `{"type":"ping","ref":"${'é'.repeat(20)}"}`; // 41 bytes of é in 20 characters
    assert.equal(parseClientFrame(text, { maxBytes: Buffer.byteLength(text) }).type, 'ping');
    const err = decodeError(() => parseClientFrame(text, { maxBytes: Buffer.byteLength(text) - 1 }));
    assert.equal(err.code, 'LIMIT_PAYLOAD');
  });

  it('refuses nesting deeper than the limit before parsing, and ignores brackets in strings', () => {
    const deep = (n: number): string => `{"type":"push","data":${'['.repeat(n - 1)}${']'.repeat(n - 1)}}`;
    assert.equal(parseClientFrame(deep(DEFAULT_MAX_DEPTH), LIMITS).type, 'push');
    assert.equal(decodeError(() => parseClientFrame(deep(DEFAULT_MAX_DEPTH + 1), LIMITS)).code, 'LIMIT_PAYLOAD');
    assert.equal(decodeError(() => decodeJson('['.repeat(100_000), LIMITS)).code, 'LIMIT_PAYLOAD');
    const inString = `{"type":"push","data":"${'[{'.repeat(100)}\\"[["}`;
    assert.equal(parseClientFrame(inString, LIMITS).type, 'push');
    assert.equal(parseClientFrame('{"type":"push","data":[[1]]}', { maxBytes: 100, maxDepth: 3 }).type, 'push');
    assert.equal(decodeError(() => parseClientFrame('{"type":"push","data":[[1]]}', { maxBytes: 100, maxDepth: 2 })).code, 'LIMIT_PAYLOAD');
  });

  it('reads the ref of a frame that failed validation, to echo it', () => {
    assert.equal(readRef({ type: 'ack', ref: 'r1' }), 'r1');
    assert.equal(readRef({ ref: 7 }), 7);
    assert.equal(readRef({ ref: 'x'.repeat(129) }), undefined);
    assert.equal(readRef({ ref: {} }), undefined);
    assert.equal(readRef([1]), undefined);
    assert.equal(readRef(undefined), undefined);
  });

  it('property: arbitrary text gives a frame or a ProtocolError, nothing else', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary' }), fc.json(), fc.string({ unit: 'grapheme-ascii' })), (text) => {
        try {
          const frame = parseClientFrame(text, { maxBytes: 512 });
          assert.ok(['enter', 'ack', 'subscribe', 'unsubscribe', 'push', 'ping'].includes(frame.type));
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('property: arbitrary JSON values with a known type give a frame or a ProtocolError', () => {
    const type = fc.constantFrom('enter', 'ack', 'subscribe', 'unsubscribe', 'push', 'ping');
    const value = fc.record(
      {
        type,
        role: fc.constantFrom('client', 'manager', 'x'),
        apikey: fc.oneof(fc.string(), fc.integer()),
        clientId: fc.jsonValue(),
        secret: fc.jsonValue(),
        id: fc.oneof(fc.integer(), fc.double()),
        tags: fc.oneof(fc.array(fc.string()), fc.jsonValue()),
        data: fc.jsonValue(),
        to: fc.jsonValue(),
        ttl: fc.jsonValue(),
        ref: fc.jsonValue(),
      },
      { requiredKeys: ['type'] },
    );
    fc.assert(
      fc.property(value, (v) => {
        try {
          const frame = toClientFrame(v);
          assert.equal(frame.type, v.type);
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
          assert.equal(err.code, 'PROTO_BAD_MESSAGE');
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('property: arbitrary bytes give a frame or a ProtocolError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          parseClientFrame(Buffer.from(bytes), { maxBytes: 256 });
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('property: a push frame survives encode → decode', () => {
    const push = fc.record({
      event: fc.string({ minLength: 1, maxLength: 20 }),
      data: fc.jsonValue({ maxDepth: 5 }),
      ttl: fc.integer({ min: 1, max: 3600 }),
      ref: fc.oneof(fc.string({ maxLength: 10 }), fc.integer()),
      clientIds: fc.array(fc.string({ minLength: 1 }), { minLength: 1, maxLength: 5 }),
    });
    fc.assert(
      fc.property(push, (p) => {
        const text = JSON.stringify({ type: 'push', event: p.event, data: p.data, to: { clientIds: p.clientIds }, ttl: p.ttl, ref: p.ref });
        const frame = parseClientFrame(text, LIMITS);
        assert.deepEqual(frame, {
          type: 'push',
          event: p.event,
          // JSON itself turns -0 into 0: compare with what JSON carries.
          data: JSON.parse(JSON.stringify(p.data)) as unknown,
          to: { clientIds: p.clientIds, tags: [] },
          ttl: p.ttl,
          ref: p.ref,
        });
      }),
      { numRuns: 500 },
    );
  });
});

describe('JSON server frames', () => {
  it('encodes each frame type exactly, ref only when given', () => {
    assert.equal(encodeServerFrame({ type: 'entered', ref: 1, clientId: 'c' }), '{"type":"entered","ref":1,"clientId":"c"}');
    assert.equal(encodeServerFrame({ type: 'entered', ref: undefined, users: ['a'] }), '{"type":"entered","users":["a"]}');
    assert.equal(encodeServerFrame({ type: 'pushed', ref: 'p', id: 3, targeted: 2 }), '{"type":"pushed","ref":"p","id":3,"targeted":2}');
    assert.equal(encodeServerFrame({ type: 'ok', ref: undefined }), '{"type":"ok"}');
    assert.equal(encodeServerFrame({ type: 'pong' }), '{"type":"pong"}');
    assert.equal(
      encodeServerFrame({ type: 'error', ref: 2, code: 'AUTH_FAILED', message: 'no' }),
      '{"type":"error","ref":2,"code":"AUTH_FAILED","message":"no"}',
    );
    assert.equal(encodeServerFrame({ type: 'kick', reason: 'replaced' }), '{"type":"kick","reason":"replaced"}');
  });

  it('encodes a message and a hub event as shareable UTF-8 buffers', () => {
    const msg = encodeMessageFrame({ id: 9, event: 'onMsg', data: { t: '推送' } });
    assert.ok(Buffer.isBuffer(msg));
    assert.equal(msg.toString('utf8'), '{"type":"message","id":9,"event":"onMsg","data":{"t":"推送"}}');
    assert.equal(encodeMessageFrame({ id: 1, event: 'e', data: undefined }).toString(), '{"type":"message","id":1,"event":"e","data":null}');
    assert.equal(
      encodeEventFrame('onAdd', { users: ['a'] }).toString(),
      '{"type":"event","event":"onAdd","data":{"users":["a"]}}',
    );
  });
});
