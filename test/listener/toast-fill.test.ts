import assert from 'node:assert/strict';
import { Client } from 'pg';
import { ChangeEvent } from '../../contract/events';
import { loadCatalog } from '../../listener/catalog';
import { DecoderName } from '../../listener/config';
import { runListener } from '../../listener/run';
import { SourceLookup, committedInSnapshot, parseSnapshot } from '../../listener/toast-fill';
import { TableEvent, createTopic, eventsOf, pullAll } from '../support/pubsub';
import { listenerFixture } from '../support/listener';

/** 4 kB+ of text that does not compress: with STORAGE EXTERNAL it always lives out of line. */
const BIG = (seed: number) =>
  `(SELECT string_agg(md5((${seed} * 1000 + gg)::text), '') FROM generate_series(1, 130) gg)`;

// Every column is large and stored out of line, so an update of `small` leaves all of them unchanged TOAST.
// The types cover the text forms that depend on session settings (time zone, date and interval style, float
// digits, money) and the quoting of arrays and composites.
const TYPED = `
  id int8 PRIMARY KEY, small text,
  t text, vc varchar(9000), bp char(5000), bt bytea, j json, jb jsonb, ta text[], ia int8[], na numeric[],
  tza timestamptz[], da date[], iva interval[], fa float8[], ba bool[], ma money[], ea mood[], comp stamp[],
  dom longtext, n numeric, x xml, tsv tsvector`;

function typedRow(id: number): string {
  const b = BIG(id);
  return `(${id}, 's',
    ${b}, ${b}, ${b}, convert_to(${b}, 'UTF8'), json_build_object('k', ${b}, 'n', 1.50)::json,
    jsonb_build_object('k', ${b}, 'n', 1.50), ARRAY[${b}, 'a "q" \\ b', NULL, ''],
    (SELECT array_agg(g * 1234567890123) FROM generate_series(1, 900) g),
    (SELECT array_agg(g / 7.0) FROM generate_series(1, 400) g),
    (SELECT array_agg(timestamptz '2026-03-29 01:30:00.123456+00' + g * interval '37 minutes') FROM generate_series(1, 400) g),
    (SELECT array_agg(date '2026-01-01' + g) FROM generate_series(1, 900) g),
    (SELECT array_agg(g * interval '1 day 01:02:03.5') FROM generate_series(1, 400) g),
    (SELECT array_agg(g / 3.0::float8) FROM generate_series(1, 400) g),
    (SELECT array_agg(g % 2 = 0) FROM generate_series(1, 4000) g),
    (SELECT array_agg((g * 1.25)::money) FROM generate_series(1, 600) g),
    (SELECT array_agg(CASE WHEN g % 2 = 0 THEN 'happy' ELSE 'sad' END::mood) FROM generate_series(1, 1500) g),
    (SELECT array_agg(ROW(timestamptz '2026-01-02 03:04:05+00' + g * interval '1 hour', 'x,' || g)::stamp) FROM generate_series(1, 200) g),
    ${b}, (SELECT (string_agg(lpad(g::text, 4, '0'), '') || '.5')::numeric FROM generate_series(1, 2000) g),
    ('<d>' || ${b} || '</d>')::xml,
    to_tsvector('simple', (SELECT string_agg(md5((${id} * 1000 + g)::text), ' ') FROM generate_series(1, 130) g)))`;
}

const TYPED_COLS = TYPED.split(',')
  .map((c) => c.trim().split(/\s+/)[0])
  .filter((c) => c && !['id', 'small'].includes(c));

async function setUpTyped(sql: (t: string) => Promise<unknown>, name: string): Promise<void> {
  await sql("CREATE TYPE mood AS ENUM ('sad', 'happy')");
  await sql('CREATE TYPE stamp AS (at timestamptz, label text)');
  await sql('CREATE DOMAIN longtext AS text');
  await sql(`CREATE TABLE ${name} (${TYPED})`);
  for (const c of TYPED_COLS) await sql(`ALTER TABLE ${name} ALTER COLUMN ${c} SET STORAGE EXTERNAL`);
}

