/**
 * pomelo-protobuf 0.4.0's dialect of protobuf (docs/pomelo-protocol.md §9), byte-compatible with the
 * reference Node codec for everything it encodes correctly:
 *
 * - `int32` and `sInt32` are both zig-zag; `uInt32` is a plain varint (up to 2^53-1,
 *   like the reference's float math);
 * - `float` / `double` are 4 / 8 bytes little-endian;
 * - a repeated simple type (`uInt32`, `sInt32`, `int32`, `float`, `double`) is one key
 *   carrying the element's wire type, a varint element COUNT, then the elements;
 * - repeated strings and messages are one key + value per element;
 * - fields are written in the key order of the object being encoded;
 * - decoding goes by the declared field type, never by the key's wire type (the
 *   browser codec writes wire type 2 for varints: vector
 *   `pb-request-move-varints-wiretype-quirk`);
 * - `message X` inside a message is visible only in that message; top-level
 *   `message X` entries are global to their table.
 *
 * Differences from the reference, all where the reference throws, loops or emits
 * garbage: unknown tags are skipped by wire type instead of throwing; the declared
 * types the dialect cannot carry (`bool`, `bytes`, `uInt64`, `sInt64`, unresolved
 * message names) make encoding return null and decoding throw; a value of the wrong JS
 * type makes encoding return null; a message that encodes to zero bytes is an empty
 * Buffer (the reference returns null, which pomelo sends as an empty body anyway).
 */
import { Buffer } from 'node:buffer';
import { ProtocolError } from '../errors.js';

/** A proto description as written in serverProtos.json / clientProtos.json (docs/pomelo-protocol.md §9.2). */
export type ProtoSource = Record<string, unknown>;

export type FieldRule = 'required' | 'optional' | 'repeated';

export interface ParsedField {
  readonly option: FieldRule;
  readonly type: string;
  /** Copied from the source as is (a number in any sane description). */
  readonly tag: number;
}

export interface ParsedMessageTable {
  readonly [name: string]: ParsedMessage;
}

export interface ParsedTagTable {
  readonly [tag: string]: string;
}

/** One parsed message: fields by name, plus its nested types and a tag -> name table. */
export interface ParsedMessage {
  readonly [field: string]: ParsedField | ParsedMessageTable | ParsedTagTable;
  readonly __messages: ParsedMessageTable;
  readonly __tags: ParsedTagTable;
}

/** Parsed protos by route (and `message X` for global types): what the handshake sends. */
export interface ParsedProtos {
  readonly [route: string]: ParsedMessage;
}

/** Deepest message nesting accepted by the encoder and the decoder. */
export const MAX_PROTOBUF_DEPTH = 32;

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** Largest field number protobuf allows (2^29 - 1). */
const MAX_TAG = 0x1fffffff;
const MAX_VARINT_BYTES = 10;

function bad(message: string): ProtocolError {
  return new ProtocolError('PROTO_BAD_PROTOBUF', message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

function isPlainRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function ownValue(obj: object, key: string): unknown {
  return Object.hasOwn(obj, key) ? (obj as Record<string, unknown>)[key] : undefined;
}

/** Sets an own data property, also for the name `__proto__`. */
function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    obj[key] = value;
  }
}

// ---------------------------------------------------------------- parsing (docs/pomelo-protocol.md §9.2)

/**
 * Parses a proto description into the form the handshake sends, exactly as
 * pomelo-protobuf's `parse` does (same keys, same order, so the same JSON and the same
 * `protos.version`). Objects in the result are frozen and have null prototypes, so a
 * route such as `"constructor"` is never found by accident.
 * @throws ProtocolError PROTO_BAD_PROTOBUF when `source` is not an object.
 */
export function parseProtos(source: unknown): ParsedProtos {
  if (!isPlainRecord(source)) throw bad('proto description must be a JSON object');
  const out = Object.create(null) as Record<string, unknown>;
  for (const key of Object.keys(source)) out[key] = parseObject(source[key]);
  return Object.freeze(out) as ParsedProtos;
}

