/**
 * Loader for the Pomelo test vectors (docs/pomelo-protocol.md §17):
 * test/fixtures/pomelo-vectors.json, written by scripts/make-pomelo-vectors.mjs from the
 * reference npm packages (test/fixtures/pomelo-vectors.test.ts keeps the two equal).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const VECTORS_PATH = fileURLToPath(new URL('../fixtures/pomelo-vectors.json', import.meta.url));

interface Base {
  readonly id: string;
  readonly description: string;
  readonly direction?: string;
}

export interface DecodedPackageView {
  readonly type: number;
  readonly typeName: string | null;
  readonly bodyHex?: string;
  readonly bodyLength?: number;
}

export interface DecodedMessageView {
  readonly id: number;
  readonly type: number;
  readonly typeName: string | null;
  readonly compressRoute: number;
  readonly compressGzip: number;
  readonly route: string | number | null;
  readonly bodyHex: string;
  readonly bodyUtf8?: string;
}

export interface PackageVector extends Base {
  readonly kind: 'package';
  readonly input: {
    readonly type?: number;
    readonly bodyJson?: string;
    readonly packages?: readonly { readonly type: number; readonly bodyUtf8?: string }[];
    readonly bodyLength?: number;
  };
  readonly hex: string;
  readonly decoded: DecodedPackageView | readonly DecodedPackageView[];
  readonly headerHex?: string;
  readonly sha256?: string;
  readonly length?: number;
}

export interface PackageHeaderVector extends Base {
  readonly kind: 'package-header';
  readonly input: { readonly type: number; readonly bodyLength: number };
  readonly headerHex: string;
  readonly length: number;
}

export interface MessageVector extends Base {
  readonly kind: 'message';
  readonly input: {
    readonly id: number;
    readonly type: number;
    readonly compressRoute: number;
    readonly route: string | number | null;
    readonly bodyJson?: string;
    readonly compressGzip?: number;
  };
  readonly messageHex: string;
  readonly hex: string;
  readonly decoded: DecodedMessageView;
}

export interface MessageErrorVector extends Base {
  readonly kind: 'message-error';
  readonly input: { readonly route: string };
  readonly throws: string;
}

export interface MessageDecodeVector extends Base {
  readonly kind: 'message-decode';
  readonly hex: string;
  readonly decoded: DecodedMessageView;
}

export interface LegacyIdVector extends Base {
  readonly kind: 'legacy-id';
  readonly input: { readonly legacyRequestId: number };
  readonly legacyIdHex: string;
  readonly requestMessageHex: string;
  readonly serverDecodedId: number;
  readonly serverResponseMessageHex: string;
  readonly legacyClientReadsId: number;
  readonly roundTrips: boolean;
}

export interface ProtobufPushVector extends Base {
  readonly kind: 'protobuf-push';
  readonly input: { readonly route: string; readonly routeCode?: number; readonly message: Record<string, unknown> };
  readonly protobufHex: string;
  readonly messageHex?: string;
  readonly hex?: string;
  readonly decodedByBrowserCodec?: Record<string, unknown>;
}

export interface ProtobufNoteVector extends Base {
  readonly kind: 'protobuf-note';
  readonly input: {
    readonly route: string;
    readonly message?: Record<string, unknown>;
    readonly first?: Record<string, unknown>;
    readonly second?: Record<string, unknown>;
  };
  readonly firstHex?: string;
  readonly secondHex?: string;
  readonly protobufHex?: string | null;
  readonly messageHex?: string;
  readonly hex?: string;
  readonly throws?: string;
}

export interface ProtobufRequestVector extends Base {
  readonly kind: 'protobuf-request';
  readonly input: {
    readonly route: string;
    readonly routeCode?: number;
    readonly id: number;
    readonly message: Record<string, unknown>;
  };
  readonly browserCodecHex: string;
  readonly nodeCodecHex: string;
  readonly messageHex: string;
  readonly hex: string;
  readonly decodedByServer: Record<string, unknown>;
}

export interface HandshakeVector extends Base {
  readonly kind: 'handshake';
  readonly input: {
    readonly connectorConfig?: {
      readonly heartbeat?: number;
      readonly useDict?: boolean;
      readonly useProtobuf?: boolean;
      readonly handshake?: string;
      readonly checkClient?: string;
    };
    readonly clientHandshake?: {
      readonly sys?: { readonly dictVersion?: string; readonly protoVersion?: string; readonly [k: string]: unknown };
      readonly user?: unknown;
    };
  };
  readonly bodyJson: string;
  readonly hex: string;
}

export interface ServerSees {
  readonly id: number;
  readonly route: string;
  readonly compressRoute?: number;
  readonly body: unknown;
}

export interface DemoVector extends Base {
  readonly kind: 'demo';
  readonly hex: string;
  readonly decoded: DecodedMessageView;
  readonly serverSees?: ServerSees;
}

export interface HybridCoderVector extends Base {
  readonly kind: 'hybrid-coder';
  readonly dictionary?: Record<string, number>;
  readonly hex: string;
  readonly decoded?: DecodedMessageView;
  readonly serverSees?: ServerSees;
}

export interface OtherVector extends Base {
  readonly kind: 'sio' | 'sio-note';
}

export type Vector =
  | PackageVector
  | PackageHeaderVector
  | MessageVector
  | MessageErrorVector
  | MessageDecodeVector
  | LegacyIdVector
  | ProtobufPushVector
  | ProtobufNoteVector
  | ProtobufRequestVector
  | HandshakeVector
  | DemoVector
  | HybridCoderVector
  | OtherVector;

export interface VectorFile {
  readonly versions: Record<string, string | null>;
  readonly protos: {
    readonly serverProtosSource: Record<string, unknown>;
    readonly clientProtosSource: Record<string, unknown>;
    readonly serverProtosParsed: Record<string, unknown>;
    readonly clientProtosParsed: Record<string, unknown>;
    readonly version: string;
  };
  readonly demoApp: {
    readonly dictionary: Record<string, number>;
    readonly codeToRoute: Record<string, string>;
    readonly dictVersion: string;
    readonly protosVersion: string;
    readonly specConfigDictionary: Record<string, number>;
  };
  readonly skipped: readonly string[];
  readonly vectors: readonly Vector[];
}

let cache: VectorFile | undefined;

/** The whole vector file, parsed once per process. */
export function loadVectors(): VectorFile {
  if (cache === undefined) {
    const parsed = JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as unknown;
    if (typeof parsed !== 'object' || parsed === null || !Array.isArray((parsed as { vectors?: unknown }).vectors)) {
      throw new Error(`${VECTORS_PATH} is not a Pomelo vector file`);
    }
    cache = parsed as VectorFile;
  }
  return cache;
}