function byKey(events: TableEvent[], op: string, id: string): TableEvent[] {
  return events.filter((e) => e.op === op && e.key?.id === id);
}

for (const decoder of ['wal2json', 'pgoutput'] as DecoderName[]) {
  describe(`listener with ${decoder}: unchanged TOAST values resolved before publishing`, function () {
    it('reads them from the source table in the same text the decoder prints, for every toastable type', async () => {
      const topic = await createTopic(`fill_${decoder}`);
      const f = await listenerFixture(topic, decoder);
      // Values that print differently per session: the decoder's and the lookup's sessions must agree.
      await f.sql(`ALTER DATABASE ${f.db.database} SET TimeZone = 'America/St_Johns'`);
      await f.sql(`ALTER DATABASE ${f.db.database} SET DateStyle = 'SQL, DMY'`);
      await f.sql(`ALTER DATABASE ${f.db.database} SET IntervalStyle = 'iso_8601'`);
      await f.sql(`ALTER DATABASE ${f.db.database} SET lc_monetary = 'C'`);
      await setUpTyped(f.sql, 'typed');
      await f.sql(`INSERT INTO typed VALUES ${typedRow(1)}, ${typedRow(2)}`);
      await f.sql("UPDATE typed SET small = 's2'");
      await runListener(f.cfg);
      const events = eventsOf(await pullAll(topic));
      for (const id of ['1', '2']) {
        const [ins] = byKey(events, 'c', id);
        const [upd] = byKey(events, 'u', id);
        assert.deepEqual(upd.unchanged, [], `row ${id}: nothing left unresolved`);
        // Every column was left out of the WAL record (so each value really was out of line) and read back.
        assert.deepEqual(
          [...upd.fromSource].sort(),
          [...TYPED_COLS].sort(),
          `row ${id}: all read from source`,
        );
        assert.equal(upd.superseded, undefined);
        for (const c of TYPED_COLS) {
          assert.equal(upd.after![c], ins.after![c], `row ${id}, column ${c}: same text as the decoder's`);
        }
        assert.equal(upd.after!.small, 's2');
      }
    });

    it('a row gone at lookup is superseded, a new key is looked up, a later value is read and flagged', async () => {
      const topic = await createTopic(`later_${decoder}`);
      const f = await listenerFixture(topic, decoder);
      await f.sql('CREATE TABLE docs (id int PRIMARY KEY, title text, body text)');
      await f.sql('ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL');
      await f.sql(`INSERT INTO docs SELECT g, 't', ${BIG(1)} FROM generate_series(1, 5) g`);
      await f.sql("UPDATE docs SET title = 'deleted later' WHERE id = 1");
      await f.sql('DELETE FROM docs WHERE id = 1');
      await f.sql("UPDATE docs SET title = 'new key', id = 20 WHERE id = 2");
      await f.sql("UPDATE docs SET title = 'changed later' WHERE id = 3");
      await f.sql(`UPDATE docs SET body = 'later ' || ${BIG(2)} WHERE id = 3`);
      // Two updates in one transaction: the second reads the first's value (its transaction is visible).
      await f.sql(
        `BEGIN; UPDATE docs SET body = 'in txn ' || ${BIG(3)} WHERE id = 4; UPDATE docs SET title = 'x' WHERE id = 4; COMMIT`,
      );
      await runListener(f.cfg);
      const events = eventsOf(await pullAll(topic));
      const [gone] = byKey(events, 'u', '1');
      assert.equal(gone.superseded, true);
      assert.deepEqual([gone.unchanged, gone.fromSource], [['body'], []]);
      assert.equal('body' in gone.after!, false);
      const [rekeyed] = byKey(events, 'u', '20');
      assert.deepEqual(rekeyed.fromSource, ['body']);
      assert.equal(rekeyed.after!.body!.length, 130 * 32);
      const [first3, second3] = byKey(events, 'u', '3');
      const later = (await f.sql('SELECT body FROM docs WHERE id = 3'))[0].body;
      assert.equal(first3.after!.body, later, 'the value at lookup time, from the later change');
      assert.deepEqual(first3.fromSource, ['body']);
      assert.equal(second3.after!.body, later, 'the later change carries it from the WAL');
      assert.deepEqual(second3.fromSource, []);
      const [, fourB] = byKey(events, 'u', '4');
      assert.ok(fourB.after!.body!.startsWith('in txn '));
    });

    it('with REPLICA IDENTITY FULL the value comes from the old row in the WAL, not the table', async () => {
      const topic = await createTopic(`full_${decoder}`);
      const f = await listenerFixture(topic, decoder);
      await f.sql('CREATE TABLE docs (id int PRIMARY KEY, title text, body text)');
      await f.sql('ALTER TABLE docs REPLICA IDENTITY FULL');
      await f.sql('ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL');
      await f.sql(`INSERT INTO docs VALUES (1, 't', ${BIG(1)})`);
      await f.sql("UPDATE docs SET title = 't2'");
      await f.sql("UPDATE docs SET body = 'changed'");
      await runListener(f.cfg);
      const events = eventsOf(await pullAll(topic));
      assert.deepEqual(
        events.map((e) => e.op),
        ['c', 'u', 'u'],
      );
      assert.equal(events[1].after!.body, events[0].after!.body, 'the WAL truth, not the later value');
      assert.deepEqual([events[1].unchanged, events[1].fromSource], [[], []]);
    });

    it('a change decoded after ADD/DROP/RENAME COLUMN never reports a column it did not have as unchanged', async () => {
      const topic = await createTopic(`drift_${decoder}`);
      // The row exists before the slot, so the update is the first thing decoded for the table (an insert
      // in the stream would have shown wal2json's decoder the table's columns at that time).
      const f = await listenerFixture(topic, decoder, {}, async (sql) => {
        await sql('CREATE TABLE docs (id int PRIMARY KEY, title text, body text, extra int, gone text)');
        await sql('ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL');
        await sql(`INSERT INTO docs VALUES (1, 't', ${BIG(1)}, 5, 'g')`);
      });
      await f.sql("UPDATE docs SET title = 't2'"); // body unchanged TOAST
      await f.sql(`ALTER TABLE docs ADD COLUMN added_int int DEFAULT 7, ADD COLUMN added_text text DEFAULT 'x',
                   ADD COLUMN added_ts timestamptz DEFAULT now()`);
      await f.sql('ALTER TABLE docs DROP COLUMN extra, DROP COLUMN gone');
      await f.sql('ALTER TABLE docs RENAME COLUMN title TO heading');
      // The listener starts now: its catalog is the altered table, the change is from before.
      await runListener(f.cfg);
      const events = eventsOf(await pullAll(topic));
      const [upd] = events.filter((e) => e.op === 'u');
      const atChange = ['id', 'title', 'body', 'extra', 'gone'];
      for (const c of [...upd.unchanged, ...upd.fromSource]) {
        // Only text-typed columns can be ambiguous (wal2json cannot tell a text column added later from an
        // unchanged TOAST one); the listener then resolves them to the source's current value.
        assert.ok(
          atChange.includes(c) || (decoder === 'wal2json' && ['added_text', 'heading'].includes(c)),
          `${c} did not exist at the change`,
        );
      }
      assert.deepEqual(upd.unchanged, []);
      assert.ok(upd.fromSource.includes('body'));
      assert.equal(upd.after!.body!.length, 130 * 32);
      // Columns the table had at the change keep their WAL values; fixed-size columns added later are absent.
      assert.equal(upd.after!.title, 't2');
      assert.equal(upd.after!.extra, '5');
      assert.equal(upd.after!.gone, 'g');
      assert.equal('added_int' in upd.after!, false);
      assert.equal('added_ts' in upd.after!, false);
      if (decoder === 'wal2json') {
        // Ambiguous for wal2json: read from the source, i.e. the row's values now (right for the replica).
        assert.equal(upd.after!.added_text, 'x');
        assert.equal(upd.after!.heading, 't2');
      } else {
        // pgoutput describes the change with the table as it was.
        assert.deepEqual(Object.keys(upd.after!).sort(), [...atChange].sort());
      }
    });

    it('with REPLICA IDENTITY FULL a column added after the change is not reported at all', async () => {
      const topic = await createTopic(`fulldrift_${decoder}`);
      const f = await listenerFixture(topic, decoder);
      await f.sql('CREATE TABLE docs (id int PRIMARY KEY, title text, body text)');
      await f.sql('ALTER TABLE docs REPLICA IDENTITY FULL');
      await f.sql('ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL');
      await f.sql(`INSERT INTO docs VALUES (1, 't', ${BIG(1)})`);
      await f.sql("UPDATE docs SET title = 't2'");
      await f.sql("ALTER TABLE docs ADD COLUMN added_text text DEFAULT 'x'");
      await runListener(f.cfg);
      const [upd] = eventsOf(await pullAll(topic)).filter((e) => e.op === 'u');
      assert.deepEqual([upd.unchanged, upd.fromSource], [[], []]);
      assert.equal('added_text' in upd.after!, false);
      assert.equal(upd.after!.body!.length, 130 * 32);
    });
  });
}

