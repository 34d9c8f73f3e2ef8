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
  /** Milliseconds since the epoch. */
  readonly createdAt: number;
}

export interface AppSettings {
  readonly name?: string;
  readonly messageTtlSeconds?: number;
  readonly requireClientToken?: boolean;
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
  /** Replaces the secret with a fresh one; old secret stops working at once. */
  rotateSecret(apikey: ApiKey): Promise<App | undefined>;
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
  /** Newest first, ids below `before` when given. */
  history(apikey: ApiKey, opts: { readonly limit: number; readonly before?: MessageId }): Promise<readonly StoredMessage[]>;
  /** Unexpired messages of the app with id > after, in id order, at most `limit`. */
  readAfter(apikey: ApiKey, after: MessageId, limit: number): Promise<readonly StoredMessage[]>;
  /** Deletes expired messages; returns how many. */
  sweepExpired(now: number): Promise<number>;
}

/** The whole storage of one node: opened by server.ts, closed on shutdown. */
export interface Storage {
  readonly apps: AppStore;
  readonly admins: AdminStore;
  readonly messages: MessageStore;
  close(): Promise<void>;
}
