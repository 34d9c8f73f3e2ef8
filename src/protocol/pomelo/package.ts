/**
 * Pomelo package layer (spec §2): a 4-byte header (type, 24-bit big-endian body
 * length) followed by the body. Pure functions over Buffer plus one small stream
 * reader per TCP connection.
 */
import { Buffer } from 'node:buffer';
import { ProtocolError } from '../errors.js';

export const PackageType = { HANDSHAKE: 1, HANDSHAKE_ACK: 2, HEARTBEAT: 3, DATA: 4, KICK: 5 } as const;
export type PackageType = (typeof PackageType)[keyof typeof PackageType];

export interface Package {
  readonly type: PackageType;
  /** A view into the input when the package arrived in one piece; treat as read-only. */
  readonly body: Buffer;
}

export interface PackageLimits {
  /** Largest body accepted inbound, in bytes (header excluded). Checked on the header alone. */
  readonly maxPackage: number;
}

/** Largest body the 24-bit length field can describe (spec §2). */
export const MAX_BODY = 0xffffff;

/** Header size in bytes. */
export const HEADER_BYTES = 4;

export type Step<T> =
  | { readonly kind: 'value'; readonly value: T; readonly used: number }
  | { readonly kind: 'need'; readonly atLeast: number };

export function isPackageType(n: number): n is PackageType {
  return n >= 1 && n <= 5 && Number.isInteger(n);
}

function badType(type: number): ProtocolError {
  return new ProtocolError('PROTO_BAD_TYPE', `unknown package type ${type}`);
}

function tooBig(length: number, limit: number): ProtocolError {
  return new ProtocolError('LIMIT_PAYLOAD', `package body of ${length} B exceeds the limit of ${limit} B`);
}

/**
 * Encodes one package. The result is a fresh Buffer, safe to share among recipients.
 * @throws ProtocolError LIMIT_PAYLOAD for a body over 0xFFFFFF bytes (the reference
 *   silently wraps the length instead: vector `pkg-length-wrap`), PROTO_BAD_TYPE for a
 *   type outside 1..5.
 */
export function encodePackage(type: PackageType, body?: Buffer): Buffer {
  if (!isPackageType(type)) throw badType(type);
  const length = body === undefined ? 0 : body.length;
  if (length > MAX_BODY) throw tooBig(length, MAX_BODY);
  const out = Buffer.allocUnsafe(HEADER_BYTES + length);
  writeHeader(out, 0, type, length);
  if (body !== undefined && length > 0) body.copy(out, HEADER_BYTES);
  return out;
}

/** Writes a package header at `offset`. The caller has checked `length <= MAX_BODY`. */
export function writeHeader(out: Buffer, offset: number, type: PackageType, length: number): void {
  out[offset] = type;
  out[offset + 1] = (length >>> 16) & 0xff;
  out[offset + 2] = (length >>> 8) & 0xff;
  out[offset + 3] = length & 0xff;
}

/**
 * Reads one package from the start of `buf`. Header checks happen before waiting for
 * the body: a bad type byte is rejected as soon as it is seen, and a declared length
 * over `limits.maxPackage` as soon as the 4 header bytes are there.
 */
export function readPackage(buf: Buffer, limits: PackageLimits): Step<Package> {
  if (buf.length === 0) return { kind: 'need', atLeast: HEADER_BYTES };
  const type = buf[0]!;
  if (!isPackageType(type)) throw badType(type);
  if (buf.length < HEADER_BYTES) return { kind: 'need', atLeast: HEADER_BYTES };
  const length = (buf[1]! << 16) | (buf[2]! << 8) | buf[3]!;
  if (length > limits.maxPackage) throw tooBig(length, limits.maxPackage);
  const total = HEADER_BYTES + length;
  if (buf.length < total) return { kind: 'need', atLeast: total };
  return { kind: 'value', value: { type, body: buf.subarray(HEADER_BYTES, total) }, used: total };
}

/**
 * Reassembles packages from a TCP byte stream (spec §2.1). Complete packages inside
 * one chunk are views into that chunk; a package spanning chunks is copied once, when
 * its last byte arrives. Memory held is the bytes received so far for the current
 * package (never more than `maxPackage + 4`), not the declared length.
 *
 * After the first error the reader is failed: every later `push` throws the same
 * error. Packages that preceded the bad bytes in the failing chunk are not returned.
 */
export class PackageReader {
  readonly #limits: PackageLimits;
  /** Header bytes of the current package when they arrived split. */
  readonly #head = Buffer.alloc(HEADER_BYTES);
  #headFilled = 0;
  /** Current package once its header is known and its body is incomplete. */
  #type: PackageType = PackageType.DATA;
  #bodyLength = -1;
  #parts: Buffer[] = [];
  #partsBytes = 0;
  #failed = false;
  #failure: unknown = null;

