// Admission control for every connector (docs/security.md#limits): who may open a
// connection, how fast, how many may sit unauthenticated, and how fast one connection
// may send requests. One instance per node, shared by all connectors, so the numbers
// are per node across every port and protocol.
//
// Bookkeeping: connectors ask, then say no in their own protocol. For the HTTP-based
// ones the answer is shared: `httpRefusal` gives status, headers and body, and
// `refuseUpgrade` writes it on a WebSocket upgrade's socket.
import type { Duplex } from 'node:stream';
import { compactTime, smallInteger } from '../hub/connection.js';
import { AddressRanges } from '../address-ranges.js';
import type { DescriptorBudget } from './descriptors.js';

/** Why a connection or request was refused; stable codes, the reason goes to the peer. */
export const LIMIT_REFUSALS = {
  LIMIT_CONNECTIONS_PER_IP: 'too many connections from this address',
  LIMIT_CONNECT_RATE: 'connecting too often from this address; retry later',
  LIMIT_PENDING: 'too many connections waiting to enter; retry later',
  LIMIT_REQUEST_RATE: 'too many requests on this connection',
  LIMIT_DESCRIPTORS: 'the server has no room for more connections; retry later',
} as const;
export type LimitCode = keyof typeof LIMIT_REFUSALS;

export class LimitError extends Error {
  override readonly name = 'LimitError';
  constructor(
    readonly code: LimitCode,
    /** Seconds after which trying again can succeed (rate limits), when known. */
    readonly retryAfterSeconds?: number,
  ) {
    super(LIMIT_REFUSALS[code]);
  }

  /** `CODE: reason`, what connectors send as a kick or close reason. */
  get reason(): string {
    return `${this.code}: ${this.message}`;
  }
}

export interface AdmissionLimits {
  /** Open connections from one address; 0: no limit. */
  readonly maxConnectionsPerIp: number;
  /** New connections per second from one address (bucket of twice that); 0: no limit. */
  readonly connectsPerSecondPerIp: number;
  /** Connections admitted and not yet entered, on this node; 0: no limit. */
  readonly maxPendingConnections: number;
  /** Requests per second on one connection (bucket of twice that); 0: no limit. */
  readonly requestsPerSecond: number;
  /** Addresses and CIDR ranges that skip the per-address and per-connection rate limits (not the pending limit). */
  readonly exemptIps?: readonly string[];
}

/**
 * A refusal at a listener, for the metrics and the log: which listener (`http`, `sio`,
 * `hybrid`, `mqtt`, …), the code, and the peer's address.
 */
export type RefusalReporter = (listener: string, code: LimitCode, address: string) => void;

export interface AdmissionHooks {
  /** The process's file-descriptor budget, checked by every listener at accept (listen.ts). */
  readonly descriptors?: DescriptorBudget | undefined;
  /** Told of every refusal made at a listener's door and of every admission refused with `listener` given. */
  readonly report?: RefusalReporter | undefined;
}

/** How `admit` counts a connection; everything on by default. */
export interface AdmitOptions {
  /** Counted as pending until `entered()`; false: entered at once (an HTTP connection is no session). */
  readonly pending?: boolean;
  /** Refusals are reported as made at this listener. */
  readonly listener?: string;
}

/** A token bucket's capacity, in seconds of its rate: bursts of twice the rate pass. */
const BURST_SECONDS = 2;
/** How often idle per-address entries are dropped, ms. */
const SWEEP_MS = 10_000;
/** Exempt addresses seen, kept for their shared address string; past this many the memo starts over. */
const MAX_EXEMPT_MEMO = 4096;

interface AddressState {
  readonly admission: Admission;
  /**
   * The address as given, when it is its own key (IPv4, loopback): connections from it
   * take this string as their remote address, one copy for all of them instead of one
   * each (~32 bytes a connection). Undefined for an IPv6 /64 shared by many addresses.
   */
  readonly address: string | undefined;
  /** False for an exempt address: not counted, no rate limits. */
  readonly counted: boolean;
  open: number;
  tokens: number;
  /** When `tokens` was last brought up to date, ms. */
  at: number;
  /** The ticket every settled connection from this address shares (AdmissionTicket.idle), made at first need. */
  settled?: SettledTicket;
}

/**
 * Per-address connection counts and connect-rate buckets, the node's count of
 * connections that have not entered, and per-connection request buckets (in each
 * connection's ticket).
 */
