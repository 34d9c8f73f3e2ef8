/**
 * Splits a byte stream into frames whose total length can be read from their first
 * bytes (Pomelo packages, WebSocket frames, MQTT packets). Complete frames inside a
 * chunk are handed out as (buffer, start, end) without copying, to be used before
 * push() returns; the bytes of an unfinished frame are copied, since the caller may
 * reuse its read buffer.
 */

/**
 * Total length of the frame starting at `off` (header included), or -1 when
 * `buf` (up to `end`) does not yet hold enough header bytes to tell.
 * Throws to reject a malformed header.
 */
export type FrameLength = (buf: Buffer, off: number, end: number) => number;
export type OnFrame = (buf: Buffer, start: number, end: number) => void;

export class Splitter {
  readonly #length: FrameLength;
  #parts: Buffer[] = [];
  #have = 0;
  /** Bytes the frame in progress needs, 0 while its header is incomplete. */
  #need = 0;

  constructor(length: FrameLength) {
    this.#length = length;
  }

  push(chunk: Buffer, onFrame: OnFrame): void {
    if (this.#parts.length === 0) {
      this.#run(chunk, onFrame);
      return;
    }
    this.#parts.push(Buffer.from(chunk));
    this.#have += chunk.length;
    if (this.#need > 0 && this.#have < this.#need) return;
    const buf = Buffer.concat(this.#parts, this.#have);
    this.#parts = [];
    this.#have = 0;
    this.#need = 0;
    this.#run(buf, onFrame);
  }

  #run(buf: Buffer, onFrame: OnFrame): void {
    const end = buf.length;
    let off = 0;
    while (off < end) {
      const total = this.#length(buf, off, end);
      if (total < 0 || off + total > end) {
        const rest = Buffer.from(buf.subarray(off));
        this.#parts.push(rest);
        this.#have = rest.length;
        this.#need = total < 0 ? 0 : total;
        return;
      }
      onFrame(buf, off, off + total);
      off += total;
    }
  }
}

/** Pomelo package: 1 type byte, 24-bit big-endian body length (docs/pomelo-protocol.md §2). */
export const pomeloPackageLength: FrameLength = (buf, off, end) => {
  if (end - off < 4) return -1;
  return 4 + ((buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!);
};

/** WebSocket frame from a server (RFC 6455 §5.2): 2..10 header bytes, unmasked. */
export const wsFrameLength: FrameLength = (buf, off, end) => {
  if (end - off < 2) return -1;
  const b1 = buf[off + 1]!;
  const masked = (b1 & 0x80) !== 0 ? 4 : 0;
  const len7 = b1 & 0x7f;
  if (len7 < 126) return 2 + masked + len7;
  if (len7 === 126) {
    if (end - off < 4) return -1;
    return 4 + masked + buf.readUInt16BE(off + 2);
  }
  if (end - off < 10) return -1;
  const hi = buf.readUInt32BE(off + 2);
  if (hi !== 0) throw new Error('WebSocket frame over 4 GiB');
  return 10 + masked + buf.readUInt32BE(off + 6);
};

/** MQTT packet (MQTT 3.1.1 §2.2.3): 1 byte, then a 1..4 byte remaining-length varint. */
export const mqttPacketLength: FrameLength = (buf, off, end) => {
  let mult = 1;
  let len = 0;
  for (let i = 1; i <= 4; i++) {
    if (off + i >= end) return -1;
    const b = buf[off + i]!;
    len += (b & 0x7f) * mult;
    if ((b & 0x80) === 0) return 1 + i + len;
    mult *= 128;
  }
  throw new Error('MQTT remaining length over 4 bytes');
};
