import type { Command } from 'commander';
import { CliError, print, printJson } from './output.js';
import { withStorage, type StorageFlags } from './open-storage.js';

interface AdminOptions extends StorageFlags {
  password?: string;
  json?: boolean;
}

/** The password from --password, SHADDOCK_NEW_PASSWORD, or the first line of stdin. */
async function readPassword(opts: AdminOptions): Promise<string> {
  let password = opts.password ?? process.env['SHADDOCK_NEW_PASSWORD'];
  if (password === undefined && !process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    password = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0];
  }
  if (password === undefined || password.length < 8) {
    throw new CliError('give a password of at least 8 characters: --password, SHADDOCK_NEW_PASSWORD, or on stdin');
  }
  return password;
}

export function addAdminCommands(program: Command): void {
  const admin = program.command('admin').description('manage admin accounts (console and admin API)');
  for (const [name, description] of [
    ['create', 'create an admin account'],
    ['passwd', "set an admin account's password"],
  ] as const) {
    admin
      .command(`${name} <username>`)
      .description(description)
      .option('--password <password>', 'the password (or SHADDOCK_NEW_PASSWORD, or stdin)')
      .option('--data <dir>', 'data folder holding shaddock.db (also SHADDOCK_DATA)')
      .option('--config <file>', 'JSON config file (also SHADDOCK_CONFIG)')
      .option('--json', 'print JSON for scripts')
      .action(async (username: string, opts: AdminOptions) => {
        const password = await readPassword(opts);
        await withStorage(opts, async (s) => {
          const exists = (await s.admins.listAdmins()).some((a) => a.username === username);
          if (name === 'create' && exists) throw new CliError(`admin "${username}" exists; use: shaddock admin passwd ${username}`);
          if (name === 'passwd' && !exists) throw new CliError(`no admin "${username}"; use: shaddock admin create ${username}`);
          await s.admins.setAdminPassword(username, password);
        });
        if (opts.json === true) printJson({ username, ok: true });
        else print(name === 'create' ? `created admin "${username}"` : `password of "${username}" changed`);
      });
  }
}
