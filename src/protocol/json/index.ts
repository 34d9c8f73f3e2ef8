/** Public surface of the JSON codecs: plain WebSocket frames and SSE framing. */
export * from '../errors.js';
export * from './frames.js';
export * from './sse.js';
