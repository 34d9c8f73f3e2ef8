/**
 * The progress line on stderr: rewritten in place on a terminal, a line every few
 * seconds otherwise (CI logs), nothing when quiet.
 */
export class Progress {
  readonly #quiet: boolean;
  readonly #tty: boolean;
  readonly #start = Date.now();
  #phase = '';
  #lastLine = 0;
  #shown = false;

  constructor(quiet: boolean) {
    this.#quiet = quiet;
    this.#tty = process.stderr.isTTY;
  }

  phase(name: string): void {
    this.#end();
    this.#phase = name;
    this.#lastLine = 0;
  }

  update(text: string): void {
    if (this.#quiet) return;
    const elapsed = ((Date.now() - this.#start) / 1000).toFixed(1).padStart(6);
    const line = `[${elapsed}s] ${this.#phase.padEnd(8)} ${text}`;
    if (this.#tty) {
      process.stderr.write(`\r\x1b[K${line}`);
      this.#shown = true;
    } else if (Date.now() - this.#lastLine >= 3000) {
      this.#lastLine = Date.now();
      process.stderr.write(`${line}\n`);
    }
  }

  /** A line of its own (notes, warnings), never overwritten. */
  note(text: string): void {
    if (this.#quiet) return;
    this.#end();
    process.stderr.write(`${text}\n`);
  }

  #end(): void {
    if (this.#shown) process.stderr.write('\n');
    this.#shown = false;
  }

  done(): void {
    this.#end();
  }
}
