// The ntfy web app subscribes with the browser's EventSource on /<topic>/sse
// (https://docs.ntfy.sh/subscribe/api/#subscribe-as-sse-stream); here the `eventsource`
// package, a WHATWG EventSource for Node that nobody here wrote, does the same: messages
// arrive as `message` events whose data is ntfy's message JSON and whose lastEventId is
// the message id, `open` and `keepalive` as events of those names, and `since=<id>`
// resumes what was published while it was away.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import { startTestServer, type TestServer } from '../../fixtures/test-server.js';
import { waitFor } from '../../fixtures/wait.js';

type Msg = { readonly [k: string]: unknown };

interface Subscriber {
  readonly es: EventSource;
  readonly messages: { readonly data: Msg; readonly lastEventId: string }[];
  readonly named: string[];
}

function subscribe(url: string): Subscriber {
  const es = new EventSource(url);
  const sub: Subscriber = { es, messages: [], named: [] };
  es.onmessage = (e) => sub.messages.push({ data: JSON.parse(e.data) as Msg, lastEventId: e.lastEventId });
  for (const name of ['open', 'keepalive']) es.addEventListener(name, () => sub.named.push(name));
  return sub;
}

describe('ntfy with a real EventSource client (the web app\'s way)', () => {
  let t: TestServer;
  let base: string;
  const publish = async (topic: string, body: string, headers: Record<string, string> = {}): Promise<Msg> => {
    const res = await fetch(`${base}/${topic}`, { method: 'POST', body, headers });
    assert.equal(res.status, 200);
    return (await res.json()) as Msg;
  };

  before(async () => {
    t = await startTestServer({ ntfyKeepaliveSeconds: 1 });
    base = `http://127.0.0.1:${t.server.ntfyPort}`;
  });
  after(() => t.close());

  it('gets open, the messages in order with their ids, keepalives; since=<id> resumes after a reconnect', async () => {
    const first = subscribe(`${base}/es-topic/sse`);
    let second: Subscriber | undefined;
    try {
      await waitFor(() => first.named.includes('open'), { timeoutMs: 5000, message: 'the open event' });
      const one = await publish('es-topic', 'one', { Title: 'First', Priority: 'high', Tags: 'warning' });
      const two = await publish('es-topic', 'two');
      await waitFor(() => first.messages.length === 2, { timeoutMs: 5000, message: 'two messages' });
      assert.deepEqual(
        first.messages.map((m) => [m.data['message'], m.data['id'], m.lastEventId, m.data['event'], m.data['topic']]),
        [
          ['one', one['id'], one['id'], 'message', 'es-topic'],
          ['two', two['id'], two['id'], 'message', 'es-topic'],
        ],
      );
      assert.deepEqual([first.messages[0]!.data['title'], first.messages[0]!.data['priority'], first.messages[0]!.data['tags']], ['First', 4, ['warning']]);
      await waitFor(() => first.named.includes('keepalive'), { timeoutMs: 5000, message: 'a keepalive event' });

      // Away: the client closes; what is published meanwhile comes back with since=<last id>.
      first.es.close();
      const three = await publish('es-topic', 'three');
      second = subscribe(`${base}/es-topic/sse?since=${first.messages.at(-1)!.lastEventId}`);
      await waitFor(() => second!.messages.length >= 1, { timeoutMs: 5000, message: 'the missed message' });
      const four = await publish('es-topic', 'four');
      await waitFor(() => second!.messages.length === 2, { timeoutMs: 5000, message: 'the live message after the missed one' });
      assert.deepEqual(
        second.messages.map((m) => [m.data['message'], m.lastEventId]),
        [
          ['three', three['id']],
          ['four', four['id']],
        ],
      );
    } finally {
      first.es.close();
      second?.es.close();
    }
  });
});
