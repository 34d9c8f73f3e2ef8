import { smallInteger } from '../hub/connection.js';

/**
 * Something with a deadline on the wheel. The wheel keeps its slot, and the item's
 * place in that slot's list, in the item itself: two pointers per item instead of a
 * hash-set entry (~35 bytes at 19,000 items, and a table rebuilt as items move).
 */
export interface WheelItem {
  /** Owned by the wheel: the slot the item sits in, or -1. */
  wheelSlot: number;
  /** Owned by the wheel: the neighbours in the slot's list. Implementations declare them, initialised to undefined. */
  wheelNext?: WheelItem | undefined;
  wheelPrev?: WheelItem | undefined;
}

/** A wheel item that knows what to do when its deadline passes. */
export interface ExpiringItem extends WheelItem {
  expire(): void;
}

/**
 * One coarse clock for every heartbeat and handshake deadline of a connector, instead
 * of a timer per connection (at 100k connections, per-connection timers are what
 * memory and GC time are made of). Deadlines fire within one `resolutionMs` after
 * they are due, never before.
 */
export class DeadlineWheel<T extends WheelItem> {
  readonly #resolution: number;
  readonly #onExpire: (item: T) => void;
  /** Slot → the first item of its list. */
  readonly #slots = new Map<number, WheelItem>();
  readonly #now: () => number;
  /**
   * Slots count from here, not from 1970: a slot number since the epoch (~1.8e9 at 1 s)
   * is past V8's small integers on 64-bit Node, so every item's `wheelSlot` would be a
   * boxed 16-byte number.
   */
  readonly #origin: number;
  #timer: NodeJS.Timeout | undefined;
  #lastSwept: number;

  /**
   * @param resolutionMs slot width, milliseconds. @default 1000
   */
  constructor(onExpire: (item: T) => void, resolutionMs = 1000, now: () => number = Date.now) {
    this.#onExpire = onExpire;
    this.#resolution = resolutionMs;
    this.#now = now;
    this.#origin = now();
    this.#lastSwept = this.#slotOf(this.#origin) - 1;
  }

  get size(): number {
    let n = 0;
    for (const head of this.#slots.values()) for (let item: WheelItem | undefined = head; item; item = item.wheelNext) n++;
    return n;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.sweep(), this.#resolution);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** (Re)arms the item's deadline, `afterMs` from now. */
  arm(item: T, afterMs: number): void {
    // Round up: an item never fires early.
    const slot = smallInteger(Math.max(Math.ceil((this.#now() - this.#origin + afterMs) / this.#resolution), this.#lastSwept + 1));
    if (item.wheelSlot === slot) return;
    this.disarm(item);
    const head = this.#slots.get(slot);
    item.wheelPrev = undefined;
    item.wheelNext = head;
    if (head) head.wheelPrev = item;
    this.#slots.set(slot, item);
    item.wheelSlot = slot;
  }

  disarm(item: T): void {
    if (item.wheelSlot < 0) return;
    const { wheelPrev: prev, wheelNext: next } = item;
    if (prev) prev.wheelNext = next;
    else if (next) this.#slots.set(item.wheelSlot, next);
    else this.#slots.delete(item.wheelSlot);
    if (next) next.wheelPrev = prev;
    item.wheelPrev = item.wheelNext = undefined;
    item.wheelSlot = -1;
  }

  /** Expires every item whose slot is due. Called by the interval; public for tests. */
  sweep(): void {
    const current = this.#slotOf(this.#now());
    for (let slot = this.#lastSwept + 1; slot <= current; slot++) {
      // Marked swept before its items expire: one re-armed from an expiry (a deadline
      // that is already due) goes to the next slot, not back into this one, which no
      // sweep would visit again.
      this.#lastSwept = slot;
      const head = this.#slots.get(slot);
      if (!head) continue;
      this.#slots.delete(slot);
      // Unlink the whole slot first: an expiry may arm or disarm other items.
      const due: WheelItem[] = [];
      for (let item: WheelItem | undefined = head; item; ) {
        const next: WheelItem | undefined = item.wheelNext;
        item.wheelPrev = item.wheelNext = undefined;
        item.wheelSlot = -1;
        due.push(item);
        item = next;
      }
      for (const item of due) this.#onExpire(item as T);
    }
    this.#lastSwept = current;
  }

  #slotOf(ms: number): number {
    return Math.floor((ms - this.#origin) / this.#resolution);
  }
}
