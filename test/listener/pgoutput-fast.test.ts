import assert from 'node:assert/strict';
import { Client } from 'pg';
import { ChangeEvent } from '../../contract/events';
import { parseLsn } from '../../contract/lsn';
import { loadCatalog } from '../../listener/catalog';
import { PgOutputDecoder } from '../../listener/decoders/pgoutput';
import { Decoded, changeEventOf, isEncoded } from '../../listener/decoders/types';
import { freshDatabase, uniqueName } from '../support/stack';

// The pgoutput decoder writes most events' JSON straight from the binary tuple data (the hot path) and builds
// the rest as objects that the publisher serialises with JSON.stringify. The sink reads that text, so the two
// must give the same bytes: this feeds the same real pgoutput output, of a workload with awkward values and
// every kind of change, to a decoder with the hot path and to one without, and compares every event's JSON.

const SETUP = `
  CREATE TYPE mood AS ENUM ('sad', 'happy');
  CREATE TYPE pair AS (a int, b text);
  CREATE TABLE t (id int8 PRIMARY KEY, n numeric(38,9), f float8, r real, b bool, bt bytea, j json, jb jsonb,
    ta text[], ia int[], e mood, s text, big text, nul int, "we""ird \\ näme" text, ts timestamptz,
    iv interval, m money, u uuid, d date, p point, c pair, x xml, v varchar(5), ch char(3), bits bit(4));
  CREATE TABLE composite (a int, b text, v text, PRIMARY KEY (b, a));
  CREATE TABLE keyless (x int, y text);
  CREATE TABLE full_t (id int PRIMARY KEY, doc text, flag bool);
  ALTER TABLE full_t REPLICA IDENTITY FULL;
  CREATE TABLE full_keyless (x int, doc text);
  ALTER TABLE full_keyless REPLICA IDENTITY FULL;
  CREATE TABLE by_index (id int PRIMARY KEY, code text NOT NULL, v text);
  CREATE UNIQUE INDEX by_index_code ON by_index (code);
  ALTER TABLE by_index REPLICA IDENTITY USING INDEX by_index_code;
  CREATE TABLE toasty (id int PRIMARY KEY, doc text, n int);
  CREATE TABLE "Odd ""Name"", Inc ü" (id int PRIMARY KEY, "ключ" text);
  CREATE TABLE numeric_names (id int PRIMARY KEY, "1" text, "0" text, "01" text);
  CREATE TABLE proto_name (id int PRIMARY KEY, "__proto__" text, "constructor" text);
  CREATE TABLE proto_key ("__proto__" text PRIMARY KEY, "toString" text);
  CREATE TABLE empty_cols ();
  CREATE PUBLICATION fast_pub FOR ALL TABLES;`;

// Out of line even after compression: md5 hex compresses only about two to one.
const TOASTED = "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 400) i)";
// Every code point from U+0001 to U+007F (text cannot hold U+0000), and some beyond.
const ALL_ASCII = "(SELECT string_agg(chr(i), '') FROM generate_series(1, 127) i)";
const UNICODE = 'chr(128) || chr(255) || chr(8232) || chr(8233) || chr(65279) || chr(65533) || chr(128578)';

