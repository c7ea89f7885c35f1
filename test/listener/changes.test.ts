import assert from 'node:assert/strict';
import { DecoderName } from '../../listener/config';
import { runListener } from '../../listener/run';
import { createTopic, eventsOf, pullAll } from '../support/pubsub';
import { listenerFixture } from '../support/listener';

for (const decoder of ['wal2json', 'pgoutput'] as DecoderName[]) {
  describe(`listener with ${decoder}: change events`, function () {
    it('delivers inserts, updates (incl. a key change), deletes and a truncate with positions and sequence', async () => {
      const topic = await createTopic(`ops_${decoder}`);
      const f = await listenerFixture(topic, decoder);
      await f.sql('CREATE TABLE items (id int PRIMARY KEY, name text, qty int)');
      await f.sql("INSERT INTO items VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)");
      await f.sql("UPDATE items SET name = 'b2' WHERE id = 2");
      await f.sql('UPDATE items SET id = 30 WHERE id = 3');
      await f.sql('DELETE FROM items WHERE id = 1');
      await f.sql('TRUNCATE items');
      const txids = (await f.sql("SELECT xmin::text::int AS x FROM pg_class WHERE relname = 'items'")).length;
      assert.equal(txids, 1);

      const summary = await runListener(f.cfg);
      assert.equal(summary.changes, 7);
      assert.equal(summary.stoppedBy, 'wal-end');
      // The slot's health at run start, and nothing stuck or skipped.
      assert.equal(summary.slotWalStatus, 'reserved');
      assert.equal(summary.stuckTransaction, null);
      assert.deepEqual(summary.skippedTables, []);
      const events = eventsOf(await pullAll(topic));
      assert.deepEqual(
        events.map((e) => [e.op, e.key, e.after]),
        [
          ['c', { id: '1' }, { id: '1', name: 'a', qty: '1' }],
          ['c', { id: '2' }, { id: '2', name: 'b', qty: '2' }],
          ['c', { id: '3' }, { id: '3', name: 'c', qty: '3' }],
          ['u', { id: '2' }, { id: '2', name: 'b2', qty: '2' }],
          ['u', { id: '30' }, { id: '30', name: 'c', qty: '3' }],
          ['d', { id: '1' }, null],
          ['t', null, null],
        ],
      );
      // The key change names the old key in `before`, so the sink can delete it.
      assert.deepEqual(events[4].before, { id: '3' });
      assert.deepEqual(events[5].before, { id: '1' });
      // One multi-row insert: one transaction, one commit LSN, ordinals 0..2.
      assert.equal(new Set(events.slice(0, 3).map((e) => e.commitLsn)).size, 1);
      assert.deepEqual(
        events.slice(0, 3).map((e) => e.seq.split('/')[1]),
        ['0000000000000000', '0000000000000001', '0000000000000002'],
      );
      // Sequences strictly increase in commit order; xids and commit times are filled.
      for (let i = 1; i < events.length; i++) assert.ok(events[i - 1].seq < events[i].seq);
      for (const e of events) {
        assert.ok(e.xid > 0);
        assert.match(e.commitTs, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00$/);
        assert.ok(
          e.seq.startsWith(
            e.commitLsn
              .split('/')
              .map((h) => h.padStart(8, '0'))
              .join(''),
          ),
        );
      }
      // The slot now stands past everything delivered: a second run finds nothing new.
      const again = await runListener(f.cfg);
      assert.equal(again.changes, 0);
      assert.equal((await pullAll(topic)).length, 0);
    });

    it('keeps columns named like Object.prototype members (__proto__, constructor, toString) on every path', async () => {
      // A plain `row[name] = v` with name "__proto__" sets no property, and `name in row` is true for
      // "constructor" on any object: either would drop or invent a column.
      const topic = await createTopic(`protoish_${decoder}`);
      const f = await listenerFixture(topic, decoder);
      await f.sql(
        'CREATE TABLE protoish ("__proto__" int PRIMARY KEY, "constructor" text, "toString" text, "hasOwnProperty" int)',
      );
      // Incompressible and out of line: an UPDATE of another column leaves it out of the WAL (unchanged TOAST).
      const big = "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 400) i)";
      await f.sql(`INSERT INTO protoish VALUES (1, ${big}, 'a', 10), (2, 'small', NULL, 20)`);
      await f.sql('UPDATE protoish SET "hasOwnProperty" = 11 WHERE "__proto__" = 1');
      await f.sql('UPDATE protoish SET "__proto__" = 3 WHERE "__proto__" = 2');
      await f.sql('DELETE FROM protoish WHERE "__proto__" = 3');
      const long = (await f.sql(`SELECT ${big} AS v`))[0].v as string;
      assert.equal(long.length, 12800);

      await runListener(f.cfg);
      const events = eventsOf(await pullAll(topic));
      const own = (r: Record<string, unknown> | null) => r && Object.entries(r);
      assert.deepEqual(
        events.map((e) => [e.op, own(e.key), own(e.before), own(e.after), e.unchanged]),
        [
          [
            'c',
            [['__proto__', '1']],
            null,
            [
              ['__proto__', '1'],
              ['constructor', long],
              ['toString', 'a'],
              ['hasOwnProperty', '10'],
            ],
            [],
          ],
          [
            'c',
            [['__proto__', '2']],
            null,
            [
              ['__proto__', '2'],
              ['constructor', 'small'],
              ['toString', null],
              ['hasOwnProperty', '20'],
            ],
            [],
          ],
          // The TOASTed "constructor" was not in the WAL: read back from the source (fromSource), not left
          // out as if "constructor" were present.
          [
            'u',
            [['__proto__', '1']],
            decoder === 'pgoutput' ? null : [['__proto__', '1']],
            [
              ['__proto__', '1'],
              ['toString', 'a'],
              ['hasOwnProperty', '11'],
              ['constructor', long],
            ],
            [],
          ],
          [
            'u',
            [['__proto__', '3']],
            [['__proto__', '2']],
            [
              ['__proto__', '3'],
              ['constructor', 'small'],
              ['toString', null],
              ['hasOwnProperty', '20'],
            ],
            [],
          ],
          ['d', [['__proto__', '3']], [['__proto__', '3']], null, []],
        ],
      );
      assert.deepEqual(events[2].fromSource, ['constructor']);
    });

    it('prints dates and intervals in ISO style even when the database defaults to another', async () => {
      const topic = await createTopic(`style_${decoder}`);
      const f = await listenerFixture(topic, decoder);
      await f.sql(`ALTER DATABASE ${f.db.database} SET DateStyle = 'German, DMY'`);
      await f.sql(`ALTER DATABASE ${f.db.database} SET IntervalStyle = 'sql_standard'`);
      await f.sql('CREATE TABLE d (id int PRIMARY KEY, d date, ts timestamp, iv interval)');
      await f.sql("INSERT INTO d VALUES (1, '2026-01-02', '2026-01-02 03:04:05.5', '1 day 02:00:00')");
      await runListener(f.cfg);
      const [e] = eventsOf(await pullAll(topic));
      assert.deepEqual(e.after, {
        id: '1',
        d: '2026-01-02',
        ts: '2026-01-02 03:04:05.5',
        iv: '1 day 02:00:00',
      });
    });
  });
}
