import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { buildRouteDictionary } from '../../../src/protocol/pomelo/dictionary.js';
import { DEMO_HANDLER_ROUTES, SPEC_EXTRA_ROUTES, loadVectors } from '../vectors.js';

const demo = loadVectors().demoApp;

describe('route dictionary (docs/pomelo-protocol.md §8.1)', () => {
  it('reproduces the demo app dictionary and its dictVersion', () => {
    const d = buildRouteDictionary(DEMO_HANDLER_ROUTES);
    assert.equal(JSON.stringify(d.routeToCode), JSON.stringify(demo.dictionary));
    assert.equal(JSON.stringify(d.codeToRoute), JSON.stringify(demo.codeToRoute));
    assert.equal(d.version, demo.dictVersion);
  });

  it('appends dictionary.json routes after the sorted handler routes', () => {
    const d = buildRouteDictionary(DEMO_HANDLER_ROUTES, SPEC_EXTRA_ROUTES);
    assert.equal(JSON.stringify(d.routeToCode), JSON.stringify(demo.specConfigDictionary));
    // dictVersion in vector hs-reply-with-dictionary-and-protos.
    assert.equal(d.version, '57Jya2FR0dc/zmvr/+iilA==');
  });

  it('sorts by UTF-16 code units, like Array#sort', () => {
    const d = buildRouteDictionary(['b.a.a', 'B.a.a', 'a.a.a', 'é.a.a', '\u{1F600}.a.a', '\uFF5E.a.a']);
    assert.deepEqual(Object.values(d.codeToRoute), ['B.a.a', 'a.a.a', 'b.a.a', 'é.a.a', '\u{1F600}.a.a', '\uFF5E.a.a']);
  });

  it('a repeated route takes the later code; both codes resolve', () => {
    const d = buildRouteDictionary(['x.y.z'], ['onMsg', 'x.y.z']);
    assert.equal(d.routeToCode['x.y.z'], 3);
    assert.equal(d.codeToRoute['1'], 'x.y.z');
    assert.equal(d.codeToRoute['3'], 'x.y.z');
  });

  it('lookups of Object.prototype names find nothing, and the result is frozen', () => {
    const d = buildRouteDictionary(['a.b.c']);
    assert.equal(d.routeToCode['constructor'], undefined);
    assert.equal(d.routeToCode['toString'], undefined);
    assert.equal(d.codeToRoute['__proto__'], undefined);
    assert.ok(Object.isFrozen(d) && Object.isFrozen(d.routeToCode) && Object.isFrozen(d.codeToRoute));
  });

  it('does not reorder the caller array, and refuses more than 65535 routes', () => {
    const routes = ['c.c.c', 'a.a.a'];
    buildRouteDictionary(routes);
    assert.deepEqual(routes, ['c.c.c', 'a.a.a']);
    const many = Array.from({ length: 65536 }, (_, i) => `r.${i}.x`);
    assert.throws(() => buildRouteDictionary(many), RangeError);
    assert.equal(buildRouteDictionary(many.slice(1)).routeToCode['r.9999.x'] !== undefined, true);
  });

  it('version is base64(md5(JSON.stringify(routeToCode))) for any routes', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 10 }), { maxLength: 20 }), fc.array(fc.string(), { maxLength: 5 }), (h, x) => {
        const d = buildRouteDictionary(h, x);
        const plain: Record<string, number> = {};
        [...h].sort().concat(x).forEach((r, i) => Object.defineProperty(plain, r, { value: i + 1, enumerable: true, writable: true, configurable: true }));
        assert.equal(JSON.stringify(d.routeToCode), JSON.stringify(plain));
        assert.equal(d.version, createHash('md5').update(JSON.stringify(plain)).digest('base64'));
      }),
      { numRuns: 200 },
    );
  });
});
