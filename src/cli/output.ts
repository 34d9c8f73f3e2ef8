/** A failure the CLI reports as one line on stderr, with a non-zero exit. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function print(line = ''): void {
  process.stdout.write(`${line}\n`);
}

/** Parses a whole number option, or fails naming the option. */
export function intOption(name: string): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n)) throw new CliError(`${name} must be a whole number, got "${value}"`);
    return n;
  };
}
