// Tables and columns that must not be captured (issue 10.4): other sessions' temporary tables, unlogged
// tables (never in the WAL), and generated columns (pgoutput does not send them; wal2json does). Both
// decoders must produce the same events, snapshot included, and never a NULL for a value that exists.

import assert from 'node:assert/strict';
import { Client } from 'pg';
import { DecoderName } from '../../listener/config';
import { runListenerJob } from '../../listener/job';
import { createTopic, eventsOf, pullAll } from '../support/pubsub';
import { listenerFixture } from '../support/listener';

interface Alert {
  severity: string;
  message: string;
  fields?: Record<string, unknown>;
}

for (const decoder of ['pgoutput', 'wal2json'] as DecoderName[]) {
  describe(`listener with ${decoder}: tables and columns that are not captured`, function () {
    this.timeout(120_000);

    it('another session’s temporary table, an unlogged table and generated columns: the job succeeds, skips and says so', async () => {
      const topic = await createTopic(`notcap_${decoder}`);
      const f = await listenerFixture(topic, decoder, { snapshot: 'auto' }, async (sql) => {
        // Existing rows reach BigQuery through the snapshot (which reads the table as it is at the time).
        await sql(
          'CREATE TABLE g (id int PRIMARY KEY, a int, twice int GENERATED ALWAYS AS (a * 2) STORED, note text)',
        );
        await sql("INSERT INTO g (id, a, note) VALUES (1, 10, 'existing')");
        // A generated primary key: no event can carry it, so the table is history-only (no snapshot).
        await sql('CREATE TABLE gk (a int, k int GENERATED ALWAYS AS (a + 1) STORED PRIMARY KEY)');
        await sql('INSERT INTO gk (a) VALUES (1)');
        await sql('CREATE UNLOGGED TABLE u (id int PRIMARY KEY, v text)');
        await sql("INSERT INTO u VALUES (1, 'never in the WAL')");
      });
      // A temporary table with a primary key, held open by another session for the whole run.
      const other = new Client(f.db);
      await other.connect();
      try {
        await other.query('CREATE TEMP TABLE scratch (id int PRIMARY KEY, v text)');
        await other.query("INSERT INTO scratch VALUES (1, 'private')");
        await f.sql("INSERT INTO g (id, a, note) VALUES (2, 20, 'new')");
        await f.sql('UPDATE g SET a = 21 WHERE id = 2');
        await f.sql("INSERT INTO u VALUES (2, 'also not in the WAL')");

        const alerts: Alert[] = [];
        const summary = await runListenerJob(f.cfg, {
          alert: (severity, message, fields) => alerts.push({ severity, message, fields }),
        });

        // Unlogged: skipped, said once per run (log and summary), never snapshotted.
        assert.deepEqual(summary.skippedTables, [{ table: 'public.u', reason: 'unlogged' }]);
        const unloggedAlerts = alerts.filter((a) => /unlogged/.test(a.message));
        assert.equal(unloggedAlerts.length, 1, JSON.stringify(alerts));
        assert.equal(unloggedAlerts[0].severity, 'WARNING');
        assert.match(unloggedAlerts[0].message, /public\.u.*SET LOGGED/);
        // The snapshot ran (the temp table no longer makes it fail) and covered only the logged table.
        assert.deepEqual(
          summary.snapshot?.tables.map((t) => [t.table, t.rowsDone, t.done]),
          [['public.g', 2, true]],
        );

        const batches = await pullAll(topic);
        const tables = new Set(batches.map((b) => `${b.batch.schema}.${b.batch.table}`));
        assert.deepEqual([...tables], ['public.g']);
        // Generated columns: in no event, no schema, whichever decoder; the other values all there.
        for (const b of batches)
          assert.deepEqual(
            b.batch.columns.map((c) => c.name),
            ['id', 'a', 'note'],
          );
        const events = eventsOf(batches);
        assert.deepEqual(events.map((e) => [e.op, e.after]).sort(), [
          ['c', { id: '2', a: '20', note: 'new' }],
          ['r', { id: '1', a: '10', note: 'existing' }],
          ['r', { id: '2', a: '21', note: 'new' }],
          ['u', { id: '2', a: '21', note: 'new' }],
        ]);
        for (const e of events) assert.deepEqual(e.unchanged, [], 'a generated column is not "unchanged"');
      } finally {
        await other.end();
      }
    });
  });
}
