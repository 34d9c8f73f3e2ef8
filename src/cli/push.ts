import type { Command } from 'commander';
import { CliError, intOption, print, printJson } from './output.js';

interface PushOptions {
  app: string;
  secret: string;
  to?: string;
  event?: string;
  payload?: string;
  ttl?: number;
  url: string;
  json?: boolean;
}

/** Builds the request body of POST /api/v1/apps/:apikey/messages from the CLI's words. */
export function pushBody(message: string | undefined, opts: Omit<PushOptions, 'app' | 'secret' | 'url'>): Record<string, unknown> {
  if ((message === undefined) === (opts.payload === undefined)) {
    throw new CliError('give either a MESSAGE or --payload JSON (not both)');
  }
  let data: unknown = message;
  if (opts.payload !== undefined) {
    try {
      data = JSON.parse(opts.payload);
    } catch (err) {
      throw new CliError(`--payload is not valid JSON: ${(err as Error).message}`);
    }
  }
  const clientIds = opts.to?.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (opts.to !== undefined && (clientIds === undefined || clientIds.length === 0)) throw new CliError('--to needs at least one client id');
  return {
    data,
    ...(opts.event !== undefined ? { event: opts.event } : {}),
    ...(clientIds !== undefined ? { to: { clientIds } } : {}),
    ...(opts.ttl !== undefined ? { ttl: opts.ttl } : {}),
  };
}

export function addPushCommand(program: Command): void {
  program
    .command('push [message]')
    .description('push a message through the HTTP API (MESSAGE is sent as a string; --payload sends any JSON)')
    .requiredOption('--app <apikey>', 'the app to push to (also SHADDOCK_APP)', process.env['SHADDOCK_APP'])
    .requiredOption('--secret <secret>', 'the app secret (also SHADDOCK_SECRET)', process.env['SHADDOCK_SECRET'])
    .option('--to <ids>', 'comma-separated client ids (default: every client of the app)')
    .option('--event <name>', 'event name the clients receive', 'onMsg')
    .option('--payload <json>', 'JSON data instead of a MESSAGE string')
    .option('--ttl <seconds>', 'time to live of the message', intOption('--ttl'))
    .option('--url <url>', 'the server (also SHADDOCK_URL)', process.env['SHADDOCK_URL'] ?? 'http://127.0.0.1:3001')
    .option('--json', 'print the JSON answer')
    .action(async (message: string | undefined, opts: PushOptions) => {
      const body = pushBody(message, opts);
      const url = `${opts.url.replace(/\/+$/, '')}/api/v1/apps/${encodeURIComponent(opts.app)}/messages`;
      let res: Response;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: { authorization: `Bearer ${opts.secret}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(10_000),
        });
      } catch (err) {
        const cause = (err as { cause?: { code?: string } }).cause?.code;
        throw new CliError(`cannot reach ${opts.url}${cause !== undefined ? ` (${cause})` : ''}: is Shaddock running? (--url)`);
      }
      const text = await res.text();
      let answer: unknown = text;
      try {
        answer = JSON.parse(text);
      } catch {
        // keep the text
      }
      if (!res.ok) {
        const msg = typeof answer === 'object' && answer !== null && 'message' in answer ? String(answer.message) : text;
        throw new CliError(`push refused (${res.status}): ${msg}`);
      }
      if (opts.json === true) printJson(answer);
      else if (typeof answer === 'object' && answer !== null && 'id' in answer && 'targeted' in answer) {
        print(`accepted: message ${String(answer.id)}, ${String(answer.targeted)} client(s) targeted`);
      } else print(text);
    });
}
