/** Public surface of the socket.io connector (docs/connectors.md). */
export { SioConnector, SIO_PATH, type SioConnectorOptions } from './sio-connector.js';
export { NativeSioEncoder, PomeloSioEncoder, SIO_RESERVED_EVENTS, type SioPush } from './sio-encoders.js';
export { SIO_LIMITS, NATIVE_EVENTS } from './sio-connection.js';