/** Vectors of one kind, typed. */
export function vectorsOf<K extends Vector['kind']>(kind: K): Extract<Vector, { kind: K }>[] {
  return loadVectors().vectors.filter((v): v is Extract<Vector, { kind: K }> => v.kind === kind);
}

/** One vector by id; throws when it is missing so a renamed vector fails loudly. */
export function vectorById<K extends Vector['kind']>(kind: K, id: string): Extract<Vector, { kind: K }> {
  const v = vectorsOf(kind).find((x) => x.id === id);
  if (v === undefined) throw new Error(`vector ${id} (${kind}) not found in ${VECTORS_PATH}`);
  return v;
}

export const hex = (s: string): Buffer => Buffer.from(s, 'hex');

/** Handler routes of the seed push app (docs/pomelo-protocol.md §15), from which its dictionary is built. */
export const DEMO_HANDLER_ROUTES: readonly string[] = [
  'sio-connector.entryHandler.enter',
  'hybrid-connector.entryHandler.enter',
  'pushserver.pushHandler.pushAll',
  'pushserver.pushHandler.pushByClientId',
];

/** config/dictionary.json of the vectors' "spec" app (vector hs-reply-with-dictionary-and-protos). */
export const SPEC_EXTRA_ROUTES: readonly string[] = ['onMsg', 'onAdd', 'onKick'];

