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

/** The bytes a packet takes in all (MQTT 5 §2.1.4: fixed header plus remaining length). */
export function packetBytes(remainingLength: number): number {
  // §1.5.5: the remaining length is a variable byte integer of 1 to 4 bytes.
  const lengthBytes = remainingLength < 128 ? 1 : remainingLength < 16_384 ? 2 : remainingLength < 2_097_152 ? 3 : 4;
  return 1 + lengthBytes + remainingLength;
}

/**
 * One socket's MQTT packet reader: mqtt-packet's parser, plus the size limit checked on
 * the declared length before the body is buffered (STYLE §3). The parser takes the
 * protocol level from the CONNECT it parses, so later packets decode as 3.1.1 or 5.
 *
 * `push` returns the complete packets in the chunk, or throws ProtocolError:
 * LIMIT_PAYLOAD for a packet over the limit, PROTO_BAD_MESSAGE for anything the
 * parser refuses. After a throw the reader is done; the connection closes.
 */
export class MqttPacketReader {
  readonly #parser: Parser;
  readonly #maxPacketBytes: number;
  #packets: Packet[] = [];
  #error: unknown;

  /** @param maxPacketBytes largest packet accepted, whole packet, bytes */
  constructor(maxPacketBytes: number) {
    this.#maxPacketBytes = maxPacketBytes;
    this.#parser = createParser();
    this.#parser.on('packet', (packet) => this.#packets.push(packet));
    this.#parser.on('error', (err: unknown) => {
      this.#error ??= err;
    });
  }

  push(chunk: Buffer): Packet[] {
    if (this.#error !== undefined) throw this.#failure();
    try {
      this.#parser.parse(chunk);
    } catch (err) {
      // The parser reports through 'error'; a throw is a parser bug on odd input.
      this.#error ??= err;
    }
    const packets = this.#packets;
    this.#packets = [];
    for (const p of packets) {
      // A whole packet can arrive in one chunk: check the complete ones too.
      if (p.length !== undefined && packetBytes(p.length) > this.#maxPacketBytes) throw this.#tooLarge(p.length);
    }
    if (this.#error !== undefined) throw this.#failure();
    const declared = pendingLength(this.#parser);
    if (declared !== undefined && packetBytes(declared) > this.#maxPacketBytes) throw this.#tooLarge(declared);
    return packets;
  }

  #tooLarge(length: number): ProtocolError {
    this.#error ??= new Error('packet too large');
    return new ProtocolError('LIMIT_PAYLOAD', `packet of ${packetBytes(length)} B > ${this.#maxPacketBytes} B`);
  }

  #failure(): ProtocolError {
    const message = this.#error instanceof Error ? this.#error.message : String(this.#error);
    if (message === 'Invalid protocol version') return new UnsupportedVersionError();
    return new ProtocolError('PROTO_BAD_MESSAGE', `malformed packet: ${message}`, { cause: this.#error });
  }
}

/**
 * The remaining length the parser has read for the packet it is still waiting for, if
 * any. mqtt-packet has no hook for this, so we read its `packet.length` (-1 until the
 * length is known). This is the only use of the parser's internals, and
 * test/connectors/mqtt/mqtt-reader.test.ts fails loudly if it stops working.
 */
function pendingLength(parser: Parser): number | undefined {
  const partial = (parser as unknown as { readonly packet?: { readonly length?: unknown } }).packet;
  const length = partial?.length;
  return typeof length === 'number' && length >= 0 ? length : undefined;
}
