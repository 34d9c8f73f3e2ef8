import type { Command } from 'commander';
import { asApiKey } from '../ids.js';
import { signClientToken, type TokenFormat } from '../hub/client-tokens.js';
import { CliError, print, printJson } from './output.js';
import { withStorage, type StorageFlags } from './open-storage.js';

interface TokenOptions extends StorageFlags {
  app: string;
  client: string;
  ttl: string;
  secret?: string;
  jwt?: boolean;
  json?: boolean;
}

const UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `90`, `90s`, `15m`, `12h`, `1d` → seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)\s*([smhd]?)$/.exec(text.trim());
  const n = m ? Number(m[1]) * (UNITS[m[2] || 's'] ?? 1) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new CliError(`--ttl must be a duration like 3600, 15m, 12h or 1d, got "${text}"`);
  return n;
}

export function addTokenCommand(program: Command): void {
  program
    .command('token')
    .description('sign a client token for an app that requires them (with the app secret)')
    .requiredOption('--app <apikey>', 'the app')
    .requiredOption('--client <id>', 'the clientId the token is for')
    .option('--ttl <duration>', 'how long it is valid: seconds, or 15m, 12h, 1d', '1d')
    .option('--secret <secret>', 'the app secret (default: read it from the database)')
    .option('--jwt', 'a JWT (HS256) instead of the compact form')
    .option('--data <dir>', 'data folder holding shaddock.db (also SHADDOCK_DATA)')
    .option('--config <file>', 'JSON config file (also SHADDOCK_CONFIG)')
    .option('--json', 'print JSON for scripts')
    .action(async (opts: TokenOptions) => {
      const ttlSeconds = parseDuration(opts.ttl);
      const secret =
        opts.secret ??
        (await withStorage(opts, async (s) => (await s.apps.getApp(asApiKey(opts.app)))?.secret, { mustExist: true }));
      if (secret === undefined) throw new CliError(`no app with apikey "${opts.app}"`);
      const format: TokenFormat = opts.jwt === true ? 'jwt' : 'compact';
      const { token, expiresAt } = await signClientToken({ secret, apikey: opts.app, clientId: opts.client, ttlSeconds, format });
      if (opts.json === true) printJson({ token, clientId: opts.client, expiresAt: new Date(expiresAt).toISOString() });
      else print(token);
    });
}
