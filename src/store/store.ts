import type { ApiKey, ClientId, MessageId } from '../ids.js';

/** An app (tenant). The secret is private to the app's back end and managers. */
export interface App {
  readonly apikey: ApiKey;
  readonly secret: string;
  readonly name: string;
  /** Default time to live of the app's messages, in seconds. */
  readonly messageTtlSeconds: number;
  /** Whether clients must present a signed token at enter (issue 8). */
  readonly requireClientToken: boolean;
  /** What the ntfy port lets a request without credentials do (docs/ntfy.md, "Access"). */
  readonly ntfyAnonymousAccess: NtfyAnonymousAccess;
  /** Whether client tokens may publish on the ntfy port (they may always read). */
  readonly ntfyTokensCanPublish: boolean;
  /** Milliseconds since the epoch. */
  readonly createdAt: number;
}

/** ntfy's auth-default-access values; `read-write` is ntfy's own default and ours. */
export const NTFY_ANONYMOUS_ACCESS = ['read-write', 'read-only', 'write-only', 'deny'] as const;
export type NtfyAnonymousAccess = (typeof NTFY_ANONYMOUS_ACCESS)[number];
export const DEFAULT_NTFY_ANONYMOUS_ACCESS: NtfyAnonymousAccess = 'read-write';

export function isNtfyAnonymousAccess(v: unknown): v is NtfyAnonymousAccess {
  return (NTFY_ANONYMOUS_ACCESS as readonly unknown[]).includes(v);
}

export interface AppSettings {
  readonly name?: string;
  readonly messageTtlSeconds?: number;
  readonly requireClientToken?: boolean;
  readonly ntfyAnonymousAccess?: NtfyAnonymousAccess;
  readonly ntfyTokensCanPublish?: boolean;
}

export interface RotateOptions {
  /** How long the replaced secret keeps working, seconds. @default 0 */
  readonly graceSeconds?: number;
  /** Milliseconds since the epoch. @default Date.now() */
  readonly now?: number;
}

export interface NewApp {
  readonly name: string;
  readonly messageTtlSeconds?: number;
}

/** Apps and admin accounts. */
export interface AppStore {
  /** Creates an app with a fresh apikey and secret. */
  createApp(app: NewApp): Promise<App>;
  getApp(apikey: ApiKey): Promise<App | undefined>;
  listApps(): Promise<readonly App[]>;
  updateApp(apikey: ApiKey, settings: AppSettings): Promise<App | undefined>;
  /**
   * Replaces the secret with a fresh one. The replaced secret stays valid for
   * `graceSeconds` after `now` (default 0: it stops working at once), so that back ends
   * and client tokens can move over; it is then returned by `previousSecret`. A second
   * rotation replaces the previous secret: only the last replaced one has a grace period.
   */
  rotateSecret(apikey: ApiKey, opts?: RotateOptions): Promise<App | undefined>;
  /** The secret replaced by the last rotation while its grace period lasts (it ends after `now`, ms). */
  previousSecret(apikey: ApiKey, now: number): Promise<string | undefined>;
  /** Deletes the app and its messages. Returns false when there was no such app. */
  deleteApp(apikey: ApiKey): Promise<boolean>;
}

export interface Admin {
  readonly username: string;
  readonly createdAt: number;
}

export interface AdminStore {
  /** Creates or replaces the admin's password (stored as a salted scrypt hash). */
  setAdminPassword(username: string, password: string): Promise<void>;
  /** True when the username exists and the password matches. Constant-time compare. */
  verifyAdmin(username: string, password: string): Promise<boolean>;
  listAdmins(): Promise<readonly Admin[]>;
}

/** Who a message is for. An empty target list with `all: false` targets nobody. */
export interface Target {
  readonly all: boolean;
  readonly clientIds: readonly ClientId[];
  readonly tags: readonly string[];
}

