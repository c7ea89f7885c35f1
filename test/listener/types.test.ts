import assert from 'node:assert/strict';
import { Client } from 'pg';
import { loadCatalog } from '../../listener/catalog';
import { DecoderName } from '../../listener/config';
import { formatType } from '../../listener/decoders/format-type';
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

// Columns whose type name carries a typmod (and the -1 special cases bpchar and bit), plain and as arrays.
const TYPMODS = `
  n numeric(10,2), n0 numeric(5), nneg numeric(5,-2), nn numeric, vc varchar(20), v varchar, c char(3), bp bpchar,
  b bit(4), bb "bit", vb varbit(9), vbb varbit, t time(3), tz timetz(0), ts timestamp(2), tstz timestamptz(6),
  tsn timestamptz, i interval, iy interval year, iym interval year to month, ids interval day to second(3),
  ih interval hour, ims interval minute to second, i4 interval(4), na numeric(10,2)[], vca varchar(7)[],
  ca char(2)[], bpa bpchar[], ba bit(3)[], bba "bit"[], tsa timestamp(1)[], ia interval day to hour[],
  dom money_d, e mood_t, ea mood_t[]`;

describe('pgoutput type names', () => {
  it('print every typmod the way format_type does, as the catalog and wal2json give them', async () => {
    const topic = await createTopic('typmods');
    const f = await listenerFixture(topic, 'pgoutput');
    await f.sql("CREATE TYPE mood_t AS ENUM ('a')");
    await f.sql('CREATE DOMAIN money_d AS numeric(12,2)');
    await f.sql(`CREATE TABLE tm (id int PRIMARY KEY, ${TYPMODS})`);
    const c = new Client(f.db);
    await c.connect();
    try {
      const catalog = await loadCatalog(c);
      const attrs = await c.query<{ name: string; oid: number; typmod: number; expected: string }>(
        `SELECT attname AS name, atttypid::int AS oid, atttypmod AS typmod,
                format_type(atttypid, atttypmod) AS expected
         FROM pg_attribute WHERE attrelid = 'tm'::regclass AND attnum > 0`,
      );
      assert.ok(attrs.rows.length > 30);
      for (const a of attrs.rows) {
        assert.equal(formatType(catalog, a.oid, a.typmod), a.expected, `column ${a.name}`);
      }
      // A typmod the catalog never saw (column added after it was read) still prints from the rules.
      const bare = { ...catalog, typmodNames: new Map<string, string>() };
      for (const a of attrs.rows)
        assert.equal(formatType(bare, a.oid, a.typmod), a.expected, `bare ${a.name}`);
    } finally {
      await c.end();
    }
  });

  it('describe a change with the typmod it had: numeric(10,2), then numeric(12,2) after ALTER TYPE', async () => {
    const topic = await createTopic('typmod_alter');
    const f = await listenerFixture(topic, 'pgoutput');
    await f.sql('CREATE TABLE p (id int PRIMARY KEY, amount numeric(10,2))');
    await f.sql('INSERT INTO p VALUES (1, 1.5)');
    await f.sql('ALTER TABLE p ALTER COLUMN amount TYPE numeric(12,2)');
    await f.sql('INSERT INTO p VALUES (2, 2.5)');
    await runListener(f.cfg);
    const batches = await pullAll(topic);
    const typeOf = (id: string) =>
      batches
        .find((b) => b.batch.events.some((e) => e.key?.id === id))!
        .batch.columns.find((col) => col.name === 'amount')!.type;
    assert.equal(typeOf('1'), 'numeric(10,2)');
    assert.equal(typeOf('2'), 'numeric(12,2)');
  });
});
