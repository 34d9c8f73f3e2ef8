import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodError } from 'zod';
import type { Logger } from '../log.js';
import { HubError, type HubErrorCode } from '../hub/hub.js';

export const API_ERROR_CODES = [
  'BAD_REQUEST',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'NOT_FOUND',
  'LIMIT_PAYLOAD',
  'UNSUPPORTED_MEDIA_TYPE',
  'LIMIT_HEADERS',
  'REQUEST_TIMEOUT',
  'PUSH_INVALID',
  'UNAVAILABLE',
  'INTERNAL',
] as const;
export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

const STATUS: Readonly<Record<ApiErrorCode, number>> = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  LIMIT_PAYLOAD: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  LIMIT_HEADERS: 431,
  REQUEST_TIMEOUT: 408,
  PUSH_INVALID: 400,
  UNAVAILABLE: 503,
  INTERNAL: 500,
};

/** How a hub refusal reads over HTTP. */
const FROM_HUB: Readonly<Record<HubErrorCode, ApiErrorCode>> = {
  APP_UNKNOWN: 'NOT_FOUND',
  AUTH_FAILED: 'UNAUTHORIZED',
  BAD_REQUEST: 'BAD_REQUEST',
  NOT_ENTERED: 'FORBIDDEN',
  FORBIDDEN: 'FORBIDDEN',
  // Refusals of connectors' enter calls; the API never enters, these are here for the type.
  LIMIT_APP_CONNECTIONS: 'UNAVAILABLE',
  LIMIT_LOGIN_RATE: 'FORBIDDEN',
  PUSH_INVALID: 'PUSH_INVALID',
};

/** A 4xx answer: `{code, message}` naming what was wrong. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: ApiErrorCode,
    message: string,
  ) {
    super(message);
  }
  get status(): number {
    return STATUS[this.code];
  }
}

export function badRequestFromZod(err: ZodError, what: string): ApiError {
  const issue = err.issues[0];
  const path = issue && issue.path.length > 0 ? issue.path.join('.') : what;
  return new ApiError('BAD_REQUEST', `${path}: ${issue?.message ?? 'invalid'}`);
}

/** The one place where errors become HTTP answers. 5xx details go to the log only. */
export function makeErrorHandler(log: Logger) {
  return (err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply): void => {
    let api: ApiError;
    if (err instanceof ApiError) api = err;
    else if (err instanceof HubError) api = new ApiError(FROM_HUB[err.code], err.message);
    else if ('code' in err && err.code === 'STORE_UNAVAILABLE') {
      // Never a silent accept: the caller learns at once that nothing was stored, and may retry.
      void reply.header('retry-after', '1');
      api = new ApiError('UNAVAILABLE', 'storage is unavailable right now; nothing was stored, retry later');
    }
    else if ('code' in err && err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      api = new ApiError('LIMIT_PAYLOAD', 'the request body is larger than the server accepts');
    } else if ('code' in err && err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      api = new ApiError('UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json');
    } else if ('statusCode' in err && typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      api = new ApiError(err.statusCode === 404 ? 'NOT_FOUND' : 'BAD_REQUEST', err.message);
    } else {
      const errorId = crypto.randomUUID();
      log.error({ err, errorId, method: req.method, url: req.routeOptions.url }, 'request failed');
      void reply.status(500).send({ code: 'INTERNAL', message: `internal error (id ${errorId})` });
      return;
    }
    void reply.status(api.status).send({ code: api.code, message: api.message });
  };
}

/**
 * Fastify's own refusals before any route runs (`frameworkErrors`): a path that is not
 * valid percent-encoding, or a path segment longer than the router's `maxParamLength`.
 * Without this they answer in fastify's shape (`{error, code: "FST_…", statusCode}`,
 * and 414 for a long segment) instead of ours.
 */
export function makeFrameworkErrorHandler(log: Logger, maxParamLength: number) {
  const other = makeErrorHandler(log);
  return (err: FastifyError, req: FastifyRequest, reply: FastifyReply): void => {
    if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') {
      // Every path parameter we take (apikey, clientId, message id) is at most this long:
      // a longer one is a bad value, not a URL the server cannot read.
      const message = `a path segment is longer than ${maxParamLength} characters (apikeys and client ids are at most ${maxParamLength})`;
      void reply.status(400).send({ code: 'BAD_REQUEST', message });
    } else if (err.code === 'FST_ERR_BAD_URL') {
      void reply.status(400).send({ code: 'BAD_REQUEST', message: 'the path is not valid percent-encoded UTF-8' });
    } else {
      other(err, req, reply);
    }
  };
}

/** Node's HTTP parser errors (fastify's ConnectionError), as far as we read them. */
interface ParserError extends Error {
  readonly code?: string;
}

/**
 * What node's HTTP parser refuses before fastify sees a request (the server's
 * `clientError` event): headers or request line over `maxHeaderSize` (431), a request
 * that took too long (408), bytes that are not HTTP (400). Answered in our
 * `{code, message}` shape too, then the connection is closed (the stream cannot be
 * trusted after a parse error, as node itself does).
 */
export function makeClientErrorHandler(log: Logger) {
  return (err: ParserError, socket: Socket): void => {
    // A reset peer or a socket already gone: there is nobody to answer.
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const code: ApiErrorCode =
      err.code === 'HPE_HEADER_OVERFLOW' ? 'LIMIT_HEADERS' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'REQUEST_TIMEOUT' : 'BAD_REQUEST';
    const message =
      code === 'LIMIT_HEADERS'
        ? 'the request line and headers are larger than the server accepts'
        : code === 'REQUEST_TIMEOUT'
          ? 'the request took too long to arrive'
          : 'the request is not valid HTTP/1.1';
    log.debug({ code: err.code, remoteAddress: socket.remoteAddress }, 'http request refused by the parser');
    if (socket.writable) {
      const status = STATUS[code];
      const body = JSON.stringify({ code, message });
      socket.write(
        `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    }
    socket.destroy();
  };
}
