/**
 * The one error type the SDK reports, through `client.on('error')` and rejected
 * promises. Codes are stable: messages may be reworded, a code never changes meaning.
 * The `PROTO_…`/`LIMIT_PAYLOAD` codes are the ones the server uses for the same faults
 * (src/protocol/errors.ts); the `CLIENT_…` codes are the SDK's own.
 */
export const CLIENT_ERROR_CODES = [
  /** A package type byte outside 1..5 (docs/pomelo-protocol.md §2.2). */
  'PROTO_BAD_TYPE',
  /** A message, varint or route that runs past its package, or an unexpected message type. */
  'PROTO_BAD_MESSAGE',
  /** A handshake reply or push body that is not JSON. */
  'PROTO_BAD_JSON',
  /** A declared package body over the limit (`maxPackageBytes`, or 0xFFFFFF on the wire). */
  'LIMIT_PAYLOAD',
  /** A URL the transport cannot open (`ws://`, `wss://`; Node adds `tcp://`, `tls://`). */
  'CLIENT_BAD_URL',
  /** Options that cannot work (no URL, no apikey, a bad tag, …). */
  'CLIENT_BAD_OPTIONS',
  /** The server refused the handshake (docs/pomelo-protocol.md §4.4), or sent none in time. */
  'CLIENT_HANDSHAKE_FAILED',
  /** The server refused to let the client enter (unknown apikey, bad token, …): fatal. */
  'CLIENT_ENTER_REFUSED',
  /** The server answered a request with `{code: 500}`. */
  'CLIENT_REQUEST_FAILED',
  /** No answer to a request within `requestTimeoutMs`. */
  'CLIENT_REQUEST_TIMEOUT',
  /** The connection closed before a request was answered. */
  'CLIENT_DISCONNECTED',
  /** The client was closed by the app (`close()`), or stopped after a fatal error or kick. */
  'CLIENT_CLOSED',
  /** Another connection with the same clientId took over (kick reason `replaced`). */
  'CLIENT_REPLACED',
  /** A message handler threw or rejected; the message still counts as processed. */
  'CLIENT_HANDLER_FAILED',
  /** The `store` threw or rejected while reading or saving the last id. */
  'CLIENT_STORE_FAILED',
  /** A push the SDK cannot deliver: no numeric `id`, or a protobuf body (the SDK speaks JSON). */
  'CLIENT_BAD_PUSH',
] as const;

export type ClientErrorCode = (typeof CLIENT_ERROR_CODES)[number];

export interface ClientErrorDetails {
  /** The message the error is about (CLIENT_HANDLER_FAILED, CLIENT_BAD_PUSH). */
  readonly messageId?: number;
  /** Its event name (route). */
  readonly event?: string;
  /** The server URL involved. */
  readonly url?: string;
  /** The server's own error code from a `{code: 500, error}` answer (e.g. `APP_UNKNOWN`). */
  readonly serverCode?: string;
  readonly cause?: unknown;
}

export class ShaddockClientError extends Error {
  override readonly name = 'ShaddockClientError';
  readonly code: ClientErrorCode;
  readonly messageId: number | undefined;
  readonly event: string | undefined;
  readonly url: string | undefined;
  readonly serverCode: string | undefined;

  constructor(code: ClientErrorCode, message: string, details: ClientErrorDetails = {}) {
    super(message, details.cause !== undefined ? { cause: details.cause } : undefined);
    this.code = code;
    this.messageId = details.messageId;
    this.event = details.event;
    this.url = details.url;
    this.serverCode = details.serverCode;
  }
}

export function isShaddockClientError(err: unknown): err is ShaddockClientError {
  return err instanceof ShaddockClientError;
}
