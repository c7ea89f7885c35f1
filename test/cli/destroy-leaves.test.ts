// pgcdc destroy says what it leaves behind: with an existing database (sourceMode cloudsql/host) the slot and
// publications stay there until `pgcdc sql teardown`, and a forgotten slot fills the disk (issue 10.7).
import assert from 'node:assert/strict';
import { whatDestroyLeaves } from '../../cli/commands/destroy';

describe('pgcdc destroy: what it deletes and what it leaves', () => {
  it('a stack that owns its database deletes it, slot included', async () => {
    const lines = whatDestroyLeaves('dev', 'new');
    assert.equal(lines.length, 1);
    assert.match(lines[0], /deletes the database \(its replication slot with it\)/);
  });
  it('with an existing database the slot stays, and the way to drop it is named with --env', async () => {
    for (const mode of ['cloudsql', 'host']) {
      const lines = whatDestroyLeaves('prod', mode);
      assert.match(lines[0], new RegExp(`your database \\(sourceMode ${mode}\\) is not touched`));
      assert.match(lines[1], /replication slot and publications stay/);
      assert.match(lines[1], /pgcdc sql teardown --env prod/);
    }
  });
});
