import { isUtf8 } from 'node:buffer';
import { parser as createParser, type Packet, type Parser } from 'mqtt-packet';
import { ProtocolError } from '../../protocol/errors.js';

/**
 * A CONNECT whose protocol level we do not speak: MQTT-3.1.2-2 answers it with CONNACK
 * 0x01 before closing, unlike other malformed input.
 */
export class UnsupportedVersionError extends ProtocolError {
  constructor() {
    super('PROTO_BAD_MESSAGE', 'unsupported MQTT protocol level (3.1, 3.1.1 and 5 are spoken)');
  }
}

/**
 * A packet with a UTF-8 string that is not well-formed or holds U+0000 (MQTT-1.5.3-1/-2,
 * MQTT 5 MQTT-1.5.4-1/-2): the connection closes. mqtt-packet decodes strings with
 * `Buffer.toString`, which turns bad bytes into U+FFFD without a word, so the raw bytes
 * are checked as they are read (see `checkedParseString` below).
 */
export class MalformedStringError extends ProtocolError {
  constructor(
    why: string,
    /** The packet was a CONNECT and the bad string its client id (MQTT-3.1.3-4: CONNACK "identifier rejected"). */
    readonly inClientId: boolean,
  ) {
    super('PROTO_BAD_MESSAGE', `malformed packet: ${why}`);
  }
}

/** The bytes a packet takes in all (MQTT 5 §2.1.4: fixed header plus remaining length). */
export function packetBytes(remainingLength: number): number {
  // §1.5.5: the remaining length is a variable byte integer of 1 to 4 bytes.
  const lengthBytes = remainingLength < 128 ? 1 : remainingLength < 16_384 ? 2 : remainingLength < 2_097_152 ? 3 : 4;
  return 1 + lengthBytes + remainingLength;
}

/** The longest fixed header: the type byte and a 4-byte remaining length (§2.1.1, §1.5.5). */
const MAX_HEADER_BYTES = 5;

/**
 * A packet whose bytes have not all arrived: created when a chunk ends inside a packet,
 * dropped when the packet completes, so a connection between packets holds nothing.
 */
interface PartialPacket {
  /**
   * Copies of the bytes received so far: never views of a socket's chunk, except the
   * piece that completes the packet, joined into one Buffer at once.
   */
  readonly parts: Buffer[];
  bytes: number;
  /** Whole packet size in bytes once the fixed header is complete; 0 before. */
  total: number;
}

/**
 * One socket's MQTT packet reader. It frames packets itself (fixed header and remaining
 * length, with the size limit checked on the declared length before a byte of the body
 * is buffered, docs/conventions.md §3) and has each complete packet decoded by mqtt-packet's parser,
 * one shared by every connection of the process (see `decode` below). Between packets a
 * reader holds its four fields and no buffer, parser or closure.
 *
 * `push` returns the complete packets in the chunk, or throws ProtocolError:
 * LIMIT_PAYLOAD for a packet over the limit, PROTO_BAD_MESSAGE for anything the
 * parser refuses (UnsupportedVersionError for a CONNECT of an unknown protocol level).
 * After a throw the reader is done; the connection closes.
 */
export class MqttPacketReader {
  readonly #maxPacketBytes: number;
  /** What the last CONNECT said (protocol level), for decoding the packets after it. */
  #settings: ParserSettings = NO_SETTINGS;
  #partial: PartialPacket | undefined;
  #failure: ProtocolError | undefined;

  /**
   * @param maxPacketBytes largest packet accepted, whole packet, bytes
   * @param settings what an earlier reader of the same connection learnt from the CONNECT
   */
  constructor(maxPacketBytes: number, settings: MqttReaderSettings = NO_SETTINGS) {
    this.#maxPacketBytes = maxPacketBytes;
    this.#settings = settings;
  }

  /**
   * Nothing held and nothing failed: the reader is between packets, and a new one made
   * with its `settings` would read on the same. Connections drop an idle reader, so an
   * idle connection holds none (two slots instead of an object).
   */
  get idle(): boolean {
    return this.#partial === undefined && this.#failure === undefined;
  }

  /** The protocol level the CONNECT named: a shared frozen object, never one per connection. */
  get settings(): MqttReaderSettings {
    return this.#settings;
  }