export class Admission {
  readonly #limits: AdmissionLimits;
  readonly #now: () => number;
  readonly #hooks: AdmissionHooks;
  /** Exempt addresses and ranges (an empty list: none). */
  readonly #exemptRanges: AddressRanges;
  /** Exempt addresses seen, by key: not counted, but they share their address string too. */
  readonly #exempt = new Map<string, AddressState>();
  readonly #addresses = new Map<string, AddressState>();
  /** Per-listener counts of sockets (socketPool). */
  readonly #pools = new Map<string, Admission>();
  readonly #sweep: NodeJS.Timeout;
  #pending = 0;

  constructor(limits: AdmissionLimits, now: () => number = Date.now, hooks: AdmissionHooks = {}) {
    this.#limits = limits;
    this.#now = now;
    this.#hooks = hooks;
    this.#exemptRanges = new AddressRanges(limits.exemptIps ?? []);
    this.#sweep = setInterval(() => this.sweep(), SWEEP_MS);
    this.#sweep.unref();
  }

  /** The process's descriptor budget, when there is one. */
  get descriptors(): DescriptorBudget | undefined {
    return this.#hooks.descriptors;
  }

  /** True when `address` skips the per-address and per-connection rate limits (limitsExemptIps). */
  isExempt(address: string): boolean {
    return this.#exemptRanges.has(address);
  }

  /** Reports a refusal made at `listener` (metrics, log). */
  report(listener: string, code: LimitCode, address: string): void {
    this.#hooks.report?.(listener, code, address);
  }