export interface NewMessage {
  readonly apikey: ApiKey;
  /** Clients it was addressed to when accepted: the named ones, or those online (receipts). */
  readonly targeted: number;
  readonly target: Target;
  /** Event name (Pomelo route) the client receives, e.g. `onMsg`. */
  readonly event: string;
  /** Any JSON value, already validated. */
  readonly data: unknown;
  readonly ttlSeconds: number;
}

export interface StoredMessage extends NewMessage {
  readonly id: MessageId;
  /** Milliseconds since the epoch. */
  readonly createdAt: number;
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
}

/** Delivery receipts of one message (what each count promises: docs/delivery.md, "Receipts"). */
export interface Receipt {
  readonly targeted: number;
  /** Clients it was written to (each client counted once). */
  readonly delivered: number;
  /** Clients that acked it (each client counted once). */
  readonly acked: number;
  /** Clients whose connection could not carry it (each counted once; never delivered or acked by them). */
  readonly skipped: number;
}

/** Per-client state of a message pushed to named clients. */
export interface RecipientState {
  readonly clientId: ClientId;
  /** Milliseconds since the epoch; absent until delivered / acked / skipped. */
  readonly deliveredAt?: number;
  readonly ackedAt?: number;
  readonly skippedAt?: number;
  /** Why the client's connection could not take it (a code such as `LIMIT_CLIENT_MAX_PACKET`). */
  readonly skipReason?: string;
}

export interface MessageWithReceipt extends StoredMessage {
  readonly receipt: Receipt;
}

/** Counter increments for one message, batched by the hub. */
export interface ReceiptUpdate {
  readonly apikey: ApiKey;
  readonly id: MessageId;
  readonly delivered: number;
  readonly acked: number;
  /** For messages to named clients: who it was delivered to / acked by in this batch. */
  readonly deliveredTo?: readonly ClientId[];
  readonly ackedBy?: readonly ClientId[];
  /** When (ms since the epoch). */
  readonly at: number;
}

/**
 * A client acked everything up to `upTo` (acks are cumulative). Counted in the store,
 * not per message by the hub: the receipts of every message in the range that targets
 * the client are resolved there, however long the range.
 */
export interface AckRange {
  readonly apikey: ApiKey;
  /** The client and its tags: which messages of the range target it (as `readFor`). */
  readonly client: ClientRef;
  /**
   * Acks up to here are already counted (or must not be: messages before a connection
   * that started at the newest id). The store starts after the larger of this and the
   * client's stored `lastAckedId`, so a range is never counted twice.
   */
  readonly after: MessageId;
  readonly upTo: MessageId;
  /** When (ms since the epoch): recipients' ack time; messages expired by then are not counted. */
  readonly at: number;
}

/** One connection of a client could not carry a message (docs/delivery.md, "Skipped"). */
export interface SkipUpdate {
  readonly apikey: ApiKey;
  readonly id: MessageId;
  readonly clientId: ClientId;
  /** A stable code, e.g. `LIMIT_CLIENT_MAX_PACKET`, `PROTO_DOES_NOT_FIT`. */
  readonly reason: string;
  /** When (ms since the epoch). */
  readonly at: number;
}

/** Who a client is, for reading the messages that target it. */
export interface ClientRef {
  readonly clientId: ClientId;
  readonly tags: readonly string[];
}

/**
 * The durable message log.
 *
 * Guarantees every implementation must keep:
 * - `append` assigns the next id within the app (strictly increasing, never reused,
 *   also across restarts) and the message is durable once the promise resolves.
 * - `readAfter` returns unexpired messages with id > after, in id order.
 */
