import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CRASHERS_DIR, replay } from '../../../bench/fuzz/pomelo-fuzz.js';

// Inputs that once broke a decoder, replayed through every decoder (docs/conventions.md §8).
describe('pomelo crashers replay', () => {
  const files = readdirSync(CRASHERS_DIR)
    .filter((f) => f.endsWith('.bin'))
    .sort();

  it('the fixture folder is there', () => {
    assert.ok(readdirSync(CRASHERS_DIR).includes('README.md'));
  });

  for (const file of files) {
    it(file, () => {
      // replay() rethrows anything that is not a ProtocolError.
      replay(readFileSync(join(CRASHERS_DIR, file)));
    });
  }
});
