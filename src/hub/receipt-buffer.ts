import type { ApiKey, ClientId, MessageId } from '../ids.js';
import { asMessageId } from '../ids.js';
import type { PositionUpdate, ReceiptUpdate, Storage } from '../store/store.js';
import type { Logger } from '../log.js';
import type { ClientMember } from './members.js';

interface Counts {
  delivered: number;
  acked: number;
  deliveredTo: ClientId[] | undefined;
  ackedBy: ClientId[] | undefined;
}

/**
 * Receipt counters and client positions, gathered in memory on the hot path and
 * written to the store in one batch every `intervalMs` (one transaction instead of
 * one write per delivery or ack). Losing a batch in a crash only means a client gets
 * a message again (at-least-once) and a receipt undercounts; the messages themselves
 * were stored before anyone was told they were accepted.
 */
export class ReceiptBuffer {
  readonly #storage: Storage;
  readonly #log: Logger;
  readonly #now: () => number;
  #counts = new Map<ApiKey, Map<number, Counts>>();
  #dirty = new Set<ClientMember>();
  /** Positions of members that left before the flush. */
  #leftovers: PositionUpdate[] = [];
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

  acked(apikey: ApiKey, id: number, by?: ClientId): void {
    const c = this.#entry(apikey, id);
    c.acked++;
    if (by !== undefined) (c.ackedBy ??= []).push(by);
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
    this.#leftovers.push({ apikey: member.apikey, clientId: member.clientId, ackedId: asMessageId(member.ackedId) as MessageId });
  }

  /** The member is gone: keep its final positions for the next flush. */
  left(member: ClientMember): void {
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

  /** The pending (not yet flushed) acked position of a client, if any. */
  pendingAck(apikey: ApiKey, clientId: ClientId): number | undefined {
    let best: number | undefined;
    for (const p of this.#leftovers) {
      if (p.apikey === apikey && p.clientId === clientId && p.ackedId !== undefined) best = Math.max(best ?? 0, p.ackedId);
    }
    return best;
  }

  async #flushNow(withPositions: boolean): Promise<void> {
    const counts = this.#counts;
    const positions = this.#leftovers;
    this.#counts = new Map();
    this.#leftovers = [];
    if (withPositions) {
      this.#positionsDueAt = this.#now() + this.#positionIntervalMs;
      for (const m of this.#dirty) {
        m.dirty = false;
        positions.push(positionOf(m));
      }
      this.#dirty.clear();
    }
    if (counts.size === 0 && positions.length === 0) return;
    const at = this.#now();
    const receipts: ReceiptUpdate[] = [];
    for (const [apikey, byId] of counts) {
      for (const [id, c] of byId) {
        receipts.push({
          apikey,
          id: asMessageId(id),
          delivered: c.delivered,
          acked: c.acked,
          ...(c.deliveredTo ? { deliveredTo: c.deliveredTo } : {}),
          ...(c.ackedBy ? { ackedBy: c.ackedBy } : {}),
          at,
        });
      }
    }
    try {
      if (receipts.length > 0) await this.#storage.messages.recordReceipts(receipts);
      if (positions.length > 0) await this.#storage.clients.savePositions(positions);
    } catch (err) {
      this.#log.warn({ err, receipts: receipts.length, positions: positions.length }, 'receipt flush failed');
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
      c = { delivered: 0, acked: 0, deliveredTo: undefined, ackedBy: undefined };
      byId.set(id, c);
    }
    return c;
  }
}

function positionOf(m: ClientMember): PositionUpdate {
  return {
    apikey: m.apikey,
    clientId: m.clientId,
    ackedId: asMessageId(m.ackedId) as MessageId,
    deliveredId: asMessageId(m.lastDeliveredId),
  };
}