export interface MessageStore {
  append(msg: NewMessage): Promise<StoredMessage>;
  get(apikey: ApiKey, id: MessageId): Promise<StoredMessage | undefined>;
  /** Newest first, ids below `before` when given; with receipt counts. */
  history(apikey: ApiKey, opts: { readonly limit: number; readonly before?: MessageId }): Promise<readonly MessageWithReceipt[]>;
  /** Unexpired messages of the app with id > after, in id order, at most `limit`. */
  readAfter(apikey: ApiKey, after: MessageId, limit: number): Promise<readonly StoredMessage[]>;
  /**
   * Unexpired messages with id > after that target this client — `all`, its clientId,
   * or any of its tags — in id order, at most `limit`. What resume and offline delivery read.
   */
  readFor(apikey: ApiKey, client: ClientRef, after: MessageId, limit: number): Promise<readonly StoredMessage[]>;
  /** The id of the app's newest message ever appended (0 when none). */
  lastId(apikey: ApiKey): Promise<MessageId>;
  /** Adds receipt counters (and per-recipient times for named pushes) in one batch. */
  recordReceipts(updates: readonly ReceiptUpdate[]): Promise<void>;
  /**
   * Records skips, each counted once per message and client (a repeat is ignored): the
   * message's `skipped` counter, and a named recipient's state. A message that no longer
   * exists is ignored.
   */
  recordSkips(skips: readonly SkipUpdate[]): Promise<void>;
  /**
   * Counts acks by range, each range atomically with the client's `lastAckedId`: every
   * unexpired message with id in (max(after, lastAckedId), upTo] that targets the client
   * (`all`, its clientId, or one of its tags) and that it did not skip gets one more ack
   * (a named recipient its ack time), and `lastAckedId` moves to `upTo`. So each message
   * is counted once per client, also when two nodes report overlapping ranges, and a
   * crash loses at most ranges not yet recorded (the client acks them again).
   */
  recordAcks(acks: readonly AckRange[]): Promise<void>;
  /** Counters, and per-client state when the message was pushed to named clients. */
  receipt(apikey: ApiKey, id: MessageId): Promise<{ readonly receipt: Receipt; readonly recipients: readonly RecipientState[] } | undefined>;
  /** Deletes expired messages (and clients unseen for `clientRetentionMs`); returns how many messages. */
  sweepExpired(now: number): Promise<number>;
}

/** What the store keeps of a client between its connections. */
export interface ClientState {
  readonly clientId: ClientId;
  readonly tags: readonly string[];
  /** Highest id the client acked; delivery resumes after it ('stored' resume). */
  readonly lastAckedId: MessageId;
  /** Highest id ever written to it: a message is counted delivered once per client. */
  readonly lastDeliveredId: MessageId;
  readonly firstSeenAt: number;
  readonly lastSeenAt: number;
}

/** A client's positions, batched by the hub; they only ever move forward. */
export interface PositionUpdate {
  readonly apikey: ApiKey;
  readonly clientId: ClientId;
  /**
   * Moves the acked position without counting any ack (the hub moves it with
   * `recordAcks`, which counts; this is for tools that set a position by hand).
   */
  readonly ackedId?: MessageId;
  readonly deliveredId?: MessageId;
}

export interface ClientStore {
  get(apikey: ApiKey, clientId: ClientId): Promise<ClientState | undefined>;
  /**
   * Records that the client connected now. A new client starts with both positions at
   * `startAfter`; a known one keeps its own. `addTags` are added to its tags.
   */
  touch(apikey: ApiKey, clientId: ClientId, opts: { readonly startAfter: MessageId; readonly addTags?: readonly string[]; readonly now: number }): Promise<ClientState>;
  setTags(apikey: ApiKey, clientId: ClientId, tags: readonly string[]): Promise<void>;
  /** Moves positions forward (never back: max of stored and given). */
  savePositions(updates: readonly PositionUpdate[]): Promise<void>;
}

/** The whole storage of one node: opened by server.ts, closed on shutdown. */
export interface Storage {
  readonly apps: AppStore;
  readonly admins: AdminStore;
  readonly messages: MessageStore;
  readonly clients: ClientStore;
  close(): Promise<void>;
}
