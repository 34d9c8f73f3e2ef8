#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { addStartCommand } from './start.js';
import { addAppCommands } from './app.js';
import { addPushCommand } from './push.js';
import { addListenCommand } from './listen.js';
import { addTokenCommand } from './token.js';
import { addAdminCommands } from './admin.js';
import { addClusterCommand } from './cluster.js';
import { CliError } from './output.js';
import { VERSION } from '../version.js';

const program = new Command()
  .name('shaddock')
  .description('Shaddock: a self-hosted real-time push platform, Pomelo-compatible.')
  .version(VERSION)
  .showHelpAfterError()
  .exitOverride();

addStartCommand(program);
addClusterCommand(program);
addAppCommands(program);
addAdminCommands(program);
addPushCommand(program);
addListenCommand(program);
addTokenCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  const message = err instanceof CliError || (err instanceof Error && err.name === 'ConfigError') ? err.message : String((err as Error).message ?? err);
  process.stderr.write(`shaddock: ${message}\n`);
  process.exit(err instanceof CliError ? err.exitCode : 1);
}
