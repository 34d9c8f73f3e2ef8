/**
 * Pomelo package layer (docs/pomelo-protocol.md §2): a 4-byte header (type, 24-bit big-endian body
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

/** Largest body the 24-bit length field can describe (docs/pomelo-protocol.md §2). */
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
 * Reassembles packages from a TCP byte stream (docs/pomelo-protocol.md §2.1). Complete packages inside
 * one chunk are views into that chunk; a package spanning chunks is copied once, when
 * its last byte arrives. Memory held is the bytes received so far for the current
 * package (never more than `maxPackage + 4`), not the declared length.
 *
 * After the first error the reader is failed: every later `push` throws the same
 * error. Packages that preceded the bad bytes in the failing chunk are not returned.
 */
export class PackageReader {
  readonly #maxPackage: number;
  /**
   * The package a chunk ended inside, or undefined between packages. An idle
   * connection holds nothing else: this reader is one per TCP connection, so its
   * idle size counts in the memory per connection (BENCHMARKS.md).
   */
  #partial: PartialPackage | undefined = undefined;
  /** The first error, thrown again by every later push; NO_FAILURE while healthy. */
  #failure: unknown = NO_FAILURE;

  constructor(limits: PackageLimits) {
    this.#maxPackage = limits.maxPackage;
  }

  /**
   * Nothing held and nothing failed: the reader is between packages, and a new one
   * would read the next chunk the same. Connections drop an idle reader and make one
   * per chunk, so an idle connection holds none.
   */
  get idle(): boolean {
    return this.#partial === undefined && this.#failure === NO_FAILURE;
  }

  /** Bytes received and held for the package in progress. */
  get bufferedBytes(): number {
    const p = this.#partial;
    return p === undefined ? 0 : p.bodyLength >= 0 ? p.partsBytes : p.headFilled;
  }

  push(chunk: Buffer): Package[] {
    if (this.#failure !== NO_FAILURE) throw this.#failure;
    try {
      return this.#push(chunk);
    } catch (err) {
      // Not wrapped: anything other than a ProtocolError is a bug the fuzzers must see.
      this.#failure = err;
      this.#partial = undefined;
      throw err;
    }
  }

  #push(chunk: Buffer): Package[] {
    const out: Package[] = [];
    let offset = 0;
    const end = chunk.length;
    while (offset < end) {
      const p = this.#partial;
      if (p !== undefined && p.bodyLength >= 0) {
        // Body in progress: take what this chunk has of it.
        const take = Math.min(p.bodyLength - p.partsBytes, end - offset);
        p.parts.push(chunk.subarray(offset, offset + take));
        p.partsBytes += take;
        offset += take;
        if (p.partsBytes === p.bodyLength) {
          out.push({ type: p.type, body: p.parts.length === 1 ? p.parts[0]! : Buffer.concat(p.parts, p.bodyLength) });
          this.#partial = undefined;
        }
        continue;
      }
      if (p !== undefined || end - offset < HEADER_BYTES) {
        // Header split across chunks: collect it byte by byte (at most 3 bytes carried).
        const q = p ?? (this.#partial = new PartialPackage());
        while (q.headFilled < HEADER_BYTES && offset < end) {
          const b = chunk[offset++]!;
          if (q.headFilled === 0 && !isPackageType(b)) throw badType(b);
          q.head = q.head * 256 + b;
          q.headFilled++;
        }
        if (q.headFilled < HEADER_BYTES) break;
        const type = Math.floor(q.head / 0x1000000) as PackageType;
        const length = q.head % 0x1000000;
        if (length > this.#maxPackage) throw tooBig(length, this.#maxPackage);
        if (length === 0) {
          out.push({ type, body: EMPTY });
          this.#partial = undefined;
        } else {
          q.type = type;
          q.bodyLength = length;
        }
        continue;
      }
      // Fast path: the whole header is in this chunk.
      const type = chunk[offset]!;
      if (!isPackageType(type)) throw badType(type);
      const length = (chunk[offset + 1]! << 16) | (chunk[offset + 2]! << 8) | chunk[offset + 3]!;
      if (length > this.#maxPackage) throw tooBig(length, this.#maxPackage);
      offset += HEADER_BYTES;
      if (end - offset >= length) {
        out.push({ type, body: chunk.subarray(offset, offset + length) });
        offset += length;
      } else {
        const q = (this.#partial = new PartialPackage());
        q.type = type;
        q.bodyLength = length;
      }
    }
    return out;
  }
}

const NO_FAILURE = Symbol('no failure');

/** A package of a TCP stream that arrived in pieces: made for it, dropped when it completes. */
class PartialPackage {
  /** Header bytes so far, big-endian (at most 4, so an exact integer). */
  head = 0;
  headFilled = 0;
  type: PackageType = PackageType.DATA;
  /** Declared body length once the header is complete; -1 before. */
  bodyLength = -1;
  parts: Buffer[] = [];
  partsBytes = 0;
}

const EMPTY = Buffer.alloc(0);

/**
 * Decodes a WebSocket message, which must hold exactly one package (docs/pomelo-protocol.md §2.3).
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

/** `03 00 00 00`, the same in both directions (docs/pomelo-protocol.md §5). Shared: never write into it. */
export const HEARTBEAT_PACKAGE: Buffer = encodePackage(PackageType.HEARTBEAT);
/** `02 00 00 00` (docs/pomelo-protocol.md §4.5). Shared: never write into it. */
export const HANDSHAKE_ACK_PACKAGE: Buffer = encodePackage(PackageType.HANDSHAKE_ACK);

/** KICK package with body `{"reason":...}` (docs/pomelo-protocol.md §7, vectors `pkg-kick-*`). */
export function encodeKick(reason: string): Buffer {
  const json = JSON.stringify({ reason });
  const length = Buffer.byteLength(json);
  if (length > MAX_BODY) throw tooBig(length, MAX_BODY);
  const out = Buffer.allocUnsafe(HEADER_BYTES + length);
  writeHeader(out, 0, PackageType.KICK, length);
  out.write(json, HEADER_BYTES, 'utf8');
  return out;
}
