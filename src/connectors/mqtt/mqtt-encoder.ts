import { writeToStream, type IPublishPacket } from 'mqtt-packet';
import type { PushEncoder } from '../../hub/connection.js';
import type { StoredMessage } from '../../store/store.js';

export type DeliveryQos = 0 | 1;

// mqtt-packet builds, on its first write, a cache of all 65,536 two-byte numbers as
// Buffers: ~7 MB per process that never goes away, to save a 2-byte allocation when it
// writes a packet id. Our hot path (PUBLISH to every subscriber) does not go through it,
// so the cache is pure memory: off, for the whole process (it is module state).
writeToStream.cacheNumbers = false;

/** Above this many named clients, `targetsClient` builds a set once instead of scanning. */
const SCAN_LIMIT = 8;

/**
 * One message (or hub event) encoded for MQTT: the topic-independent JSON payload,
 * encoded once and shared by every MQTT connection it goes to (docs/conventions.md §5). The topic
 * and the QoS 1 packet id differ per connection: a connection takes `header()` for
 * its topic and writes it in front of the shared payload.
 *
 * Shared by all recipients: the payload and every header handed out never change.
 */
export class MqttPush {
  /** The stored message, or undefined for a hub event (presence to managers). */
  readonly message: StoredMessage | undefined;
  /** `{"id":…,"event":…,"data":…}`, or `{"event":…,"data":…}` for an event. */
  readonly payload: Buffer;
  // A memo, not state: the last header built per (MQTT 5?, QoS). A broadcast goes out
  // under one topic, so every recipient after the first reuses the same header.
  readonly #headers: ({ readonly topic: string; readonly bytes: Buffer } | undefined)[] = [undefined, undefined, undefined, undefined];
  #clientIds: ReadonlySet<string> | undefined;

  constructor(message: StoredMessage | undefined, payload: Buffer) {
    this.message = message;
    this.payload = payload;
  }

  /**
   * The PUBLISH fixed and variable header for `topic`, the payload not included. For
   * QoS 1 its packet id is 0: the caller copies the header and writes its own id at
   * `packetIdOffset(header, v5)`.
   */
  header(v5: boolean, qos: DeliveryQos, topic: string): Buffer {
    const slot = (v5 ? 2 : 0) + qos;
    const memo = this.#headers[slot];
    if (memo !== undefined && memo.topic === topic) return memo.bytes;
    const bytes = publishHeader(topic, qos, v5, this.payload);
    this.#headers[slot] = { topic, bytes };
    return bytes;
  }

  /** Whether the message names this client id (its `to.clientIds`). */
  targetsClient(clientId: string): boolean {
    const ids = this.message?.target.clientIds;
    if (ids === undefined || ids.length === 0) return false;
    if (ids.length <= SCAN_LIMIT) return ids.includes(clientId as (typeof ids)[number]);
    this.#clientIds ??= new Set(ids);
    return this.#clientIds.has(clientId);
  }
}

/** The one encoder of every MQTT connection of a node: the hub encodes once for all of them. */
export class MqttEncoder implements PushEncoder<MqttPush> {
  encodeMessage(msg: StoredMessage): MqttPush {
    return new MqttPush(msg, Buffer.from(JSON.stringify({ id: msg.id, event: msg.event, data: msg.data })));
  }

  encodeEvent(event: string, body: unknown): MqttPush {
    return new MqttPush(undefined, Buffer.from(JSON.stringify({ event, data: body })));
  }
}

/**
 * Where the packet id sits in a QoS 1 header from `header()`. MQTT 3.1.1 §3.3.2 and
 * MQTT 5 §3.3.2: the packet identifier follows the topic name; in MQTT 5 the properties
 * follow it, and we send none, which is a single 0x00 property-length byte.
 */
export function packetIdOffset(header: Buffer, v5: boolean): number {
  return header.length - (v5 ? 3 : 2);
}

/**
 * Frames a PUBLISH with mqtt-packet and keeps everything but the payload. mqtt-packet
 * writes a PUBLISH as a run of small writes that ends with the payload itself; we
 * collect them and stop before it. test/connectors/mqtt/mqtt-encoder.test.ts checks
 * header + payload against `generate()` byte for byte, so a change in the library
 * fails loudly there.
 */
function publishHeader(topic: string, qos: DeliveryQos, v5: boolean, payload: Buffer): Buffer {
  const packet: IPublishPacket = { cmd: 'publish', topic, qos, dup: false, retain: false, payload };
  if (qos === 1) packet.messageId = 0;
  const sink = new HeaderSink(payload);
  // The sink is the small part of a stream that writeToStream uses: write and destroy.
  writeToStream(packet, sink as unknown as NodeJS.WritableStream, { protocolVersion: v5 ? 5 : 4 });
  return sink.header();
}

class HeaderSink {
  readonly #payload: Buffer;
  readonly #parts: Buffer[] = [];
  #sawPayload = false;

  constructor(payload: Buffer) {
    this.#payload = payload;
  }

  write(chunk: Buffer | string): boolean {
    if (this.#sawPayload) throw new Error('mqtt-packet wrote after the PUBLISH payload');
    if (chunk === this.#payload) this.#sawPayload = true;
    else this.#parts.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
    return true;
  }

  destroy(err?: Error): void {
    throw err ?? new Error('mqtt-packet could not frame the PUBLISH');
  }

  header(): Buffer {
    if (!this.#sawPayload) throw new Error('mqtt-packet did not write the PUBLISH payload as one buffer');
    return Buffer.concat(this.#parts);
  }
}
