import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TagSet } from '../../src/hub/members.js';

describe('TagSet', () => {
  it('behaves as the Set operations the hub uses, with or without tags to start', () => {
    const empty = new TagSet([]);
    assert.equal(empty.size, 0);
    assert.equal(empty.has('a'), false);
    assert.equal(empty.delete('a'), false);
    assert.deepEqual([...empty], []);
    assert.equal(empty.add('a').add('b').add('a'), empty);
    assert.equal(empty.size, 2);
    assert.deepEqual([...empty], ['a', 'b']);
    assert.equal(empty.delete('a'), true);
    assert.deepEqual([...empty], ['b']);

    const tagged = new TagSet(['x', 'y', 'x']);
    assert.equal(tagged.size, 2);
    assert.equal(tagged.has('y'), true);
    assert.deepEqual([...tagged], ['x', 'y']);
    // Two empty sets never share what they hold.
    const other = new TagSet([]);
    new TagSet([]).add('z');
    assert.deepEqual([...other], []);
  });
});