describe('TOAST lookup on the source table', () => {
  it('resolves a whole batch with one query, composite keys included, and says which rows are gone', async () => {
    const topic = await createTopic('lookup_batch');
    const f = await listenerFixture(topic, 'pgoutput');
    await f.sql('CREATE TABLE cd (a int, b text, body text, PRIMARY KEY (a, b))');
    await f.sql("INSERT INTO cd SELECT g, 'k' || g, 'v' || g FROM generate_series(1, 500) g");
    const catalog = await withClient(f.db, loadCatalog);
    const columns = catalog.tables.get('public.cd')!;
    const xid = Number((await f.sql('SELECT txid_current()::text::int8 % 4294967296 AS x'))[0].x);
    const events: ChangeEvent[] = [];
    for (let g = 1; g <= 600; g++) {
      const key = { a: String(g), b: `k${g}` };
      events.push({
        op: 'u',
        key,
        before: null,
        after: { ...key },
        unchanged: ['body'],
        fromSource: [],
        lsn: '0/1',
        commitLsn: '0/1',
        xid,
        commitTs: '2026-01-01 00:00:00.000000+00',
        seq: `0000000000000001/${g.toString(16).padStart(16, '0')}`,
      });
    }
    const lookup = new SourceLookup(f.db);
    try {
      await lookup.resolve({ schema: 'public', table: 'cd', columns }, events);
    } finally {
      await lookup.close();
    }
    assert.equal(lookup.stats.lookups, 1, 'one query for 600 events');
    for (const e of events.slice(0, 500)) {
      assert.equal(e.after!.body, `v${e.key!.a}`);
      assert.deepEqual([e.unchanged, e.fromSource, e.superseded], [[], ['body'], undefined]);
    }
    for (const e of events.slice(500)) assert.deepEqual([e.unchanged, e.superseded], [['body'], true]);
  });

  it('waits for a decoded transaction to become visible: the snapshot test', () => {
    const snap = parseSnapshot('4294967390:4294967400:4294967395');
    // Ids as the decoders report them (32 bits) in the second epoch.
    // xmin, xmax and the running xid are 94, 104 and 99 in 32 bits.
    assert.equal(committedInSnapshot(93, snap), true, 'below xmin');
    assert.equal(committedInSnapshot(96, snap), true, 'ended, between xmin and xmax');
    assert.equal(committedInSnapshot(99, snap), false, 'still running');
    assert.equal(committedInSnapshot(104, snap), false, 'at xmax: not yet visible');
    // Across the 32-bit wrap: xid 4294967290 of epoch 0 is older than xmax 4294967300.
    assert.equal(committedInSnapshot(4294967290, parseSnapshot('4294967299:4294967300:')), true);
  });
});

async function withClient<T>(db: object, fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client(db);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}