const WORKLOAD = [
  `INSERT INTO t VALUES
     (9223372036854775807, 12345678901234567890123456789.123456789, 1.7976931348623157e308, -0.0, true,
      '\\xdeadbeef00', '{"a": 1.10,  "s": "x\\"y\\\\z"}', '{"a": 1.10, "big": 123456789012345678901234567890}',
      '{a,"b c",NULL,"","q\\"uote","back\\\\slash"}', '{1,NULL,3}', 'happy',
      E'üñí "q" \\\\ \\n\\t\\r\\b\\f\\u0001\\u001f\\u007f 🙂 \\u2028 end', ${TOASTED}, NULL, 'w',
      '2026-01-02 03:04:05.123456+05:30', '1 year 2 mons -3 days 04:05:06.789', 92233720368547758.07,
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2026-12-01', '(1.5,-2)', ROW(7, 'x"y'), '<a b="c">&amp;</a>',
      'abc', 'x', B'1010'),
     (-9223372036854775808, 'NaN', 5e-324, 'Infinity', false, '\\x', 'null', '[]', '{}', '{}', 'sad', '',
      NULL, 0, NULL, NULL, NULL, -1.5, NULL, 'infinity', NULL, NULL, NULL, '', '', NULL),
     (3, -0.000000001, -1e-300, 1, NULL, NULL, '"str"', '"str"', NULL, NULL, NULL, ${ALL_ASCII}, 'small', -7,
      E'\\\\', NULL, NULL, 0, NULL, NULL, NULL, ROW(NULL, NULL), NULL, NULL, NULL, NULL),
     (5, 0, 0, 0, true, '\\x00ff', '{}', '{}', '{"\\\\"}', '{}', 'sad', ${UNICODE}, ${UNICODE}, 1, ${ALL_ASCII},
      NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
  // A value whose escaped text outgrows the hot path's buffer (1.3 MB of JSON from 500 KB of text).
  "INSERT INTO t (id, s) VALUES (6, repeat('x' || chr(34) || chr(92) || chr(10) || chr(1), 100000))",
  "UPDATE t SET s = s || ' updated', n = n + 1 WHERE id NOT IN (3, 6)",
  // Leaves the TOASTed column out of the WAL record (unchanged TOAST: the object path, for toast-fill).
  'UPDATE t SET nul = 1 WHERE id = 9223372036854775807',
  'UPDATE t SET id = 4 WHERE id = 3',
  'DELETE FROM t WHERE id = 4',
  "INSERT INTO composite VALUES (1, 'one', 'v1'), (2, 'two', NULL)",
  "UPDATE composite SET a = 10, v = 'moved' WHERE a = 1",
  "UPDATE composite SET v = 'same key' WHERE a = 10",
  "DELETE FROM composite WHERE b = 'two'",
  "INSERT INTO keyless VALUES (1, 'a'), (NULL, NULL)",
  `INSERT INTO full_t VALUES (1, ${TOASTED}, true), (2, 'small', NULL), (3, E'tab\\there', false)`,
  // REPLICA IDENTITY FULL: the old tuple carries the TOASTed value, the new one leaves it out.
  'UPDATE full_t SET flag = false WHERE id = 1',
  'UPDATE full_t SET id = id + 10',
  'DELETE FROM full_t WHERE id = 12',
  "INSERT INTO full_keyless VALUES (1, 'one'), (2, NULL)",
  "UPDATE full_keyless SET doc = 'uno' WHERE x = 1",
  'DELETE FROM full_keyless WHERE x = 2',
  "INSERT INTO by_index VALUES (1, 'c1', 'v'), (2, 'c2', NULL)",
  "UPDATE by_index SET code = 'c1-new' WHERE id = 1",
  "UPDATE by_index SET v = 'changed' WHERE id = 2",
  'DELETE FROM by_index WHERE id = 2',
  `INSERT INTO toasty VALUES (1, ${TOASTED}, 0), (2, 'short', 0)`,
  'UPDATE toasty SET n = n + 1',
  'DELETE FROM toasty WHERE id = 1',
  `INSERT INTO "Odd ""Name"", Inc ü" VALUES (1, 'значение')`,
  `UPDATE "Odd ""Name"", Inc ü" SET "ключ" = NULL`,
  "INSERT INTO numeric_names VALUES (1, 'one', 'zero', 'oh-one')",
  'DELETE FROM numeric_names',
  "INSERT INTO proto_name VALUES (1, 'p', 'c')",
  `UPDATE proto_name SET "__proto__" = 'p2'`,
  'UPDATE proto_name SET id = 2',
  'DELETE FROM proto_name',
  "INSERT INTO proto_key VALUES ('k', 's')",
  `UPDATE proto_key SET "__proto__" = 'k2'`,
  'DELETE FROM proto_key',
  'INSERT INTO empty_cols DEFAULT VALUES',
  // A column added mid-stream: a new Relation message, a new layout.
  'ALTER TABLE composite ADD COLUMN extra numeric',
  "INSERT INTO composite VALUES (3, 'three', 'v3', 3.25), (4, 'four', NULL, NULL)",
  'ALTER TABLE composite DROP COLUMN v',
  "INSERT INTO composite VALUES (5, 'five', -5)",
  'UPDATE composite SET extra = 6 WHERE a = 5',
  "SELECT pg_logical_emit_message(true, 'pfx', 'hello')",
  'TRUNCATE keyless, toasty',
  "DO $$ BEGIN FOR i IN 1..50 LOOP INSERT INTO t (id, s) VALUES (100 + i, 'row ' || i); COMMIT; END LOOP; END $$",
];

/** The event's JSON as the publisher sends it: the decoder's text, or JSON.stringify of its object. */
function jsonOf(d: Decoded): string {
  if (d.kind !== 'change') return '';
  return isEncoded(d.event) ? d.event.json : JSON.stringify(d.event);
}

/** Every item the same, and every change's JSON the same text. */
function compare(outFast: Decoded[], outObjects: Decoded[]): void {
  assert.equal(outFast.length, outObjects.length);
  for (let i = 0; i < outFast.length; i++) {
    const a = outFast[i];
    const b = outObjects[i];
    assert.equal(a.kind, b.kind, `item ${i}`);
    if (a.kind !== 'change' || b.kind !== 'change') {
      assert.deepEqual(a, b);
      continue;
    }
    assert.deepEqual(a.table, b.table, `item ${i}: the same table state`);
    // Byte for byte: the text the publisher puts in the message.
    assert.equal(jsonOf(a), jsonOf(b), `item ${i} (${a.table.table})`);
    if (isEncoded(a.event)) {
      assert.equal(a.event.op, b.event.op);
      assert.equal(a.event.lsn, b.event.lsn);
      assert.equal(a.event.seq, b.event.seq);
    }
  }
}

describe('pgoutput hot path', function () {
  this.timeout(120_000);

  it('writes the same event JSON, byte for byte, as JSON.stringify of the object path, on real pgoutput output', async () => {
    const db = await freshDatabase('pgofast');
    const c = new Client(db);
    await c.connect();
    const slot = uniqueName('pgofast');
    try {
      await c.query(SETUP);
      await c.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
      // The catalog as a run loads it at its start: before the changes (and the ALTER TABLEs) it reads.
      const catalog = await loadCatalog(c);
      for (const sql of WORKLOAD) await c.query(sql);
      const options = Object.entries(new PgOutputDecoder(catalog, 'fast_pub', []).pluginOptions).flat();
      const placeholders = options.map((_, i) => `$${i + 2}`).join(', ');
      const records = await c.query<{ lsn: string; data: Buffer }>(
        `SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, ${placeholders})`,
        [slot, ...options],
      );
      // Each change's LSN is its message's position: the same records again at positions past 2^32 and
      // past 2^53 (which the hot path prints differently), so both ways of printing one are compared.
      let outFast: Decoded[] = [];
      let outObjects: Decoded[] = [];
      for (const offset of [0x12345600000000n, 0xfffffff000000000n, 0n]) {
        const fast = new PgOutputDecoder(catalog, 'fast_pub', []);
        const objects = new PgOutputDecoder(catalog, 'fast_pub', []);
        objects.fastPath = false;
        outFast = [];
        outObjects = [];
        for (const r of records.rows) {
          const lsn = parseLsn(r.lsn) + offset;
          fast.decode({ walStart: lsn, walEnd: lsn, data: r.data }, (d) => outFast.push(d));
          objects.decode({ walStart: lsn, walEnd: lsn, data: r.data }, (d) => outObjects.push(d));
        }
        compare(outFast, outObjects);
      }
      assert.ok(outObjects.every((d) => d.kind !== 'change' || !isEncoded(d.event)));

      const changes = outFast.filter((d) => d.kind === 'change');
      assert.equal(changes.length, 108, 'every row change of the workload, and the truncates');
      const encoded = changes.filter((d) => isEncoded(d.event)).length;
      assert.ok(encoded >= 80, `the hot path decoded ${encoded} of ${changes.length} changes`);
      // Which take the object path: unchanged TOAST updates, truncates, unusual names.
      const objectPath = changes
        .filter((d) => !isEncoded(d.event))
        .map((d) => `${d.table.table}:${d.event.op}`);
      assert.deepEqual(
        objectPath.sort(),
        [
          // id 1's TOASTed doc is unchanged in its new tuple (filled from the old one): SET flag, SET id
          'full_t:u',
          'full_t:u',
          'keyless:t',
          'numeric_names:c',
          'numeric_names:d',
          // The first row's TOASTed big is left out of its new tuple: SET s = ..., SET nul = 1
          't:u',
          't:u',
          'toasty:t',
          'toasty:u', // id 1's doc left out
        ].sort(),
      );

      // Spot checks against Postgres' own text, so the two paths cannot agree on a wrong value.
      const ev = (table: string, op: string) =>
        changes
          .map((d) => d.kind === 'change' && d.table.table === table && changeEventOf(d.event))
          .filter((e): e is ChangeEvent => !!e && e.op === op);
      const inserted = ev('t', 'c');
      const ascii = (await c.query<{ s: string }>(`SELECT ${ALL_ASCII} AS s`)).rows[0].s;
      const unicode = (await c.query<{ s: string }>(`SELECT ${UNICODE} AS s`)).rows[0].s;
      assert.equal(inserted[0].after!.id, '9223372036854775807');
      assert.equal(inserted[0].after!.bt, '\\xdeadbeef00');
      assert.equal(inserted[0].after!['we"ird \\ näme'], 'w');
      assert.equal(inserted[0].after!.s, 'üñí "q" \\ \n\t\r\b\f\u0001\u001f\u007f 🙂 \u2028 end');
      assert.equal(inserted[0].after!.nul, null);
      assert.equal(inserted[2].after!.s, ascii);
      assert.equal(inserted[3].after!.s, unicode);
      assert.equal(inserted[4].after!.s, 'x"\\\n\u0001'.repeat(100000));
      assert.deepEqual(ev('composite', 'd')[0].key, { a: '2', b: 'two' });
      assert.deepEqual(ev('composite', 'u')[0].before, { a: '1', b: 'one' });
      assert.deepEqual(ev('keyless', 'c')[1].after, { x: null, y: null });
      assert.equal(ev('full_t', 'u')[0].before!.doc!.length, 12800);
      assert.deepEqual(ev('full_keyless', 'd')[0], {
        ...ev('full_keyless', 'd')[0],
        key: { x: '2', doc: null },
        before: { x: '2', doc: null },
      });
      // Columns named like Object.prototype members are own properties of the parsed event, as the sink reads it.
      const protoRow = ev('proto_name', 'u')[1];
      assert.ok(Object.hasOwn(protoRow.after!, '__proto__'));
      assert.deepEqual(Object.entries(protoRow.after!), [
        ['id', '2'],
        ['__proto__', 'p2'],
        ['constructor', 'c'],
      ]);
      assert.deepEqual(Object.entries(ev('proto_name', 'u')[1].before!), [['id', '1']]);
      const protoKey = ev('proto_key', 'u')[0];
      assert.deepEqual(Object.entries(protoKey.key!), [['__proto__', 'k2']]);
      assert.deepEqual(Object.entries(protoKey.before!), [['__proto__', 'k']]);
      assert.deepEqual(Object.entries(ev('proto_key', 'd')[0].key!), [['__proto__', 'k2']]);
      // REPLICA IDENTITY USING INDEX: the old key is the index's column, not the primary key.
      assert.deepEqual(ev('by_index', 'u')[0].before, { code: 'c1' });
      assert.deepEqual(ev('by_index', 'd')[0].key, { code: 'c2' });
      assert.deepEqual(ev('Odd "Name", Inc ü', 'c')[0].after, { id: '1', ключ: 'значение' });
      assert.deepEqual(ev('empty_cols', 'c')[0].after, {});
    } finally {
      await c.query('SELECT pg_drop_replication_slot($1)', [slot]).catch(() => undefined);
      await c.end();
    }
  });
});
