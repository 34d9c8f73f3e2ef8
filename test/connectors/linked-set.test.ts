import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LinkedSet, type SetLinks } from '../../src/connectors/linked-set.js';

interface Item extends SetLinks {
  readonly name: string;
}

const names = (set: LinkedSet<Item>): string[] => [...set].map((i) => i.name).sort();

describe('LinkedSet', () => {
  it('adds once, deletes from the head, the middle and the tail, and counts', () => {
    const set = new LinkedSet<Item>();
    const items = ['a', 'b', 'c', 'd', 'e'].map((name): Item => ({ name }));
    for (const i of items) set.add(i);
    set.add(items[0]!); // already in: nothing changes
    assert.equal(set.size, 5);
    assert.equal(set.delete(items[4]!), true); // the head (newest)
    assert.equal(set.delete(items[2]!), true);
    assert.equal(set.delete(items[0]!), true); // the tail
    assert.equal(set.delete(items[0]!), false);
    assert.equal(set.size, 2);
    assert.deepEqual(names(set), ['b', 'd']);
    assert.equal(set.has(items[1]!), true);
    assert.equal(set.has(items[2]!), false);
    set.add(items[2]!);
    assert.deepEqual(names(set), ['b', 'c', 'd']);
  });

  it('iterates a copy: the loop may delete and add items', () => {
    const set = new LinkedSet<Item>();
    const items = ['a', 'b', 'c'].map((name): Item => ({ name }));
    for (const i of items) set.add(i);
    const seen: string[] = [];
    for (const i of set) {
      seen.push(i.name);
      for (const other of items) set.delete(other);
      set.add({ name: `${i.name}2` });
    }
    assert.deepEqual(seen.sort(), ['a', 'b', 'c']);
    assert.deepEqual(names(set), ['a2', 'b2', 'c2']);
  });
});
