import type { ApiKey, ClientId } from '../ids.js';
import { asMessageId } from '../ids.js';
import type { AckRange, PositionUpdate, ReceiptUpdate, SkipUpdate, Storage } from '../store/store.js';
import type { Logger } from '../log.js';
import type { ClientMember } from './members.js';

/**
 * Up to this many members that acked are counted at every flush; more wait for the
 * positions' cadence. Each costs the store a range to resolve (10,000 one-message ranges:
 * ~75 ms of SQLite, ~150 ms of Redis), about what writing their positions costs, so a
 * crowd that acks all the time is counted every `positionIntervalMs`, not four times a
 * second.
 */
const EAGER_ACKERS = 1000;

interface Counts {
  delivered: number;
  deliveredTo: ClientId[] | undefined;
}

/**
 * Receipt counters and client positions, gathered in memory on the hot path and
 * written to the store in one batch every `intervalMs` (one transaction instead of
 * one write per delivery or ack). Losing a batch in a crash only means a client gets
 * a message again (at-least-once) and a receipt undercounts; the messages themselves
 * were stored before anyone was told they were accepted.
 *
 * Deliveries are counted per message (a broadcast adds its recipients in one number).
 * Acks are not: an ack covers every message up to an id, however many, so a member
 * that acked is only marked here, and each flush hands the store one range per member,
 * (ackCounted, ackedId], which the store resolves to the messages that target the client
 * (MessageStore.recordAcks) — O(1) per ack, and exact for a backlog of any length.
 * Skips (rare) are kept one record each.
 */
export class ReceiptBuffer {
  readonly #storage: Storage;
  readonly #log: Logger;
  readonly #now: () => number;
  #counts = new Map<ApiKey, Map<number, Counts>>();
  #dirty = new Set<ClientMember>();
  /** Positions of members that left before the flush. */
  #leftovers: PositionUpdate[] = [];
  /** Members that acked since the last flush. */
  #acking = new Set<ClientMember>();
  /** Ack ranges of members that left before the flush. */
  #ackLeftovers: AckRange[] = [];
  /** The leftovers of the flush under way: not in the store yet either (see pendingAck). */
  #writing: { readonly positions: readonly PositionUpdate[]; readonly acks: readonly AckRange[] } = { positions: [], acks: [] };
  #skips: SkipUpdate[] = [];
  /**
   * Members whose tags changed with messages sent and not yet counted: up to which id
   * which tags chose what they were sent (oldest first). Rare, so kept aside.
   */
  readonly #tagEras = new WeakMap<ClientMember, { readonly upTo: number; readonly tags: readonly string[] }[]>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  readonly #positionIntervalMs: number;
  #positionsDueAt = 0;

  /**
   * Receipts (and positions of members that left) are written every `intervalMs`; the
   * positions of connected members every `positionIntervalMs`: that write costs one row
   * per client that got anything, so at 10,000 clients a 250 ms cadence alone cost 40%
   * of a core. Positions are a resume hint (clients also present their last id), so a
   * crash costs at most that much redelivery.
   */
  constructor(storage: Storage, log: Logger, now: () => number, intervalMs = 250, positionIntervalMs = 2000) {
    this.#storage = storage;
    this.#log = log;
    this.#now = now;
    this.#positionIntervalMs = positionIntervalMs;
    this.#timer = setInterval(() => this.#tick(), intervalMs);
    this.#timer.unref();
  }

