import type { StoredMessage } from '../store/store.js';
import type { Bus } from './bus.js';

/** The single-node bus: hands each message straight to the subscribers, in order. */
export class LocalBus implements Bus {
  readonly #handlers: ((msg: StoredMessage) => void)[] = [];

  publish(msg: StoredMessage): Promise<void> {
    // Synchronous on purpose: delivery happens in publish order with no extra tick.
    for (const handler of this.#handlers) handler(msg);
    return Promise.resolve();
  }

  subscribe(handler: (msg: StoredMessage) => void): void {
    this.#handlers.push(handler);
  }

  close(): Promise<void> {
    this.#handlers.length = 0;
    return Promise.resolve();
  }
}
