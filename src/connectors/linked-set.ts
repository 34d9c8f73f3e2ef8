/** What a LinkedSet keeps in each of its items: its neighbours. Owned by the set. */
export interface SetLinks {
  setNext?: SetLinks | undefined;
  setPrev?: SetLinks | undefined;
}

/**
 * A connector's open connections, linked through the connections themselves: two
 * pointers in each item instead of a hash-set entry (~35 bytes an item at 19,000, plus
 * the table's growth), for something that is only added to, removed from, counted and
 * walked at shutdown. An item belongs to at most one LinkedSet.
 *
 * Iteration walks a copy, so the loop body may add or remove items.
 */
export class LinkedSet<T extends SetLinks> implements Iterable<T> {
  #head: T | undefined = undefined;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  has(item: T): boolean {
    return item.setPrev !== undefined || this.#head === item;
  }

  add(item: T): void {
    if (this.has(item)) return;
    item.setPrev = undefined;
    item.setNext = this.#head;
    if (this.#head) this.#head.setPrev = item;
    this.#head = item;
    this.#size++;
  }

  /** False when the item was not in the set. */
  delete(item: T): boolean {
    if (!this.has(item)) return false;
    const { setPrev: prev, setNext: next } = item;
    if (prev) prev.setNext = next;
    else this.#head = next as T | undefined;
    if (next) next.setPrev = prev;
    item.setPrev = item.setNext = undefined;
    this.#size--;
    return true;
  }

  [Symbol.iterator](): Iterator<T> {
    const items: T[] = [];
    for (let item: SetLinks | undefined = this.#head; item; item = item.setNext) items.push(item as T);
    return items[Symbol.iterator]();
  }
}
