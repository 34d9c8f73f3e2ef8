/**
 * ntfy's error answers, as its server sends them (server/errors.go of binwiederhier/ntfy):
 * HTTP status plus a JSON body `{"code":40009,"http":400,"error":"…","link":"…"}` that
 * ntfy's CLI, web app and phone apps show to the user. The keys here are our stable
 * SCREAMING_SNAKE names for them (logs, tests); the numbers and texts are ntfy's.
 */
export const NTFY_ERRORS = {
  NTFY_BAD_REQUEST: [40000, 400, 'invalid request', ''],
  NTFY_EMAIL_DISABLED: [40001, 400, 'e-mail notifications are not enabled', 'https://ntfy.sh/docs/config/#e-mail-notifications'],
  NTFY_DELAY_NO_CACHE: [40002, 400, 'cannot disable cache for delayed message', ''],
  NTFY_DELAY_CANNOT_PARSE: [40004, 400, 'invalid delay parameter: unable to parse delay', 'https://ntfy.sh/docs/publish/#scheduled-delivery'],
  NTFY_DELAY_TOO_SMALL: [40005, 400, 'invalid delay parameter: too small, please refer to the docs', 'https://ntfy.sh/docs/publish/#scheduled-delivery'],
  NTFY_DELAY_TOO_LARGE: [40006, 400, 'invalid delay parameter: too large, please refer to the docs', 'https://ntfy.sh/docs/publish/#scheduled-delivery'],
  NTFY_PRIORITY_INVALID: [40007, 400, 'invalid priority parameter', 'https://ntfy.sh/docs/publish/#message-priority'],
  NTFY_SINCE_INVALID: [40008, 400, 'invalid since parameter', 'https://ntfy.sh/docs/subscribe/api/#fetch-cached-messages'],
  NTFY_TOPIC_INVALID: [40009, 400, 'invalid request: topic invalid', ''],
  NTFY_TOPIC_DISALLOWED: [40010, 400, 'invalid request: topic name is not allowed', ''],
  NTFY_MESSAGE_NOT_UTF8: [40011, 400, 'invalid request: message must be UTF-8 encoded', ''],
  NTFY_ATTACHMENT_URL_INVALID: [40013, 400, 'invalid request: attachment URL is invalid', 'https://ntfy.sh/docs/publish/#attachments'],
  NTFY_ATTACHMENTS_DISALLOWED: [40014, 400, 'invalid request: attachments not allowed', 'https://ntfy.sh/docs/config/#attachments'],
  NTFY_WS_UPGRADE_MISSING: [40016, 400, 'invalid request: client not using the websocket protocol', 'https://ntfy.sh/docs/subscribe/api/#websockets'],
  NTFY_MESSAGE_JSON_INVALID: [40017, 400, 'invalid request: request body must be message JSON', 'https://ntfy.sh/docs/publish/#publish-as-json'],
  NTFY_ACTIONS_INVALID: [40018, 400, 'invalid request: actions invalid', 'https://ntfy.sh/docs/publish/#action-buttons'],
  NTFY_MATRIX_INVALID: [40019, 400, 'invalid request: Matrix JSON invalid', 'https://ntfy.sh/docs/publish/#matrix-gateway'],
  NTFY_ICON_URL_INVALID: [40021, 400, 'invalid request: icon URL is invalid', 'https://ntfy.sh/docs/publish/#icons'],
  NTFY_JSON_INVALID: [40024, 400, 'invalid request: request body must be valid JSON', ''],
  NTFY_CALLS_DISABLED: [40032, 400, 'invalid request: calling is disabled', 'https://ntfy.sh/docs/config/#phone-calls'],
  NTFY_UNAUTHORIZED: [40101, 401, 'unauthorized', 'https://ntfy.sh/docs/publish/#authentication'],
  NTFY_FORBIDDEN: [40301, 403, 'forbidden', 'https://ntfy.sh/docs/publish/#authentication'],
  NTFY_NOT_FOUND: [40401, 404, 'page not found', ''],
  NTFY_ATTACHMENT_TOO_LARGE: [41301, 413, 'attachment too large, or bandwidth limit reached', 'https://ntfy.sh/docs/publish/#limitations'],
  NTFY_MATRIX_TOO_LARGE: [41302, 413, 'Matrix request is larger than the max allowed length', ''],
  NTFY_JSON_TOO_LARGE: [41303, 413, 'JSON body too large', ''],
  NTFY_TOO_MANY_REQUESTS: [42901, 429, 'limit reached: too many requests', 'https://ntfy.sh/docs/publish/#limitations'],
  NTFY_TOO_MANY_SUBSCRIPTIONS: [42903, 429, 'limit reached: too many active subscriptions', 'https://ntfy.sh/docs/publish/#limitations'],
  NTFY_INTERNAL: [50001, 500, 'internal server error', ''],
  NTFY_MISSING_BASE_URL: [50003, 500, 'internal server error: base-url must be be configured for this feature', 'https://ntfy.sh/docs/config/'],
  // Ours, in ntfy's shape: the server is full or shutting down (ntfy has no such answer).
  NTFY_UNAVAILABLE: [50301, 503, 'service unavailable: the server is full or shutting down, retry later', ''],
} as const satisfies Record<string, readonly [number, number, string, string]>;

export type NtfyErrorName = keyof typeof NTFY_ERRORS;

/** One ntfy error answer; `detail` is appended as ntfy's `Wrap` does (`"<error>; <detail>"`). */
export class NtfyError extends Error {
  override readonly name = 'NtfyError';
  readonly code: number;
  readonly http: number;
  readonly link: string;

  constructor(
    readonly errorName: NtfyErrorName,
    detail?: string,
  ) {
    const [code, http, text, link] = NTFY_ERRORS[errorName];
    super(detail !== undefined && detail !== '' ? `${text}; ${detail}` : text);
    this.code = code;
    this.http = http;
    this.link = link;
  }

  /** The body ntfy sends: `{"code","http","error","link"}` (link omitted when empty), with a newline. */
  body(): string {
    return `${JSON.stringify({ code: this.code, http: this.http, error: this.message, ...(this.link !== '' && { link: this.link }) })}\n`;
  }
}
