import { existsSync } from 'node:fs';
import { databasePath, loadConfig } from '../config.js';
import { openSqliteStorage } from '../store/sqlite-storage.js';
import { openRedisStorage } from '../store/redis-storage.js';
import type { Storage } from '../store/store.js';

export interface StorageFlags {
  data?: string;
  config?: string;
  redis?: string;
  redisPrefix?: string;
}

/**
 * Opens the node's storage directly, so app and admin commands work whether or not
 * a server is running (SQLite in WAL mode takes a second writer).
 */
export async function openStorageForCli(flags: StorageFlags, opts: { readonly mustExist?: boolean } = {}): Promise<{ storage: Storage; path: string }> {
  const config = loadConfig({
    ...(flags.config !== undefined ? { configFile: flags.config } : {}),
    flags: { dataDir: flags.data, redisUrl: flags.redis, redisPrefix: flags.redisPrefix },
  });
  if (config.redisUrl !== undefined) {
    return { storage: await openRedisStorage({ url: config.redisUrl, prefix: config.redisPrefix }), path: config.redisUrl };
  }
  const path = databasePath(config);
  if (opts.mustExist === true && !existsSync(path)) {
    throw new Error(`no database at ${path} (start Shaddock once, or pass --data DIR)`);
  }
  return { storage: openSqliteStorage(path), path };
}

/** Runs `fn` with the storage open, and always closes it. */
export async function withStorage<T>(flags: StorageFlags, fn: (storage: Storage) => Promise<T>, opts: { readonly mustExist?: boolean } = {}): Promise<T> {
  const { storage } = await openStorageForCli(flags, opts);
  try {
    return await fn(storage);
  } finally {
    await storage.close();
  }
}
