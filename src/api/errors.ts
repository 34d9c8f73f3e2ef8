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
