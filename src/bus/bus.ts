import type { ApiKey, ClientId } from '../ids.js';
import type { StoredMessage } from '../store/store.js';
import type { ConnectorName } from '../hub/connection.js';

/** What travels between nodes. Traffic is per message per node, never per client. */
export type BusEvent =
  /** A stored message, for every node to deliver to its own connections. */
  | { readonly kind: 'message'; readonly msg: StoredMessage }
  /** A client entered or left on `node`: managers on every node learn of it. */
  | {
      readonly kind: 'presence';
      readonly change: 'entered' | 'left';
      readonly apikey: ApiKey;
      readonly clientId: ClientId;
      readonly node: string;
      readonly connector: ConnectorName;
      /** When the client entered (ms since the epoch): of two entries of one client, the later wins. */
      readonly at: number;
    }
  /**
   * Close connections on every node but `exceptNode`: one client (it entered elsewhere:
   * "replaced") or, without clientId, the whole app (deleted).
   */
  | { readonly kind: 'kick'; readonly apikey: ApiKey; readonly clientId?: ClientId; readonly exceptNode: string; readonly reason: string };

/**
 * Carries events to every node, this one included.
 *
 * Guarantee: a subscriber sees the events published by one node in the order that node
 * published them. Messages of one app published on different nodes may arrive out of
 * id order; the hub puts them back in order (ids within an app are contiguous).
 */
export interface Bus {
  publish(event: BusEvent): Promise<void>;
  subscribe(handler: (event: BusEvent) => void): void;
  /**
   * Called each time this node's subscription is back after it was lost: events published
   * meanwhile never reached this node, and the hub re-reads what it needs from the store.
   * Never called on a bus that cannot lose events.
   */
  onResubscribed(handler: () => void): void;
  close(): Promise<void>;
}
