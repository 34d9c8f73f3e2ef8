import { setTimeout as delay } from 'node:timers/promises';
import { safeEqual } from '../safe-equal.js';
import type { Logger } from '../log.js';
import { asMessageId, type ApiKey, type ClientId, type MessageId } from '../ids.js';
import type { App, Storage, StoredMessage, Target } from '../store/store.js';
import type { Bus, BusEvent } from '../bus/bus.js';
import type { Presence, PresenceEntry } from '../presence/presence.js';
import { CLOSE_REASONS, SKIP_REASONS, UnfitMessageError, type Connection, type ConnectorName, type PushEncoder, type SkipReason } from './connection.js';
import { AppRoom, ClientMember, ManagerMember, MAX_PENDING_DURING_REPLAY, type Member, type PushTurn } from './members.js';
import { ReceiptBuffer } from './receipt-buffer.js';
import { TokenError, verifyClientToken } from './client-tokens.js';
import { NO_OBSERVERS, type Observers } from './observer.js';
import { PUSH_INVALID, checkPush } from './push-rules.js';

export const HUB_ERROR_CODES = [
  'APP_UNKNOWN',
  'AUTH_FAILED',
  'BAD_REQUEST',
  'NOT_ENTERED',
  'FORBIDDEN',
  'LIMIT_APP_CONNECTIONS',
  'LIMIT_LOGIN_RATE',
  // A push some connector could not carry (push-rules.ts): refused before it is stored.
  PUSH_INVALID,
] as const;
export type HubErrorCode = (typeof HUB_ERROR_CODES)[number];