  push(chunk: Buffer): Packet[] {
    if (this.#failure !== undefined) throw this.#failure;
    try {
      return this.#push(chunk);
    } catch (err) {
      this.#partial = undefined;
      this.#failure = err instanceof ProtocolError ? err : malformed(err);
      throw this.#failure;
    }
  }

  #push(chunk: Buffer): Packet[] {
    const packets: Packet[] = [];
    let at = 0;
    if (this.#partial !== undefined) {
      at = this.#continue(this.#partial, chunk);
      if (at < 0) return packets; // the chunk went into the partial packet, still incomplete
      packets.push(this.#decode(joined(this.#partial)));
      this.#partial = undefined;
    }
    while (at < chunk.length) {
      const remaining = remainingLength(chunk, at);
      if (remaining === NEED) {
        this.#hold(chunk, at, 0);
        break;
      }
      const total = this.#checked(chunk[at]!, remaining);
      if (chunk.length - at < total) {
        this.#hold(chunk, at, total);
        break;
      }
      packets.push(this.#decode(chunk.subarray(at, at + total)));
      at += total;
    }
    return packets;
  }

  /**
   * Adds the chunk's bytes to the partial packet. Returns how many of the chunk's bytes
   * completed it, or -1 when all went in and it is still incomplete.
   */
  #continue(partial: PartialPacket, chunk: Buffer): number {
    let used = 0;
    if (partial.total === 0) {
      // The fixed header itself was split: at most 4 bytes held, so this copy is small.
      const head = Buffer.concat([joined(partial), chunk.subarray(0, MAX_HEADER_BYTES - partial.bytes)]);
      const remaining = remainingLength(head, 0);
      if (remaining === NEED) {
        used = head.length - partial.bytes;
        partial.parts[0] = head;
        partial.parts.length = 1;
        partial.bytes = head.length;
        firstByteCheck(head[0]!);
        return -1;
      }
      partial.total = this.#checked(head[0]!, remaining);
    }
    const want = partial.total - partial.bytes;
    if (chunk.length - used < want) {
      partial.parts.push(Buffer.from(chunk.subarray(used)));
      partial.bytes += chunk.length - used;
      return -1;
    }
    partial.parts.push(chunk.subarray(used, used + want));
    partial.bytes += want;
    return used + want;
  }

  /** Keeps the bytes of a packet that continues in a later chunk (a copy, not a view). */
  #hold(chunk: Buffer, at: number, total: number): void {
    // The parser would have refused a bad first byte before the rest arrived: so do we.
    firstByteCheck(chunk[at]!);
    this.#partial = { parts: [Buffer.from(chunk.subarray(at))], bytes: chunk.length - at, total };
  }

  /** The whole packet's size, once its declared length is known to be within the limit. */
  #checked(firstByte: number, remaining: number): number {
    // A packet over the limit with a bad first byte: the parser's refusal, as before.
    firstByteCheck(firstByte);
    const total = packetBytes(remaining);
    if (total > this.#maxPacketBytes) {
      throw new ProtocolError('LIMIT_PAYLOAD', `packet of ${total} B > ${this.#maxPacketBytes} B`);
    }
    return total;
  }

  #decode(bytes: Buffer): Packet {
    const packet = decode(bytes, this.#settings, this.#learn);
    // MQTT-3.12.1 (3.1.1 and 5): PINGREQ has no variable header and no payload. mqtt-packet
    // reads one with a remaining length of 1 as if it were 0, so we refuse it here
    // (MQTT-4.8.0-1 / MQTT 5 §4.13: a malformed packet closes the connection).
    if (packet.cmd === 'pingreq' && packet.length !== 0) {
      throw new ProtocolError('PROTO_BAD_MESSAGE', `malformed packet: PINGREQ with a remaining length of ${String(packet.length)} (must be 0)`);
    }
    return packet;
  }

  /**
   * The parser decodes the packets after a CONNECT at the protocol level it names
   * (bridgeMode: the level's high bit, set by MQTT bridges; mqtt-packet's types omit it).
   * Also learnt from a CONNECT refused for a bad string, so its refusal is spoken at its level.
   */
  readonly #learn = (connect: Packet): void => {
    if (connect.cmd !== 'connect') return;
    this.#settings = settingsOf(connect.protocolVersion ?? 0, (connect as { readonly bridgeMode?: unknown }).bridgeMode === true);
  };
}

/** The buffered parts of a partial packet as one Buffer. */
function joined(partial: PartialPacket): Buffer {
  return partial.parts.length === 1 ? partial.parts[0]! : Buffer.concat(partial.parts, partial.bytes);
}

