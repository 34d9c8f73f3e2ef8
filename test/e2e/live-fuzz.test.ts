import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runLiveFuzz } from '../../bench/fuzz/live-fuzz.js';

// The short version of `npm run fuzz:live` (bench/fuzz/live-fuzz.ts): malformed
// connections on every port while good clients on every connector receive every push.
describe('live-server fuzz', () => {
  it('100 malformed connections on every port; 100 good clients on every connector receive everything', async () => {
    const r = await runLiveFuzz({ good: 100, bad: 100, pushes: 20, concurrency: 25, seed: 20_261_125, badHoldMs: 1500, deliveryTimeoutMs: 30_000 });
    assert.deepEqual(r.lost, [], 'good clients missed messages');
    assert.deepEqual(r.kicked, [], 'good clients were kicked or dropped');
    assert.equal(r.healthz, 200);
    // Every bad connection is gone; every good one is still there.
    assert.deepEqual(r.connectionsAfter, {
      hybrid: r.good['hybrid-tcp'] + r.good['hybrid-ws'],
      sio: r.good.sio,
      mqtt: r.good.mqtt,
      ws: r.good.ws,
      sse: r.good.sse,
      hub: 100,
    });
    // Every target and attack was tried, and the server itself refused bad input (a
    // truncated frame is rightly waited on until the handshake deadline, which is past
    // the hold time, so not every bad connection is closed by the server).
    for (const [target, n] of Object.entries(r.bad)) assert.ok(n > 0, `no bad connection on ${target}`);
    for (const [attack, n] of Object.entries(r.badByAttack)) assert.ok(n > 0, `no ${attack} attack`);
    assert.ok(r.badClosedByServer > 10, `the server closed only ${r.badClosedByServer} of 100 bad connections`);
    // Memory is bounded: the bad connections leave nothing behind worth counting (a
    // generous bound; without --expose-gc the figure includes garbage not yet collected).
    assert.ok(r.heapAfterMb - r.heapBeforeMb < 128, `heap grew from ${r.heapBeforeMb.toFixed(0)} MB to ${r.heapAfterMb.toFixed(0)} MB`);
  });
});