function parseObject(obj: unknown): ParsedMessage {
  const proto = Object.create(null) as Record<string, unknown>;
  const nested = Object.create(null) as Record<string, unknown>;
  const tags = Object.create(null) as Record<string, string>;
  // The reference iterates any value with for..in; only objects can hold keys that
  // match (a string's keys are single-character indices).
  if (isObject(obj)) {
    for (const name of Object.keys(obj)) {
      const value = obj[name];
      const params = name.split(' ');
      const rule = params[0];
      if (rule === 'message') {
        if (params.length !== 2) continue;
        nested[params[1]!] = parseObject(value);
      } else if (rule === 'required' || rule === 'optional' || rule === 'repeated') {
        // Three words, and a tag not used before (the reference tests `!!tags[tag]`).
        if (params.length !== 3) continue;
        const key = tagKey(value);
        if (key === null || tags[key]) continue;
        proto[params[2]!] = Object.freeze({ option: rule, type: params[1]!, tag: value });
        tags[key] = params[2]!;
      }
    }
  }
  proto['__messages'] = Object.freeze(nested);
  proto['__tags'] = Object.freeze(tags);
  return Object.freeze(proto) as ParsedMessage;
}

/**
 * The property key a tag value becomes in `__tags` (the reference indexes an object
 * with it, so `String(value)`); null when that conversion would throw.
 */
function tagKey(value: unknown): string | null {
  switch (typeof value) {
    case 'number':
    case 'string':
    case 'boolean':
    case 'undefined':
    case 'bigint':
      return String(value);
    case 'object':
      try {
        return String(value);
      } catch {
        return null; // a null-prototype object: not something JSON produces
      }
    case 'function':
    case 'symbol':
      return null;
  }
}

// ---------------------------------------------------------------- compiled form

const Kind = { UINT32: 0, SINT32: 1, FLOAT: 2, DOUBLE: 3, STRING: 4, MESSAGE: 5, UNSUPPORTED: 6 } as const;
type Kind = (typeof Kind)[keyof typeof Kind];

interface CField {
  readonly name: string;
  readonly repeated: boolean;
  readonly kind: Kind;
  /** Scalar kinds whose repeated form is count-prefixed (docs/pomelo-protocol.md §9.4). */
  readonly simple: boolean;
  readonly typeName: string;
  /** Key varint value `tag << 3 | wireType`; -1 when the tag is unusable. */
  readonly key: number;
  readonly keySize: number;
  readonly owner: CMessage;
  /** Resolved message type: undefined = not looked up yet, null = not found. */
  message: CMessage | null | undefined;
}

interface CMessage {
  readonly parsed: ParsedMessage;
  readonly table: ParsedProtos;
  readonly byName: Map<string, CField>;
  readonly byTag: Map<number, CField>;
  readonly required: readonly string[];
}

/**
 * Compiled messages per table, then per parsed message object. Tables are treated as
 * immutable once used: parseProtos freezes its result; a hand-made table (a client
 * holding the handshake's protos) must not be changed after its first encode/decode.
 */
const compiled = new WeakMap<object, WeakMap<object, CMessage>>();

function kindOf(type: string): Kind {
  switch (type) {
    case 'uInt32':
      return Kind.UINT32;
    case 'int32':
    case 'sInt32':
      return Kind.SINT32;
    case 'float':
      return Kind.FLOAT;
    case 'double':
      return Kind.DOUBLE;
    case 'string':
      return Kind.STRING;
    case 'uInt64':
    case 'sInt64':
      return Kind.UNSUPPORTED;
    default:
      return Kind.MESSAGE; // resolved by name when first used
  }
}

/** Wire type the reference writes in keys: constant.TYPES[type], else 2. */
function wireTypeOf(type: string): number {
  switch (type) {
    case 'uInt32':
    case 'sInt32':
    case 'int32':
      return 0;
    case 'double':
      return 1;
    case 'float':
      return 5;
    default:
      return 2;
  }
}

function toTag(raw: unknown): number {
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
  // Tag 0 is not valid protobuf, but the reference writes it (key 0x00 | wire type).
  return Number.isInteger(n) && n >= 0 && n <= MAX_TAG ? n : -1;
}

