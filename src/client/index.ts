/**
 * `shaddock/client`: the Shaddock SDK for browsers and Node (docs/delivery.md). This entry
 * and everything it imports use only what browsers have (Uint8Array, TextEncoder,
 * WebSocket, setTimeout); Node's raw TCP and `ws` transports are in
 * `shaddock/client/node`. test/client/sdk.test.ts walks the imports to keep it so.
 */
export {
  ShaddockClient,
  CLIENT_TYPE,
  CLIENT_VERSION,
  MAX_TAGS,
  MAX_TAG_LENGTH,
  type ClientEventName,
  type ClientEvents,
  type ClientState,
  type LastIdStore,
  type MessageHandler,
  type MessageMeta,
  type ReceivedMessage,
  type ReconnectOptions,
  type ShaddockClientOptions,
  type StateChange,
} from './client.js';
export { ShaddockClientError, isShaddockClientError, CLIENT_ERROR_CODES, type ClientErrorCode, type ClientErrorDetails } from './errors.js';
export {
  webSocketTransport,
  globalWebSocket,
  type Transport,
  type TransportEvents,
  type TransportFactory,
  type WebSocketConstructor,
  type WebSocketLike,
} from './transport.js';
export { localStorageStore, memoryStore } from './stores.js';
