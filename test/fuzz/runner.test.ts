import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDecoderInWorker } from '../../bench/fuzz/fuzz.js';
import { fuzzDecoder, parseCrasher, replayCrasher } from '../../bench/fuzz/fuzz-core.js';
import { decoderByName } from '../../bench/fuzz/decoders.js';

// The fuzz runner itself: a hang is caught by the watchdog and its input saved; a crash
// is saved with its pick seed and replays as the same crash; runs are reproducible.
describe('fuzz runner', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shaddock-fuzz-runner-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a hanging input is caught by the watchdog and saved', async () => {
    const run = await runDecoderInWorker({ decoder: 'selftest-hang', count: 1_000_000, seed: 1, maxSeconds: 0, hangMs: 500, progressEvery: 1000, crashDir: dir }, () => undefined);
    assert.ok(run.hang, 'no hang reported');
    assert.ok(run.hang.file !== null);
    const { input } = parseCrasher(readFileSync(run.hang.file));
    assert.equal(input[0], 0x42);
  });

  it('a crash is saved with its pick seed, replays as a crash, and the same seed finds it again', async () => {
    const spec = decoderByName('selftest-crash')!;
    const d = await spec.open();
    const first = await fuzzDecoder(spec, d, { count: 5000, seed: 9, crashDir: dir });
    const again = await fuzzDecoder(spec, d, { count: 5000, seed: 9, crashDir: null });
    assert.ok(first.crashes.length > 0);
    assert.deepEqual(
      again.crashes.map((c) => [c.index, c.pickSeed, c.inputHex]),
      first.crashes.map((c) => [c.index, c.pickSeed, c.inputHex]),
    );
    assert.ok((first.counts.errors['SELFTEST_REFUSED'] ?? 0) > 0, 'documented refusals are counted, not crashes');
    const files = readdirSync(join(dir, 'selftest-crash'));
    assert.equal(files.length, new Set(first.crashes.map((c) => c.inputHex)).size);
    await assert.rejects(replayCrasher(d, readFileSync(join(dir, 'selftest-crash', files[0]!))), TypeError);
  });
});