  constructor(limits: PackageLimits) {
    this.#limits = limits;
  }

  /** Bytes received and held for the package in progress. */
  get bufferedBytes(): number {
    return this.#headFilled + this.#partsBytes;
  }

  push(chunk: Buffer): Package[] {
    if (this.#failed) throw this.#failure;
    try {
      return this.#push(chunk);
    } catch (err) {
      // Not wrapped: anything other than a ProtocolError is a bug the fuzzers must see.
      this.#failed = true;
      this.#failure = err;
      this.#headFilled = 0;
      this.#bodyLength = -1;
      this.#parts = [];
      this.#partsBytes = 0;
      throw err;
    }
  }

  #push(chunk: Buffer): Package[] {
    const out: Package[] = [];
    let offset = 0;
    const end = chunk.length;
    while (offset < end) {
      if (this.#bodyLength >= 0) {
        // Body in progress: take what this chunk has of it.
        const want = this.#bodyLength - this.#partsBytes;
        const take = Math.min(want, end - offset);
        this.#parts.push(chunk.subarray(offset, offset + take));
        this.#partsBytes += take;
        offset += take;
        if (this.#partsBytes === this.#bodyLength) {
          const parts = this.#parts;
          const body = parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.#bodyLength);
          out.push({ type: this.#type, body });
          this.#parts = [];
          this.#partsBytes = 0;
          this.#bodyLength = -1;
        }
        continue;
      }
      if (this.#headFilled > 0 || end - offset < HEADER_BYTES) {
        // Header split across chunks: collect it byte by byte (at most 3 bytes carried).
        while (this.#headFilled < HEADER_BYTES && offset < end) {
          const b = chunk[offset++]!;
          if (this.#headFilled === 0 && !isPackageType(b)) throw badType(b);
          this.#head[this.#headFilled++] = b;
        }
        if (this.#headFilled < HEADER_BYTES) break;
        this.#headFilled = 0;
        this.#startBody(this.#head[0]! as PackageType, this.#head.readUIntBE(1, 3), out);
        continue;
      }
      // Fast path: the whole header is in this chunk.
      const type = chunk[offset]!;
      if (!isPackageType(type)) throw badType(type);
      const length = (chunk[offset + 1]! << 16) | (chunk[offset + 2]! << 8) | chunk[offset + 3]!;
      if (length > this.#limits.maxPackage) throw tooBig(length, this.#limits.maxPackage);
      offset += HEADER_BYTES;
      if (end - offset >= length) {
        out.push({ type, body: chunk.subarray(offset, offset + length) });
        offset += length;
      } else {
        this.#type = type;
        this.#bodyLength = length;
      }
    }
    return out;
  }

  #startBody(type: PackageType, length: number, out: Package[]): void {
    if (length > this.#limits.maxPackage) throw tooBig(length, this.#limits.maxPackage);
    if (length === 0) {
      out.push({ type, body: EMPTY });
      return;
    }
    this.#type = type;
    this.#bodyLength = length;
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Decodes a WebSocket message, which must hold exactly one package (spec §2.3).
 * @throws ProtocolError PROTO_TRUNCATED when shorter than its header or declared
 *   length, PROTO_TRAILING when longer, PROTO_BAD_TYPE, LIMIT_PAYLOAD.
 */
export function decodeSinglePackage(buf: Buffer, limits: PackageLimits): Package {
  const step = readPackage(buf, limits);
  if (step.kind === 'need') {
    throw new ProtocolError('PROTO_TRUNCATED', `package needs ${step.atLeast} B, message has ${buf.length} B`);
  }
  if (step.used !== buf.length) {
    throw new ProtocolError('PROTO_TRAILING', `${buf.length - step.used} B after the package`);
  }
  return step.value;
}

/** `03 00 00 00`, the same in both directions (spec §5). Shared: never write into it. */
export const HEARTBEAT_PACKAGE: Buffer = encodePackage(PackageType.HEARTBEAT);
/** `02 00 00 00` (spec §4.5). Shared: never write into it. */
export const HANDSHAKE_ACK_PACKAGE: Buffer = encodePackage(PackageType.HANDSHAKE_ACK);

/** KICK package with body `{"reason":...}` (spec §7, vectors `pkg-kick-*`). */
export function encodeKick(reason: string): Buffer {
  const json = JSON.stringify({ reason });
  const length = Buffer.byteLength(json);
  if (length > MAX_BODY) throw tooBig(length, MAX_BODY);
  const out = Buffer.allocUnsafe(HEADER_BYTES + length);
  writeHeader(out, 0, PackageType.KICK, length);
  out.write(json, HEADER_BYTES, 'utf8');
  return out;
}