function compile(table: ParsedProtos, parsed: ParsedMessage): CMessage {
  let perTable = compiled.get(table);
  if (perTable === undefined) {
    perTable = new WeakMap();
    compiled.set(table, perTable);
  }
  const hit = perTable.get(parsed);
  if (hit !== undefined) return hit;

  const byName = new Map<string, CField>();
  const byTag = new Map<number, CField>();
  const required: string[] = [];
  const cm: CMessage = { parsed, table, byName, byTag, required };
  for (const name of Object.keys(parsed)) {
    if (name === '__messages' || name === '__tags') continue;
    const f: unknown = parsed[name];
    if (!isObject(f)) continue;
    const option = f['option'];
    const type = f['type'];
    if ((option !== 'required' && option !== 'optional' && option !== 'repeated') || typeof type !== 'string') continue;
    const tag = toTag(f['tag']);
    const kind = kindOf(type);
    const key = tag < 0 ? -1 : tag * 8 + wireTypeOf(type);
    byName.set(name, {
      name,
      repeated: option === 'repeated',
      kind,
      simple: kind === Kind.UINT32 || kind === Kind.SINT32 || kind === Kind.FLOAT || kind === Kind.DOUBLE,
      typeName: type,
      key,
      keySize: key < 0 ? 0 : varintSize(key),
      owner: cm,
      message: undefined,
    });
    if (option === 'required') required.push(name);
  }
  // Decoding finds fields through __tags, as the reference does.
  const tags: unknown = ownValue(parsed, '__tags');
  if (isObject(tags)) {
    for (const k of Object.keys(tags)) {
      const name = tags[k];
      const tag = Number(k);
      if (typeof name !== 'string' || !Number.isInteger(tag) || String(tag) !== k) continue;
      const field = byName.get(name);
      if (field !== undefined) byTag.set(tag, field);
    }
  } else {
    for (const field of byName.values()) if (field.key >= 0) byTag.set(Math.floor(field.key / 8), field);
  }
  perTable.set(parsed, cm);
  return cm;
}

/** Nested type of the field's own message first, then the table's global `message X`. */
function resolve(field: CField): CMessage | null {
  if (field.message !== undefined) return field.message;
  const owner = field.owner;
  const nested: unknown = ownValue(owner.parsed, '__messages');
  let target: unknown = isObject(nested) ? ownValue(nested, field.typeName) : undefined;
  if (!isObject(target)) target = ownValue(owner.table, 'message ' + field.typeName);
  field.message = isObject(target) ? compile(owner.table, target as ParsedMessage) : null;
  return field.message;
}

function compileRoute(protos: ParsedProtos, route: string): CMessage | null {
  if (!isObject(protos)) return null;
  const parsed = ownValue(protos, route);
  return isObject(parsed) ? compile(protos, parsed as ParsedMessage) : null;
}

/** True when `protos` has a message for `route` (own entry, so "constructor" is not found). */
export function hasProto(protos: ParsedProtos, route: string): boolean {
  return isObject(protos) && isObject(ownValue(protos, route));
}

// ---------------------------------------------------------------- varints (53-bit)

function varintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  let size = 4;
  n = Math.floor(n / 0x10000000);
  while (n > 0) {
    size++;
    n = Math.floor(n / 0x80);
  }
  return size;
}

