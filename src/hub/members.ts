import type { ApiKey, ClientId } from '../ids.js';
import type { StoredMessage } from '../store/store.js';
import { compactTime, expandTime, withFlag, type Connection } from './connection.js';

/** Live messages held while a member replays from the store; past it they are re-read. */
export const MAX_PENDING_DURING_REPLAY = 5000;

/** The tags of every member without tags: one Set, never written to. */
const NO_TAGS: ReadonlySet<string> = new Set();

/** ClientMember's flag bits. */
const REPLAYING = 1;
const OVERFLOW = 2;
const DIRTY = 4;
const SKIP_TAIL = 8;

/** ClientMember's flag bit for `resumed`. */
const RESUMED = 16;

/** A manager connection: receives presence events, may push. */
export class ManagerMember {
  get role(): 'manager' {
    return 'manager';
  }
  get clientId(): undefined {
    return undefined;
  }
  /** Settles when the connection's latest push has reached the store (or failed); undefined when none is on its way. */
  #lastPush: Promise<void> | undefined = undefined;
  constructor(
    readonly conn: Connection,
    readonly apikey: ApiKey,
    readonly enteredAt: number,
  ) {}

  /** A place in this connection's queue of pushes: wait for `previous`, call `done` once the store has been called. */
  nextPushTurn(): PushTurn {
    const previous = this.#lastPush ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    this.#lastPush = mine;
    let released = false;
    return {
      previous,
      // Never before `previous`: a push refused before its turn must not let the next
      // one overtake those still on their way.
      done: () => {
        if (released) return;
        released = true;
        void previous.then(() => {
          release();
          // The last of the queue: nothing holds on to a settled promise.
          if (this.#lastPush === mine) this.#lastPush = undefined;
        });
      },
    };
  }
}

/** One push's place in its manager connection's queue (Hub.publishAsManager). */
export interface PushTurn {
  readonly previous: Promise<void>;
  /** Lets the next push go (once `previous` has settled); calling it again does nothing. */
  readonly done: () => void;
}

/**
 * A client connection and where its delivery stands. Ids only move forward:
 * `ackedId ≤ lastSentId`, and a message is written at most once per connection.
 */
export class ClientMember {
  // A getter, not a field: one less slot in every member (8 bytes × connections).
  get role(): 'client' {
    return 'client';
  }
  /**
   * Made with the first tag: most clients have none, and an empty Set still costs its
   * hash table (~400 bytes, the largest object of an idle member in a heap snapshot).
   */
  #tags: Set<string> | undefined;
  /** Highest id written to this connection. */
  lastSentId: number;
  /** Highest id ever counted as delivered to this client (across connections). */
  lastDeliveredId: number;
  /** Highest id the client acked. */
  ackedId: number;
  /**
   * Acks up to here are handed to the receipts (or must not count: before a start at the
   * newest id). The receipts count the range (ackCounted, ackedId] in the store, so an
   * ack costs the same however many messages it covers.
   */
  ackCounted: number;
  /** Live messages held during the replay; undefined when none (an idle member holds no array). */
  pending: StoredMessage[] | undefined = undefined;
  /** `replaying`, `overflow`, `dirty` and `skipTail` in one small integer: one slot, not four. */
  #flags = REPLAYING;

  readonly #enteredAt: number;

  constructor(
    readonly conn: Connection,
    readonly apikey: ApiKey,
    readonly clientId: ClientId,
    enteredAt: number,
    start: {
      readonly after: number;
      readonly lastDeliveredId: number;
      readonly ackedId: number;
      /** Acks up to here are not to be counted (see `ackCounted`). @default ackedId */
      readonly ackCounted?: number;
      readonly tags: readonly string[];
    },
  ) {
    this.#enteredAt = compactTime(enteredAt);
    this.lastSentId = start.after;
    this.lastDeliveredId = start.lastDeliveredId;
    this.ackedId = start.ackedId;
    this.ackCounted = Math.max(start.ackedId, start.ackCounted ?? 0);
    if (start.tags.length > 0) this.#tags = new Set(start.tags);
  }

  /** True until the replay from the store has caught up; live messages wait in `pending`. */
  get replaying(): boolean {
    return (this.#flags & REPLAYING) !== 0;
  }
  set replaying(on: boolean) {
    this.#flags = withFlag(this.#flags, REPLAYING, on);
  }

  /** `pending` overflowed and was dropped: the replay reads the store again. */
  get overflow(): boolean {
    return (this.#flags & OVERFLOW) !== 0;
  }
  set overflow(on: boolean) {
    this.#flags = withFlag(this.#flags, OVERFLOW, on);
  }

  /** Positions changed since the last flush to the store. */
  get dirty(): boolean {
    return (this.#flags & DIRTY) !== 0;
  }
  set dirty(on: boolean) {
    this.#flags = withFlag(this.#flags, DIRTY, on);
  }

  /** The newest messages sent were skipped (the hub keeps the last written id, see Hub.ack). */
  get skipTail(): boolean {
    return (this.#flags & SKIP_TAIL) !== 0;
  }
  set skipTail(on: boolean) {
    this.#flags = withFlag(this.#flags, SKIP_TAIL, on);
  }

  get enteredAt(): number {
    return expandTime(this.#enteredAt);
  }

  /**
   * The enter resumed from a position the store already held for this client (`'stored'`,
   * a client seen before): what MQTT's CONNACK calls "session present". Set by the hub.
   */
  get resumed(): boolean {
    return (this.#flags & RESUMED) !== 0;
  }
  set resumed(on: boolean) {
    this.#flags = withFlag(this.#flags, RESUMED, on);
  }

  get tags(): ReadonlySet<string> {
    return this.#tags ?? NO_TAGS;
  }

  addTag(tag: string): void {
    (this.#tags ??= new Set()).add(tag);
  }

  /** False when the member did not have the tag. */
  deleteTag(tag: string): boolean {
    return this.#tags?.delete(tag) ?? false;
  }

}

export type Member = ClientMember | ManagerMember;

/** The connections of one app on this node. */
export class AppRoom {
  /**
   * The app's apikey, one string for every member: an apikey read per enter (from the
   * request or the store) is its own copy, ~56 bytes a connection.
   */
  constructor(readonly apikey: ApiKey) {}

  readonly clients = new Map<ClientId, ClientMember>();
  readonly managers = new Set<ManagerMember>();
  /** Tag → the members subscribed to it. */
  readonly tagIndex = new Map<string, Set<ClientMember>>();

  get empty(): boolean {
    return this.clients.size === 0 && this.managers.size === 0;
  }

  addClient(member: ClientMember): void {
    this.clients.set(member.clientId, member);
    for (const tag of member.tags) this.indexTag(member, tag);
  }

  removeClient(member: ClientMember): void {
    if (this.clients.get(member.clientId) === member) this.clients.delete(member.clientId);
    for (const tag of member.tags) this.unindexTag(member, tag);
  }

  indexTag(member: ClientMember, tag: string): void {
    let set = this.tagIndex.get(tag);
    if (!set) {
      set = new Set();
      this.tagIndex.set(tag, set);
    }
    set.add(member);
  }

  unindexTag(member: ClientMember, tag: string): void {
    const set = this.tagIndex.get(tag);
    if (!set) return;
    set.delete(member);
    if (set.size === 0) this.tagIndex.delete(tag);
  }

  userList(): ClientId[] {
    return [...this.clients.keys()];
  }
}
