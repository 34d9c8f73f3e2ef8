import { safeEqual } from '../safe-equal.js';
import type { Logger } from '../log.js';
import type { ApiKey, ClientId } from '../ids.js';
import type { App, Storage, StoredMessage, Target } from '../store/store.js';
import type { Bus } from '../bus/bus.js';
import { CLOSE_REASONS, type Connection, type ConnectorName, type PushEncoder } from './connection.js';

export const HUB_ERROR_CODES = [
  'APP_UNKNOWN',
  'AUTH_FAILED',
  'BAD_REQUEST',
  'NOT_ENTERED',
  'FORBIDDEN',
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

/** What the hub knows of an entered connection. */
interface Member {
  readonly conn: Connection;
  readonly apikey: ApiKey;
  readonly role: Role;
  /** Undefined for managers. */
  readonly clientId: ClientId | undefined;
  readonly enteredAt: number;
}

/** A client online on this node, as managers and the API see it. */
export interface OnlineClient {
  readonly clientId: ClientId;
  readonly connector: ConnectorName;
  /** Milliseconds since the epoch. */
  readonly connectedAt: number;
  readonly remoteAddress: string;
}

/** The connections of one app on this node. */
class AppRoom {
  readonly clients = new Map<ClientId, Member>();
  /** Client connections grouped by wire format, so a broadcast is encoded once per format. */
  readonly groups = new Map<PushEncoder<unknown>, Set<Connection>>();
  readonly managers = new Set<Connection>();

  get empty(): boolean {
    return this.clients.size === 0 && this.managers.size === 0;
  }

  addClient(member: Member & { clientId: ClientId }): void {
    this.clients.set(member.clientId, member);
    let group = this.groups.get(member.conn.encoder);
    if (!group) {
      group = new Set();
      this.groups.set(member.conn.encoder, group);
    }
    group.add(member.conn);
  }

  removeClient(member: Member): void {
    if (member.clientId !== undefined && this.clients.get(member.clientId) === member) this.clients.delete(member.clientId);
    const group = this.groups.get(member.conn.encoder);
    if (group) {
      group.delete(member.conn);
      if (group.size === 0) this.groups.delete(member.conn.encoder);
    }
  }

  userList(): ClientId[] {
    return [...this.clients.keys()];
  }
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
   * - `'latest'`: only messages published from now on (MQTT clean session).
   */
  readonly resumeAfter?: number | 'stored' | 'latest';
  /** Tags to subscribe at once (pushes can target tags). */
  readonly tags?: readonly string[];
  /** A signed client token, checked when the app requires one. */
  readonly token?: string;
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
  /** Clients this message is addressed to: the named ones, or those online for `all`. */
  readonly targeted: number;
}

export interface HubOptions {
  readonly storage: Storage;
  readonly bus: Bus;
  readonly logger: Logger;
  /** Per-connection cap on bytes waiting to be sent; past it the connection is closed. */
  readonly maxBufferedBytes: number;
  readonly now?: () => number;
}

export const MAX_CLIENT_ID_LENGTH = 256;

/**
 * The heart of a node: who is connected, presence events to managers, and the path
 * of every message from publish to the sockets.
 */
export class Hub {
  readonly #storage: Storage;
  readonly #bus: Bus;
  readonly #log: Logger;
  readonly #maxBuffered: number;
  readonly #now: () => number;
  readonly #rooms = new Map<ApiKey, AppRoom>();
  readonly #members = new Map<Connection, Member>();

  constructor(opts: HubOptions) {
    this.#storage = opts.storage;
    this.#bus = opts.bus;
    this.#log = opts.logger;
    this.#maxBuffered = opts.maxBufferedBytes;
    this.#now = opts.now ?? Date.now;
    this.#bus.subscribe((msg) => this.#deliver(msg));
  }

  /** The app, or a HubError APP_UNKNOWN. */
  async app(apikey: string): Promise<App> {
    const app = apikey === '' ? undefined : await this.#storage.apps.getApp(apikey as ApiKey);
    if (!app) throw new HubError('APP_UNKNOWN', `unknown apikey "${truncate(apikey)}"`);
    return app;
  }

  /**
   * A client joins its app. A connection already holding this clientId is replaced:
   * it is closed with reason "replaced" and managers see no leave.
   */
  async enterClient(conn: Connection, req: ClientEnter): Promise<void> {
    const { apikey, clientId } = req;
    if (clientId.length === 0 || clientId.length > MAX_CLIENT_ID_LENGTH) {
      throw new HubError('BAD_REQUEST', `clientId must be 1 to ${MAX_CLIENT_ID_LENGTH} characters`);
    }
    const app = await this.app(apikey);
    const existing = this.#members.get(conn);
    if (existing) {
      if (existing.role === 'client' && existing.apikey === app.apikey && existing.clientId === clientId) return;
      throw new HubError('BAD_REQUEST', 'this connection has already entered');
    }
    // The connection may have closed while we awaited the store: register no dead one.
    if (conn.closed) return;
    const room = this.#room(app.apikey);
    const id = clientId as ClientId;
    const previous = room.clients.get(id);
    if (previous) {
      this.#forget(previous);
      previous.conn.close(CLOSE_REASONS.replaced);
    }
    const member = { conn, apikey: app.apikey, role: 'client' as const, clientId: id, enteredAt: this.#now() };
    this.#members.set(conn, member);
    room.addClient(member);
    this.#log.debug({ conn: conn.id, app: app.apikey, clientId, connector: conn.connector, replaced: Boolean(previous) }, 'client entered');
    this.#tellManagers(room, 'onAdd', { msg: 'add ok', users: room.userList() });
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
        (userId !== undefined && userId !== '' && (await this.#storage.admins.verifyAdmin(userId, password))));
    if (!ok) throw new HubError('AUTH_FAILED', 'wrong app secret or admin credentials');
    const existing = this.#members.get(conn);
    if (existing && !(existing.role === 'manager' && existing.apikey === app.apikey)) {
      throw new HubError('BAD_REQUEST', 'this connection has already entered');
    }
    if (conn.closed) return [];
    const room = this.#room(app.apikey);
    if (!existing) {
      this.#members.set(conn, { conn, apikey: app.apikey, role: 'manager', clientId: undefined, enteredAt: this.#now() });
      room.managers.add(conn);
      this.#log.debug({ conn: conn.id, app: app.apikey, connector: conn.connector }, 'manager entered');
    }
    return room.userList();
  }

  /** The role and app a connection entered with, if it has. */
  identity(conn: Connection): { readonly apikey: ApiKey; readonly role: Role; readonly clientId: ClientId | undefined } | undefined {
    return this.#members.get(conn);
  }

  /**
   * The client processed every message up to `id` (acks are cumulative: delivery is in
   * id order). Unknown or stale ids are ignored; an id above what was sent is clamped.
   */
  ack(conn: Connection, id: number): void {
    void conn;
    void id;
  }

  /** Adds tags to an entered client. */
  async subscribeTags(conn: Connection, tags: readonly string[]): Promise<void> {
    const member = this.#members.get(conn);
    if (!member || member.role !== 'client') throw new HubError('NOT_ENTERED', 'enter as a client before subscribing');
    void tags;
    return Promise.resolve();
  }

  /** Removes tags from an entered client. */
  async unsubscribeTags(conn: Connection, tags: readonly string[]): Promise<void> {
    const member = this.#members.get(conn);
    if (!member || member.role !== 'client') throw new HubError('NOT_ENTERED', 'enter as a client before unsubscribing');
    void tags;
    return Promise.resolve();
  }

  /** A connector calls this once when a connection closes, for whatever reason. */
  leave(conn: Connection): void {
    const member = this.#members.get(conn);
    if (!member) return;
    const room = this.#forget(member);
    if (room && member.role === 'client' && member.clientId !== undefined) {
      this.#log.debug({ conn: conn.id, app: member.apikey, clientId: member.clientId }, 'client left');
      this.#tellManagers(room, 'onLeave', { clientId: member.clientId, users: room.userList() });
    }
    if (room?.empty) this.#rooms.delete(member.apikey);
  }

  /**
   * Stores the message, then hands it to the bus for delivery on every node. When the
   * promise resolves the message is durable.
   */
  async publish(req: PublishRequest): Promise<PublishResult> {
    const app = await this.app(req.apikey);
    const ttlSeconds = req.ttlSeconds ?? app.messageTtlSeconds;
    const message = await this.#storage.messages.append({
      apikey: app.apikey,
      target: req.target,
      event: req.event,
      data: req.data,
      ttlSeconds,
    });
    const room = this.#rooms.get(app.apikey);
    const targeted = req.target.all ? (room?.clients.size ?? 0) : new Set(req.target.clientIds).size;
    await this.#bus.publish(message);
    return { message, targeted };
  }

  /** Publishes on behalf of a manager connection, which may push only to its own app. */
  async publishAsManager(conn: Connection, req: PublishRequest): Promise<PublishResult> {
    const member = this.#members.get(conn);
    if (!member) throw new HubError('NOT_ENTERED', 'enter as a manager (role "server") before pushing');
    if (member.role !== 'manager') throw new HubError('FORBIDDEN', 'only a manager (role "server") may push');
    if (member.apikey !== req.apikey) throw new HubError('FORBIDDEN', 'a manager may push only to its own app');
    return this.publish(req);
  }

  onlineClients(apikey: ApiKey): OnlineClient[] {
    const room = this.#rooms.get(apikey);
    if (!room) return [];
    const out: OnlineClient[] = [];
    for (const m of room.clients.values()) {
      if (m.clientId === undefined) continue;
      out.push({ clientId: m.clientId, connector: m.conn.connector, connectedAt: m.enteredAt, remoteAddress: m.conn.remoteAddress });
    }
    return out;
  }

  /** Closes every connection of the app (it was deleted). */
  dropApp(apikey: ApiKey, reason: string = CLOSE_REASONS.appDeleted): void {
    const room = this.#rooms.get(apikey);
    if (!room) return;
    const conns = [...room.managers, ...[...room.clients.values()].map((m) => m.conn)];
    for (const conn of conns) conn.close(reason);
  }

  get connectionCount(): number {
    return this.#members.size;
  }

  #room(apikey: ApiKey): AppRoom {
    let room = this.#rooms.get(apikey);
    if (!room) {
      room = new AppRoom();
      this.#rooms.set(apikey, room);
    }
    return room;
  }

  #forget(member: Member): AppRoom | undefined {
    this.#members.delete(member.conn);
    const room = this.#rooms.get(member.apikey);
    if (!room) return undefined;
    if (member.role === 'manager') room.managers.delete(member.conn);
    else room.removeClient(member);
    return room;
  }

  #tellManagers(room: AppRoom, event: string, body: unknown): void {
    if (room.managers.size === 0) return;
    const encoded = new Map<PushEncoder<unknown>, unknown>();
    for (const conn of room.managers) {
      let bytes = encoded.get(conn.encoder);
      if (bytes === undefined) {
        bytes = conn.encoder.encodeEvent(event, body);
        encoded.set(conn.encoder, bytes);
      }
      this.#write(conn, bytes);
    }
  }

  /** From the bus: deliver to this node's targets. The hot path. */
  #deliver(msg: StoredMessage): void {
    const room = this.#rooms.get(msg.apikey);
    if (!room || room.clients.size === 0) return;
    if (msg.target.all) {
      for (const [encoder, conns] of room.groups) {
        const bytes = encoder.encodeMessage(msg); // once per wire format
        for (const conn of conns) this.#write(conn, bytes);
      }
      return;
    }
    let encoded: Map<PushEncoder<unknown>, unknown> | undefined;
    const seen = msg.target.clientIds.length > 1 ? new Set<ClientId>() : undefined;
    for (const clientId of msg.target.clientIds) {
      if (seen) {
        if (seen.has(clientId)) continue;
        seen.add(clientId);
      }
      const member = room.clients.get(clientId);
      if (!member) continue;
      const conn = member.conn;
      encoded ??= new Map();
      let bytes = encoded.get(conn.encoder);
      if (bytes === undefined) {
        bytes = conn.encoder.encodeMessage(msg);
        encoded.set(conn.encoder, bytes);
      }
      this.#write(conn, bytes);
    }
  }

  #write(conn: Connection, bytes: unknown): void {
    conn.write(bytes);
    if (conn.bufferedBytes > this.#maxBuffered) {
      this.#log.info({ conn: conn.id, buffered: conn.bufferedBytes }, 'slow consumer closed');
      conn.close(CLOSE_REASONS.slowConsumer);
    }
  }
}


function truncate(s: string): string {
  return s.length > 64 ? `${s.slice(0, 61)}...` : s;
}
