// Summarises a V8 heap snapshot by constructor: count and self size, the biggest first.
// Used to find what an idle connection holds: take a snapshot of a server holding N
// entered connections (`NODE_OPTIONS=--heapsnapshot-signal=SIGUSR2` on the server,
// then `kill -USR2 PID`), and read the rows whose count is a multiple of N.
//
//   node --import tsx bench/micro/heap-summary.ts Heap.X.heapsnapshot [rows] [--base OTHER.heapsnapshot]
//
// With --base, rows are the difference (this − base), so a snapshot at 0 connections
// taken first isolates what the connections added.
import { readFileSync } from 'node:fs';

interface Snapshot {
  readonly snapshot: { readonly meta: { readonly node_fields: string[]; readonly node_types: [string[], ...unknown[]] } };
  readonly nodes: number[];
  readonly strings: string[];
}

type Rows = Map<string, { count: number; size: number }>;

function summarise(file: string): Rows {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const rows: Rows = new Map();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt]!]!;
    let name = snap.strings[snap.nodes[i + nameAt]!]!;
    // Strings, code and arrays by kind; objects and closures by their constructor/function name.
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = '(string)';
    else if (type === 'code') name = '(code)';
    else if (type === 'array') name = `(array) ${name}`;
    else if (type === 'hidden') name = `(hidden) ${name}`;
    else if (type === 'closure') name = `(closure) ${name}`;
    else if (type === 'native') name = `(native) ${name}`;
    const row = rows.get(name) ?? { count: 0, size: 0 };
    row.count++;
    row.size += snap.nodes[i + sizeAt]!;
    rows.set(name, row);
  }
  return rows;
}

const args = process.argv.slice(2);
const baseAt = args.indexOf('--base');
const baseFile = baseAt >= 0 ? args.splice(baseAt, 2)[1] : undefined;
const [file, limitArg] = args;
if (file === undefined) {
  console.error('usage: heap-summary.ts FILE [rows] [--base FILE]');
  process.exit(2);
}
const rows = summarise(file);
if (baseFile !== undefined) {
  for (const [name, b] of summarise(baseFile)) {
    const row = rows.get(name) ?? { count: 0, size: 0 };
    row.count -= b.count;
    row.size -= b.size;
    rows.set(name, row);
  }
}
const sorted = [...rows.entries()].sort((a, b) => b[1].size - a[1].size).slice(0, Number(limitArg ?? 40));
let total = 0;
for (const [, r] of rows) total += r.size;
console.log(`total self size ${(total / 1024).toFixed(0)} KiB`);
for (const [name, r] of sorted) console.log(`${String(r.size).padStart(12)} B ${String(r.count).padStart(9)}  ${name.slice(0, 100)}`);
