import assert from 'node:assert/strict';
import { Client } from 'pg';
import { ChangeEvent } from '../../contract/events';
import { parseLsn } from '../../contract/lsn';
import { loadCatalog } from '../../listener/catalog';
import { Decoded, changeEventOf, isEncoded } from '../../listener/decoders/types';
import { Wal2JsonDecoder } from '../../listener/decoders/wal2json';
import { freshDatabase, uniqueName } from '../support/stack';

// The wal2json decoder builds most events' JSON straight from wal2json's text (the hot path) and parses the
// rest with JSON.parse. Both must give the same events: this feeds the same real wal2json output, of a
// workload with awkward values and every kind of change, to a decoder with the hot path and to one without.

const SETUP = `
  CREATE TYPE mood AS ENUM ('sad', 'happy');
  CREATE TABLE t (id int8 PRIMARY KEY, n numeric(38,9), f float8, r real, b bool, bt bytea, j jsonb, ta text[],
    ia int[], e mood, s text, big text, nul int, "we""ird \\ näme" text, ts timestamptz, iv interval, m money);
  CREATE TABLE composite (a int, b text, v text, PRIMARY KEY (b, a));
  CREATE TABLE keyless (x int, y text);
  CREATE TABLE full_t (id int PRIMARY KEY, doc text, flag bool);
  ALTER TABLE full_t REPLICA IDENTITY FULL;
  CREATE TABLE gen (id int PRIMARY KEY, v int, twice int GENERATED ALWAYS AS (v * 2) STORED);
  CREATE TABLE "Odd ""Name"", Inc" (id int PRIMARY KEY, v text);`;

const WORKLOAD = [
  `INSERT INTO t VALUES
     (9223372036854775807, 12345678901234567890123456789.123456789, 1.7976931348623157e308, -0.0, true,
      '\\xdeadbeef00', '{"a": 1.10, "big": 123456789012345678901234567890, "s": "x\\"y"}', '{a,"b c",NULL,""}',
      '{1,NULL,3}', 'happy', E'üñí "q" \\\\ \\n\\t\\u0001 🙂 \\u2028',
      -- out of line even after compression: md5 hex compresses only about two to one
      (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 400) i), NULL, 'w',
      '2026-01-02 03:04:05.123456+05:30', '1 year 2 mons -3 days 04:05:06.789', 92233720368547758.07),
     (-9223372036854775808, 'NaN', 5e-324, 'Infinity', false, '\\x', 'null', '{}', '{}', 'sad', '', NULL, 0, NULL,
      NULL, NULL, -1.5),
     (3, -0.000000001, -1e-300, 1, NULL, NULL, '[]', NULL, NULL, NULL, ' ', 'small', -7, E'\\\\', NULL, NULL, 0)`,
  "UPDATE t SET s = s || ' updated', n = n + 1 WHERE id <> 3",
  // Leaves the TOASTed column out of the WAL record (the JSON.parse path: it may need a lookup).
  'UPDATE t SET nul = 1 WHERE id = 9223372036854775807',
  'UPDATE t SET id = 4 WHERE id = 3',
  'DELETE FROM t WHERE id = 4',
  "INSERT INTO composite VALUES (1, 'one', 'v1'), (2, 'two', NULL)",
  "UPDATE composite SET a = 10, v = 'moved' WHERE a = 1",
  "DELETE FROM composite WHERE b = 'two'",
  "INSERT INTO keyless VALUES (1, 'a'), (NULL, NULL)",
  "INSERT INTO full_t VALUES (1, repeat('x', 10000), true), (2, 'small', NULL)",
  'UPDATE full_t SET flag = false WHERE id = 1',
  'UPDATE full_t SET id = id + 10',
  'DELETE FROM full_t WHERE id = 12',
  'INSERT INTO gen (id, v) VALUES (1, 21)',
  'UPDATE gen SET v = 22',
  `INSERT INTO "Odd ""Name"", Inc" VALUES (1, 'o')`,
  // A column added mid-stream: the JSON.parse path learns the new list, the hot path takes over again.
  'ALTER TABLE composite ADD COLUMN extra numeric',
  "INSERT INTO composite VALUES (3, 'three', 'v3', 3.25), (4, 'four', NULL, NULL)",
  'ALTER TABLE composite DROP COLUMN v',
  "INSERT INTO composite VALUES (5, 'five', -5)",
  "SELECT pg_logical_emit_message(true, 'pfx', 'hello')",
  'TRUNCATE keyless',
  "DO $$ BEGIN FOR i IN 1..50 LOOP INSERT INTO t (id, s) VALUES (100 + i, 'row ' || i); COMMIT; END LOOP; END $$",
];