const NEED = -1;

/**
 * The remaining length declared by the fixed header at `at` (§1.5.5: 1 to 4 bytes, 7
 * bits each, high bit = more), or NEED when the header continues in a later chunk.
 * Throws on a fifth length byte, and on a longer-than-needed encoding (a last byte of 0
 * after the first, MQTT-1.5.5-1): packet sizes are computed from the value, so such a
 * header would be framed wrong — mqtt-packet alone used to accept it.
 */
function remainingLength(buf: Buffer, at: number): number {
  let value = 0;
  let multiplier = 1;
  for (let i = 1; i < MAX_HEADER_BYTES; i++) {
    if (at + i >= buf.length) return NEED;
    const byte = buf[at + i]!;
    value += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) {
      if (byte === 0 && i > 1) break;
      return value;
    }
    multiplier *= 0x80;
  }
  firstByteCheck(buf[at]!);
  // mqtt-packet's own words for it, as before.
  throw malformed(new Error('Invalid variable byte integer'));
}

function malformed(err: unknown): ProtocolError {
  const message = err instanceof Error ? err.message : String(err);
  if (message === 'Invalid protocol version') return new UnsupportedVersionError();
  return new ProtocolError('PROTO_BAD_MESSAGE', `malformed packet: ${message}`, { cause: err });
}

// ---- The shared mqtt-packet parser ----------------------------------------------------
//
// mqtt-packet's parser is a stream parser: an EventEmitter with a BufferList, state and
// closures, about 1 KB, made to be kept per connection. We keep one for the process and
// give it whole packets only. Everything we assume about its insides is in this section,
// and test/connectors/mqtt/mqtt-reader.test.ts fails loudly when an assumption breaks:
//
// 1. Its `settings` field is what it decodes with: `settings.protocolVersion` (5: with
//    properties) and `settings.bridgeMode`, read while it decodes a packet. It sets
//    `settings` to the CONNECT packet it decodes; we set it before every packet to the
//    connection's own, and back to an empty one after (so it keeps no CONNECT, password
//    included, between packets).
// 2. Given one whole packet, `parse` synchronously emits one 'packet' or one 'error'
//    and returns the bytes it still holds: 0 when it is back between packets.
// 3. Every UTF-8 string (protocol name, client id, will topic, username, topic names and
//    filters, string properties and user properties) is read by its `_parseString`, with
//    `_pos` at the string's two-byte length in `_list`, a BufferList holding the packet.
//    We wrap that method on our parser to check the string's bytes (`checkedParseString`).
// Anything else, an 'error', or a throw, and the parser is dropped; the next packet gets
// a fresh one. So we never rely on how (or whether) it cleans up after an error.

/** The parser settings we set (see 1. above). Shared, frozen objects: never one per connection. */
interface ParserSettings {
  readonly protocolVersion?: number;
  readonly bridgeMode?: boolean;
}
/** What a reader carries from one packet to the next, for a connection to keep between readers. */
export type MqttReaderSettings = ParserSettings;

const NO_SETTINGS: ParserSettings = Object.freeze({});
const SETTINGS = new Map<number, ParserSettings>();

function settingsOf(protocolVersion: number, bridgeMode: boolean): ParserSettings {
  const key = protocolVersion * 2 + (bridgeMode ? 1 : 0);
  let settings = SETTINGS.get(key);
  if (settings === undefined) {
    settings = Object.freeze(bridgeMode ? { protocolVersion, bridgeMode } : { protocolVersion });
    SETTINGS.set(key, settings);
  }
  return settings;
}

interface SettableParser extends Parser {
  settings: ParserSettings;
}

/** What `checkedParseString` reads of the parser (assumption 3 above). */
interface StringReading {
  readonly _list: { readonly length: number; readUInt16BE(offset: number): number; slice(start: number, end: number): Buffer };
  readonly _pos: number;
  _parseString(maybeBuffer?: unknown): string | null;
}

let shared: SettableParser | undefined;
/** What the shared parser emitted during the current `parse` call. */
let emitted: Packet | undefined;
let emittedCount = 0;
let parseError: unknown;

function onPacket(packet: Packet): void {
  emitted = packet;
  emittedCount++;
}

function onError(err: unknown): void {
  parseError ??= err instanceof Error ? err : new Error(String(err));
}

