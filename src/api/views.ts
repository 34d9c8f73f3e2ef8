import type { App } from '../store/store.js';

/** An app as admins see it (API and CLI alike): with its secret. */
export function appView(app: App): Record<string, unknown> {
  return {
    apikey: app.apikey,
    secret: app.secret,
    name: app.name,
    messageTtlSeconds: app.messageTtlSeconds,
    requireClientToken: app.requireClientToken,
    ntfyAnonymousAccess: app.ntfyAnonymousAccess,
    ntfyTokensCanPublish: app.ntfyTokensCanPublish,
    createdAt: new Date(app.createdAt).toISOString(),
  };
}
