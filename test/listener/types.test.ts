import assert from 'node:assert/strict';
import { DecoderName } from '../../listener/config';
import { runListener } from '../../listener/run';
import { createTopic, eventsOf, pullAll } from '../support/pubsub';
import { listenerFixture } from '../support/listener';

// Each value is checked against what Postgres itself prints for it (SELECT col::text), so the expectation is
// the database's own text form, not a string typed into this test.
const COLUMNS = `
  id int8 PRIMARY KEY, n numeric(38,9), m money, tstz timestamptz, d date, tm time, iv interval, b bool, bt bytea,
  u uuid, j json, jb jsonb, ta text[], ia int[], e mood, s text, vc varchar(20), r real, f float8, nul text`;

const ROWS = [
  `(9223372036854775807, 12345678901234567890123456789.123456789, 92233720368547758.07, '2026-01-02 03:04:05.123456+00',
    '2026-01-02', '03:04:05.654321', '1 year 2 mons 3 days 04:05:06.789', true, '\\xdeadbeef00',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": 1.10, "big": 123456789012345678901234567890}', '{"b": [1, 2]}',
    '{a,"b c",NULL,""}', '{1,NULL,3}', 'happy', 'üñí "q" \\ 🙂', '', 3.4028235e38, 1.7976931348623157e308, NULL)`,
  `(-9223372036854775808, -0.000000001, -1.5, '1970-01-01 00:00:00.000001+00', '0001-01-01', '23:59:59.999999',
    '-1 days', false, '\\x', '00000000-0000-0000-0000-000000000000', 'null', '[]', '{}', '{}', 'sad', '', ' ', -0.0, 5e-324, NULL)`,
];

for (const decoder of ['wal2json', 'pgoutput'] as DecoderName[]) {
  describe(`listener with ${decoder}: value fidelity`, function () {
    it('carries every listed type exactly as Postgres prints it, NULLs and empty strings kept apart', async () => {
      const topic = await createTopic(`types_${decoder}`);
      const f = await listenerFixture(topic, decoder);
      await f.sql("CREATE TYPE mood AS ENUM ('sad', 'happy')");
      await f.sql(`CREATE TABLE t (${COLUMNS})`);
      await f.sql(`INSERT INTO t VALUES ${ROWS.join(',')}`);
      await runListener(f.cfg);
      const events = eventsOf(await pullAll(topic));
      assert.equal(events.length, 2);
      const cols = await f.sql(
        "SELECT attname, atttypid::regtype::text AS type FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0",
      );
      // The type output function's text: a cast to text is the same except for bool ('true' vs 't').
      const asText = (c: Record<string, unknown>) =>
        c.type === 'boolean'
          ? `boolout(${c.attname})::text AS ${c.attname}`
          : `${c.attname}::text AS ${c.attname}`;
      const expected = await f.sql(`SELECT ${cols.map(asText).join(', ')} FROM t ORDER BY id DESC`);
      for (const [i, row] of expected.entries()) {
        assert.deepEqual(events[i].after, row, `row ${i}`);
      }
      assert.equal(events[0].after!.nul, null);
      assert.equal(events[1].after!.s, '');
    });

    it('fills an unchanged TOAST column from the source table (flagged fromSource), never NULL', async () => {
      const topic = await createTopic(`toast_${decoder}`);
      const f = await listenerFixture(topic, decoder);
      await f.sql('CREATE TABLE docs (id int PRIMARY KEY, title text, body text, note text)');
      // Random text does not compress, so 100 kB certainly lives out of line in the TOAST table.
      await f.sql(
        "INSERT INTO docs SELECT 1, 't', string_agg(md5(random()::text), '') , 'n' FROM generate_series(1, 3200)",
      );
      await f.sql("UPDATE docs SET title = 't2' WHERE id = 1");
      await f.sql('UPDATE docs SET body = NULL, note = NULL WHERE id = 1');
      await f.sql("UPDATE docs SET body = 'b' WHERE id = 1");
      await f.sql("UPDATE docs SET title = 't3' WHERE id = 1");
      await runListener(f.cfg);
      const events = eventsOf(await pullAll(topic));
      assert.deepEqual(
        events.map((e) => e.op),
        ['c', 'u', 'u', 'u', 'u'],
      );
      assert.equal(events[0].after!.body!.length, 3200 * 32);
      // The WAL did not carry body; the source table now holds 'b' (a later change), which is what the
      // listener read. The later update carries 'b' itself, so the replica ends right either way.
      assert.deepEqual(events[1].unchanged, []);
      assert.deepEqual(events[1].fromSource, ['body']);
      assert.equal(events[1].after!.body, 'b');
      assert.equal(events[1].after!.title, 't2');
      // A real NULL is a value, not an unchanged column.
      assert.deepEqual([events[2].unchanged, events[2].fromSource], [[], []]);
      assert.equal(events[2].after!.body, null);
      assert.equal(events[2].after!.note, null);
      // A small value lives in the row: always sent.
      assert.deepEqual(events[4].fromSource, []);
      assert.equal(events[4].after!.body, 'b');
    });
  });
}
