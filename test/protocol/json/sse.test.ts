import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SSE_KEEPALIVE, encodeSseEvent, encodeSseMessage, encodeSseRetry } from '../../../src/protocol/json/sse.js';

interface ParsedEvent {
  readonly id: string | undefined;
  readonly event: string;
  readonly data: string;
}

/**
 * The event-stream parser of the HTML standard (§9.2.6 "Interpreting an event stream"),
 * reduced to what we emit: lines end at CRLF, LF or CR; a blank line dispatches; a line
 * starting with ':' is a comment; one leading space after the colon is dropped.
 */
function parseEventStream(text: string): { events: ParsedEvent[]; retry: number | undefined } {
  const events: ParsedEvent[] = [];
  let retry: number | undefined;
  let id: string | undefined;
  let event = '';
  let data: string[] = [];
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line === '') {
      if (data.length > 0) events.push({ id, event: event === '' ? 'message' : event, data: data.join('\n') });
      event = '';
      data = [];
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'id') id = value;
    else if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
    else if (field === 'retry' && /^\d+$/.test(value)) retry = Number(value);
  }
  return { events, retry };
}

describe('SSE framing', () => {
  it('writes a message as id, event and one data line of JSON', () => {
    const bytes = encodeSseMessage({ id: 12, event: 'onMsg', data: { t: 'a\nb', n: 1 } });
    assert.equal(bytes.toString('utf8'), 'id: 12\nevent: onMsg\ndata: {"t":"a\\nb","n":1}\n\n');
  });

  it('writes undefined data as null, and events without an id', () => {
    assert.equal(encodeSseMessage({ id: 1, event: 'e', data: undefined }).toString(), 'id: 1\nevent: e\ndata: null\n\n');
    assert.equal(encodeSseEvent('kick', { reason: 'replaced' }).toString(), 'event: kick\ndata: {"reason":"replaced"}\n\n');
  });

  it('writes the retry line and a comment for keep-alive', () => {
    assert.equal(encodeSseRetry(3000).toString(), 'retry: 3000\n\n');
    assert.equal(SSE_KEEPALIVE.toString(), ':\n\n');
    assert.deepEqual(parseEventStream(`${encodeSseRetry(3000).toString()}${SSE_KEEPALIVE.toString()}`), { events: [], retry: 3000 });
  });

  it('keeps a line break in an event name from injecting fields', () => {
    const text = encodeSseMessage({ id: 5, event: 'x\r\nid: 999\ndata: evil', data: 1 }).toString();
    const { events } = parseEventStream(text);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.id, '5');
    assert.equal(events[0]!.data, '1');
  });

  it('property: any JSON data and event name read back as one event with the same id, name and data', () => {
    const eventName = fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }).filter((s) => !/[\r\n]/.test(s));
    fc.assert(
      fc.property(fc.nat(), eventName, fc.jsonValue(), (id, event, data) => {
        const { events } = parseEventStream(encodeSseMessage({ id, event, data }).toString('utf8'));
        assert.equal(events.length, 1);
        assert.equal(events[0]!.id, String(id));
        assert.equal(events[0]!.event, event);
        assert.deepEqual(JSON.parse(events[0]!.data), JSON.parse(JSON.stringify(data)));
      }),
      { numRuns: 1000 },
    );
  });

  it('property: several messages in one stream stay apart', () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue({ maxDepth: 3 }), { maxLength: 10 }), (values) => {
        const text = values.map((data, i) => encodeSseMessage({ id: i + 1, event: 'onMsg', data }).toString()).join('');
        const { events } = parseEventStream(text);
        assert.equal(events.length, values.length);
        for (const [i, e] of events.entries()) assert.equal(e.id, String(i + 1));
      }),
      { numRuns: 300 },
    );
  });
});
