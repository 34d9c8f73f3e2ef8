import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DeadlineWheel, type WheelItem } from '../../src/connectors/deadline-wheel.js';

interface Item extends WheelItem {
  name: string;
}

function setup() {
  let now = 10_000;
  const expired: string[] = [];
  const wheel = new DeadlineWheel<Item>((i) => expired.push(i.name), 1000, () => now);
  return { wheel, expired, advance: (ms: number) => (now += ms) };
}

describe('DeadlineWheel', () => {
  it('never fires before the deadline and fires within one slot after it', () => {
    const { wheel, expired, advance } = setup();
    const a: Item = { name: 'a', wheelSlot: -1 };
    wheel.arm(a, 2500);
    advance(2400);
    wheel.sweep();
    assert.deepEqual(expired, []);
    advance(1100);
    wheel.sweep();
    assert.deepEqual(expired, ['a']);
    assert.equal(a.wheelSlot, -1);
    assert.equal(wheel.size, 0);
  });

  it('items of one slot stay listed when any of them (first, middle, last) is disarmed', () => {
    const { wheel, expired, advance } = setup();
    const items = ['a', 'b', 'c', 'd', 'e'].map((name): Item => ({ name, wheelSlot: -1 }));
    for (const i of items) wheel.arm(i, 1000);
    assert.equal(wheel.size, 5);
    // The slot's list is newest first: e is its head, a its tail.
    wheel.disarm(items[4]!);
    wheel.disarm(items[2]!);
    wheel.disarm(items[0]!);
    wheel.disarm(items[0]!); // twice is harmless
    assert.equal(wheel.size, 2);
    advance(2000);
    wheel.sweep();
    assert.deepEqual(expired.sort(), ['b', 'd']);
    assert.equal(wheel.size, 0);
    assert.ok(items.every((i) => i.wheelSlot === -1 && i.wheelNext === undefined && i.wheelPrev === undefined));
  });

  it('an expiry may disarm or re-arm others of its slot: the slot still expires whole, and a re-armed item again later', () => {
    let now = 10_000;
    const expired: string[] = [];
    const a: Item = { name: 'a', wheelSlot: -1 };
    const b: Item = { name: 'b', wheelSlot: -1 };
    const wheel: DeadlineWheel<Item> = new DeadlineWheel<Item>(
      (i) => {
        expired.push(i.name);
        wheel.disarm(i === a ? b : a);
        if (i === b) wheel.arm(a, 3000);
      },
      1000,
      () => now,
    );
    wheel.arm(a, 1000);
    wheel.arm(b, 1000);
    now += 2000;
    wheel.sweep();
    assert.deepEqual(expired.sort(), ['a', 'b']);
    assert.equal(wheel.size, 1); // a, re-armed by b's expiry
    now += 4000;
    wheel.sweep();
    assert.deepEqual(expired.sort(), ['a', 'a', 'b']);
  });

  it('an item re-armed with no time left from its own expiry, exactly on a slot boundary, expires at the next sweep', () => {
    let now = 10_000;
    let fired = 0;
    const a: Item = { name: 'a', wheelSlot: -1 };
    const wheel: DeadlineWheel<Item> = new DeadlineWheel<Item>(
      (i) => {
        fired++;
        if (fired === 1) wheel.arm(i, 0);
      },
      1000,
      () => now,
    );
    wheel.arm(a, 2000);
    // On a slot boundary, a deadline of "now" rounds to the very slot being swept.
    now += 2000;
    wheel.sweep();
    assert.equal(fired, 1);
    assert.equal(wheel.size, 1);
    now += 1000;
    wheel.sweep();
    assert.equal(fired, 2);
    assert.equal(wheel.size, 0);
  });

  it('re-arming moves the deadline; disarming cancels it', () => {
    const { wheel, expired, advance } = setup();
    const a: Item = { name: 'a', wheelSlot: -1 };
    const b: Item = { name: 'b', wheelSlot: -1 };
    wheel.arm(a, 1000);
    wheel.arm(b, 1000);
    advance(900);
    wheel.arm(a, 5000);
    wheel.disarm(b);
    advance(2000);
    wheel.sweep();
    assert.deepEqual(expired, []);
    advance(4000);
    wheel.sweep();
    assert.deepEqual(expired, ['a']);
  });

  it('catches up on every slot missed while the loop was busy', () => {
    const { wheel, expired, advance } = setup();
    for (let i = 0; i < 50; i++) wheel.arm({ name: `i${i}`, wheelSlot: -1 }, i * 100);
    advance(60_000);
    wheel.sweep();
    assert.equal(expired.length, 50);
  });

  it('a zero delay still fires on the next sweep', () => {
    const { wheel, expired, advance } = setup();
    wheel.sweep();
    wheel.arm({ name: 'now', wheelSlot: -1 }, 0);
    advance(1000);
    wheel.sweep();
    assert.deepEqual(expired, ['now']);
  });
});
