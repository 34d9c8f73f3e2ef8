import type { Command } from 'commander';
import { createNodeClient, type ClientState, type ShaddockClient } from '../client/node.js';
import { CliError, intOption } from './output.js';

interface ListenOptions {
  app: string;
  client: string;
  url: string;
  lastId?: number;
  tags?: string;
  token?: string;
  json?: boolean;
  quiet?: boolean;
}

/** One received message as `listen` prints it: `<id> <event> <json data>`, or a JSON line. */
export function formatMessage(m: { readonly id: number; readonly event: string; readonly data: unknown }, json: boolean): string {
  const data = JSON.stringify(m.data) ?? 'null';
  return json ? JSON.stringify({ id: m.id, event: m.event, data: m.data ?? null }) : `${m.id} ${m.event} ${data}`;
}

function list(value: string | undefined, name: string): string[] | undefined {
  if (value === undefined) return undefined;
  const items = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (items.length === 0) throw new CliError(`${name} needs at least one value`);
  return items;
}

/** Writes a line to stdout, waiting when the pipe is full (the SDK queues meanwhile). */
function writeLine(line: string): Promise<void> | undefined {
  if (process.stdout.write(`${line}\n`)) return undefined;
  return new Promise((resolve) => process.stdout.once('drain', resolve));
}

export function addListenCommand(program: Command): void {
  program
    .command('listen')
    .description('connect as a client, print every message as it arrives and ack it (Ctrl-C to stop)')
    .requiredOption('--app <apikey>', 'the app to listen to (also SHADDOCK_APP)', process.env['SHADDOCK_APP'])
    .requiredOption('--client <id>', 'the clientId to enter as (also SHADDOCK_CLIENT)', process.env['SHADDOCK_CLIENT'])
    .option(
      '--url <urls>',
      'the hybrid connector: tcp://host:3011, ws://host:3011, wss://…; comma-separated to fail over (also SHADDOCK_HYBRID_URL)',
      process.env['SHADDOCK_HYBRID_URL'] ?? 'tcp://127.0.0.1:3011',
    )
    .option('--last-id <id>', 'resume after this message id (default: after the last acked one)', intOption('--last-id'))
    .option('--tags <tags>', 'comma-separated tags to subscribe')
    .option('--token <token>', 'a signed client token, for apps that require one (also SHADDOCK_TOKEN)', process.env['SHADDOCK_TOKEN'])
    .option('--json', 'print one JSON object per message: {"id","event","data"}')
    .option('--quiet', 'no connection status on stderr')
    .action(async (opts: ListenOptions) => {
      if (opts.lastId !== undefined && opts.lastId < 0) throw new CliError('--last-id must be ≥ 0');
      const urls = list(opts.url, '--url') ?? [];
      const tags = list(opts.tags, '--tags');
      const json = opts.json === true;
      const status = (line: string): void => {
        if (opts.quiet !== true) process.stderr.write(`${line}\n`);
      };
      let client: ShaddockClient;
      try {
        client = createNodeClient({
          urls,
          apikey: opts.app,
          clientId: opts.client,
          ...(opts.lastId !== undefined ? { lastId: opts.lastId } : {}),
          ...(tags !== undefined ? { tags } : {}),
          ...(opts.token !== undefined ? { token: opts.token } : {}),
        });
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      client.on('message', (m) => writeLine(formatMessage(m, json)));
      client.on('connected', ({ url, resumedAfter }) => status(`connected to ${url}${resumedAfter !== undefined ? `, resuming after ${resumedAfter}` : ''}`));
      client.on('disconnected', ({ url, reason, willReconnect }) => status(`disconnected from ${url}: ${reason}${willReconnect ? '' : ' (not reconnecting)'}`));
      let problem: string | undefined;
      client.on('kicked', ({ reason }) => {
        problem = `kicked: ${reason}`;
        status(problem);
      });
      client.on('error', (err) => {
        problem = err.message;
        status(`error: ${err.message}`);
      });
      client.on('state', ({ state, delayMs, url, reason }) => {
        if (state === 'reconnecting') status(`${url ?? '?'}: ${reason ?? 'failed'}; retrying in ${delayMs ?? 0} ms`);
      });

      // Runs until a signal (exit 0 after closing) or until the client stops for good.
      await new Promise<void>((resolve, reject) => {
        let stopping = false;
        const stop = (): void => {
          if (stopping) return;
          stopping = true;
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          client.close().then(resolve, reject);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
        client.on('state', ({ state }: { state: ClientState }) => {
          if (state !== 'closed' || stopping) return;
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          reject(new CliError(`stopped listening: ${problem ?? 'the connection ended'} (last id ${client.lastId ?? 'none'})`));
        });
        // A failure to connect ends in state 'closed' (handled above).
        client.connect().catch(() => undefined);
      });
      status(`closed; last id ${client.lastId ?? 'none'}`);
    });
}