/** The first bad string of the packet being decoded: why, and what the parser made of it. */
let badString: BadString | undefined;
interface BadString {
  readonly why: string;
  readonly decoded: string | null;
}

/**
 * MQTT-1.5.3-1/-2 (MQTT 5: MQTT-1.5.4-1/-2): a string must be well-formed UTF-8 (no
 * surrogates, no overlong forms) without U+0000. Checks the raw bytes, then lets the
 * parser decode them as before. A view, no copy: `_list` holds one Buffer, the packet.
 */
function checkedParseString(this: StringReading, original: StringReading['_parseString'], maybeBuffer?: unknown): string | null {
  const list = this._list;
  const at = this._pos;
  let why: string | undefined;
  if (at + 2 <= list.length) {
    const end = at + 2 + list.readUInt16BE(at);
    if (end <= list.length) {
      const raw = list.slice(at + 2, end);
      if (!isUtf8(raw)) why = 'a string that is not well-formed UTF-8 (MQTT-1.5.3-1)';
      else if (raw.includes(0)) why = 'a string containing U+0000 (MQTT-1.5.3-2)';
    }
  }
  const decoded = original.call(this, maybeBuffer);
  if (why !== undefined) badString ??= { why, decoded };
  return decoded;
}

function newParser(): SettableParser {
  const p = createParser() as SettableParser;
  const reading = p as unknown as StringReading;
  const original = reading._parseString;
  // Assumption 3: without it, bad strings would pass unseen; the reader tests fail then too.
  if (typeof original !== 'function') throw new Error('mqtt-packet: the parser has no _parseString to check strings with');
  reading._parseString = function (this: StringReading, maybeBuffer?: unknown) {
    return checkedParseString.call(this, original, maybeBuffer);
  };
  p.on('packet', onPacket);
  p.on('error', onError);
  return p;
}

/**
 * Decodes one whole packet (fixed header included) with the shared parser, at the
 * connection's settings. Throws ProtocolError for anything the parser refuses.
 */
function decode(bytes: Buffer, settings: ParserSettings, learn: (connect: Packet) => void): Packet {
  const p = (shared ??= newParser());
  emitted = undefined;
  emittedCount = 0;
  parseError = undefined;
  badString = undefined;
  let left = -1;
  p.settings = settings;
  try {
    left = p.parse(bytes);
  } catch (err) {
    // The parser reports through 'error'; a throw is a parser bug on odd input.
    parseError ??= err;
  }
  p.settings = NO_SETTINGS;
  // Set by the parser's callbacks during `parse`, which TypeScript's flow analysis does not see.
  const packet = emitted as Packet | undefined;
  const error = parseError;
  const bad = badString as BadString | undefined;
  emitted = undefined;
  parseError = undefined;
  badString = undefined;
  if (error === undefined && packet !== undefined && emittedCount === 1 && left === 0) {
    if (packet.cmd === 'connect') learn(packet);
    if (bad === undefined) return packet;
    // The client id is the CONNECT's string the parser decoded to what the bad one became.
    throw new MalformedStringError(bad.why, packet.cmd === 'connect' && bad.decoded !== null && packet.clientId === bad.decoded);
  }
  // Not the one-packet-and-clean outcome (assumption 2): start the next packet afresh.
  shared = undefined;
  throw malformed(error ?? new Error('the packet did not decode'));
}

/**
 * First bytes the parser refuses on sight, by byte value (undefined: not asked yet, null:
 * accepted). It refuses some (reserved flag bits, QoS 3) before their length arrives; we
 * check them whenever we hold or size a packet, so such bytes are refused as early, and
 * with the same words, as when the parser read the stream itself. Each value is asked
 * once, of a throwaway parser.
 */
const FIRST_BYTE_ERRORS: (Error | null | undefined)[] = [];

function firstByteCheck(byte: number): void {
  let error = FIRST_BYTE_ERRORS[byte];
  if (error === undefined) {
    const probe = createParser();
    let found: Error | null = null;
    probe.on('error', (err: unknown) => {
      found ??= err instanceof Error ? err : new Error(String(err));
    });
    try {
      probe.parse(Buffer.of(byte));
    } catch (err) {
      found ??= err instanceof Error ? err : new Error(String(err));
    }
    FIRST_BYTE_ERRORS[byte] = error = found;
  }
  if (error !== null) throw malformed(error);
}