// ---------------------------------------------------------------- arbitraries for the vector protos

/**
 * Messages that fit a parsed proto (the vectors' or any other): required fields always,
 * optional fields sometimes, repeated fields as short arrays. Values stay in the ranges
 * both our codec and the reference handle exactly. Floats are 32-bit values.
 */
export function protoMessageArbitrary(
  table: Record<string, unknown>,
  route: string,
  opts: { readonly maxDepth?: number; readonly maxItems?: number; readonly bmpStrings?: boolean } = {},
): fc.Arbitrary<Record<string, unknown>> {
  const maxDepth = opts.maxDepth ?? 3;
  // The browser codec writes UTF-16 code units as UTF-8 (CESU-8): keep to the BMP for it.
  const text = opts.bmpStrings
    ? fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).filter((c) => c < 0xd800 || c > 0xdfff).map((c) => String.fromCharCode(c)), maxLength: 12 })
    : fc.string({ unit: 'binary', maxLength: 12 });
  const maxItems = opts.maxItems ?? 4;
  const resolveType = (owner: Record<string, unknown>, type: string): Record<string, unknown> | undefined => {
    const nested = owner['__messages'] as Record<string, Record<string, unknown>> | undefined;
    return nested?.[type] ?? (table['message ' + type] as Record<string, unknown> | undefined);
  };
  const build = (parsed: Record<string, unknown>, depth: number): fc.Arbitrary<Record<string, unknown>> => {
    const model: Record<string, fc.Arbitrary<unknown>> = {};
    const required: string[] = [];
    for (const [name, f] of Object.entries(parsed)) {
      if (name === '__messages' || name === '__tags') continue;
      const field = f as { option: string; type: string };
      let value: fc.Arbitrary<unknown>;
      switch (field.type) {
        case 'uInt32':
          value = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.maxSafeNat());
          break;
        case 'int32':
        case 'sInt32':
          value = fc.oneof(fc.integer({ min: -300, max: 300 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }));
          break;
        case 'float':
          value = fc.float();
          break;
        case 'double':
          value = fc.double();
          break;
        case 'string':
          value = text;
          break;
        default: {
          const target = resolveType(parsed, field.type);
          if (target === undefined || depth >= maxDepth) continue;
          value = build(target, depth + 1);
        }
      }
      if (field.option === 'repeated') {
        model[name] = fc.array(value, { minLength: 1, maxLength: maxItems });
      } else {
        model[name] = value;
        if (field.option === 'required') required.push(name);
      }
    }
    return fc.record(model, { requiredKeys: required }) as fc.Arbitrary<Record<string, unknown>>;
  };
  return build(table[route] as Record<string, unknown>, 0);
}

/** What decoding an encoded message gives back: floats rounded to 32 bits. */
export function expectedDecode(table: Record<string, unknown>, route: string, msg: Record<string, unknown>): Record<string, unknown> {
  const walk = (parsed: Record<string, unknown>, value: Record<string, unknown>): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const field = parsed[k] as { option: string; type: string } | undefined;
      if (field === undefined) continue;
      const one = (x: unknown): unknown => {
        if (field.type === 'float') return Math.fround(x as number);
        if (['uInt32', 'int32', 'sInt32', 'double', 'string'].includes(field.type)) return x;
        const nested = (parsed['__messages'] as Record<string, Record<string, unknown>>)[field.type] ??
          (table['message ' + field.type] as Record<string, unknown>);
        return walk(nested, x as Record<string, unknown>);
      };
      out[k] = field.option === 'repeated' ? (v as unknown[]).map(one) : one(v);
    }
    return out;
  };
  return walk(table[route] as Record<string, unknown>, msg);
}