function writeVarint(out: Buffer, pos: number, n: number): number {
  while (n >= 0x80000000) {
    out[pos++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  while (n >= 0x80) {
    out[pos++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  out[pos++] = n;
  return pos;
}

// ---------------------------------------------------------------- encoding (docs/pomelo-protocol.md §9.4)

/** Thrown inside the encoder when the message does not fit the proto; becomes null. */
const UNFIT = Symbol('unfit');

function unfit(): never {
  // Internal control flow only: encodeProtobuf turns it into null.
  throw UNFIT;
}

/** Integer conversion as the reference's parseInt, without its surprises for numbers. */
function toInteger(v: unknown): number {
  let n: number;
  if (typeof v === 'number') n = Math.trunc(v);
  else if (typeof v === 'string') n = parseInt(v);
  else if (typeof v === 'bigint') n = Number(v);
  else return unfit();
  if (!Number.isFinite(n)) return unfit();
  return n;
}

/** Float conversion as Buffer#writeFloatLE's `+value`, for the types JSON has. */
function toFloat(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' || typeof v === 'boolean') return +v;
  return unfit();
}

function uint(v: unknown): number {
  const n = toInteger(v);
  if (n < 0 || n > MAX_SAFE) return unfit();
  return n;
}

function zigzag(v: unknown): number {
  const n = toInteger(v);
  const z = n < 0 ? -n * 2 - 1 : n * 2;
  if (z > MAX_SAFE) return unfit();
  return z;
}

/**
 * Two passes over the message: `measure` validates and sizes (recording nested message
 * and string sizes in pre-order), `write` fills a Buffer of exactly that size.
 */
class Encoder {
  readonly sizes: number[] = [];
  out: Buffer = Buffer.alloc(0);
  pos = 0;
  next = 0;

  measureMessage(cm: CMessage, obj: unknown, depth: number): number {
    if (!isPlainRecord(obj) || depth > MAX_PROTOBUF_DEPTH) return unfit();
    for (const name of cm.required) if (ownValue(obj, name) === undefined) return unfit();
    let size = 0;
    for (const name of Object.keys(obj)) {
      const field = cm.byName.get(name);
      if (field === undefined) continue;
      const v = obj[name];
      if (v === undefined) continue;
      if (field.key < 0) return unfit();
      if (!field.repeated) {
        size += field.keySize + this.measureValue(field, v, depth);
      } else if (v) {
        // The reference skips falsy repeated values (`!!msg[name]`).
        if (!Array.isArray(v)) return unfit();
        const items = v as readonly unknown[];
        if (items.length === 0) continue;
        if (field.simple) {
          size += field.keySize + varintSize(items.length);
          for (const item of items) size += this.measureValue(field, item, depth);
        } else {
          for (const item of items) size += field.keySize + this.measureValue(field, item, depth);
        }
      }
    }
    return size;
  }

  measureValue(field: CField, v: unknown, depth: number): number {
    switch (field.kind) {
      case Kind.UINT32:
        return varintSize(uint(v));
      case Kind.SINT32:
        return varintSize(zigzag(v));
      case Kind.FLOAT:
        toFloat(v);
        return 4;
      case Kind.DOUBLE:
        toFloat(v);
        return 8;
      case Kind.STRING: {
        if (typeof v !== 'string') return unfit();
        const length = Buffer.byteLength(v, 'utf8');
        this.sizes.push(length);
        return varintSize(length) + length;
      }
      case Kind.MESSAGE: {
        const cm = resolve(field);
        if (cm === null) return unfit();
        const slot = this.sizes.length;
        this.sizes.push(0);
        const length = this.measureMessage(cm, v, depth + 1);
        this.sizes[slot] = length;
        return varintSize(length) + length;
      }
      case Kind.UNSUPPORTED:
        return unfit();
    }
  }

  writeMessage(cm: CMessage, obj: Record<string, unknown>): void {
    for (const name of Object.keys(obj)) {
      const field = cm.byName.get(name);
      if (field === undefined) continue;
      const v = obj[name];
      if (v === undefined) continue;
      if (!field.repeated) {
        this.pos = writeVarint(this.out, this.pos, field.key);
        this.writeValue(field, v);
      } else if (v) {
        const items = v as readonly unknown[];
        if (items.length === 0) continue;
        if (field.simple) {
          this.pos = writeVarint(this.out, this.pos, field.key);
          this.pos = writeVarint(this.out, this.pos, items.length);
          for (const item of items) this.writeValue(field, item);
        } else {
          for (const item of items) {
            this.pos = writeVarint(this.out, this.pos, field.key);
            this.writeValue(field, item);
          }
        }
      }
    }
  }

  writeValue(field: CField, v: unknown): void {
    const out = this.out;
    switch (field.kind) {
      case Kind.UINT32:
        this.pos = writeVarint(out, this.pos, uint(v));
        return;
      case Kind.SINT32:
        this.pos = writeVarint(out, this.pos, zigzag(v));
        return;
      case Kind.FLOAT:
        this.pos = out.writeFloatLE(toFloat(v), this.pos);
        return;
      case Kind.DOUBLE:
        this.pos = out.writeDoubleLE(toFloat(v), this.pos);
        return;
      case Kind.STRING: {
        const length = this.sizes[this.next++]!;
        this.pos = writeVarint(out, this.pos, length);
        if (length > 0) this.pos += out.write(v as string, this.pos, length, 'utf8');
        return;
      }
      case Kind.MESSAGE: {
        const length = this.sizes[this.next++]!;
        this.pos = writeVarint(out, this.pos, length);
        this.writeMessage(field.message!, v as Record<string, unknown>);
        return;
      }
      case Kind.UNSUPPORTED:
        unfit();
    }
  }
}

/**
 * Encodes `msg` with the proto for `route` (docs/pomelo-protocol.md §9.4), fields in the object's key order.
 * Returns null when there is no proto for the route or the message does not fit it: a
 * required field missing at any depth (the reference's behaviour; pomelo then sends an
 * empty body, vector `pb-missing-required`), a value of the wrong type, a type the
 * dialect cannot carry, or nesting deeper than 32. Never throws.
 */
export function encodeProtobuf(protos: ParsedProtos, route: string, msg: unknown): Buffer | null {
  const cm = compileRoute(protos, route);
  if (cm === null) return null;
  const enc = new Encoder();
  try {
    const size = enc.measureMessage(cm, msg, 0);
    enc.out = Buffer.allocUnsafe(size);
    enc.writeMessage(cm, msg as Record<string, unknown>);
    // Equal unless the object changed between the passes (getters, proxies).
    return enc.pos === size ? enc.out : null;
  } catch (err) {
    if (err === UNFIT || err instanceof RangeError) return null;
    throw err;
  }
}

// ---------------------------------------------------------------- decoding (docs/pomelo-protocol.md §9.5)

class Decoder {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  varint(end: number): number {
    const buf = this.buf;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (this.pos >= end) throw bad('varint runs past the end');
      const b = buf[this.pos++]!;
      value += (b & 0x7f) * scale;
      if (value > MAX_SAFE) throw bad('varint above 2^53-1');
      if (b < 0x80) return value;
      scale *= 0x80;
    }
    throw bad('varint longer than 10 bytes');
  }

  need(n: number, end: number, what: string): void {
    if (end - this.pos < n) throw bad(`${what} runs past the end`);
  }

  skip(wireType: number, end: number): void {
    switch (wireType) {
      case 0:
        this.varint(end);
        return;
      case 1:
        this.need(8, end, 'fixed64');
        this.pos += 8;
        return;
      case 2: {
        const length = this.varint(end);
        this.need(length, end, 'length-delimited field');
        this.pos += length;
        return;
      }
      case 5:
        this.need(4, end, 'fixed32');
        this.pos += 4;
        return;
      default:
        throw bad(`unknown field with wire type ${wireType}`);
    }
  }

  message(cm: CMessage, end: number, depth: number): Record<string, unknown> {
    const obj: Record<string, unknown> = {};
    while (this.pos < end) {
      const key = this.varint(end);
      // The wire type is ignored for known fields (docs/pomelo-protocol.md §9.5).
      const field = cm.byTag.get(Math.floor(key / 8));
      if (field === undefined) {
        this.skip(key % 8, end);
        continue;
      }
      if (!field.repeated) {
        setOwn(obj, field.name, this.value(field, end, depth));
        continue;
      }
      let list = ownValue(obj, field.name);
      if (!Array.isArray(list)) {
        list = [];
        setOwn(obj, field.name, list);
      }
      const items = list as unknown[];
      if (field.simple) {
        const count = this.varint(end);
        const min = field.kind === Kind.FLOAT ? 4 : field.kind === Kind.DOUBLE ? 8 : 1;
        // Check the count against the bytes left before looping on it.
        if (count > (end - this.pos) / min) throw bad(`repeated ${field.name}: ${count} elements cannot fit`);
        for (let i = 0; i < count; i++) items.push(this.value(field, end, depth));
      } else {
        items.push(this.value(field, end, depth));
      }
    }
    return obj;
  }

  value(field: CField, end: number, depth: number): unknown {
    switch (field.kind) {
      case Kind.UINT32:
        return this.varint(end);
      case Kind.SINT32: {
        const z = this.varint(end);
        return z % 2 === 1 ? -(z + 1) / 2 : z / 2;
      }
      case Kind.FLOAT: {
        this.need(4, end, 'float');
        const v = this.buf.readFloatLE(this.pos);
        this.pos += 4;
        return v;
      }
      case Kind.DOUBLE: {
        this.need(8, end, 'double');
        const v = this.buf.readDoubleLE(this.pos);
        this.pos += 8;
        return v;
      }
      case Kind.STRING: {
        const length = this.varint(end);
        this.need(length, end, 'string');
        const start = this.pos;
        this.pos += length;
        return this.buf.toString('utf8', start, this.pos);
      }
      case Kind.MESSAGE: {
        const cm = resolve(field);
        if (cm === null) throw bad(`field ${field.name}: unknown type ${field.typeName}`);
        if (depth + 1 > MAX_PROTOBUF_DEPTH) throw bad(`messages nested deeper than ${MAX_PROTOBUF_DEPTH}`);
        const length = this.varint(end);
        this.need(length, end, 'message');
        return this.message(cm, this.pos + length, depth + 1);
      }
      case Kind.UNSUPPORTED:
        throw bad(`field ${field.name}: type ${field.typeName} is not supported`);
    }
  }
}

/**
 * Decodes a protobuf body with the proto for `route`, by declared field types. Unknown
 * tags are skipped by their wire type. Required fields are not enforced (the reference
 * does not either). Strings are decoded leniently (invalid UTF-8 becomes U+FFFD), as
 * the reference does.
 * @throws ProtocolError PROTO_BAD_PROTOBUF for no proto for the route, truncation, a
 *   length or count that does not fit, an unknown field with wire type 3/4/6/7, a field
 *   of an unsupported type, nesting deeper than 32.
 */
export function decodeProtobuf(protos: ParsedProtos, route: string, buf: Buffer): Record<string, unknown> {
  const cm = compileRoute(protos, route);
  if (cm === null) throw bad(`no proto for route ${JSON.stringify(route)}`);
  return new Decoder(buf).message(cm, buf.length, 0);
}
