import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FUZZ_CRASHERS_DIR, replayCrasher } from '../../bench/fuzz/fuzz-core.js';
import { DECODERS, type DecoderInstance } from '../../bench/fuzz/decoders.js';

// Every input that ever crashed or hung a decoder, replayed forever (docs/conventions.md §8). A file
// is [pick seed uint32 BE][input]; replayCrasher rethrows anything that is not the
// decoder's documented refusal.
describe('fuzz crashers replay', () => {
  it('every crasher folder names a decoder', () => {
    assert.ok(existsSync(join(FUZZ_CRASHERS_DIR, 'README.md')));
    const known = new Set(DECODERS.map((d) => d.name));
    for (const entry of readdirSync(FUZZ_CRASHERS_DIR)) {
      if (statSync(join(FUZZ_CRASHERS_DIR, entry)).isDirectory()) assert.ok(known.has(entry), `test/fixtures/fuzz-crashers/${entry}: no such decoder`);
    }
  });

  for (const spec of DECODERS) {
    const dir = join(FUZZ_CRASHERS_DIR, spec.name);
    const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.bin')).sort() : [];
    if (files.length === 0) continue;
    describe(spec.name, () => {
      let d: DecoderInstance;
      before(async () => {
        d = await spec.open();
      });
      after(async () => {
        await d.close?.();
      });
      for (const file of files) {
        it(file, async () => {
          const outcome = await replayCrasher(d, readFileSync(join(dir, file)));
          assert.equal(typeof outcome, 'string');
        });
      }
    });
  }
});
