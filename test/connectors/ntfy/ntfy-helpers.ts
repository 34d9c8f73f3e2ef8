// What the ntfy tests share: curl as ntfy's docs run it, streams read line by line, and
// a server with the ntfy listener on a free port.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { waitFor } from '../../fixtures/wait.js';

export interface CurlResult {
  readonly status: number;
  readonly body: string;
  /** The body parsed as JSON (undefined when it is not JSON). */
  readonly json: unknown;
}

/** Runs `curl -s <args>` and resolves with the status and body (never rejects on HTTP errors). */
export function curl(args: readonly string[], timeoutMs = 10_000): Promise<CurlResult> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-s', '-m', String(Math.ceil(timeoutMs / 1000)), '-w', '\n%{http_code}', ...args], { encoding: 'utf8' }, (err, stdout) => {
      if (err && stdout === '') {
        reject(err);
        return;
      }
      const cut = stdout.lastIndexOf('\n');
      const body = stdout.slice(0, cut);
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      resolve({ status: Number(stdout.slice(cut + 1)), body, json });
    });
  });
}

/** A streaming `curl -sN` whose output lines are collected as they come. */
export class CurlStream {
  readonly lines: string[] = [];
  readonly #child: ChildProcess;
  #buffer = '';
  #exited = false;

  constructor(args: readonly string[]) {
    this.#child = spawn('curl', ['-sN', ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.#child.stdout!.setEncoding('utf8');
    this.#child.stdout!.on('data', (chunk: string) => {
      this.#buffer += chunk;
      let nl: number;
      while ((nl = this.#buffer.indexOf('\n')) >= 0) {
        this.lines.push(this.#buffer.slice(0, nl));
        this.#buffer = this.#buffer.slice(nl + 1);
      }
    });
    this.#child.once('exit', () => {
      this.#exited = true;
    });
  }

  get exited(): boolean {
    return this.#exited;
  }

  /** The JSON objects among the lines (json streams). */
  get events(): { readonly event: string; readonly [k: string]: unknown }[] {
    return this.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event: string });
  }

  messages(): { readonly id: string; readonly message: string; readonly topic: string; readonly [k: string]: unknown }[] {
    return this.events.filter((e) => e.event === 'message') as never;
  }

  async waitFor(check: (s: CurlStream) => boolean, message: string, timeoutMs = 5000): Promise<void> {
    await waitFor(() => check(this), { timeoutMs, message });
  }

  stop(): void {
    if (!this.#exited) this.#child.kill();
  }
}
