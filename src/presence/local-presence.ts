import type { ApiKey, ClientId } from '../ids.js';
import type { Presence, PresenceEntry } from './presence.js';

/** The single-node presence: a map in memory. */
export class LocalPresence implements Presence {
  readonly nodeId: string;
  readonly #apps = new Map<ApiKey, Map<ClientId, PresenceEntry>>();

  constructor(nodeId = 'local') {
    this.nodeId = nodeId;
  }

  set(apikey: ApiKey, entry: PresenceEntry): Promise<void> {
    let app = this.#apps.get(apikey);
    if (!app) {
      app = new Map();
      this.#apps.set(apikey, app);
    }
    app.set(entry.clientId, entry);
    return Promise.resolve();
  }

  remove(apikey: ApiKey, clientId: ClientId, node: string): Promise<void> {
    const app = this.#apps.get(apikey);
    if (app?.get(clientId)?.node === node) {
      app.delete(clientId);
      if (app.size === 0) this.#apps.delete(apikey);
    }
    return Promise.resolve();
  }

  list(apikey: ApiKey): Promise<readonly PresenceEntry[]> {
    return Promise.resolve([...(this.#apps.get(apikey)?.values() ?? [])]);
  }

  count(apikey: ApiKey): Promise<number> {
    return Promise.resolve(this.#apps.get(apikey)?.size ?? 0);
  }

  nodes(): Promise<readonly string[]> {
    return Promise.resolve([this.nodeId]);
  }

  close(): Promise<void> {
    this.#apps.clear();
    return Promise.resolve();
  }
}
