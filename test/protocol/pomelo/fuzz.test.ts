import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TARGETS, runFuzz } from '../../../bench/fuzz/pomelo-fuzz.js';

// A short version of bench/fuzz/pomelo-fuzz.ts: random and mutated inputs into every decoder.
describe('pomelo short fuzz', () => {
  it('20,000 inputs per decoder give only values or ProtocolError', () => {
    const result = runFuzz({ perTarget: 20_000, seed: 20_240_611, crashDir: null });
    for (const crash of result.crashes) {
      assert.fail(`${crash.target} crashed on ${crash.inputHex}: ${crash.error}`);
    }
    for (const t of TARGETS) {
      const c = result.counts[t.name]!;
      assert.equal(c.inputs, 20_000);
      // Both outcomes are exercised: some inputs decode, some are refused.
      assert.ok(c.values > 0, `${t.name}: no input decoded`);
      assert.ok(Object.keys(c.errors).length > 0, `${t.name}: no input refused`);
    }
  });
});
