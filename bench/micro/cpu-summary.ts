// Summarises a V8 .cpuprofile (node --cpu-prof): self time by function, the biggest
// first, and total (inclusive) time of the functions matching a filter.
//
//   node --import tsx bench/micro/cpu-summary.ts FILE [rows] [--total REGEX]
//
// Profile the server under load with BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR".
import { readFileSync } from 'node:fs';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}
interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

const args = process.argv.slice(2);
const totalAt = args.indexOf('--total');
const totalRe = totalAt >= 0 ? new RegExp(args.splice(totalAt, 2)[1]!) : undefined;
const [file, rowsArg] = args;
if (file === undefined) {
  console.error('usage: cpu-summary.ts FILE [rows] [--total REGEX]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const self = new Map<number, number>();
let all = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  self.set(id, (self.get(id) ?? 0) + dt);
  all += dt;
});
const label = (n: ProfileNode): string => {
  const url = n.callFrame.url.replace(/^.*node_modules\//, '~/').replace(/^file:\/\/.*\/(src|bench)\//, '$1/');
  return `${n.callFrame.functionName || '(anonymous)'} ${url}:${n.callFrame.lineNumber + 1}`;
};
const selfByLabel = new Map<string, number>();
for (const [id, t] of self) {
  const l = label(byId.get(id)!);
  selfByLabel.set(l, (selfByLabel.get(l) ?? 0) + t);
}
console.log(`total ${(all / 1000).toFixed(0)} ms`);
for (const [l, t] of [...selfByLabel].sort((a, b) => b[1] - a[1]).slice(0, Number(rowsArg ?? 40))) {
  console.log(`${(t / 1000).toFixed(1).padStart(9)} ms ${((100 * t) / all).toFixed(1).padStart(5)} %  ${l}`);
}
if (totalRe) {
  // Inclusive time: a sample counts once for every distinct matching label on its stack.
  const incl = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const seen = new Set<string>();
    for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
      const l = label(byId.get(n)!);
      if (totalRe.test(l)) seen.add(l);
    }
    for (const l of seen) incl.set(l, (incl.get(l) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  console.log(`\ninclusive, matching ${String(totalRe)}:`);
  for (const [l, t] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, Number(rowsArg ?? 40))) {
    console.log(`${(t / 1000).toFixed(1).padStart(9)} ms ${((100 * t) / all).toFixed(1).padStart(5)} %  ${l}`);
  }
}
