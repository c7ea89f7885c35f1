// Both decoders capture exactly the granted captured tables (decoders/wal2json.ts addTablesFilter): with
// PGCDC_TABLES empty, wal2json (which reads no publication) gets an add-tables list of the tables the
// replicator may read, as pgoutput gets its publications. A table the application's owner creates after
// `sql init`, with TOAST updates, is neither streamed nor looked up (its lookup would be refused), the run
// succeeds and names it; once `sql init` grants it, the next job snapshots it and streams it. Local
// Cloud-SQL-like roles; names with every character wal2json's filter syntax treats specially.

import assert from 'node:assert/strict';
import { DecoderName } from '../../listener/config';
import { runListenerJob } from '../../listener/job';
import { runSqlInit } from '../../listener/sql-init';
import { addTablesFilter } from '../../listener/decoders/wal2json';
import { emptyCatalog } from '../../listener/catalog';
import { CloudSqlFixture, cloudSqlListenerFixture } from '../support/cloudsql';
import { TableEvent, createTopic, eventsOf, pullAll } from '../support/pubsub';

/** 4 kB+ of text that does not compress: with STORAGE EXTERNAL it always lives out of line. */
const BIG = (seed: number) =>
  `(SELECT string_agg(md5((${seed} * 1000 + g)::text), '') FROM generate_series(1, 130) g)`;

// No period in the schema: pgcdc names tables "schema.table" and splits at the first period (snapshot.ts).
const ODD_SCHEMA = "odd sch ema,'*\\";
const ODD_TABLE = "t, 'q' *.x\\y\tz";
const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;
const ODD = `${ident(ODD_SCHEMA)}.${ident(ODD_TABLE)}`;
const COLS = ['id', 'small', 'big'];

/** The replica the events build: each key's highest-seq event (deletes remove it). */
function replicaOf(events: TableEvent[], schema: string, table: string) {
  const rows = new Map<string, Record<string, unknown>>();
  for (const e of events.filter((x) => x.schema === schema && x.table === table)) {
    const id = String((e.key ?? e.after ?? {}).id);
    if (e.op === 'd') rows.delete(id);
    else if (e.after) rows.set(id, Object.fromEntries(COLS.map((c) => [c, e.after![c]])));
  }
  return rows;
}

async function sourceRows(f: CloudSqlFixture, relation: string) {
  const rows = await f.sql(`SELECT ${COLS.join(', ')} FROM ${relation} ORDER BY id`);
  return new Map(
    rows.map((r) => [
      String(r.id),
      Object.fromEntries(COLS.map((c) => [c, r[c] === null ? null : String(r[c])])),
    ]),
  );
}

const TABLE = (relation: string) => `CREATE TABLE ${relation} (id int PRIMARY KEY, small text, big text);
  ALTER TABLE ${relation} ALTER COLUMN big SET STORAGE EXTERNAL`;

/** Inserts, then updates that leave big an unchanged TOAST value, a delete, and an update of big itself. */
async function writeChanges(f: CloudSqlFixture, relation: string, base: number): Promise<void> {
  await f.sql(
    `INSERT INTO ${relation} VALUES (${base + 1}, 'a', ${BIG(base + 1)}), (${base + 2}, 'b', ${BIG(base + 2)}), (${base + 3}, 'c', ${BIG(base + 3)})`,
  );
  await f.sql(`UPDATE ${relation} SET small = small || '2'`);
  await f.sql(`DELETE FROM ${relation} WHERE id = ${base + 3}`);
  await f.sql(`UPDATE ${relation} SET big = ${BIG(base + 50)} WHERE id = ${base + 2}`);
}

describe('wal2json add-tables filter', () => {
  it('is left out when the role reads every table, and never empty (empty would mean every table)', () => {
    const superuser = {
      ...emptyCatalog(),
      readable: [['public', 'a']] as [string, string][],
      readsAllTables: true,
    };
    assert.equal(addTablesFilter(superuser, []), undefined);
    const granted = { ...superuser, readsAllTables: false, unreadable: ['public.b'] };
    assert.equal(addTablesFilter(granted, []), 'public.a');
    assert.equal(addTablesFilter(granted, ['public.b']), 'pg_catalog.*');
    assert.equal(addTablesFilter({ ...granted, readable: [] }, []), 'pg_catalog.*');
    assert.equal(addTablesFilter(granted, ['public.a', 'public.c']), 'public.a,public.c');
  });
});

