// The snapshot reads with COPY text format and writes each event's JSON itself. Proof that every byte is
// what the former path produced — a SELECT through pg's row parser (values as the text Postgres sent),
// an event object per row, JSON.stringify, contract/codec.ts encodeSerializedBatch — over many types and
// awkward texts, across chunk boundaries (resume by literal keys) and message cuts.

import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { Client } from 'pg';
import { encodeSerializedBatch } from '../../contract/codec';
import { ChangeEvent, EventBatch, Row } from '../../contract/events';
import { loadCatalog } from '../../listener/catalog';
import { decodeCopyText } from '../../listener/copy-text';
import { OutgoingMessage } from '../../listener/publisher';
import { runSnapshot } from '../../listener/snapshot';
import { jsonPropertyOrder } from '../../listener/snapshot-encoder';
import { createTopic } from '../support/pubsub';
import { listenerFixture } from '../support/listener';

const CONTROL = Array.from({ length: 31 }, (_, i) => String.fromCharCode(i + 1)).join('');
const NASTY = [
  '',
  ' ',
  '\\',
  '\\\\',
  '\\N',
  'N',
  'NULL',
  'null',
  'a\tb',
  'a\nb',
  'a\r\nb',
  '\\n literally',
  '"quoted"',
  "it's",
  '\b\f\v',
  CONTROL,
  '\u007f',
  'üñí',
  '🙂 astral',
  'e\u0301 combining',
  '\u2028\u2029',
  '日本語テキスト',
  '{a,b}',
  'ends with backslash\\',
  '\t',
  '\n',
  'x'.repeat(3000),
];

const COLUMNS = `
  id int PRIMARY KEY, s text, vc varchar(20), ch char(4), bt bytea, j json, jb jsonb, ta text[], ia int[],
  n numeric, r real, f float8, ts timestamp, tstz timestamptz, d date, tm time, iv interval, b bool, u uuid,
  ip inet, pt point, tsv tsvector, rng int4range, e mood, dom posint, x xml, bits varbit, m money,
  "2" text, "10" text, "__proto__" text, "we""ird	name" text, nul text`;

/** Rows the old snapshot would have read: a SELECT of the same columns in key order, values as text. */
async function selectAsBefore(db: object, table: string, cols: string[], keys: string[]): Promise<Row[]> {
  const q = (n: string) => `"${n.replace(/"/g, '""')}"`;
  const c = new Client(db);
  await c.connect();
  try {
    const r = await c.query({
      text: `SELECT ${cols.map(q).join(', ')} FROM ${table} ORDER BY ${keys.map(q).join(', ')}`,
      types: { getTypeParser: () => (value: string) => value },
    });
    return r.rows as Row[];
  } finally {
    await c.end();
  }
}

/** Every message the snapshot publishes compared byte for byte with what the former code built. */
async function assertSameAsBefore(
  messages: OutgoingMessage[],
  expectedRows: Row[],
  keyCols: string[],
  header: Omit<EventBatch, 'events'>,
): Promise<void> {
  let next = 0;
  for (const msg of messages) {
    assert.equal(msg.attributes.encoding, 'json+gzip');
    const text = gunzipSync(msg.data).toString('utf8');
    const batch = JSON.parse(text) as EventBatch;
    // Per-chunk values (the chunk's WAL position and time) come from the run; every other byte is derived.
    const events = batch.events.map((got: ChangeEvent): string => {
      const row = expectedRows[next++];
      const event: ChangeEvent = {
        op: 'r',
        key: Object.fromEntries(keyCols.map((k) => [k, row[k]])),
        before: null,
        after: row,
        unchanged: [],
        fromSource: [],
        lsn: got.lsn,
        commitLsn: got.lsn,
        xid: 0,
        commitTs: got.commitTs,
        seq: got.seq,
      };
      return JSON.stringify(event);
    });
    const first = batch.events[0].seq;
    const last = batch.events[batch.events.length - 1].seq;
    const before = await encodeSerializedBatch(header, events, first, last, 'json');
    assert.equal(text, before.data.toString('utf8'), `message ending at row ${next}`);
    assert.deepEqual({ ...msg.attributes, encoding: 'json' }, before.attributes);
    assert.equal(msg.orderingKey, `${header.schema}.${header.table}`);
  }
  assert.equal(next, expectedRows.length, 'rows published');
}

