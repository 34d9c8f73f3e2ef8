/** Public surface of the Pomelo codecs (spec sections cited in each module). */
export * from '../errors.js';
export * from './package.js';
export * from './message.js';
export * from './protobuf.js';
export * from './dictionary.js';
export * from './handshake.js';
