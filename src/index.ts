// The package's public surface for embedding a node in your own process.
// The client SDK is `shaddock/client` (browsers) and `shaddock/client/node`.
export { loadConfig, ConfigError, type Config, type ConfigInput } from './config.js';
export { startServer, type ShaddockServer, type FirstStart } from './server.js';
export type { App, StoredMessage, Target, Receipt } from './store/store.js';
export type { PublishRequest, PublishResult, OnlineClient } from './hub/hub.js';
export { VERSION } from './version.js';
