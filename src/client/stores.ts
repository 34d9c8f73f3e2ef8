/** Ready-made `LastIdStore`s (docs/delivery.md "Keeping the position"). */
import type { LastIdStore } from './client.js';
import { ShaddockClientError } from './errors.js';

/** The part of the Web Storage API the store uses (`window.localStorage`, `sessionStorage`). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/**
 * Keeps the last id in Web Storage under `key`, so a page load resumes where the last
 * one stopped. Use one key per app and clientId.
 * @param storage @default globalThis.localStorage
 */
export function localStorageStore(key: string, storage?: StorageLike): LastIdStore {
  const s = storage ?? (globalThis as { localStorage?: StorageLike }).localStorage;
  if (s === undefined) throw new ShaddockClientError('CLIENT_BAD_OPTIONS', 'no localStorage here: pass a storage object');
  return {
    get() {
      const v = s.getItem(key);
      if (v === null) return undefined;
      const n = Number(v);
      return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
    },
    set(id) {
      s.setItem(key, String(id));
    },
  };
}

/** Keeps the last id in memory: shares one position among client objects in a process. */
export function memoryStore(initial?: number): LastIdStore & { readonly value: number | undefined } {
  let value = initial;
  return {
    get value() {
      return value;
    },
    get() {
      return value;
    },
    set(id) {
      value = id;
    },
  };
}
