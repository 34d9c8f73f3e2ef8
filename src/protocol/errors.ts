/**
 * The one error type protocol codecs throw (docs/conventions.md §3, §4). A decoder returns a value
 * or throws a ProtocolError; anything else escaping a decoder is a bug (the fuzz
 * tests in test/protocol/ and bench/fuzz/ hunt for those).
 *
 * Codes are stable: messages may be reworded, a code never changes meaning.
 */
export const PROTOCOL_ERROR_CODES = [
  /** Package header type byte is not 1..5 (docs/pomelo-protocol.md §2.2), or an encoder was given an unknown type. */
  'PROTO_BAD_TYPE',
  /** Input ended before a complete value: short package, varint or route running past the end. */
  'PROTO_TRUNCATED',
  /** Bytes left over after a value that must fill its container (one package per WebSocket message, §2.3). */
  'PROTO_TRAILING',
  /** A well-framed message the server cannot accept (used by connectors). */
  'PROTO_BAD_MESSAGE',
  /** Message id varint longer than 5 bytes, above 2^32-1, or not a complete varint. */
  'PROTO_BAD_VARINT',
  /** Route not valid UTF-8, longer than 255 bytes, or a route code outside 0..65535. */
  'PROTO_BAD_ROUTE',
  /** A JSON body that does not parse (used by connectors). */
  'PROTO_BAD_JSON',
  /** A protobuf body or proto description that cannot be decoded (§9). */
  'PROTO_BAD_PROTOBUF',
  /** A handshake body that is not JSON or has no `sys` object (§4.2). */
  'PROTO_BAD_HANDSHAKE',
  /** A declared or actual size above the configured or wire limit. */
  'LIMIT_PAYLOAD',
] as const;

export type ProtocolErrorCode = (typeof PROTOCOL_ERROR_CODES)[number];

const CODE_SET: ReadonlySet<string> = new Set(PROTOCOL_ERROR_CODES);

export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;

  constructor(code: ProtocolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProtocolError';
    this.code = code;
  }
}

/**
 * True for a ProtocolError, also one created by another copy of this module (the
 * built `dist/` and the `src/` seen by tsx can both be loaded in one process).
 */
export function isProtocolError(e: unknown): e is ProtocolError {
  if (e instanceof ProtocolError) return true;
  if (!(e instanceof Error) || e.name !== 'ProtocolError') return false;
  const code: unknown = (e as Error & { code?: unknown }).code;
  return typeof code === 'string' && CODE_SET.has(code);
}
