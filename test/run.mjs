#!/usr/bin/env node
// Runs every test file under test/ with node's built-in runner and tsx for
// TypeScript. Node 20's --test does not expand globs, so we list the files.
//
// Nothing here may hang: a file that does not finish within FILE_TIMEOUT_MS (its
// tests, or something it left running) fails by name and its process is killed,
// and the whole run is stopped after RUN_TIMEOUT_MS, well inside CI's limit.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawn } from 'node:child_process';
import { clearTimeout, setTimeout } from 'node:timers';

const FILE_TIMEOUT_MS = 300_000;
const RUN_TIMEOUT_MS = 40 * 60_000;

const root = new URL('..', import.meta.url).pathname;
const only = process.argv.slice(2);

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...walk(path));
    else if (name.endsWith('.test.ts')) out.push(relative(root, path));
  }
  return out;
}

let files = walk(join(root, 'test')).sort();
if (only.length > 0) files = files.filter((f) => only.some((o) => f.includes(o)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const runner = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', `--test-timeout=${FILE_TIMEOUT_MS}`, '--test-reporter=spec', ...files],
  // Its own process group, so a run that overstays can be stopped with everything it started.
  { cwd: root, stdio: 'inherit', env: { ...process.env, NODE_ENV: 'test' }, detached: true },
);
const overstay = setTimeout(() => {
  console.error(`\ntest run stopped: not finished after ${RUN_TIMEOUT_MS / 60_000} minutes`);
  try {
    process.kill(-runner.pid, 'SIGKILL');
  } catch {
    runner.kill('SIGKILL');
  }
}, RUN_TIMEOUT_MS);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    try {
      process.kill(-runner.pid, signal);
    } catch {
      // already gone
    }
  });
}
runner.on('close', (code, signal) => {
  clearTimeout(overstay);
  process.exit(code ?? (signal ? 1 : 0));
});
