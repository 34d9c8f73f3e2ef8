import type { ApiKey, ClientId } from '../ids.js';
import type { ConnectorName } from '../hub/connection.js';

/** One client online somewhere in the cluster. */
export interface PresenceEntry {
  readonly clientId: ClientId;
  readonly node: string;
  readonly connector: ConnectorName;
  /** Milliseconds since the epoch. */
  readonly connectedAt: number;
  /** The client's address as the node saw it (for the console). */
  readonly remoteAddress?: string;
  /** The client's tags when it entered or last changed them. */
  readonly tags?: readonly string[];
}

/**
 * Who is online across nodes. Each node writes its own clients; entries of a node that
 * stopped heartbeating disappear within `nodeTimeoutMs`.
 *
 * Guarantees: `set` for a clientId replaces any entry of that client (one connection
 * per client in the cluster); `remove` removes only the entry of the given node (a
 * late leave on an old node never erases the client's newer entry elsewhere).
 */
export interface Presence {
  readonly nodeId: string;
  set(apikey: ApiKey, entry: PresenceEntry): Promise<void>;
  remove(apikey: ApiKey, clientId: ClientId, node: string): Promise<void>;
  list(apikey: ApiKey): Promise<readonly PresenceEntry[]>;
  count(apikey: ApiKey): Promise<number>;
  /** Live nodes (heartbeating), this one included. */
  nodes(): Promise<readonly string[]>;
  close(): Promise<void>;
}
