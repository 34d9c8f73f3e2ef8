import type { Command } from 'commander';
import { asApiKey } from '../ids.js';
import type { App } from '../store/store.js';
import { CliError, intOption, print, printJson } from './output.js';
import { appView } from '../api/views.js';
import { withStorage, type StorageFlags } from './open-storage.js';
import { MAX_SECRET_GRACE_SECONDS } from '../store/secrets.js';

interface JsonFlag {
  json?: boolean;
}


function printApp(app: App): void {
  print(`app "${app.name}"`);
  print(`  apikey  ${app.apikey}`);
  print(`  secret  ${app.secret}`);
  print(`  ttl     ${app.messageTtlSeconds} s`);
}

function storageOptions(cmd: Command): Command {
  return cmd
    .option('--data <dir>', 'data folder holding shaddock.db (also SHADDOCK_DATA)')
    .option('--config <file>', 'JSON config file (also SHADDOCK_CONFIG)')
    .option('--redis <url>', 'a cluster\'s Redis instead of SQLite (also SHADDOCK_REDIS_URL)')
    .option('--redis-prefix <prefix>', 'key prefix of the cluster (also SHADDOCK_REDIS_PREFIX)')
    .option('--json', 'print JSON for scripts');
}

export function addAppCommands(program: Command): void {
  const app = program.command('app').description('manage apps (works with or without a running server)');

  storageOptions(app.command('create <name>').description('create an app; prints its apikey and secret'))
    .option('--ttl <seconds>', 'default message time to live', intOption('--ttl'))
    .action(async (name: string, opts: StorageFlags & JsonFlag & { ttl?: number }) => {
      const created = await withStorage(opts, (s) => s.apps.createApp({ name, ...(opts.ttl !== undefined ? { messageTtlSeconds: opts.ttl } : {}) }));
      if (opts.json === true) printJson({ apikey: created.apikey, secret: created.secret, name: created.name, messageTtlSeconds: created.messageTtlSeconds });
      else printApp(created);
    });

  storageOptions(app.command('list').description('list apps'))
    .action(async (opts: StorageFlags & JsonFlag) => {
      const apps = await withStorage(opts, (s) => s.apps.listApps(), { mustExist: true });
      if (opts.json === true) {
        printJson(apps.map(appView));
        return;
      }
      if (apps.length === 0) print('no apps yet: shaddock app create NAME');
      for (const a of apps) print(`${a.apikey}  ${a.name}  (ttl ${a.messageTtlSeconds} s)`);
    });

  storageOptions(
    app
      .command('rotate-secret <apikey>')
      .description('replace the app secret; the old one stops working at once, or after --grace seconds'),
  )
    .option('--grace <seconds>', `keep the old secret (and tokens signed with it) valid this long, 0 to ${MAX_SECRET_GRACE_SECONDS}`, intOption('--grace'))
    .action(async (apikey: string, opts: StorageFlags & JsonFlag & { grace?: number }) => {
      const graceSeconds = opts.grace ?? 0;
      if (graceSeconds < 0 || graceSeconds > MAX_SECRET_GRACE_SECONDS) throw new CliError(`--grace must be from 0 to ${MAX_SECRET_GRACE_SECONDS} seconds`);
      const now = Date.now();
      const rotated = await withStorage(opts, (s) => s.apps.rotateSecret(asApiKey(apikey), { graceSeconds, now }), { mustExist: true });
      if (!rotated) throw new CliError(`no app with apikey "${apikey}"`);
      const until = graceSeconds > 0 ? new Date(now + graceSeconds * 1000).toISOString() : null;
      if (opts.json === true) printJson({ apikey: rotated.apikey, secret: rotated.secret, previousSecretValidUntil: until });
      else {
        printApp(rotated);
        print(until === null ? '  the old secret no longer works' : `  the old secret works until ${until}`);
      }
    });

  storageOptions(app.command('delete <apikey>').description('delete an app and its messages'))
    .action(async (apikey: string, opts: StorageFlags & JsonFlag) => {
      const deleted = await withStorage(opts, (s) => s.apps.deleteApp(asApiKey(apikey)), { mustExist: true });
      if (!deleted) throw new CliError(`no app with apikey "${apikey}"`);
      if (opts.json === true) printJson({ apikey, deleted: true });
      else print(`deleted app ${apikey}`);
    });
}
