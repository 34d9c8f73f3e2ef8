/** Public surface of the ntfy front door. */
export { NtfyConnector, type NtfyConnectorOptions } from './ntfy-connector.js';
export { ANONYMOUS_ACCESS, type AnonymousAccess } from './ntfy-auth.js';
