import type { StoredMessage } from '../store/store.js';

/**
 * Carries every accepted message to every node (each node then delivers to its own
 * connections). Traffic is per message per node, never per client.
 *
 * Guarantee: a subscriber sees the messages of one app in the order they were
 * published on this bus.
 */
export interface Bus {
  publish(msg: StoredMessage): Promise<void>;
  subscribe(handler: (msg: StoredMessage) => void): void;
  close(): Promise<void>;
}