  /**
   * The per-address count of one listener's TCP connections (the HTTP port, the
   * socket.io port): the same limits and exempt addresses, its own counts, and no
   * pending limit — these are sockets, not sessions (docs/security.md#limits).
   */
  socketPool(listener: string): Admission {
    let pool = this.#pools.get(listener);
    if (pool === undefined) {
      pool = new Admission({ ...this.#limits, maxPendingConnections: 0 }, this.#now, { report: this.#hooks.report });
      this.#pools.set(listener, pool);
    }
    return pool;
  }

  get limits(): AdmissionLimits {
    return this.#limits;
  }

  /** The clock of every bucket here, ms since the epoch. */
  now(): number {
    return this.#now();
  }

  /** Connections admitted that have not entered (or closed) yet. */
  get pending(): number {
    return this.#pending;
  }

  /** Open connections counted for this address. */
  openFrom(address: string): number {
    return this.#addresses.get(addressKey(address))?.open ?? 0;
  }

  /**
   * A new connection from `address`: its ticket, or a LimitError. The caller must
   * `release()` the ticket when the connection closes, and call `entered()` once it has.
   */
  admit(address: string, opts: AdmitOptions = {}): AdmissionTicket {
    try {
      return this.#admit(address, opts.pending !== false);
    } catch (err) {
      if (opts.listener !== undefined && err instanceof LimitError) this.report(opts.listener, err.code, address);
      throw err;
    }
  }

  #admit(address: string, pending: boolean): AdmissionTicket {
    const key = addressKey(address);
    const limits = this.#limits;
    if (pending && limits.maxPendingConnections > 0 && this.#pending >= limits.maxPendingConnections) {
      throw new LimitError('LIMIT_PENDING', 1);
    }
    let state: AddressState | undefined;
    if (this.#exemptRanges.has(address)) {
      state = this.#exempt.get(key);
      if (state === undefined) {
        if (this.#exempt.size >= MAX_EXEMPT_MEMO) this.#exempt.clear();
        state = { admission: this, address: key === address ? address : undefined, counted: false, open: 0, tokens: 0, at: 0 };
        this.#exempt.set(key, state);
      }
    } else {
      const now = this.#now();
      state = this.#addresses.get(key);
      if (state === undefined) {
        state = { admission: this, address: key === address ? address : undefined, counted: true, open: 0, tokens: capacity(limits.connectsPerSecondPerIp), at: now };
        this.#addresses.set(key, state);
      }
      if (limits.maxConnectionsPerIp > 0 && state.open >= limits.maxConnectionsPerIp) {
        throw new LimitError('LIMIT_CONNECTIONS_PER_IP');
      }
      if (limits.connectsPerSecondPerIp > 0) {
        refill(state, limits.connectsPerSecondPerIp, now);
        if (state.tokens < 1) {
          throw new LimitError('LIMIT_CONNECT_RATE', Math.max(1, Math.ceil((1 - state.tokens) / limits.connectsPerSecondPerIp)));
        }
        state.tokens -= 1;
      }
      state.open++;
    }
    if (!pending) return new AdmissionTicket(state, TicketPhase.ENTERED);
    this.#pending++;
    return new AdmissionTicket(state);
  }

  /**
   * A request bucket for a connection that is not admitted here (an HTTP keep-alive
   * connection pushing messages); undefined when `address` is exempt or the limit is off.
   */
  requestBucket(address: string): RequestBucket | undefined {
    if (this.#limits.requestsPerSecond <= 0 || this.isExempt(address)) return undefined;
    return new RequestBucket(this.#limits.requestsPerSecond, this.#now);
  }

  /** Drops per-address entries with no open connection and a full bucket. Runs on a timer; public for tests. */
  sweep(): void {
    const now = this.#now();
    const rate = this.#limits.connectsPerSecondPerIp;
    for (const [key, state] of this.#addresses) {
      if (state.open > 0) continue;
      if (rate > 0) refill(state, rate, now);
      if (rate <= 0 || state.tokens >= capacity(rate)) this.#addresses.delete(key);
    }
  }

  /** Stops the sweep timers. */
  close(): void {
    clearInterval(this.#sweep);
    for (const pool of this.#pools.values()) pool.close();
  }

  /** @internal for AdmissionTicket */
  settle(state: AddressState, wasPending: boolean): void {
    if (wasPending) this.#pending--;
    if (state.counted) state.open--;
  }

  /** @internal for AdmissionTicket */
  enteredOne(): void {
    this.#pending--;
  }
}

/**
 * A request rate as a token bucket of two small integers, refilled lazily (no timer):
 * tokens in thousandths and the time of the last refill since `compactTime`'s origin.
 * Small integers, not fractions and epoch milliseconds: on 64-bit Node any other number
 * in a field is a 16-byte boxed heap number, and there is a bucket per connection.
 */
abstract class TokenBucket {
  #milli: number;
  #at: number;

  protected constructor(rate: number, now: number) {
    this.#milli = smallInteger(Math.floor(capacity(rate) * 1000));
    this.#at = compactTime(now);
  }

  /** Requests per second; 0: no limit. */
  protected abstract get rate(): number;
  protected abstract now(): number;

  /** True when the bucket is full (or has no rate): it holds nothing a fresh one would not. */
  protected isFull(): boolean {
    const rate = this.rate;
    if (rate <= 0) return true;
    const full = Math.floor(capacity(rate) * 1000);
    return this.#milli + Math.floor((compactTime(this.now()) - this.#at) * rate) >= full;
  }

  /** Counts one request; false when the connection is over its rate. */
  request(): boolean {
    const rate = this.rate;
    if (rate <= 0) return true;
    const now = compactTime(this.now());
    const full = Math.floor(capacity(rate) * 1000);
    // ms × requests/s = thousandths of a request. The clock moves only when a whole
    // thousandth was gained, so slow rates still refill.
    const gained = Math.floor((now - this.#at) * rate);
    if (gained > 0 || this.#milli >= full) {
      this.#milli = smallInteger(Math.min(full, this.#milli + Math.max(0, gained)));
      this.#at = now;
    }
    if (this.#milli < 1000) return false;
    this.#milli = smallInteger(this.#milli - 1000);
    return true;
  }
}

/** A request bucket on its own (an HTTP keep-alive connection pushing messages). */
export class RequestBucket extends TokenBucket {
  readonly #rate: number;
  readonly #now: () => number;

  /** @param requestsPerSecond 0: no limit. */
  constructor(requestsPerSecond: number, now: () => number) {
    super(requestsPerSecond, now());
    this.#rate = requestsPerSecond;
    this.#now = now;
  }

  protected get rate(): number {
    return this.#rate;
  }

  protected now(): number {
    return this.#now();
  }
}

/**
 * One admitted connection's share of the bookkeeping: whether it still counts as
 * pending, and its request bucket — inherited, not a second object, with the rate and
 * clock read through its address's entry: this is one per connection, so every field
 * counts in the memory per connection (BENCHMARKS.md).
 *
 * An idle connection needs none of it: once it has entered and its bucket is full
 * again, `idle()` hands it its address's one shared SettledTicket, and its own ticket
 * goes (56 bytes a connection); `own()` gives it a fresh one at its next request.
 * The holder swaps in what these return, and releases what it holds once.
 */
export class AdmissionTicket extends TokenBucket {
  readonly #state: AddressState;
  #phase: TicketPhase;

  constructor(state: AddressState, phase: TicketPhase = TicketPhase.PENDING) {
    super(state.counted ? state.admission.limits.requestsPerSecond : 0, state.admission.now());
    this.#state = state;
    this.#phase = phase;
  }

  protected get rate(): number {
    return this.#state.counted ? this.#state.admission.limits.requestsPerSecond : 0;
  }

  protected now(): number {
    return this.#state.admission.now();
  }

  /**
   * The connection's remote address as one string shared by every connection from it,
   * when it has one (see AddressState); connectors keep this instead of their own copy.
   */
  get address(): string | undefined {
    return this.#state.address;
  }

  /** The connection entered (as a client or manager): it no longer counts as pending. */
  entered(): void {
    if (this.#phase !== TicketPhase.PENDING) return;
    this.#phase = TicketPhase.ENTERED;
    this.#state.admission.enteredOne();
  }

  /**
   * What to hold while the connection is idle: the address's shared ticket once this one
   * has entered and its bucket is full (it then holds nothing of the connection's own),
   * else this ticket.
   */
  idle(): AdmissionTicket {
    if (this.#phase !== TicketPhase.ENTERED || !this.isFull()) return this;
    return (this.#state.settled ??= new SettledTicket(this.#state));
  }

  /** A ticket of the connection's own, to count requests in: this one. */
  own(): AdmissionTicket {
    return this;
  }

  /** The connection closed. Idempotent. */
  release(): void {
    if (this.#phase === TicketPhase.RELEASED) return;
    const wasPending = this.#phase === TicketPhase.PENDING;
    this.#phase = TicketPhase.RELEASED;
    this.#state.admission.settle(this.#state, wasPending);
  }

  /** @internal for SettledTicket */
  protected get addressState(): AddressState {
    return this.#state;
  }
}

/**
 * The ticket every entered, idle connection from one address shares: entered, with a
 * full bucket. It counts no requests (`own()` first), and each holder releases it once.
 */
class SettledTicket extends AdmissionTicket {
  constructor(state: AddressState) {
    super(state, TicketPhase.ENTERED);
  }

  override entered(): void {}

  override idle(): AdmissionTicket {
    return this;
  }

  /**
   * A fresh ticket with a full bucket, entered: the connection's own from here on. With
   * no request rate to count, this one serves.
   */
  override own(): AdmissionTicket {
    return this.rate <= 0 ? this : new AdmissionTicket(this.addressState, TicketPhase.ENTERED);
  }

  override request(): boolean {
    if (this.rate <= 0) return true;
    throw new Error('a settled admission ticket counts no requests: take own() first');
  }

  /** Not idempotent: shared, so each holder calls it once (and drops the ticket). */
  override release(): void {
    this.addressState.admission.settle(this.addressState, false);
  }
}

/**
 * A connection holding its ticket. A holder keeps whatever the ticket hands it (its own,
 * or its address's shared one) and releases what it holds once: the functions below are
 * the only ways connections use their tickets, so that rule lives here.
 */
export interface AdmissionHolder {
  admission: AdmissionTicket | undefined;
}

/** Counts one request; false when over the rate. A holder of the shared ticket takes one of its own first. */
export function countRequest(holder: AdmissionHolder): boolean {
  const ticket = holder.admission;
  if (ticket === undefined) return true;
  const own = ticket.own();
  holder.admission = own;
  return own.request();
}

/** The connection entered: no longer pending, and it gives up its own ticket if it can. */
export function admissionEntered(holder: AdmissionHolder): void {
  const ticket = holder.admission;
  if (ticket === undefined) return;
  ticket.entered();
  holder.admission = ticket.idle();
}

/** An idle moment (a heartbeat, PINGREQ, keep-alive ping): an entered connection gives up its own ticket if it can. */
export function admissionIdle(holder: AdmissionHolder): void {
  if (holder.admission !== undefined) holder.admission = holder.admission.idle();
}

/** The connection closed: its ticket is released, once. */
export function releaseAdmission(holder: AdmissionHolder): void {
  const ticket = holder.admission;
  holder.admission = undefined;
  ticket?.release();
}

const TicketPhase = { PENDING: 0, ENTERED: 1, RELEASED: 2 } as const;
type TicketPhase = (typeof TicketPhase)[keyof typeof TicketPhase];

/** A bucket holds two seconds of its rate, and always at least one token (slow rates still let one through). */
function capacity(rate: number): number {
  return Math.max(1, rate * BURST_SECONDS);
}

function refill(state: AddressState, rate: number, now: number): void {
  state.tokens = Math.min(capacity(rate), state.tokens + ((now - state.at) / 1000) * rate);
  state.at = now;
}

/**
 * The key an address is counted under: IPv4 (also IPv4-mapped IPv6) as is, IPv6 by
 * its /64, the smallest block one subscriber usually gets (RFC 6177), so that one host
 * cannot slip past per-address limits by using many of its addresses.
 */
export function addressKey(address: string): string {
  const a = address.trim().toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) return mapped[1]!;
  if (!a.includes(':')) return a;
  const zoneless = a.split('%')[0]!;
  const [head = '', tail] = zoneless.split('::') as [string, string | undefined];
  const headGroups = head === '' ? [] : head.split(':');
  let groups = headGroups;
  if (tail !== undefined) {
    const tailGroups = tail === '' ? [] : tail.split(':');
    groups = [...headGroups, ...Array<string>(Math.max(0, 8 - headGroups.length - tailGroups.length)).fill('0'), ...tailGroups];
  }
  // ::1 and other addresses whose first 64 bits are zero are single hosts (loopback): keep them whole.
  const prefix = groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, ''));
  if (prefix.every((g) => g === '0')) return zoneless;
  return `${prefix.join(':')}::/64`;
}

/** HTTP status of a refusal: 429 when the client should slow down, 503 when the server is full. */
export const HTTP_STATUS_BY_LIMIT = {
  LIMIT_CONNECTIONS_PER_IP: 429,
  LIMIT_CONNECT_RATE: 429,
  LIMIT_PENDING: 503,
  LIMIT_REQUEST_RATE: 429,
  LIMIT_DESCRIPTORS: 503,
} as const satisfies Record<LimitCode, number>;

/** A refusal as an HTTP answer: status, headers (with Retry-After) and a `{code, message}` body. */
export function httpRefusal(err: LimitError): { status: number; headers: Record<string, string>; body: string } {
  const body = JSON.stringify({ code: err.code, message: err.message });
  return {
    status: HTTP_STATUS_BY_LIMIT[err.code],
    headers: {
      'content-type': 'application/json; charset=utf-8',
      'content-length': String(Buffer.byteLength(body)),
      'retry-after': String(err.retryAfterSeconds ?? 1),
    },
    body,
  };
}

/** Refuses a WebSocket upgrade (RFC 6455 §4.2.2: any status but 101) with the limit's HTTP answer, then closes. */
export function refuseUpgrade(socket: Duplex, err: LimitError): void {
  const { status, headers, body } = httpRefusal(err);
  const text = status === 429 ? 'Too Many Requests' : 'Service Unavailable';
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.once('finish', () => socket.destroy());
  socket.on('error', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${text}\r\nconnection: close\r\n${lines}\r\n${body}`);
}

/** Where a socket carries its admission ticket (a symbol property: no map entry). */
export const TICKET = Symbol('admission ticket');
export interface TicketHolder {
  [TICKET]?: AdmissionTicket | undefined;
}

/**
 * Releases the ticket when `emitter` emits `event` (its close): the ticket rides on the
 * emitter and the listener is one function shared by every connection — a closure or
 * `once` wrapper here costs ~250 bytes for each connection's whole life.
 */
export function releaseTicketOn(emitter: NodeJS.EventEmitter, event: string, ticket: AdmissionTicket): void {
  (emitter as TicketHolder)[TICKET] = ticket;
  emitter.on(event, releaseHeldTicket);
}

/** Undoes `releaseTicketOn`: the caller has handed the ticket to something that releases it. */
export function stopReleasingTicketOn(emitter: NodeJS.EventEmitter, event: string): void {
  emitter.off(event, releaseHeldTicket);
  (emitter as TicketHolder)[TICKET] = undefined;
}

function releaseHeldTicket(this: TicketHolder): void {
  this[TICKET]?.release();
}
