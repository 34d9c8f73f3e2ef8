import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ClientMember } from '../../src/hub/members.js';
import type { Connection } from '../../src/hub/connection.js';
import { asApiKey, asClientId } from '../../src/ids.js';

/** A member whose connection is never used here. */
function member(tags: readonly string[]): ClientMember {
  const conn = {} as Connection;
  return new ClientMember(conn, asApiKey('app'), asClientId('c'), Date.now(), { after: 0, lastDeliveredId: 0, ackedId: 0, tags });
}

describe('ClientMember tags', () => {
  it('behave as the Set operations the hub uses, with or without tags to start', () => {
    const empty = member([]);
    assert.equal(empty.tags.size, 0);
    assert.equal(empty.tags.has('a'), false);
    assert.equal(empty.deleteTag('a'), false);
    assert.deepEqual([...empty.tags], []);
    empty.addTag('a');
    empty.addTag('b');
    empty.addTag('a');
    assert.equal(empty.tags.size, 2);
    assert.deepEqual([...empty.tags], ['a', 'b']);
    assert.equal(empty.deleteTag('a'), true);
    assert.deepEqual([...empty.tags], ['b']);

    const tagged = member(['x', 'y', 'x']);
    assert.equal(tagged.tags.size, 2);
    assert.equal(tagged.tags.has('y'), true);
    assert.deepEqual([...tagged.tags], ['x', 'y']);
    // Members without tags share nothing they could write into.
    const other = member([]);
    member([]).addTag('z');
    assert.deepEqual([...other.tags], []);
  });

  it('keep their enter time as given', () => {
    const at = Date.now();
    const m = new ClientMember({} as Connection, asApiKey('app'), asClientId('c'), at, { after: 0, lastDeliveredId: 0, ackedId: 0, tags: [] });
    assert.equal(m.enteredAt, at);
  });
});
