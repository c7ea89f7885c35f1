// Table names holding periods, commas, spaces and upper case (contract/table-name.ts): a PGCDC_TABLES list in
// PostgreSQL's identifier syntax captures exactly the tables it names, with both decoders — the SQL init
// publishes and grants exactly those, wal2json's add-tables names them escaped, the stream and the snapshot
// carry them — and never a table whose name joined with periods reads the same ("a"."b.c.d" vs "a.b"."c.d").

import assert from 'node:assert/strict';
import { Client } from 'pg';
import { ENV } from '../../contract/env';
import { DecoderName, loadListenerConfig } from '../../listener/config';
import { ConfigError } from '../../listener/errors';
import { runListenerJob } from '../../listener/job';
import { resolveInDatabase } from '../../listener/table-lookup';
import { cloudSqlListenerFixture } from '../support/cloudsql';
import { TEST_PROJECT, createTopic, eventsOf, pullAll } from '../support/pubsub';

const LIST = '"a.b"."c.d", "Mixed Case"."x,y" ,public.Orders';

for (const decoder of ['pgoutput', 'wal2json'] as DecoderName[]) {
  describe(`listener with ${decoder}: tables whose names hold periods, commas, spaces, upper case`, function () {
    this.timeout(180_000);

    it('captures and snapshots exactly the listed tables', async () => {
      const topic = await createTopic(`odd_${decoder}`);
      const tables = loadListenerConfig({
        [ENV.topic]: topic.topic,
        [ENV.project]: TEST_PROJECT,
        [ENV.tables]: LIST,
      }).tables;
      const f = await cloudSqlListenerFixture(
        topic,
        decoder,
        { snapshot: 'auto', tables },
        async (sql) => {
          await sql('CREATE SCHEMA "a.b"');
          await sql('CREATE TABLE "a.b"."c.d" (id int PRIMARY KEY, v text)');
          await sql('CREATE SCHEMA "Mixed Case"');
          await sql('CREATE TABLE "Mixed Case"."x,y" (id int PRIMARY KEY, v text)');
          // Listed bare as public.Orders: the table of that exact name exists, so it is the one meant.
          await sql('CREATE TABLE public."Orders" (id int PRIMARY KEY, v text)');
          // Not listed: joined with periods, its name reads like "a.b"."c.d".
          await sql('CREATE SCHEMA a');
          await sql('CREATE TABLE a."b.c.d" (id int PRIMARY KEY, v text)');
          for (const t of ['"a.b"."c.d"', '"Mixed Case"."x,y"', 'public."Orders"', 'a."b.c.d"'])
            await sql(`INSERT INTO ${t} VALUES (1, 'existing')`);
        },
        { tables },
      );

      // The init published (pgoutput) and granted exactly the listed tables.
      const granted = await f.sql(
        `SELECT n.nspname AS schema, c.relname AS table FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'r' AND n.nspname NOT IN ('pgcdc', 'pg_catalog', 'information_schema')
            AND has_table_privilege($1, c.oid, 'SELECT') ORDER BY 1, 2`,
        [f.cfg.pg.user],
      );
      const listed = [
        { schema: 'Mixed Case', table: 'x,y' },
        { schema: 'a.b', table: 'c.d' },
        { schema: 'public', table: 'Orders' },
      ];
      assert.deepEqual(granted, listed);
      if (decoder === 'pgoutput') {
        const published = await f.sql(
          `SELECT schemaname AS schema, tablename AS table FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2`,
          [f.cfg.publication],
        );
        assert.deepEqual(published, listed);
      }

      for (const t of ['"a.b"."c.d"', '"Mixed Case"."x,y"', 'public."Orders"', 'a."b.c.d"']) {
        await f.sql(`INSERT INTO ${t} VALUES (2, 'new')`);
        await f.sql(`UPDATE ${t} SET v = 'changed' WHERE id = 1`);
      }
      await f.sql(`DELETE FROM "Mixed Case"."x,y" WHERE id = 2`);

      const alerts: string[] = [];
      const summary = await runListenerJob(f.cfg, { alert: (_s, message) => alerts.push(message) });
      assert.deepEqual(summary.skippedTables, []);
      assert.deepEqual(alerts, []);
      assert.deepEqual(summary.snapshot?.tables.map((t) => [t.table, t.rowsDone, t.done]).sort(), [
        ['"Mixed Case"."x,y"', 1, true],
        ['"a.b"."c.d"', 2, true],
        ['public."Orders"', 2, true],
      ]);

      const events = eventsOf(await pullAll(topic));
      const seen = (schema: string, table: string) =>
        events
          .filter((e) => e.schema === schema && e.table === table)
          .map((e) => `${e.op}:${String((e.after ?? e.before)?.id)}:${String(e.after?.v ?? '')}`)
          .sort();
      assert.deepEqual(
        [...new Set(events.map((e) => JSON.stringify([e.schema, e.table])))].sort(),
        listed.map((t) => JSON.stringify([t.schema, t.table])).sort(),
        'events of exactly the listed tables',
      );
      assert.deepEqual(seen('a.b', 'c.d'), ['c:2:new', 'r:1:changed', 'r:2:new', 'u:1:changed']);
      // The snapshot reads the table as it is: row 2 was inserted and deleted before it.
      assert.deepEqual(seen('Mixed Case', 'x,y'), ['c:2:new', 'd:2:', 'r:1:changed', 'u:1:changed']);
      assert.deepEqual(seen('public', 'Orders'), ['c:2:new', 'r:1:changed', 'r:2:new', 'u:1:changed']);

      const owner = new Client(f.db);
      await owner.connect();
      try {
        // The SQL init, preflight and teardown resolve entries through resolveInDatabase. Only tables count
        // there, as in the listener: a view of the exact-case name does not make the entry mean it.
        await owner.query('CREATE TABLE public.items (id int PRIMARY KEY)');
        await owner.query('CREATE VIEW public."Items" AS SELECT 1 AS id');
        assert.deepEqual(await resolveInDatabase(owner, ['public.Items'], 'PGCDC_TABLES'), [
          { schema: 'public', table: 'items', key: 'public.items' },
        ]);

        // A DBA now creates the lower-case orders: public.Orders could mean either table. The run refuses the
        // list, naming both, instead of quietly switching to one of them (the other would freeze in the replica).
        await f.sql('CREATE TABLE public.orders (id int PRIMARY KEY, v text)');
        await f.sql(`INSERT INTO public.orders VALUES (3, 'lower')`);
        await f.sql(`INSERT INTO public."Orders" VALUES (3, 'exact')`);
        const ambiguous =
          'PGCDC_TABLES: "public.Orders" could mean table public."Orders" or table public.orders, and both ' +
          'exist: write public."Orders" or public.orders, whichever is meant';
        await assert.rejects(
          runListenerJob(f.cfg),
          (e: unknown) => e instanceof ConfigError && e.message === ambiguous,
        );
        assert.deepEqual(eventsOf(await pullAll(topic)), [], 'nothing captured while the list is ambiguous');
        // resolveInDatabase refuses it the same way.
        await assert.rejects(
          resolveInDatabase(owner, ['public.Orders'], 'PGCDC_TABLES'),
          (e: unknown) => e instanceof ConfigError && e.message === ambiguous,
        );
      } finally {
        await owner.end();
      }

      // Quoted, the entry means the one table again, and the run goes on with it (its row 3 arrives; orders'
      // does not).
      const quoted = loadListenerConfig({
        [ENV.topic]: topic.topic,
        [ENV.project]: TEST_PROJECT,
        [ENV.tables]: LIST.replace('public.Orders', 'public."Orders"'),
      }).tables;
      await runListenerJob({ ...f.cfg, tables: quoted });
      assert.deepEqual(
        eventsOf(await pullAll(topic)).map((e) => [e.schema, e.table, e.op, String(e.after?.v)]),
        [['public', 'Orders', 'c', 'exact']],
      );
    });
  });
}