describe('wal2json hot path', function () {
  it('gives the same events as parsing every record with JSON.parse, on real wal2json output', async () => {
    const db = await freshDatabase('w2jfast');
    const c = new Client(db);
    await c.connect();
    try {
      await c.query(SETUP);
      const slot = uniqueName('w2jfast');
      await c.query("SELECT pg_create_logical_replication_slot($1, 'wal2json')", [slot]);
      // The catalog as a run loads it at its start: before the changes (and the ALTER TABLEs) it reads.
      const catalog = await loadCatalog(c);
      for (const sql of WORKLOAD) await c.query(sql);
      const fast = new Wal2JsonDecoder(catalog, []);
      const parsed = new Wal2JsonDecoder(catalog, []);
      parsed.fastPath = false;
      const options = Object.entries(fast.pluginOptions).flat();
      const placeholders = options.map((_, i) => `$${i + 2}`).join(', ');
      const records = await c.query<{ lsn: string; data: string }>(
        `SELECT lsn::text, data FROM pg_logical_slot_peek_changes($1, NULL, NULL, ${placeholders})`,
        [slot, ...options],
      );
      const outFast: Decoded[] = [];
      const outParsed: Decoded[] = [];
      for (const r of records.rows) {
        const msg = { walStart: parseLsn(r.lsn), walEnd: 0n, data: Buffer.from(r.data) };
        fast.decode(msg, (d) => outFast.push(d));
        parsed.decode(msg, (d) => outParsed.push(d));
      }
      const plain = (out: Decoded[]) =>
        out.map((d) => (d.kind === 'change' ? { ...d, event: changeEventOf(d.event) } : d));
      assert.deepEqual(plain(outFast), plain(outParsed));

      const changes = outFast.filter((d) => d.kind === 'change');
      assert.equal(changes.length, 77, 'every row change of the workload, and the truncate');
      const encoded = changes.filter((d) => isEncoded(d.event)).length;
      assert.ok(encoded >= 60, `the hot path decoded ${encoded} of ${changes.length} changes`);
      assert.ok(outParsed.every((d) => d.kind !== 'change' || !isEncoded(d.event)));
      // Spot checks against Postgres' own text, so the two paths cannot agree on a wrong value.
      const ev = (table: string, op: string) =>
        changes
          .map((d) => d.kind === 'change' && d.table.table === table && changeEventOf(d.event))
          .filter((e): e is ChangeEvent => !!e && e.op === op);
      const [first] = ev('t', 'c');
      assert.equal(first.after!.id, '9223372036854775807');
      assert.equal(first.after!.n, '12345678901234567890123456789.123456789');
      assert.equal(first.after!.b, 't');
      assert.equal(first.after!.bt, '\\xdeadbeef00');
      assert.equal(first.after!['we"ird \\ näme'], 'w');
      assert.equal(first.after!.s, 'üñí "q" \\ \n\t\u0001 🙂 \u2028');
      assert.equal(first.after!.nul, null);
      assert.deepEqual(ev('composite', 'd')[0].key, { a: '2', b: 'two' });
      assert.deepEqual(ev('keyless', 'c')[1].after, { x: null, y: null });
      assert.equal(ev('full_t', 'u')[0].before!.doc, 'x'.repeat(10000));
    } finally {
      await c.end();
    }
  });
});
