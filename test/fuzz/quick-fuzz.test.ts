import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fuzzDecoder } from '../../bench/fuzz/fuzz-core.js';
import { DECODERS } from '../../bench/fuzz/decoders.js';

// The short version of `npm run fuzz:long`: seeded random and mutated inputs into every
// decoder; only values or documented refusals may come out. A crash here prints the
// input and the pick seed; `npm run fuzz -- --decoder NAME --count N --seed 20261125`
// reproduces it and saves it under test/fixtures/fuzz-crashers/.
const SEED = 20_261_125;

describe('quick fuzz of every decoder', () => {
  for (const spec of DECODERS) {
    // The HTTP decoder makes a request per input (about 1,500/s on a busy core).
    const count = spec.slow === true ? 3_000 : 20_000;
    it(`${spec.name}: ${count} inputs give only values or refusals`, async () => {
      const d = await spec.open();
      try {
        const { counts, crashes } = await fuzzDecoder(spec, d, { count, seed: SEED, crashDir: null });
        for (const c of crashes) assert.fail(`${c.decoder} crashed on input #${c.index} (pick seed ${c.pickSeed}): ${c.inputHex.slice(0, 400)}\n${c.error}`);
        assert.equal(counts.inputs, count);
        // Both outcomes are reached: the generator makes inputs that decode, and some that are refused.
        assert.ok(counts.values > 0, `${spec.name}: no input decoded`);
        if (spec.name !== 'mqtt-push') assert.ok(Object.keys(counts.errors).length > 0, `${spec.name}: no input refused`);
      } finally {
        await d.close?.();
      }
    });
  }
});
