// Type tests for the SDK's public surface (docs/conventions.md §8): `tsc` checks them; the runtime
// part only makes sure the file loads. Each @ts-expect-error is a mistake the types
// must catch.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { ShaddockClient, type ClientState, type ReceivedMessage, type ShaddockClientError, type StateChange } from '../../src/client/index.js';

type Events = { onMsg: { title: string; msg: string }; onScore: { points: number } };

function typed(client: ShaddockClient<Events>): void {
  client.on('onMsg', (data, meta) => {
    const title: string = data.title;
    const id: number = meta.id;
    const event: 'onMsg' = meta.event;
    void [title, id, event];
    // @ts-expect-error onMsg data has no `points`
    void data.points;
  });
  client.on('onScore', async (data) => {
    const points: number = data.points;
    await Promise.resolve(points);
  });
  // @ts-expect-error not an event of Events
  client.on('onOther', () => undefined);
  client.on('message', (m) => {
    // The union narrows on `event`.
    if (m.event === 'onScore') {
      const points: number = m.data.points;
      void points;
    } else {
      const msg: string = m.data.msg;
      void msg;
    }
  });
  client.on('error', (err: ShaddockClientError) => void err.code);
  client.on('state', (s: StateChange) => {
    const state: ClientState = s.state;
    void state;
  });
  client.on('connected', ({ url, resumedAfter }) => void [url.length, resumedAfter]);
  // @ts-expect-error 'connected' listeners get one info object, not data and meta
  client.on('connected', (_info: unknown, _meta: { id: number }) => undefined);
  const lastId: number | undefined = client.lastId;
  void lastId;
}

function untyped(client: ShaddockClient): void {
  // Without an Events map, any event name works and data is unknown.
  client.on('anything', (data, meta) => {
    // @ts-expect-error data is unknown until checked
    void data.field;
    void meta.id;
  });
  const m: ReceivedMessage = { id: 1, event: 'x', data: null };
  void m;
}

it('the SDK types compile as documented', () => {
  assert.equal(typeof typed, 'function');
  assert.equal(typeof untyped, 'function');
  // @ts-expect-error apikey and clientId are required
  assert.throws(() => new ShaddockClient({ urls: 'ws://127.0.0.1:1' }), { code: 'CLIENT_BAD_OPTIONS' });
  assert.throws(() => new ShaddockClient({ urls: [], apikey: 'k', clientId: 'c' }), { code: 'CLIENT_BAD_OPTIONS' });
});
