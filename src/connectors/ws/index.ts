/** Public surface of the plain WebSocket (JSON) connector. */
export { WsConnector, type WsConnectorOptions } from './ws-connector.js';
export { WsEncoder, WS_ENCODER } from './ws-encoder.js';
export { WS_CLOSE, TOO_MANY_BAD_FRAMES } from './ws-connection.js';
