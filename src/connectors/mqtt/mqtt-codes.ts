// Every MQTT reason code this connector sends, in one place (docs/conventions.md §4): what we mean,
// and how MQTT 3.1.1 and MQTT 5 say it.
import { CLOSE_REASONS } from '../../hub/connection.js';
import type { HubErrorCode } from '../../hub/hub.js';
import type { LimitCode } from '../admission.js';

/**
 * Why a CONNECT is refused: MQTT 3.1.1 §3.2.2.3 return codes and MQTT 5 §3.2.2.2
 * reason codes.
 */
export const CONNECT_REFUSALS = {
  badProtocolVersion: { v3: 0x01, v5: 0x84 },
  identifierRejected: { v3: 0x02, v5: 0x85 },
  serverUnavailable: { v3: 0x03, v5: 0x88 },
  badCredentials: { v3: 0x04, v5: 0x86 },
  notAuthorized: { v3: 0x05, v5: 0x87 },
  badAuthMethod: { v3: 0x05, v5: 0x8c },
  // Limits (docs/security.md#limits): MQTT 3.1.1 has only "server unavailable" for these.
  serverBusy: { v3: 0x03, v5: 0x89 },
  quotaExceeded: { v3: 0x03, v5: 0x97 },
  connectionRateExceeded: { v3: 0x03, v5: 0x9f },
} as const;
export type ConnectRefusal = keyof typeof CONNECT_REFUSALS;

/** MQTT 5 §3.2.2.2: CONNACK 0x81 Malformed Packet (MQTT 3.1.1 has no code for it: it closes). */
export const CONNACK_MALFORMED_PACKET = 0x81;

/** How a hub refusal at enter becomes a CONNACK. */
export const CONNECT_REFUSAL_BY_HUB_ERROR = {
  APP_UNKNOWN: 'badCredentials',
  AUTH_FAILED: 'badCredentials',
  BAD_REQUEST: 'identifierRejected',
  NOT_ENTERED: 'notAuthorized',
  FORBIDDEN: 'notAuthorized',
  LIMIT_APP_CONNECTIONS: 'quotaExceeded',
  LIMIT_LOGIN_RATE: 'connectionRateExceeded',
  // A push refusal; CONNECT never pushes. Here for the type.
  PUSH_INVALID: 'serverUnavailable',
} as const satisfies Record<HubErrorCode, ConnectRefusal>;

/** How an admission refusal (src/connectors/admission.ts) becomes a CONNACK. */
export const CONNECT_REFUSAL_BY_LIMIT = {
  LIMIT_CONNECTIONS_PER_IP: 'quotaExceeded',
  LIMIT_CONNECT_RATE: 'connectionRateExceeded',
  LIMIT_PENDING: 'serverBusy',
  LIMIT_REQUEST_RATE: 'quotaExceeded',
  // Refused at the door (the socket is closed before CONNECT); here for completeness.
  LIMIT_DESCRIPTORS: 'serverBusy',
} as const satisfies Record<LimitCode, ConnectRefusal>;

/** MQTT 5 §3.14.2.1 DISCONNECT reason codes the server sends. */
export const DISCONNECT_CODES = {
  unspecified: 0x80,
  malformed: 0x81,
  protocolError: 0x82,
  notAuthorized: 0x87,
  serverShuttingDown: 0x8b,
  keepAliveTimeout: 0x8d,
  sessionTakenOver: 0x8e,
  topicNameInvalid: 0x90,
  receiveMaximumExceeded: 0x93,
  messageRateTooHigh: 0x96,
  topicAliasInvalid: 0x94,
  packetTooLarge: 0x95,
  quotaExceeded: 0x97,
  administrativeAction: 0x98,
  payloadFormatInvalid: 0x99,
} as const;
export type DisconnectName = keyof typeof DISCONNECT_CODES;

/**
 * The hub's close reasons (src/hub/connection.ts) as MQTT 5 DISCONNECT reasons. A
 * reason not listed goes out as `unspecified`, with the reason as the reason string.
 * MQTT 3.1.1 has no server DISCONNECT: there the socket is just closed.
 */
export const DISCONNECT_BY_CLOSE_REASON = {
  [CLOSE_REASONS.replaced]: 'sessionTakenOver',
  [CLOSE_REASONS.slowConsumer]: 'quotaExceeded',
  [CLOSE_REASONS.shutdown]: 'serverShuttingDown',
  [CLOSE_REASONS.appDeleted]: 'administrativeAction',
  [CLOSE_REASONS.heartbeatTimeout]: 'keepAliveTimeout',
  [CLOSE_REASONS.handshakeTimeout]: 'keepAliveTimeout',
  [CLOSE_REASONS.protocolError]: 'protocolError',
  [CLOSE_REASONS.kicked]: 'administrativeAction',
} as const satisfies Record<(typeof CLOSE_REASONS)[keyof typeof CLOSE_REASONS], DisconnectName>;

/** MQTT 5 §3.4.2.1 PUBACK / §3.5.2.1 PUBREC reason codes (a publish we refuse). */
export const PUBACK_CODES = {
  success: 0x00,
  unspecified: 0x80,
  notAuthorized: 0x87,
  topicNameInvalid: 0x90,
  quotaExceeded: 0x97,
  payloadFormatInvalid: 0x99,
} as const;
export type PubackName = keyof typeof PUBACK_CODES;

/** How a hub refusal of a manager's push becomes a PUBACK. */
export const PUBACK_BY_HUB_ERROR = {
  APP_UNKNOWN: 'notAuthorized',
  AUTH_FAILED: 'notAuthorized',
  BAD_REQUEST: 'payloadFormatInvalid',
  NOT_ENTERED: 'notAuthorized',
  FORBIDDEN: 'notAuthorized',
  LIMIT_APP_CONNECTIONS: 'quotaExceeded',
  LIMIT_LOGIN_RATE: 'quotaExceeded',
  // MQTT 5 §3.4.2.1 0x99 Payload format invalid: the push breaks a rule of push-rules.ts.
  PUSH_INVALID: 'payloadFormatInvalid',
} as const satisfies Record<HubErrorCode, PubackName>;

/**
 * SUBACK return codes: MQTT 3.1.1 §3.9.3 has one failure code, MQTT 5 §3.9.3 says why.
 * The granted QoS (0 or 1) is the success code in both.
 */
export const SUBACK_FAILURES = {
  notAuthorized: { v3: 0x80, v5: 0x87 },
  topicFilterInvalid: { v3: 0x80, v5: 0x8f },
  unspecified: { v3: 0x80, v5: 0x80 },
} as const;

/** MQTT 5 §3.11.3 UNSUBACK reason codes (MQTT 3.1.1 UNSUBACK has none). */
export const UNSUBACK_CODES = {
  success: 0x00,
  noSubscriptionExisted: 0x11,
  unspecified: 0x80,
  notAuthorized: 0x87,
  topicFilterInvalid: 0x8f,
} as const;

/** MQTT 5 §3.6.2.1 / §3.7.2.1: PUBREL or PUBCOMP for a packet id we do not know. */
export const PACKET_ID_NOT_FOUND = 0x92;
