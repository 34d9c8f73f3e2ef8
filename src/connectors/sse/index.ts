/** Public surface of the Server-Sent Events connector. */
export { SseConnector, type SseConnectorOptions } from './sse-connector.js';
export { SseEncoder, SSE_ENCODER, type SseFrame } from './sse-encoder.js';
