// The store module's public surface: the storage interfaces (what hub/ and api/ use)
// and the SQLite implementation (what server.ts and the CLI open).
export type {
  Admin,
  AdminStore,
  App,
  AppSettings,
  AppStore,
  MessageStore,
  NewApp,
  NewMessage,
  Storage,
  StoredMessage,
  Target,
} from './store.js';
export {
  DEFAULT_MESSAGE_TTL_SECONDS,
  SCHEMA_VERSION,
  SqliteAdminStore,
  SqliteAppStore,
  SqliteMessageStore,
  SqliteStorage,
  StoreError,
  StoreErrorCode,
  openSqliteStorage,
} from './sqlite-storage.js';
export { generateApiKey, generateSecret, hashPassword, verifyPassword, type PasswordHash } from './secrets.js';