for (const decoder of ['wal2json', 'pgoutput'] as DecoderName[]) {
  describe(`listener with ${decoder}: only the tables the replicator was granted are captured`, function () {
    this.timeout(180_000);

    it('a table created after the init (TOAST updates included) is skipped and named; after the next init it is snapshotted and streamed', async () => {
      const topic = await createTopic(`granted_${decoder}`);
      const f = await cloudSqlListenerFixture(topic, decoder, { snapshot: 'auto' }, async (sql) => {
        await sql(TABLE('kept'));
        await sql(`CREATE SCHEMA ${ident(ODD_SCHEMA)}`);
        await sql(TABLE(ODD));
      });
      await f.sql(TABLE('later'));
      await writeChanges(f, 'kept', 0);
      await writeChanges(f, ODD, 0);
      await writeChanges(f, 'later', 0);

      const alerts: { severity: string; message: string }[] = [];
      const first = await runListenerJob(f.cfg, {
        alert: (severity, message) => alerts.push({ severity, message }),
      });
      assert.equal(first.stoppedBy, 'wal-end');
      assert.deepEqual(first.skippedTables, [{ table: 'public.later', reason: 'not-granted' }]);
      assert.ok(
        alerts.some((a) => a.severity === 'WARNING' && /public\.later.*pgcdc sql init/.test(a.message)),
        JSON.stringify(alerts),
      );
      let events = eventsOf(await pullAll(topic));
      assert.deepEqual(
        events.filter((e) => e.table === 'later'),
        [],
        'nothing of the table the replicator may not read',
      );
      assert.deepEqual(replicaOf(events, 'public', 'kept'), await sourceRows(f, 'kept'));
      assert.deepEqual(replicaOf(events, ODD_SCHEMA, ODD_TABLE), await sourceRows(f, ODD));
      const resolved = events.filter((e) => e.op === 'u' && e.fromSource.includes('big'));
      assert.equal(resolved.length, 4, 'the TOAST-unchanged updates of kept and the odd table were resolved');

      // The user follows the warning: `sql init` grants the new table; the next job snapshots and streams it.
      await runSqlInit(f.roles.admin, {
        slot: f.cfg.slot,
        publication: f.cfg.publication,
        decoder,
        replicationUser: f.roles.replicator.user,
        replicatorPassword: 'not-used-with-trust-auth',
        bootstrapSuperuser: f.roles.superuser,
      });
      await writeChanges(f, 'later', 100);
      await writeChanges(f, 'kept', 100);
      const second = await runListenerJob(f.cfg);
      assert.deepEqual(second.skippedTables, []);
      assert.ok(
        second.snapshot?.tables.some((t) => t.table === 'public.later'),
        JSON.stringify(second.snapshot),
      );
      const firstEvents = events;
      events = eventsOf(await pullAll(topic));
      assert.ok(
        events.some((e) => e.table === 'later' && e.op === 'r'),
        'snapshot rows of later',
      );
      assert.ok(events.some((e) => e.table === 'later' && e.op === 'u' && e.fromSource.includes('big')));
      // Row by row, over everything delivered: the snapshot brought the rows of the skipped changes, the
      // stream the rest.
      const all = [...firstEvents, ...events].sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
      const later = replicaOf(all, 'public', 'later');
      assert.deepEqual(later, await sourceRows(f, 'later'));
      assert.equal(later.size, 4);
      assert.deepEqual(replicaOf(all, 'public', 'kept'), await sourceRows(f, 'kept'));
      assert.deepEqual(replicaOf(all, ODD_SCHEMA, ODD_TABLE), await sourceRows(f, ODD));
    });
  });
}

for (const decoder of ['wal2json', 'pgoutput'] as DecoderName[]) {
  describe(`listener with ${decoder}: PGCDC_TABLES naming a partitioned table`, function () {
    this.timeout(180_000);

    it('captures its partitions: existing rows through the snapshot, changes through the stream', async () => {
      const topic = await createTopic(`parted_${decoder}`);
      const list = { tables: ['public.parted'] };
      const f = await cloudSqlListenerFixture(
        topic,
        decoder,
        { ...list, snapshot: 'auto' },
        async (sql) => {
          await sql('CREATE TABLE parted (id int PRIMARY KEY, small text, big text) PARTITION BY RANGE (id)');
          await sql('CREATE TABLE parted_a PARTITION OF parted FOR VALUES FROM (0) TO (100)');
          await sql('CREATE TABLE parted_b PARTITION OF parted FOR VALUES FROM (100) TO (1000)');
          await sql('CREATE TABLE other (id int PRIMARY KEY, small text, big text)');
          await sql(`INSERT INTO parted VALUES (50, 'old', 'x'), (500, 'old', 'y')`);
        },
        list,
      );
      await writeChanges(f, 'parted', 0);
      await writeChanges(f, 'parted', 100);
      await writeChanges(f, 'other', 0);
      const summary = await runListenerJob(f.cfg);
      assert.deepEqual(summary.skippedTables, []);
      const events = eventsOf(await pullAll(topic));
      assert.deepEqual(
        events.filter((e) => e.table === 'other'),
        [],
        'only the listed table',
      );
      for (const part of ['parted_a', 'parted_b']) {
        const replica = replicaOf(events, 'public', part);
        assert.deepEqual(replica, await sourceRows(f, part), part);
        assert.ok(replica.size >= 3, `${part}: ${replica.size} rows`);
      }
    });
  });
}