describe('snapshot encoding: COPY text to event JSON', function () {
  this.timeout(300_000);

  it('every value, key and payload byte equals what a SELECT and JSON.stringify made, over many types', async () => {
    const topic = await createTopic('snap_enc');
    const f = await listenerFixture(topic, 'pgoutput', { maxEventsPerMessage: 97 }, async (sql) => {
      await sql("CREATE TYPE mood AS ENUM ('sad', 'happy')");
      await sql('CREATE DOMAIN posint AS int CHECK (VALUE > 0)');
      await sql(`CREATE TABLE t (${COLUMNS})`);
      // A composite key, in another order than the columns, with names JSON prints first ("2", "10").
      await sql('CREATE TABLE k (v text, "10" text, "2" int, PRIMARY KEY ("10", "2"))');
    });
    const c = new Client(f.db);
    await c.connect();
    try {
      const ids: number[] = [];
      const texts: string[] = [];
      for (let i = 1; i <= 1500; i++) {
        ids.push(i);
        const pick = NASTY[i % NASTY.length];
        texts.push(i % 7 === 0 ? `${pick}${NASTY[(i * 13) % NASTY.length]}` : pick);
      }
      await c.query(
        `INSERT INTO t
         SELECT i, s, left(s, 20), left(s, 4), convert_to(s, 'UTF8') || decode(md5(i::text), 'hex'),
           to_json(s), jsonb_build_object('s', s, 'i', i, 'a', jsonb_build_array(s, null, 1.50)),
           ARRAY[s, NULL, '', 'a,b', '{x}', 'q"q'], ARRAY[i, NULL, -i],
           CASE WHEN i % 11 = 0 THEN 'NaN'::numeric ELSE (i * 12345.6789)::numeric / 7 END,
           CASE i % 5 WHEN 0 THEN 'Infinity'::real WHEN 1 THEN '-0'::real ELSE i / 3.0 END,
           CASE i % 4 WHEN 0 THEN 'NaN'::float8 WHEN 1 THEN '-Infinity' ELSE i * 1.1e-300 END,
           '2026-01-02 03:04:05.123456'::timestamp + i * interval '1 hour 1 sec',
           '1999-12-31 23:59:59.999999+00'::timestamptz - i * interval '37 days',
           date '0001-01-01' + i * 500, time '00:00:00.000001' + i * interval '37 sec',
           make_interval(years => i % 3, days => -i, secs => i / 7.0), i % 3 = 0,
           md5(i::text)::uuid, ('10.0.' || (i % 256) || '.1/24')::inet, point(i, -i / 3.0),
           to_tsvector('simple', 'word' || i || ' ' || replace(s, E'\\\\', '')), int4range(i, i * 2),
           CASE WHEN i % 2 = 0 THEN 'happy'::mood ELSE 'sad' END, i,
           xmlelement(name x, s), (i::bit(12))::varbit, i * 1.01,
           CASE WHEN i % 3 = 0 THEN NULL ELSE s END, s || '!', reverse(s), 'w' || i, NULL
         FROM unnest($1::int[], $2::text[]) AS u(i, s)`,
        [ids, texts],
      );
      await c.query(`INSERT INTO k SELECT s, s || i, i FROM unnest($1::int[], $2::text[]) AS u(i, s)`, [
        ids.slice(0, 600),
        texts.slice(0, 600).map((s) => s.slice(0, 100) + "'\\"),
      ]);
    } finally {
      await c.end();
    }
    const messages: OutgoingMessage[] = [];
    const sink = { publish: async (m: OutgoingMessage) => String(messages.push(m)) };
    // Small chunks: many reads resumed after a literal key holding quotes, backslashes and unicode.
    const s = await runSnapshot(f.cfg, { tables: ['public.t'], chunkRows: 173, sink });
    assert.equal(s.stoppedBy, 'done');
    assert.equal(s.rows, 1500);
    assert.ok(s.chunks > 8, `${s.chunks} chunks`);
    // Chunks of exactly two messages (after the first, of 100 rows): a chunk's last row fills a message.
    const sk = await runSnapshot(f.cfg, { tables: ['public.k'], chunkRows: 2 * 97, sink });
    assert.equal(sk.stoppedBy, 'done');
    assert.equal(sk.rows, 600);

    const check = new Client(f.db);
    await check.connect();
    const catalog = await loadCatalog(check);
    await check.end();
    for (const [table, keys] of [
      ['t', ['id']],
      ['k', ['10', '2']],
    ] as const) {
      const columns = catalog.tables.get(`public.${table}`)!;
      const rows = await selectAsBefore(
        f.db,
        table,
        columns.map((col) => col.name),
        [...keys],
      );
      assert.ok(rows.some((r) => Object.values(r).includes(null)) || table === 'k');
      await assertSameAsBefore(
        messages.filter((m) => m.attributes.table === table),
        rows,
        [...keys],
        { v: 1, schema: 'public', table, columns },
      );
    }
  });

  it('decodes every backslash sequence the COPY docs list, also those COPY TO does not emit', () => {
    const cases: [string, string][] = [
      ['plain', 'plain'],
      ['a\\tb\\nc\\rd\\be\\ff\\vg', 'a\tb\nc\rd\be\ff\vg'],
      ['\\\\N', '\\N'],
      ['\\101\\60x\\7', 'A0x\u0007'],
      ['\\x41\\x4a\\x4', 'AJ\u0004'],
      ['\\xg', 'xg'],
      ['\\q\\"', 'q"'],
      ['\\303\\274', 'ü'],
      ['\\xc3\\xbc', 'ü'],
    ];
    for (const [copy, value] of cases) {
      const line = Buffer.from(`pre\t${copy}\tpost`);
      assert.equal(decodeCopyText(line, 4, 4 + Buffer.byteLength(copy)), value, copy);
    }
  });

  it('orders properties as JSON.stringify prints an object created in that order', () => {
    const names = ['b', '10', 'a', '2', '01', '4294967294', '4294967295', '-1', '0', '1.5', '__proto__'];
    const obj: Record<string, number> = Object.create(null) as Record<string, number>;
    names.forEach((n, i) => (obj[n] = i));
    // JSON.stringify prints the own enumerable keys in Object.keys order.
    const printed = [...JSON.stringify({ ...obj }).matchAll(/"([^"]*)":/g)].map((m) => m[1]);
    assert.deepEqual(
      jsonPropertyOrder(names).map((i) => names[i]),
      printed,
    );
  });
});