  #tick(): void {
    if (this.#flushing) return;
    const positions = this.#now() >= this.#positionsDueAt;
    const run = this.#flushNow(positions).finally(() => {
      if (this.#flushing === run) this.#flushing = undefined;
    });
    this.#flushing = run;
  }

  /** `n` clients got message `id` for the first time. */
  delivered(apikey: ApiKey, id: number, n: number, to?: ClientId): void {
    const c = this.#entry(apikey, id);
    c.delivered += n;
    if (to !== undefined) (c.deliveredTo ??= []).push(to);
  }

  /** The member's `ackedId` moved: the range from its `ackCounted` goes to the store at the next flush. */
  acked(member: ClientMember): void {
    this.#acking.add(member);
  }

  /**
   * The member's tags are about to change. Messages up to `upTo` were chosen for it (or
   * not) by the current tags, so acks up to there are counted with them, later ones with
   * the new tags: an ack of a message to a tag it since left still counts, and one past
   * a message to a tag it joined later (which it never got) does not count it.
   */
  tagsChanging(member: ClientMember, upTo: number): void {
    if (upTo <= member.ackCounted) return;
    const eras = this.#tagEras.get(member);
    if (eras === undefined) this.#tagEras.set(member, [{ upTo, tags: [...member.tags] }]);
    else if (upTo > eras.at(-1)!.upTo) eras.push({ upTo, tags: [...member.tags] });
  }

  /** The member's connection could not carry message `id` (docs/delivery.md, "Skipped"). */
  skipped(member: ClientMember, id: number, reason: string): void {
    this.#skips.push({ apikey: member.apikey, id: asMessageId(id), clientId: member.clientId, reason, at: this.#now() });
  }

  /** The member's positions changed; written at the next flush. */
  touched(member: ClientMember): void {
    if (member.dirty) return;
    member.dirty = true;
    this.#dirty.add(member);
  }

  /**
   * The member's acked position jumped without any ack (a fresh start, Hub.enterClient
   * `'fresh'`): written at the next flush like a leftover, so that a later enter, here
   * or on another node, starts after it. Not an ack: no receipt counts it.
   */
  positionReset(member: ClientMember): void {
    this.#leftovers.push({ apikey: member.apikey, clientId: member.clientId, ackedId: asMessageId(member.ackedId) });
  }

  /** The member is gone: keep its final positions for the next flush. */
  left(member: ClientMember): void {
    if (this.#acking.delete(member)) this.#ackRanges(member, this.#now(), this.#ackLeftovers);
    this.#tagEras.delete(member);
    if (!this.#dirty.delete(member)) return;
    member.dirty = false;
    this.#leftovers.push(positionOf(member));
  }

  /** Writes everything gathered so far, positions included. Safe to call at any time. */
  async flush(): Promise<void> {
    await this.#flushing;
    const run = this.#flushNow(true).finally(() => {
      if (this.#flushing === run) this.#flushing = undefined;
    });
    this.#flushing = run;
    await run;
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#flushing;
    await this.flush();
  }

  /** The pending (not yet flushed) acked position of a client that left, if any. */
  pendingAck(apikey: ApiKey, clientId: ClientId): number | undefined {
    let best: number | undefined;
    for (const list of [this.#ackLeftovers, this.#writing.acks]) {
      for (const a of list) if (a.apikey === apikey && a.client.clientId === clientId) best = Math.max(best ?? 0, a.upTo);
    }
    // A position moved without an ack (positionReset) waits among the positions.
    for (const list of [this.#leftovers, this.#writing.positions]) {
      for (const p of list) {
        if (p.apikey === apikey && p.clientId === clientId && p.ackedId !== undefined) best = Math.max(best ?? 0, p.ackedId);
      }
    }
    return best;
  }

  /**
   * The pending delivered position of a client that left, if any: a client back before
   * the flush must not have its messages counted delivered a second time.
   */
  pendingDelivered(apikey: ApiKey, clientId: ClientId): number | undefined {
    let best: number | undefined;
    for (const list of [this.#leftovers, this.#writing.positions]) {
      for (const p of list) {
        if (p.apikey === apikey && p.clientId === clientId && p.deliveredId !== undefined) best = Math.max(best ?? 0, p.deliveredId);
      }
    }
    return best;
  }

  /** (ackCounted, ackedId] of the member, now handed over: one range per tag era it spans. */
  #ackRanges(m: ClientMember, at: number, into: AckRange[]): void {
    const eras = this.#tagEras.get(m);
    if (eras !== undefined) {
      while (eras.length > 0 && m.ackedId > m.ackCounted) {
        const era = eras[0]!;
        if (era.upTo > m.ackCounted) {
          const upTo = Math.min(m.ackedId, era.upTo);
          into.push(ackRange(m, era.tags, upTo, at));
          m.ackCounted = upTo;
        }
        if (m.ackCounted < era.upTo) break;
        eras.shift();
      }
      if (eras.length === 0) this.#tagEras.delete(m);
    }
    if (m.ackedId > m.ackCounted) {
      into.push(ackRange(m, [...m.tags], m.ackedId, at));
      m.ackCounted = m.ackedId;
    }
  }

  async #flushNow(withPositions: boolean): Promise<void> {
    const counts = this.#counts;
    const positions = this.#leftovers;
    const acks = this.#ackLeftovers;
    // Of members that left: what an enter must see until it is in the store.
    const left = { positions: [...positions], acks: [...acks] };
    const skips = this.#skips;
    this.#counts = new Map();
    this.#leftovers = [];
    this.#ackLeftovers = [];
    this.#skips = [];
    const now = this.#now();
    if (withPositions || this.#acking.size <= EAGER_ACKERS) {
      for (const m of this.#acking) this.#ackRanges(m, now, acks);
      this.#acking.clear();
    }
    if (withPositions) {
      this.#positionsDueAt = this.#now() + this.#positionIntervalMs;
      for (const m of this.#dirty) {
        m.dirty = false;
        positions.push(positionOf(m));
      }
      this.#dirty.clear();
    }
    if (counts.size === 0 && positions.length === 0 && acks.length === 0 && skips.length === 0) return;
    const at = now;
    const receipts: ReceiptUpdate[] = [];
    for (const [apikey, byId] of counts) {
      for (const [id, c] of byId) {
        receipts.push({
          apikey,
          id: asMessageId(id),
          delivered: c.delivered,
          acked: 0,
          ...(c.deliveredTo ? { deliveredTo: c.deliveredTo } : {}),
          at,
        });
      }
    }
    this.#writing = left;
    try {
      if (receipts.length > 0) await this.#storage.messages.recordReceipts(receipts);
      // Skips before acks: an ack range leaves out the messages the client skipped.
      if (skips.length > 0) await this.#storage.messages.recordSkips(skips);
      if (acks.length > 0) await this.#storage.messages.recordAcks(acks);
      if (positions.length > 0) await this.#storage.clients.savePositions(positions);
    } catch (err) {
      this.#log.warn({ err, receipts: receipts.length, skips: skips.length, acks: acks.length, positions: positions.length }, 'receipt flush failed');
    } finally {
      this.#writing = { positions: [], acks: [] };
    }
  }

  #entry(apikey: ApiKey, id: number): Counts {
    let byId = this.#counts.get(apikey);
    if (!byId) {
      byId = new Map();
      this.#counts.set(apikey, byId);
    }
    let c = byId.get(id);
    if (!c) {
      c = { delivered: 0, deliveredTo: undefined };
      byId.set(id, c);
    }
    return c;
  }
}

function ackRange(m: ClientMember, tags: readonly string[], upTo: number, at: number): AckRange {
  return { apikey: m.apikey, client: { clientId: m.clientId, tags }, after: asMessageId(m.ackCounted), upTo: asMessageId(upTo), at };
}

/**
 * The delivered position only: the acked one moves with the ack ranges (recordAcks),
 * atomically with their counts, which is what makes them count once.
 */
function positionOf(m: ClientMember): PositionUpdate {
  return { apikey: m.apikey, clientId: m.clientId, deliveredId: asMessageId(m.lastDeliveredId) };
}
