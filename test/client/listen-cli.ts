// A CLI with only `listen`, for test/client/sdk.test.ts (src/cli/index.ts registers
// every command; this keeps the test independent of the rest of the CLI).
import { Command, CommanderError } from 'commander';
import { addListenCommand } from '../../src/cli/listen.js';
import { CliError } from '../../src/cli/output.js';

const program = new Command().name('shaddock').exitOverride();
addListenCommand(program);
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  process.stderr.write(`shaddock: ${(err as Error).message}\n`);
  process.exit(err instanceof CliError ? err.exitCode : 1);
}