/** A refusal the caller answers with (a Pomelo `{code: 500, msg}`, an HTTP 4xx, …). */
export class HubError extends Error {
  override readonly name = 'HubError';
  constructor(
    readonly code: HubErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type Role = 'client' | 'manager';

/** A client online on this node (or, from `listClients`, anywhere in the cluster). */
export interface OnlineClient {
  readonly clientId: ClientId;
  readonly connector: ConnectorName;
  /** Milliseconds since the epoch. */
  readonly connectedAt: number;
  readonly remoteAddress: string;
  readonly tags: readonly string[];
  /** The node holding the connection. */
  readonly node: string;
}

/** What a hub needs to be one node of a cluster. */
export interface HubCluster {
  /** This node's id, unique in the cluster (the same as the presence's). */
  readonly nodeId: string;
  /** Who is online on which node. */
  readonly presence: Presence;
  /**
   * How often to look for dead nodes whose clients managers here still list, ms: their
   * entries go (with an onLeave) once the presence no longer lists the node.
   * @default 2000
   */
  readonly nodeCheckMs?: number;
}

/** How a client enters its app. */
export interface ClientEnter {
  readonly apikey: string;
  readonly clientId: string;
  /**
   * Where delivery starts (docs/delivery.md):
   * - a message id: everything after it that targets the client (the client's own position);
   * - `'stored'` (default): after the client's last acked id, so what was pushed while it
   *   was offline arrives now (store and forward); a client never seen starts at the newest;
   * - `'latest'`: only messages published from now on; the stored position is kept;
   * - `'fresh'`: a new session (MQTT clean session / clean start): only messages published
   *   from now on, and the stored position moves to now as well, so a later `'stored'`
   *   resume does not get what was pushed before this enter.
   */
  readonly resumeAfter?: number | 'stored' | 'latest' | 'fresh';
  /** Tags to subscribe at once (pushes can target tags). */
  readonly tags?: readonly string[];
  /** A signed client token, checked when the app requires one. */
  readonly token?: string;
}

export interface EnterResult {
  /** Delivery starts after this id. */
  readonly resumedAfter: MessageId;
  /** Settles when the replay from the store has caught up with live delivery (how many it sent). */
  readonly replayed: Promise<number>;
}

export interface PublishRequest {
  readonly apikey: ApiKey;
  readonly target: Target;
  readonly event: string;
  readonly data: unknown;
  /** Seconds; the app's default when absent. */
  readonly ttlSeconds?: number;
}

export interface PublishResult {
  readonly message: StoredMessage;
  /** Clients this message is addressed to: the named ones, or those online for `all` and tags. */
  readonly targeted: number;
}

interface AppOrder {
  next: number;
  readonly held: Map<number, StoredMessage>;
  filling: boolean;
}

/** How long a message that arrived ahead of a gap waits for the gap to fill, ms. */
const GAP_WAIT_MS = 100;

/** Counters since this node started. */
export interface AppStats {
  /** Clients online on this node. */
  online: number;
  /** Messages accepted (stored) through this node. */
  accepted: number;
  /** Message writes to client connections on this node. */
  delivered: number;
  /** Acks received on this node. */
  acked: number;
}

export interface HubOptions {
  readonly storage: Storage;
  readonly bus: Bus;
  readonly logger: Logger;
  /** Per-connection cap on bytes waiting to be sent; past it the connection is closed. */
  readonly maxBufferedBytes: number;
  readonly now?: () => number;
  /** How often receipts and client positions are written, ms. @default 250 */
  readonly receiptFlushMs?: number;
  /** How often the positions of connected clients are written, ms. @default 2000 */
  readonly positionFlushMs?: number;
  /** Absent: a single node (what this hub sees is all there is). */
  readonly cluster?: HubCluster;
  /** Client connections one app may hold on this node; 0 or absent: no limit (docs/security.md). */
  readonly maxConnectionsPerApp?: number;
  /** Tags one client may hold, 1 to 256. @default MAX_TAGS_PER_CLIENT */
  readonly maxTagsPerClient?: number;
  /** Counts failed admin-password checks of managers; the console login shares it (src/api/sessions.ts). */
  readonly loginGate?: LoginGate;
  /** Metrics and connection logs (src/hub/observer.ts); connectors report through `hub.observer`. @default no-op */
  readonly observer?: Observers;
}

/** Failed admin logins by source address and username (src/api/sessions.ts LoginLimiter). */
export interface LoginGate {
  /** Seconds until this address and username may try again; 0: now. */
  retryAfter(address: string, username: string): number;
  failed(address: string, username: string): void;
  succeeded(address: string, username: string): void;
}

export const MAX_CLIENT_ID_LENGTH = 256;
export const MAX_TAG_LENGTH = 128;
export const MAX_TAGS_PER_CLIENT = 256;
/**
 * What a write did: nothing (already had it, closed, waiting for the replay, or the
 * connection could not carry it), a repeat to this client, or its first delivery (receipts).
 */
const NOT_WRITTEN = 0;
const AGAIN = 1;
const FIRST = 2;
type WriteOutcome = typeof NOT_WRITTEN | typeof AGAIN | typeof FIRST;

/** A message one encoder could not encode: every connection with that encoder skips it. */
class Unfit {
  constructor(readonly reason: SkipReason) {}
}

/** Messages read from the store per replay step. */
const REPLAY_BATCH = 500;
/** A replaying connection that has not drained below a quarter of its cap in this long is slow. */
const REPLAY_DRAIN_TIMEOUT_MS = 30_000;

/**
 * The heart of a node: who is connected, presence events to managers, and the path
 * of every message from publish to the sockets, with acks, resume and receipts.
 */
export class Hub {
  readonly #storage: Storage;
  readonly #bus: Bus;
  readonly #log: Logger;
  readonly #maxBuffered: number;
  readonly #maxPerApp: number;
  readonly #maxTags: number;
  readonly #loginGate: LoginGate | undefined;
  readonly #now: () => number;
  readonly #rooms = new Map<ApiKey, AppRoom>();
  /** Members the hub counts, each also on its connection (`Connection.hubMember`) and in its room. */
  #memberCount = 0;
  readonly #receipts: ReceiptBuffer;
  /** Members whose newest messages were skipped (`skipTail`): the last id written before them. */
  readonly #skipTails = new WeakMap<ClientMember, number>();
  /** Per app: the next message id expected from the bus, and what arrived early. */
  readonly #order = new Map<ApiKey, AppOrder>();
  /** Cumulative counters per app on this node, for the console's charts. */
  readonly #stats = new Map<ApiKey, AppStats>();
  readonly #cluster: HubCluster | undefined;
  readonly #nodeId: string;
  /**
   * Clients on other nodes, per app, kept only for apps with managers here (their user
   * lists and onAdd/onLeave): loaded from the presence when the first manager enters,
   * then kept current by presence events on the bus. Never holds a client online here.
   */
  readonly #remote = new Map<ApiKey, Map<ClientId, PresenceEntry>>();
  /** Members closed because their client entered on another node: no leave to announce. */
  readonly #replacedRemotely = new WeakSet<ClientMember>();
  /** Members whose own "entered" event has come back on the bus (see #remotePresence). */
  readonly #announcedOnBus = new WeakSet<ClientMember>();
  #nodeCheck: NodeJS.Timeout | undefined;
  /** Where the hub and every connector report lifecycle, refusals and delivery. */
  readonly observer: Observers;

  constructor(opts: HubOptions) {
    this.observer = opts.observer ?? NO_OBSERVERS;
    this.#storage = opts.storage;
    this.#bus = opts.bus;
    this.#log = opts.logger;
    this.#maxBuffered = opts.maxBufferedBytes;
    this.#maxPerApp = opts.maxConnectionsPerApp ?? 0;
    this.#maxTags = opts.maxTagsPerClient ?? MAX_TAGS_PER_CLIENT;
    this.#loginGate = opts.loginGate;
    this.#now = opts.now ?? Date.now;
    this.#receipts = new ReceiptBuffer(opts.storage, opts.logger, this.#now, opts.receiptFlushMs, opts.positionFlushMs);
    this.#cluster = opts.cluster;
    this.#nodeId = opts.cluster?.nodeId ?? 'local';
    this.#bus.subscribe((event) => this.#onBus(event));
    this.#bus.onResubscribed(() => this.#resync());
    if (this.#cluster) {
      this.#nodeCheck = setInterval(() => void this.#dropDeadNodes(), this.#cluster.nodeCheckMs ?? 2000);
      this.#nodeCheck.unref();
    }
  }

  /** The app, or a HubError APP_UNKNOWN. */
  async app(apikey: string): Promise<App> {
    const app = apikey === '' ? undefined : await this.#storage.apps.getApp(apikey as ApiKey);
    if (!app) throw new HubError('APP_UNKNOWN', `unknown apikey "${truncate(apikey)}"`);
    return app;
  }

  /**
   * A client joins its app and delivery starts: first what the store holds for it
   * after its position (in order), then live messages — no gap, no duplicate. A
   * connection already holding this clientId is replaced: closed with reason
   * "replaced", and managers see no leave.
   */
  async enterClient(conn: Connection, req: ClientEnter): Promise<EnterResult> {
    const { apikey, clientId } = req;
    if (clientId.length === 0 || clientId.length > MAX_CLIENT_ID_LENGTH) {
      throw new HubError('BAD_REQUEST', `clientId must be 1 to ${MAX_CLIENT_ID_LENGTH} characters`);
    }
    const tags = checkTags(req.tags ?? []);
    if (tags.length > this.#maxTags) throw new HubError('BAD_REQUEST', `a client has at most ${this.#maxTags} tags`);
    const resume = req.resumeAfter ?? 'stored';
    if (typeof resume === 'number' && !(Number.isSafeInteger(resume) && resume >= 0)) {
      throw new HubError('BAD_REQUEST', 'the last id must be a whole number ≥ 0');
    }
    const app = await this.app(apikey);
    if (app.requireClientToken) {
      try {
        const previousSecret = (): Promise<string | undefined> => this.#storage.apps.previousSecret(app.apikey, this.#now());
        await verifyClientToken({ token: req.token, secret: app.secret, apikey: app.apikey, clientId, now: this.#now(), previousSecret });
      } catch (err) {
        if (err instanceof TokenError) throw new HubError('AUTH_FAILED', err.message);
        throw err;
      }
    }
    const existing = conn.hubMember;
    if (existing) {
      if (existing.role === 'client' && existing.apikey === app.apikey && existing.clientId === clientId) {
        return { resumedAfter: asMessageId(existing.lastSentId), replayed: Promise.resolve(0) };
      }
      throw new HubError('BAD_REQUEST', 'this connection has already entered');
    }
    const id = clientId as ClientId;
    const lastId = await this.#storage.messages.lastId(app.apikey);
    const now = this.#now();
    const state = await this.#storage.clients.touch(app.apikey, id, { startAfter: lastId, addTags: tags, now });
    // The connection may have closed, or entered, while we awaited the store.
    if (conn.closed) return { resumedAfter: lastId, replayed: Promise.resolve(0) };
    const raced = conn.hubMember;
    if (raced) {
      if (raced.role === 'client' && raced.apikey === app.apikey && raced.clientId === clientId) {
        return { resumedAfter: asMessageId(raced.lastSentId), replayed: Promise.resolve(0) };
      }
      throw new HubError('BAD_REQUEST', 'this connection has already entered');
    }

    const room = this.#room(app.apikey);
    // The first client of the app here: bus delivery is in order from the store's newest
    // id on (what is older, the replay reads). Starting it at whatever id happens to come
    // first would let an older message, still on its way from another node, arrive
    // "late" and be skipped by members that already wrote a newer one.
    if (!this.#order.has(app.apikey)) this.#order.set(app.apikey, { next: lastId + 1, held: new Map(), filling: false });
    const previous = room.clients.get(id);
    // A client replacing its own connection is not a new one; anyone else waits for room.
    if (!previous && this.#maxPerApp > 0 && room.clients.size >= this.#maxPerApp) {
      throw new HubError('LIMIT_APP_CONNECTIONS', `this app has its maximum of ${this.#maxPerApp} client connections on this server`);
    }
    // The same client on another connection of this node: its positions are newer than the store's.
    let ackedId = Math.max(state.lastAckedId, previous?.ackedId ?? 0, this.#receipts.pendingAck(app.apikey, id) ?? 0);
    let after: number;
    if (resume === 'latest') after = lastId;
    else if (resume === 'fresh') {
      // The old position is discarded, not only skipped: saved below, so a later
      // 'stored' enter (here or on another node) starts from here too.
      after = lastId;
      ackedId = Math.max(ackedId, lastId);
    } else if (resume === 'stored') after = ackedId;
    else after = Math.min(resume, lastId); // a position past the newest id cannot be real
    if (previous) {
      this.#forget(previous);
      previous.conn.close(CLOSE_REASONS.replaced);
    }
    const member = new ClientMember(conn, room.apikey, id, this.#now(), {
      after,
      lastDeliveredId: Math.max(state.lastDeliveredId, previous?.lastDeliveredId ?? 0, this.#receipts.pendingDelivered(app.apikey, id) ?? 0),
      ackedId,
      // Starting at the newest id, the client never gets what came before: its acks
      // must not count those messages.
      ackCounted: resume === 'latest' ? after : ackedId,
      tags: state.tags,
    });
    // A client the store knew before, resumed from its position. Touch gives a new client
    // firstSeenAt = now, so one first seen in this same millisecond counts as new: at worst
    // MQTT's "session present" says 0 where 1 was due; delivery is the same either way.
    member.resumed = resume === 'stored' && (previous !== undefined || state.firstSeenAt !== now);
    if (resume === 'fresh' && ackedId > state.lastAckedId) this.#receipts.positionReset(member);
    conn.hubMember = member;
    this.#memberCount++;
    this.observer.entered(conn, member);
    room.addClient(member);
    this.#remote.get(app.apikey)?.delete(id);
    this.#log.debug({ conn: conn.id, app: app.apikey, clientId, connector: conn.connector, after, replaced: Boolean(previous) }, 'client entered');
    this.#tellManagers(room, 'onAdd', () => ({ msg: 'add ok', users: this.#userList(app.apikey, room) }));
    if (this.#cluster) this.#announce(member, 'entered');
    // Nothing to replay when the client starts at the newest id and no newer message has
    // reached this node's members yet: what comes next arrives on the bus, and the member
    // is registered now. Saves a store read per enter (a connect storm's biggest cost).
    const delivered = (this.#order.get(app.apikey)?.next ?? Infinity) - 1;
    if (after >= lastId && delivered <= after && member.lastSentId <= member.ackedId) {
      member.replaying = false;
      return { resumedAfter: asMessageId(after), replayed: Promise.resolve(0) };
    }
    return { resumedAfter: asMessageId(after), replayed: this.#replay(member) };
  }

  /**
   * A manager joins its app: authenticated by the app's secret, or by an admin's
   * username and password. Returns the clients online.
   */
  async enterManager(conn: Connection, apikey: string, password: string | undefined, userId: string | undefined): Promise<readonly ClientId[]> {
    const app = await this.app(apikey);
    const ok =
      password !== undefined &&
      (safeEqual(password, app.secret) ||
        (await this.#isPreviousSecret(app, password)) ||
        (userId !== undefined && userId !== '' && (await this.#adminLogin(conn, userId, password))));
    if (!ok) throw new HubError('AUTH_FAILED', 'wrong app secret or admin credentials');
    const existing = conn.hubMember;
    if (existing && !(existing.role === 'manager' && existing.apikey === app.apikey)) {
      throw new HubError('BAD_REQUEST', 'this connection has already entered');
    }
    if (conn.closed) return [];
    if (this.#cluster && !this.#remote.has(app.apikey)) await this.#loadRemote(app.apikey);
    if (conn.closed) return [];
    const room = this.#room(app.apikey);
    if (!existing) {
      const member = new ManagerMember(conn, app.apikey, this.#now());
      conn.hubMember = member;
      this.#memberCount++;
      this.observer.entered(conn, member);
      room.managers.add(member);
      this.#log.debug({ conn: conn.id, app: app.apikey, connector: conn.connector }, 'manager entered');
    }
    return this.#userList(app.apikey, room);
  }

  /** The secret the app's last rotation replaced, while its grace period lasts (docs/security.md). */
  async #isPreviousSecret(app: App, given: string): Promise<boolean> {
    const previous = await this.#storage.apps.previousSecret(app.apikey, this.#now());
    return previous !== undefined && safeEqual(given, previous);
  }

  /** An admin's password; failures are counted per address and username, past the limit: LIMIT_LOGIN_RATE. */
  async #adminLogin(conn: Connection, username: string, password: string): Promise<boolean> {
    const gate = this.#loginGate;
    if (!gate) return this.#storage.admins.verifyAdmin(username, password);
    const wait = gate.retryAfter(conn.remoteAddress, username);
    if (wait > 0) throw new HubError('LIMIT_LOGIN_RATE', `too many failed logins; retry in ${wait} s`);
    const ok = await this.#storage.admins.verifyAdmin(username, password);
    if (ok) gate.succeeded(conn.remoteAddress, username);
    else gate.failed(conn.remoteAddress, username);
    return ok;
  }

  /** The role and app a connection entered with, if it has. */
  identity(conn: Connection): { readonly apikey: ApiKey; readonly role: Role; readonly clientId: ClientId | undefined } | undefined {
    return conn.hubMember;
  }

  /**
   * The client processed every message up to `id` (acks are cumulative: delivery is in
   * id order). Stale ids are ignored; an id above what was sent is clamped to it, so a
   * client cannot ack what it never received.
   */
  ack(conn: Connection, id: number): void {
    const m = conn.hubMember;
    if (!m || m.role !== 'client' || !Number.isFinite(id)) return;
    let upTo = Math.min(id, m.lastSentId);
    // The newest messages sent were skipped, so the client never saw them: its ack of the
    // last one it did get covers them too (a skip never holds a position back).
    if (m.skipTail && upTo >= (this.#skipTails.get(m) ?? Infinity)) upTo = m.lastSentId;
    if (upTo <= m.ackedId) return;
    m.ackedId = upTo;
    this.#statsOf(m.apikey).acked++;
    this.observer.acked(m.apikey);
    // O(1): the receipts count the range up to ackedId in the store, at the next flush.
    this.#receipts.acked(m);
  }

  /** Adds tags to an entered client (kept across its connections). */
  async subscribeTags(conn: Connection, tags: readonly string[]): Promise<void> {
    const m = this.#clientMember(conn, 'subscribing');
    const add = checkTags(tags).filter((t) => !m.tags.has(t));
    if (m.tags.size + add.length > this.#maxTags) throw new HubError('BAD_REQUEST', `a client has at most ${this.#maxTags} tags`);
    if (add.length === 0) return;
    const room = this.#room(m.apikey);
    this.#receipts.tagsChanging(m, this.#chosenUpTo(m));
    for (const t of add) {
      m.addTag(t);
      room.indexTag(m, t);
    }
    await this.#storage.clients.setTags(m.apikey, m.clientId, [...m.tags]);
    if (this.#cluster) this.#setPresence(m);
  }

  /** Removes tags from an entered client. */
  async unsubscribeTags(conn: Connection, tags: readonly string[]): Promise<void> {
    const m = this.#clientMember(conn, 'unsubscribing');
    const room = this.#room(m.apikey);
    let changed = false;
    for (const t of checkTags(tags)) {
      if (!m.tags.has(t)) continue;
      if (!changed) this.#receipts.tagsChanging(m, this.#chosenUpTo(m));
      m.deleteTag(t);
      room.unindexTag(m, t);
      changed = true;
    }
    if (!changed) return;
    await this.#storage.clients.setTags(m.apikey, m.clientId, [...m.tags]);
    if (this.#cluster) this.#setPresence(m);
  }

  /**
   * Up to which id the member's messages were chosen by its current tags: what this node
   * delivered live so far, or, during a replay (which reads with the tags of each batch),
   * what it sent.
   */
  #chosenUpTo(m: ClientMember): number {
    if (m.replaying) return m.lastSentId;
    return Math.max(m.lastSentId, (this.#order.get(m.apikey)?.next ?? 1) - 1);
  }

  /** A connector calls this once when a connection closes, for whatever reason. */
  leave(conn: Connection): void {
    const member = conn.hubMember;
    if (!member) return;
    const room = this.#forget(member);
    if (room && member.role === 'client') {
      this.#log.debug({ conn: conn.id, app: member.apikey, clientId: member.clientId }, 'client left');
      // Not when replaced: the client is still online on its new connection, here or on
      // another node.
      if (room.clients.get(member.clientId) === undefined && !this.#replacedRemotely.has(member)) {
        this.#tellManagers(room, 'onLeave', () => ({ clientId: member.clientId, users: this.#userList(member.apikey, room) }));
        if (this.#cluster) this.#announce(member, 'left');
      }
    }
    if (room && room.managers.size === 0) this.#remote.delete(member.apikey);
    if (room?.empty) this.#rooms.delete(member.apikey);
  }

  /**
   * Stores the message, then hands it to the bus for delivery on every node. When the
   * promise resolves the message is durable.
   */
  async publish(req: PublishRequest): Promise<PublishResult> {
    return this.#publish(req, undefined);
  }

  /**
   * `turn`: the manager connection's place in its queue of pushes (publishAsManager);
   * the store is called only when the pushes that connection sent before have been.
   */
  async #publish(req: PublishRequest, turn: PushTurn | undefined): Promise<PublishResult> {
    let message: StoredMessage;
    let targeted: number;
    try {
      // The door every way in goes through: a push some connector cannot carry is
      // refused here, before it is stored (push-rules.ts, docs/api.md).
      const bad = checkPush(req);
      if (bad) throw new HubError(PUSH_INVALID, bad.message);
      if (turn) await turn.previous;
      const app = await this.app(req.apikey);
      // The tags were checked with the rest of the push (checkPush); only repeats go.
      const tags = [...new Set(req.target.tags)];
      const ttlSeconds = req.ttlSeconds ?? app.messageTtlSeconds;
      targeted = await this.#countTargets(app.apikey, req.target);
      const appending = this.#storage.messages.append({
        apikey: app.apikey,
        targeted,
        target: { all: req.target.all, clientIds: [...new Set(req.target.clientIds)], tags },
        event: req.event,
        data: req.data,
        ttlSeconds,
      });
      // Both stores assign ids in the order append is called (SQLite at once, Redis in
      // the order its scripts are sent on the one connection): the connection's next
      // push may go now, without waiting for this one to be durable.
      turn?.done();
      message = await appending;
    } finally {
      turn?.done();
    }
    this.#statsOf(message.apikey).accepted++;
    this.observer.accepted(message.apikey);
    // Stored: from here on the caller hears "accepted", whatever happens next. A failure
    // to hand the message to the bus, or in the fan-out behind it (the local bus delivers
    // synchronously), is logged; clients get the message from the store when they resume.
    try {
      await this.#bus.publish({ kind: 'message', msg: message });
    } catch (err) {
      this.#log.error({ err, app: message.apikey, id: message.id }, 'a stored message could not be handed to the bus; clients will read it from the store');
    }
    return { message, targeted };
  }

  /**
   * Publishes on behalf of a manager connection, which may push only to its own app.
   * The pushes of one connection are stored in the order it made them (docs/connectors.md
   * "Order"), whatever each one awaits on the way (an online count for a broadcast, the
   * app): every connector calls this in the order the connection's requests arrive.
   */
  async publishAsManager(conn: Connection, req: PublishRequest): Promise<PublishResult> {
    const member = conn.hubMember;
    if (!member) throw new HubError('NOT_ENTERED', 'enter as a manager (role "server") before pushing');
    if (member.role !== 'manager') throw new HubError('FORBIDDEN', 'only a manager (role "server") may push');
    if (member.apikey !== req.apikey) throw new HubError('FORBIDDEN', 'a manager may push only to its own app');
    return this.#publish(req, member.nextPushTurn());
  }

  /** The app's clients online on this node. */
  onlineClients(apikey: ApiKey): OnlineClient[] {
    const room = this.#rooms.get(apikey);
    if (!room) return [];
    const out: OnlineClient[] = [];
    for (const m of room.clients.values()) {
      out.push({
        clientId: m.clientId,
        connector: m.conn.connector,
        connectedAt: m.enteredAt,
        remoteAddress: m.conn.remoteAddress,
        tags: [...m.tags],
        node: this.#nodeId,
      });
    }
    return out;
  }

  /** The app's clients online anywhere: this node's, plus the other nodes' from the presence. */
  async listClients(apikey: ApiKey): Promise<OnlineClient[]> {
    const local = this.onlineClients(apikey);
    if (!this.#cluster) return local;
    const here = new Set(local.map((c) => c.clientId));
    for (const e of await this.#cluster.presence.list(apikey)) {
      if (e.node === this.#nodeId || here.has(e.clientId)) continue;
      local.push({
        clientId: e.clientId,
        connector: e.connector,
        connectedAt: e.connectedAt,
        remoteAddress: e.remoteAddress ?? '',
        tags: e.tags ?? [],
        node: e.node,
      });
    }
    return local;
  }

  /** How many of the app's clients are online anywhere. */
  async onlineCount(apikey: ApiKey): Promise<number> {
    if (!this.#cluster) return this.#rooms.get(apikey)?.clients.size ?? 0;
    return this.#cluster.presence.count(apikey);
  }

  /** Closes every connection of the app (it was deleted), on every node. */
  dropApp(apikey: ApiKey, reason: string = CLOSE_REASONS.appDeleted): void {
    this.#dropLocal(apikey, reason);
    if (this.#cluster) {
      this.#background(this.#bus.publish({ kind: 'kick', apikey, exceptNode: this.#nodeId, reason }), 'could not tell the other nodes to drop an app');
    }
  }

  #dropLocal(apikey: ApiKey, reason: string): void {
    const room = this.#rooms.get(apikey);
    if (!room) return;
    const conns = [...[...room.managers].map((m) => m.conn), ...[...room.clients.values()].map((m) => m.conn)];
    for (const conn of conns) conn.close(reason);
  }

  stats(apikey: ApiKey): AppStats {
    const s = this.#statsOf(apikey);
    return { ...s, online: this.#rooms.get(apikey)?.clients.size ?? 0 };
  }

  #statsOf(apikey: ApiKey): AppStats {
    let s = this.#stats.get(apikey);
    if (!s) {
      s = { online: 0, accepted: 0, delivered: 0, acked: 0 };
      this.#stats.set(apikey, s);
    }
    return s;
  }

  get connectionCount(): number {
    return this.#memberCount;
  }

  /** Writes pending receipts and positions now (tests, shutdown). */
  flush(): Promise<void> {
    return this.#receipts.flush();
  }

  /** Stops the receipt timer and writes what is pending. */
  async close(): Promise<void> {
    clearInterval(this.#nodeCheck);
    for (const m of this.#clientMembers()) this.#receipts.left(m);
    await this.#receipts.close();
  }

  #onBus(event: BusEvent): void {
    switch (event.kind) {
      case 'message':
        this.#inOrder(event.msg);
        return;
      case 'presence':
        if (event.node !== this.#nodeId) this.#remotePresence(event);
        else if (event.change === 'entered') {
          const local = this.#rooms.get(event.apikey)?.clients.get(event.clientId);
          if (local?.enteredAt === event.at) this.#announcedOnBus.add(local);
        }
        return;
      case 'kick':
        if (event.exceptNode === this.#nodeId) return;
        if (event.clientId === undefined) this.#dropLocal(event.apikey, event.reason);
        else this.#rooms.get(event.apikey)?.clients.get(event.clientId)?.conn.close(event.reason);
        return;
    }
  }

  /**
   * A client entered or left on another node. Entered: if it is online here too, the
   * older of the two connections is replaced. "Older" is the order of the two entered
   * events on the bus, which every node sees the same (one Redis channel), not clocks:
   * if this node has already seen its own member's event, that member is the older one
   * and closes; if not, the other node will see ours after its own and close its member.
   * Managers here learn of it.
   */
  #remotePresence(event: Extract<BusEvent, { kind: 'presence' }>): void {
    const room = this.#rooms.get(event.apikey);
    const remote = this.#remote.get(event.apikey);
    if (event.change === 'entered') {
      const local = room?.clients.get(event.clientId);
      if (local) {
        if (!this.#announcedOnBus.has(local)) return; // ours is newer: the other node closes its own
        this.#replacedRemotely.add(local);
        this.#log.debug({ conn: local.conn.id, app: event.apikey, clientId: event.clientId, node: event.node }, 'client entered on another node');
        local.conn.close(CLOSE_REASONS.replaced);
      }
      if (!remote || !room) return;
      remote.set(event.clientId, { clientId: event.clientId, node: event.node, connector: event.connector, connectedAt: event.at });
      this.#tellManagers(room, 'onAdd', () => ({ msg: 'add ok', users: this.#userList(event.apikey, room) }));
      return;
    }
    // Left: only the entry of that node (a late leave never erases a newer entry elsewhere).
    if (!remote || !room || remote.get(event.clientId)?.node !== event.node) return;
    remote.delete(event.clientId);
    this.#tellManagers(room, 'onLeave', () => ({ clientId: event.clientId, users: this.#userList(event.apikey, room) }));
  }

  /** Tells the cluster a client entered or left here: the presence entry and one bus event. */
  #announce(m: ClientMember, change: 'entered' | 'left'): void {
    const cluster = this.#cluster;
    if (!cluster) return;
    if (change === 'entered') this.#setPresence(m);
    else this.#background(cluster.presence.remove(m.apikey, m.clientId, this.#nodeId), 'could not remove a presence entry');
    const event: BusEvent = { kind: 'presence', change, apikey: m.apikey, clientId: m.clientId, node: this.#nodeId, connector: m.conn.connector, at: m.enteredAt };
    this.#background(this.#bus.publish(event), 'could not announce a presence change');
  }

  #setPresence(m: ClientMember): void {
    if (!this.#cluster || m.conn.hubMember !== m) return;
    const entry: PresenceEntry = {
      clientId: m.clientId,
      node: this.#nodeId,
      connector: m.conn.connector,
      connectedAt: m.enteredAt,
      remoteAddress: m.conn.remoteAddress,
      tags: [...m.tags],
    };
    this.#background(this.#cluster.presence.set(m.apikey, entry), 'could not write a presence entry');
  }

  /** The clients of other nodes, for this node's managers of the app. */
  async #loadRemote(apikey: ApiKey): Promise<void> {
    if (!this.#cluster) return;
    // Registered first, so presence events that arrive during the read are not lost.
    const remote = new Map<ClientId, PresenceEntry>();
    this.#remote.set(apikey, remote);
    try {
      const entries = await this.#cluster.presence.list(apikey);
      const room = this.#rooms.get(apikey);
      for (const e of entries) {
        if (e.node === this.#nodeId || room?.clients.has(e.clientId) || remote.has(e.clientId)) continue;
        remote.set(e.clientId, e);
      }
    } catch (err) {
      this.#log.warn({ err, app: apikey }, 'could not read the cluster presence; managers see this node only for now');
    }
  }

  /** Every client id online for the app, this node's and (with managers here) the other nodes'. */
  #userList(apikey: ApiKey, room: AppRoom): ClientId[] {
    const remote = this.#remote.get(apikey);
    if (!remote || remote.size === 0) return room.userList();
    const users = room.userList();
    for (const id of remote.keys()) if (!room.clients.has(id)) users.push(id);
    return users;
  }

  /** Other nodes' clients that managers here list go when their node stops heartbeating. */
  async #dropDeadNodes(): Promise<void> {
    if (!this.#cluster || this.#remote.size === 0) return;
    let live: Set<string>;
    try {
      live = new Set(await this.#cluster.presence.nodes());
    } catch {
      return; // Redis is away: try again on the next tick
    }
    for (const [apikey, remote] of this.#remote) {
      const room = this.#rooms.get(apikey);
      for (const [clientId, e] of remote) {
        if (live.has(e.node)) continue;
        remote.delete(clientId);
        if (room) this.#tellManagers(room, 'onLeave', () => ({ clientId, users: this.#userList(apikey, room) }));
      }
    }
  }

  /**
   * The bus lost events while this node's subscription was down: messages are in the
   * store, so every client replays from its position (as on a reconnect), and managers'
   * lists are read again from the presence.
   */
  #resync(): void {
    // The order trackers stay: the first message after the outage shows a gap, which is
    // filled from the store, in order.
    this.#log.warn({ node: this.#nodeId }, 'bus subscription restored; re-reading what was missed from the store');
    for (const m of this.#clientMembers()) {
      if (m.replaying || m.conn.closed) continue;
      m.replaying = true;
      void this.#replay(m);
    }
    if (this.#cluster) {
      for (const apikey of [...this.#remote.keys()]) void this.#loadRemote(apikey);
      // This node's entries may have been written while Redis was away (and failed).
      for (const m of this.#clientMembers()) this.#setPresence(m);
    }
  }

  #background(work: Promise<unknown>, what: string): void {
    work.catch((err: unknown) => this.#log.warn({ err }, what));
  }

  #clientMember(conn: Connection, what: string): ClientMember {
    const m = conn.hubMember;
    if (!m || m.role !== 'client') throw new HubError('NOT_ENTERED', `enter as a client before ${what}`);
    return m;
  }

  /** Every client member the hub counts (each is its room's current one for its client id). */
  *#clientMembers(): Generator<ClientMember> {
    for (const room of [...this.#rooms.values()]) yield* [...room.clients.values()];
  }

  #room(apikey: ApiKey): AppRoom {
    let room = this.#rooms.get(apikey);
    if (!room) {
      room = new AppRoom(apikey);
      this.#rooms.set(apikey, room);
    }
    return room;
  }

  #forget(member: Member): AppRoom | undefined {
    if (member.conn.hubMember === member) {
      member.conn.hubMember = undefined;
      this.#memberCount--;
      this.observer.left(member.conn, member);
    }
    const room = this.#rooms.get(member.apikey);
    if (member.role === 'client') this.#receipts.left(member);
    if (!room) return undefined;
    if (member.role === 'manager') room.managers.delete(member);
    else room.removeClient(member);
    return room;
  }

  async #countTargets(apikey: ApiKey, target: Target): Promise<number> {
    const room = this.#rooms.get(apikey);
    // Everyone: the cluster's count (one O(1) read); tags are counted on this node only.
    if (target.all) return this.onlineCount(apikey);
    const named = new Set(target.clientIds);
    let n = named.size;
    if (target.tags.length > 0 && room) {
      const seen = new Set<ClientMember>();
      for (const tag of target.tags) {
        for (const m of room.tagIndex.get(tag) ?? []) {
          if (!named.has(m.clientId) && !seen.has(m)) {
            seen.add(m);
            n++;
          }
        }
      }
    }
    return n;
  }

  /** `body` is built only when there are managers: a user list costs O(clients). */
  #tellManagers(room: AppRoom, event: string, makeBody: () => unknown): void {
    if (room.managers.size === 0) return;
    const body = makeBody();
    const encoded = new Map<PushEncoder<unknown>, unknown>();
    for (const { conn } of room.managers) {
      let bytes = encoded.get(conn.encoder);
      if (bytes === undefined) {
        bytes = conn.encoder.encodeEvent(event, body);
        encoded.set(conn.encoder, bytes);
      }
      conn.write(bytes);
    }
  }

  /**
   * Ids within an app are contiguous, so a gap means a message published on another
   * node is still on its way: hold what comes after it for a moment, then read the
   * missing ones from the store. On one node (the local bus) nothing is ever held.
   */
  #inOrder(msg: StoredMessage): void {
    let o = this.#order.get(msg.apikey);
    if (!o) {
      o = { next: msg.id + 1, held: new Map(), filling: false };
      this.#order.set(msg.apikey, o);
      this.#deliver(msg);
      return;
    }
    if (msg.id < o.next) {
      this.#deliver(msg); // a late copy: members drop what they already had
      return;
    }
    if (msg.id === o.next && !o.filling) {
      this.#deliver(msg);
      o.next++;
      this.#releaseHeld(o);
      return;
    }
    o.held.set(msg.id, msg);
    if (!o.filling) {
      o.filling = true;
      setTimeout(() => void this.#fillGap(msg.apikey), GAP_WAIT_MS).unref();
    }
  }

  #releaseHeld(o: AppOrder): void {
    for (let next = o.held.get(o.next); next !== undefined; next = o.held.get(o.next)) {
      o.held.delete(o.next);
      this.#deliver(next);
      o.next++;
    }
  }

  async #fillGap(apikey: ApiKey): Promise<void> {
    const o = this.#order.get(apikey);
    if (!o) return;
    try {
      while (o.held.size > 0) {
        this.#releaseHeld(o);
        if (o.held.size === 0) break;
        const missing = await this.#storage.messages.get(apikey, asMessageId(o.next));
        // Its bus copy may have come while we read it (and been held, as we were
        // filling): the same message. Left in `held`, it would never be released (its
        // id is behind `next` now), and this loop would run on past ids not yet stored,
        // skipping them — so that later messages arriving out of order were not put back
        // in order, and members dropped the older one.
        o.held.delete(o.next);
        if (missing) this.#deliver(missing);
        else this.#log.warn({ app: apikey, id: o.next }, 'message missing from the bus and the store');
        o.next++;
      }
    } catch (err) {
      // The store is unreachable: deliver what is held, in order; clients resume the rest.
      this.#log.warn({ err, app: apikey }, 'could not fill a gap in the message order');
      for (const id of [...o.held.keys()].sort((a, b) => a - b)) {
        this.#deliver(o.held.get(id)!);
        o.next = id + 1;
      }
      o.held.clear();
    } finally {
      o.filling = false;
    }
  }

  /** From the bus: deliver to this node's targets. The hot path. */
  #deliver(msg: StoredMessage): void {
    const room = this.#rooms.get(msg.apikey);
    if (!room || room.clients.size === 0) return;
    let first = 0;
    let writes = 0;
    if (msg.target.all) {
      // Encoded once per wire format. Not from groups kept per format: a set entry per
      // member costs memory for the connection's whole life, and an app's clients
      // mostly share one format, so one comparison per member finds the bytes.
      let encoder: PushEncoder<unknown> | undefined;
      let bytes: unknown;
      let formats: Map<PushEncoder<unknown>, unknown> | undefined;
      for (const m of room.clients.values()) {
        if (m.conn.encoder !== encoder) {
          encoder = m.conn.encoder;
          formats ??= new Map();
          bytes = formats.get(encoder);
          if (bytes === undefined) {
            bytes = this.#encode(encoder, msg);
            formats.set(encoder, bytes);
          }
        }
        const outcome = this.#send(m, msg, bytes);
        if (outcome !== NOT_WRITTEN) writes++;
        if (outcome === FIRST) first++;
      }
      if (first > 0) this.#receipts.delivered(msg.apikey, msg.id, first);
      this.#statsOf(msg.apikey).delivered += writes;
      this.observer.delivered(msg.apikey, writes, msg.createdAt);
      return;
    }
    // Named clients and tags: each recipient once, still encoded once per format.
    const recipients = new Set<ClientMember>();
    for (const clientId of msg.target.clientIds) {
      const m = room.clients.get(clientId);
      if (m) recipients.add(m);
    }
    for (const tag of msg.target.tags) for (const m of room.tagIndex.get(tag) ?? []) recipients.add(m);
    const encoded = new Map<PushEncoder<unknown>, unknown>();
    const named = msg.target.clientIds.length > 0;
    for (const m of recipients) {
      let bytes = encoded.get(m.conn.encoder);
      if (bytes === undefined) {
        bytes = this.#encode(m.conn.encoder, msg);
        encoded.set(m.conn.encoder, bytes);
      }
      const outcome = this.#send(m, msg, bytes);
      if (outcome !== NOT_WRITTEN) writes++;
      if (outcome === FIRST) this.#receipts.delivered(msg.apikey, msg.id, 1, named ? m.clientId : undefined);
    }
    this.#statsOf(msg.apikey).delivered += writes;
    this.observer.delivered(msg.apikey, writes, msg.createdAt);
  }

  /**
   * Writes a live message to a member, unless it is still replaying (then it waits) or
   * already had it.
   */
  #send(m: ClientMember, msg: StoredMessage, bytes: unknown): WriteOutcome {
    if (m.replaying) {
      if (m.pending !== undefined && m.pending.length >= MAX_PENDING_DURING_REPLAY) {
        // Everything live is in the store too: drop the queue and let the replay re-read.
        m.pending = undefined;
        m.overflow = true;
      }
      (m.pending ??= []).push(msg);
      return NOT_WRITTEN;
    }
    return this.#write(m, msg, bytes);
  }

  /**
   * What `encoder` makes of the message, or an Unfit when its format cannot carry it.
   * Never throws: a message one format cannot take must not stop the others, nor a
   * replay (which would close the connection at every resume, for as long as it lives).
   */
  #encode(encoder: PushEncoder<unknown>, msg: StoredMessage): unknown {
    try {
      return encoder.encodeMessage(msg);
    } catch (err) {
      if (err instanceof UnfitMessageError) return new Unfit(err.code);
      this.#log.warn({ err, app: msg.apikey, id: msg.id }, 'a message could not be encoded; the connections of that format skip it');
      return new Unfit(SKIP_REASONS.encodeFailed);
    }
  }

  /** Writes if the connection has not had the message; FIRST when the client never had it. */
  #write(m: ClientMember, msg: StoredMessage, bytes: unknown): WriteOutcome {
    if (msg.id <= m.lastSentId || m.conn.closed) return NOT_WRITTEN;
    const unfit = bytes instanceof Unfit ? bytes.reason : m.conn.write(bytes);
    if (typeof unfit === 'string') {
      this.#skip(m, msg, unfit);
      return NOT_WRITTEN;
    }
    if (m.skipTail) {
      m.skipTail = false;
      this.#skipTails.delete(m);
    }
    m.lastSentId = msg.id;
    let outcome: WriteOutcome = AGAIN;
    if (msg.id > m.lastDeliveredId) {
      m.lastDeliveredId = msg.id;
      outcome = FIRST;
      this.#receipts.touched(m);
    }
    if (m.conn.bufferedBytes > this.#maxBuffered) {
      this.#log.info({ conn: m.conn.id, buffered: m.conn.bufferedBytes }, 'slow consumer closed');
      this.observer.slowConsumer(m.conn.connector);
      m.conn.close(CLOSE_REASONS.slowConsumer);
    }
    return outcome;
  }

  /**
   * The member's connection cannot carry the message (rare, so this may be slow):
   * recorded once per client as skipped with the reason — never delivered nor acked by
   * it — and passed over, so it holds back nothing that comes after it.
   */
  #skip(m: ClientMember, msg: StoredMessage, reason: SkipReason): void {
    if (!m.skipTail) {
      m.skipTail = true;
      this.#skipTails.set(m, m.lastSentId);
    }
    m.lastSentId = msg.id;
    // Counted with the client's first attempt only, as a delivery is: a replay after a
    // reconnect meets it again and passes over it the same way.
    if (msg.id > m.lastDeliveredId) {
      m.lastDeliveredId = msg.id;
      this.#receipts.touched(m);
      this.#receipts.skipped(m, msg.id, reason);
    }
    // Everything written before it is acked: no ack will come to carry the position past it.
    if (m.ackedId >= (this.#skipTails.get(m) ?? Infinity)) {
      m.ackedId = msg.id;
      this.#receipts.acked(m);
    }
    this.#log.debug({ conn: m.conn.id, app: m.apikey, clientId: m.clientId, id: msg.id, reason }, 'message skipped: the connection cannot carry it');
  }

  /** Sends what the store holds for the member after its position, then goes live. */
  async #replay(m: ClientMember): Promise<number> {
    let sent = 0;
    const live = (): boolean => !m.conn.closed && m.conn.hubMember === m;
    try {
      for (;;) {
        if (!live()) return sent;
        const batch = await this.#storage.messages.readFor(m.apikey, { clientId: m.clientId, tags: [...m.tags] }, asMessageId(m.lastSentId), REPLAY_BATCH);
        for (const msg of batch) {
          if (!live()) return sent;
          const outcome = this.#write(m, msg, this.#encode(m.conn.encoder, msg));
          if (outcome !== NOT_WRITTEN) {
            sent++;
            this.#statsOf(m.apikey).delivered++;
            this.observer.delivered(m.apikey, 1, undefined);
          }
          if (outcome === FIRST) this.#receipts.delivered(m.apikey, msg.id, 1, msg.target.clientIds.length > 0 ? m.clientId : undefined);
          // Pace the replay by the reader: wait for the buffer to drain rather than
          // overrun the slow-consumer cap with messages the store still holds.
          if (m.conn.bufferedBytes > this.#maxBuffered / 2) await this.#drained(m.conn);
        }
        if (batch.length === REPLAY_BATCH) {
          await this.#drained(m.conn);
          continue;
        }
        if (m.overflow) {
          m.overflow = false;
          m.pending = undefined;
          continue;
        }
        break;
      }
      // Caught up: what arrived live meanwhile goes out in order, then delivery is live.
      const pending = m.pending ?? [];
      m.pending = undefined;
      m.replaying = false;
      for (const msg of pending) {
        const outcome = this.#write(m, msg, this.#encode(m.conn.encoder, msg));
        if (outcome !== NOT_WRITTEN) this.#statsOf(m.apikey).delivered++;
        if (outcome !== NOT_WRITTEN) this.observer.delivered(m.apikey, 1, undefined);
        if (outcome === FIRST) {
          this.#receipts.delivered(m.apikey, msg.id, 1, msg.target.clientIds.length > 0 ? m.clientId : undefined);
        }
      }
      return sent;
    } catch (err) {
      this.#log.warn({ err, conn: m.conn.id, clientId: m.clientId }, 'resume failed');
      m.conn.close('resume failed');
      return sent;
    }
  }

  /** Waits until the connection's buffer drains below a quarter of the cap. */
  async #drained(conn: Connection): Promise<void> {
    const deadline = this.#now() + REPLAY_DRAIN_TIMEOUT_MS;
    while (!conn.closed && conn.bufferedBytes > this.#maxBuffered / 4) {
      if (this.#now() > deadline) {
        this.observer.slowConsumer(conn.connector);
        conn.close(CLOSE_REASONS.slowConsumer);
        return;
      }
      await delay(5);
    }
  }
}

function checkTags(tags: readonly string[]): string[] {
  if (tags.length > MAX_TAGS_PER_CLIENT) throw new HubError('BAD_REQUEST', `at most ${MAX_TAGS_PER_CLIENT} tags`);
  for (const t of tags) {
    if (typeof t !== 'string' || t.length === 0 || t.length > MAX_TAG_LENGTH) {
      throw new HubError('BAD_REQUEST', `a tag is 1 to ${MAX_TAG_LENGTH} characters`);
    }
  }
  return [...new Set(tags)];
}

function truncate(s: string): string {
  return s.length > 64 ? `${s.slice(0, 61)}...` : s;
}
