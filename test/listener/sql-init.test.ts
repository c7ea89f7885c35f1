import assert from 'node:assert/strict';
import { runSqlInit } from '../../listener/sql-init';
import { freshDatabase, uniqueName } from '../support/stack';
import { Client } from 'pg';

describe('SQL init (sql/)', () => {
  it('creates publication, slot, grants and the sample table; a second run changes nothing and says so', async () => {
    const db = await freshDatabase('sqlinit');
    const slot = uniqueName('slot');
    const admin = new Client(db);
    await admin.connect();
    await admin.query('CREATE ROLE pgcdc_repl LOGIN');
    const opts = {
      slot,
      publication: 'pgcdc_pub',
      decoder: 'wal2json' as const,
      replicationUser: 'pgcdc_repl',
    };
    const first = await runSqlInit(db, opts);
    assert.ok(first.notices.includes('created publication pgcdc_pub'), first.notices.join('\n'));
    assert.ok(first.notices.includes(`created logical replication slot ${slot} (plugin wal2json)`));
    assert.ok(first.notices.includes('granted REPLICATION to pgcdc_repl'));
    assert.ok(first.notices.includes('customers: 30 sample rows inserted, 0 already there'));
    const second = await runSqlInit(db, opts);
    assert.ok(second.notices.includes('publication pgcdc_pub already exists'));
    assert.ok(second.notices.includes(`replication slot ${slot} already exists (plugin wal2json)`));
    assert.ok(second.notices.includes('pgcdc_repl already has REPLICATION'));
    assert.ok(second.notices.includes('customers: 0 sample rows inserted, 30 already there'));
    const count = await admin.query('SELECT count(*)::int AS n FROM customers');
    assert.equal(count.rows[0].n, 30);
    await admin.query('SELECT pg_drop_replication_slot($1)', [slot]);
    await admin.end();
  });

  it('refuses a slot that exists with another plugin, saying how to resolve it', async () => {
    const db = await freshDatabase('sqlinit2');
    const slot = uniqueName('slot');
    await runSqlInit(db, { slot, publication: 'p', decoder: 'pgoutput', files: undefined });
    await assert.rejects(
      runSqlInit(db, { slot, publication: 'p', decoder: 'wal2json' }),
      /exists with plugin pgoutput, not wal2json/,
    );
    const admin = new Client(db);
    await admin.connect();
    await admin.query('SELECT pg_drop_replication_slot($1)', [slot]);
    await admin.end();
  });
});
