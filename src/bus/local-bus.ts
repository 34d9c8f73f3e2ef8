import type { Bus, BusEvent } from './bus.js';

/** The single-node bus: hands each event straight to the subscribers, in order. */
export class LocalBus implements Bus {
  readonly #handlers: ((event: BusEvent) => void)[] = [];

  publish(event: BusEvent): Promise<void> {
    // Synchronous on purpose: delivery happens in publish order with no extra tick.
    for (const handler of this.#handlers) handler(event);
    return Promise.resolve();
  }

  subscribe(handler: (event: BusEvent) => void): void {
    this.#handlers.push(handler);
  }

  /** In-process delivery never loses an event: nothing to call. */
  onResubscribed(): void {}

  close(): Promise<void> {
    this.#handlers.length = 0;
    return Promise.resolve();
  }
}
