// Every HTTP refusal has the `{code, message}` shape of docs/api.md, fastify's own and
// node's HTTP parser's included. Requests go out over a raw `net` socket, byte for byte,
// so that nothing (fetch's URL normalisation, fastify's inject) hides what node's parser
// and fastify's router answer on their own.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { MAX_CLIENT_ID_LENGTH } from '../../src/hub/hub.js';
import { startTestServer, type TestServer } from '../fixtures/test-server.js';
import { waitFor } from '../fixtures/wait.js';

interface RawAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** Parses one HTTP/1.1 answer (head, then a Content-Length body). */
function parseAnswer(text: string): RawAnswer | undefined {
  const headEnd = text.indexOf('\r\n\r\n');
  if (headEnd < 0) return undefined;
  const [statusLine = '', ...lines] = text.slice(0, headEnd).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  const body = text.slice(headEnd + 4);
  const length = headers['content-length'];
  if (length !== undefined && Buffer.byteLength(body) < Number(length)) return undefined;
  return { status: Number(statusLine.split(' ')[1]), headers, body };
}

/**
 * Writes `request` as is and reads until a whole answer (or, with `until`, until the
 * bytes read so far satisfy it, for a stream that never ends), within a deadline.
 */
function raw(port: number, request: string, until?: (soFar: string) => boolean): Promise<RawAnswer & { readonly text: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within 5 s; got ${JSON.stringify(text.slice(0, 300))}`));
    }, 5000);
    const finish = (): void => {
      const answer = parseAnswer(text);
      if (answer === undefined) return;
      if (until !== undefined && !until(text)) return;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...answer, text });
    };
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      finish();
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const answer = parseAnswer(text);
      if (answer === undefined) reject(new Error(`closed without a whole answer: ${JSON.stringify(text.slice(0, 300))}`));
      else resolve({ ...answer, text });
    });
    socket.on('error', () => {
      // A reset after the answer is read is reported by 'close'.
    });
    socket.write(request);
  });
}

/** The documented error shape: exactly `{code, message}`, JSON. */
function assertApiError(answer: RawAnswer, status: number, code: string): string {
  assert.equal(answer.status, status, answer.body);
  assert.match(answer.headers['content-type'] ?? '', /^application\/json/);
  const body = JSON.parse(answer.body) as Record<string, unknown>;
  assert.deepEqual(Object.keys(body).sort(), ['code', 'message'], answer.body);
  assert.equal(body['code'], code);
  assert.equal(typeof body['message'], 'string');
  assert.ok((body['message'] as string).length > 0);
  return body['message'] as string;
}

describe('HTTP errors: every refusal is {code, message}', () => {
  let t: TestServer;
  let port: number;
  before(async () => {
    t = await startTestServer();
    port = t.server.httpPort;
  });
  after(async () => {
    await t.close();
  });

  const get = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}Connection: close\r\n\r\n`;
  const eventsPath = (clientId: string): string => `/api/v1/apps/${t.app.apikey}/clients/${clientId}/events`;

  it(`SSE takes a client id of ${MAX_CLIENT_ID_LENGTH} characters (fastify's default router limit was 100) and delivers to it`, async () => {
    const clientId = 'c'.repeat(MAX_CLIENT_ID_LENGTH - 1) + 'é';
    const stream = raw(port, get(eventsPath(encodeURIComponent(clientId))), (soFar) => soFar.includes('long-id-message'));
    // Push once the stream is open: the client is then online, and the push is for it alone.
    await waitFor(
      async () => {
        const res = await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/clients`, { headers: { authorization: `Bearer ${t.app.secret}` } });
        const online = (await res.json()) as { clients: { clientId: string }[] };
        return online.clients.some((c) => c.clientId === clientId);
      },
      { timeoutMs: 5000, message: 'the SSE client online' },
    );
    const pushed = await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.app.secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ data: 'long-id-message', to: { clientIds: [clientId] } }),
    });
    assert.equal(pushed.status, 202);
    const answer = await stream;
    assert.equal(answer.status, 200);
    assert.match(answer.headers['content-type'] ?? '', /^text\/event-stream/);
    assert.ok(answer.text.includes('long-id-message'));
  });

  it(`a client id of ${MAX_CLIENT_ID_LENGTH + 1} or more characters is a clear 400`, async () => {
    for (const length of [MAX_CLIENT_ID_LENGTH + 1, 5000]) {
      const message = assertApiError(await raw(port, get(eventsPath('c'.repeat(length)))), 400, 'BAD_REQUEST');
      assert.match(message, new RegExp(`${MAX_CLIENT_ID_LENGTH}`));
    }
  });

  it('a path that is not valid percent-encoding is a 400 (fastify: FST_ERR_BAD_URL)', async () => {
    assertApiError(await raw(port, get('/%zz')), 400, 'BAD_REQUEST');
    assertApiError(await raw(port, get(`/api/v1/apps/${t.app.apikey}/clients/%zz/events`)), 400, 'BAD_REQUEST');
  });

  it('an over-long URL and huge headers are a 431 from node\'s parser, in our shape', async () => {
    assertApiError(await raw(port, get(`/api/v1/apps/${'a'.repeat(20_000)}`)), 431, 'LIMIT_HEADERS');
    assertApiError(await raw(port, get('/healthz', `X-Big: ${'b'.repeat(20_000)}\r\n`)), 431, 'LIMIT_HEADERS');
  });

  it('bytes that are not HTTP are a 400 from node\'s parser, in our shape', async () => {
    assertApiError(await raw(port, 'HELLO THERE\r\n\r\n'), 400, 'BAD_REQUEST');
  });

  it('an unknown route is a 404 NOT_FOUND, for every method', async () => {
    assertApiError(await raw(port, get('/api/v1/no-such-route')), 404, 'NOT_FOUND');
    assertApiError(await raw(port, 'DELETE /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), 404, 'NOT_FOUND');
  });

  it('a body that is not JSON is a 415 UNSUPPORTED_MEDIA_TYPE (text/plain included); broken JSON is a 400', async () => {
    const post = (contentType: string, body: string): string =>
      `POST /api/v1/apps/${t.app.apikey}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.app.secret}\r\n` +
      `Content-Type: ${contentType}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
    assertApiError(await raw(port, post('text/plain', '{"data": 1}')), 415, 'UNSUPPORTED_MEDIA_TYPE');
    assertApiError(await raw(port, post('application/x-www-form-urlencoded', 'data=1')), 415, 'UNSUPPORTED_MEDIA_TYPE');
    assertApiError(await raw(port, post('application/json', '{"data": ')), 400, 'BAD_REQUEST');
    // And nothing of those was stored.
    const history = (await (
      await fetch(`${t.httpUrl}/api/v1/apps/${t.app.apikey}/messages`, { headers: { authorization: `Bearer ${t.app.secret}` } })
    ).json()) as { messages: { data: unknown }[] };
    assert.ok(!history.messages.some((m) => m.data === 1));
  });
});
