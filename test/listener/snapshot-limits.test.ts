// The snapshot's limits: memory bounded by bytes (wide rows, the job's Node options), progress after a
// failed chunk read, never making the application's locks wait, and names that hold periods and quotes.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { Client } from 'pg';
import { Row } from '../../contract/events';
import { decodeBatch } from '../../contract/codec';
import { tableKey } from '../../contract/table-name';
import { MessageSink, OutgoingMessage } from '../../listener/publisher';
import { LISTENER_NODE_FLAGS, LISTENER_NODE_OPTIONS } from '../../listener/runtime';
import { SnapshotLimits, runSnapshot } from '../../listener/snapshot';
import { CdcReplica } from '../support/cdc';
import { createTopic, pullAll } from '../support/pubsub';
import { listenerEnv, listenerFixture } from '../support/listener';

function runSnapshotProcess(
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [...LISTENER_NODE_FLAGS, path.resolve(__dirname, '../../listener/main.js'), 'snapshot'],
      {
        // The container's Node options (listener/Dockerfile, kept equal by test/listener/bounded.test.ts).
        env: { ...process.env, NODE_OPTIONS: LISTENER_NODE_OPTIONS, ...env },
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A sink recording every event it acknowledged, by key id. */
function recordingSink(acked: Map<string, Row>, hook?: (m: OutgoingMessage) => Promise<void>): MessageSink {
  let n = 0;
  return {
    publish: async (m) => {
      await hook?.(m);
      const events = decodeBatch(m.data, m.attributes).events;
      // Every message holds the events its attributes say, of one chunk read.
      assert.equal(events.length, Number(m.attributes.count));
      assert.equal(events[0].seq, m.attributes.firstSeq);
      assert.equal(events[events.length - 1].seq, m.attributes.lastSeq);
      for (const e of events) acked.set(e.key!.id!, e.after!);
      return String(++n);
    },
  };
}

describe('snapshot limits', function () {
  this.timeout(900_000);

  it('wide rows (4 KB TOAST text, bytea, jsonb) with the default chunk settings stay far below the job memory, every row right', async () => {
    const topic = await createTopic('snap_wide');
    const rows = 12_000;
    const f = await listenerFixture(topic, 'pgoutput', {}, async (sql) => {
      await sql('CREATE TABLE wide (id int PRIMARY KEY, t text, b bytea, j jsonb)');
      // Stored out of line and uncompressed: each row's text is a real 4 KB TOAST value.
      await sql('ALTER TABLE wide ALTER COLUMN t SET STORAGE EXTERNAL');
      await sql(
        `INSERT INTO wide
         SELECT g,
                -- every 7th row has characters COPY escapes and JSON escapes
                CASE WHEN g % 7 = 0 THEN E'tab\\there\\nline "quoted" back\\\\slash é ' ELSE '' END ||
                  (SELECT string_agg(md5(g::text || k::text), '') FROM generate_series(1, 128) k),
                (SELECT decode(string_agg(md5(k::text || g::text), ''), 'hex') FROM generate_series(1, 64) k),
                jsonb_build_object('id', g, 'tags', (SELECT jsonb_agg(md5(k::text)) FROM generate_series(1, 20) k),
                                   'note', E'a "quote" and a \\\\ and \\t')
         FROM generate_series(1, ${rows}) g`,
      );
      await sql('ANALYZE wide');
    });
    const [{ bytes }] = await f.sql(
      'SELECT sum(octet_length(t) + octet_length(b) + octet_length(j::text))::bigint::text AS bytes FROM wide',
    );
    const res = await runSnapshotProcess(listenerEnv(f.cfg));
    assert.equal(res.code, 0, res.stderr);
    const summary = JSON.parse(res.stdout) as {
      rows: number;
      chunks: number;
      messages: number;
      peakRssMb: number;
      stoppedBy: string;
    };
    assert.equal(summary.stoppedBy, 'done');
    assert.equal(summary.rows, rows);
    const perChunk = Number(bytes) / (summary.chunks - 1);
    // Several MB of row data per chunk (the first one only measures), yet far below the 512 MiB container:
    // the heap is capped at 160 MB by the Node options (exceeding it kills the process).
    assert.ok(perChunk > 8_000_000, `${Math.round(perChunk)} bytes of row data per chunk`);
    assert.ok(summary.peakRssMb < 256, `peak RSS ${summary.peakRssMb} MB`);
    console.log(
      `      ${rows} rows, ${(Number(bytes) / 1e6).toFixed(0)} MB of row data in ${summary.chunks} chunks, ` +
        `${summary.messages} messages, peak RSS ${summary.peakRssMb} MB`,
    );

    // Row by row: the history (every event) and the replica it folds to equal the source.
    const events = (await pullAll(topic)).flatMap((p) => p.batch.events);
    assert.equal(events.length, rows);
    const source = await f.sql('SELECT id::text AS id, t, b::text AS b, j::text AS j FROM wide');
    const expected = new Map(source.map((r) => [r.id as string, r as Row]));
    for (const e of events) {
      assert.equal(e.op, 'r');
      assert.deepEqual(e.after, expected.get(e.key!.id!), `history row ${e.key!.id}`);
    }
    const replica = new CdcReplica(['id']);
    for (const e of events) replica.apply(e);
    const live = replica.live();
    assert.equal(live.size, rows);
    for (const [id, row] of expected)
      assert.deepEqual(live.get(JSON.stringify([id])), row, `replica row ${id}`);
  });

  it('a chunk read (or progress write) failing on a terminated session records every chunk acknowledged before it, none after; a rerun completes', async () => {
    const topic = await createTopic('snap_readfail');
    const f = await listenerFixture(topic, 'pgoutput', { maxEventsPerMessage: 100 }, async (sql) => {
      await sql('CREATE TABLE t (id int PRIMARY KEY, v text)');
      await sql('INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g');
      await sql('ANALYZE t');
    });
    const acked = new Map<string, Row>();
    // Acks are held until the failure happened, so that no chunk could be recorded before it. At the first
    // message of the fourth chunk (chunks: 100 rows, then 1000; 10 messages each) the snapshot's session is
    // terminated: the fourth chunk's read fails, or, if it had just ended, the progress write after it.
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let messages = 0;
    const others = `FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
                    AND backend_type = 'client backend'`;
    const sink = recordingSink(acked, async () => {
      if (++messages === 22) {
        await f.sql(`SELECT pg_terminate_backend(pid) ${others}`);
        for (;;) if ((await f.sql(`SELECT 1 ${others}`)).length === 0) break;
        release();
      }
      await released;
    });
    await assert.rejects(
      runSnapshot(f.cfg, { tables: ['public.t'], chunkRows: 1000, sink }),
      /terminat|connection error/i,
    );
    const [p] = await f.sql('SELECT last_key, rows_done::int AS n, done FROM pgcdc.snapshot_progress');
    // The largest chunk end with every row up to it acknowledged.
    const ends = [100, ...Array.from({ length: 20 }, (_, i) => 1100 + 1000 * i)];
    const complete = ends.filter((end) => {
      for (let id = 1; id <= end; id++) if (!acked.has(String(id))) return false;
      return true;
    });
    assert.ok(complete.length >= 3, `only ${complete.length} chunks were acknowledged`);
    assert.equal(Number((p.last_key as Row).id), complete[complete.length - 1]);
    assert.equal(p.n, complete[complete.length - 1]);
    assert.equal(p.done, false);

    const rerun = await runSnapshot(f.cfg, {
      tables: ['public.t'],
      chunkRows: 1000,
      sink: recordingSink(acked),
    });
    assert.equal(rerun.stoppedBy, 'done');
    assert.equal(rerun.rows, 20_000 - Number(p.n));
    const source = await f.sql('SELECT id::text AS id, v FROM t');
    assert.equal(acked.size, source.length);
    for (const r of source) {
      const row = acked.get(r.id as string)!;
      assert.equal(row.v, r.v, `row ${String(r.id)}`);
    }
  });

  it('an ALTER queued behind a long transaction: the snapshot stops without delaying it, naming the sessions; a later run finishes it', async () => {
    const topic = await createTopic('snap_lock');
    const f = await listenerFixture(topic, 'pgoutput', {}, async (sql) => {
      await sql('CREATE TABLE t (id int PRIMARY KEY, v text)');
      await sql('INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g');
      await sql('ANALYZE t');
    });
    const limits: SnapshotLimits = {
      lockTimeoutMs: 300,
      statementTimeoutMs: 30_000,
      idleInTransactionMs: 10_000,
      lockAttempts: 2,
    };
    const app = new Client(f.db);
    const migration = new Client(f.db);
    await app.connect();
    await migration.connect();
    try {
      // The application's long read (no xid, so the snapshot does not wait for it) holds ACCESS SHARE...
      await app.query('BEGIN');
      await app.query('SELECT count(*) FROM t');
      const appPid = (await app.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      const migrationPid = (await migration.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]
        .pid;
      // ...and a migration's ALTER queues behind it for ACCESS EXCLUSIVE.
      const alter = migration.query('ALTER TABLE t ADD COLUMN extra int');
      for (;;) {
        const [w] = await f.sql('SELECT pg_blocking_pids($1) AS b', [migrationPid]);
        if ((w.b as number[]).includes(appPid)) break;
      }
      const acked = new Map<string, Row>();
      const warnings: { message: string; fields?: Record<string, unknown> }[] = [];
      const blocked = await runSnapshot(f.cfg, {
        tables: ['public.t'],
        sink: recordingSink(acked),
        limits,
        alert: (severity, message, fields) => {
          if (severity === 'WARNING') warnings.push({ message, fields });
        },
      });
      assert.equal(blocked.stoppedBy, 'blocked');
      assert.equal(blocked.blocked?.reason, 'lock-timeout');
      assert.equal(blocked.blocked?.attempts, 2);
      // The migration waits for the application only, never for the snapshot.
      const alterSession = blocked.blocked!.sessions.find((s) => s.pid === migrationPid);
      assert.ok(alterSession, JSON.stringify(blocked.blocked));
      assert.equal(alterSession.granted, false);
      assert.deepEqual(alterSession.blockedBy, [appPid]);
      assert.ok(blocked.blocked!.sessions.some((s) => s.pid === appPid));
      assert.equal(warnings.length, 1);
      assert.match(
        warnings[0].message,
        new RegExp(`pid ${migrationPid} waits for AccessExclusiveLock, blocked by pid ${appPid}`),
      );
      assert.match(warnings[0].message, /next run goes on/);
      assert.equal(acked.size, 0);
      // No session of the snapshot is left (only the application's, the migration's and this query's).
      const [{ n }] = await f.sql(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database()
           AND backend_type = 'client backend' AND pid NOT IN ($1, $2, pg_backend_pid())`,
        [appPid, migrationPid],
      );
      assert.equal(n, 0, 'the snapshot left a session behind');
      // The application ends its transaction: the ALTER gets its lock at once (nothing of ours holds one).
      await app.query('COMMIT');
      await alter;

      const rerun = await runSnapshot(f.cfg, { tables: ['public.t'], sink: recordingSink(acked), limits });
      assert.equal(rerun.stoppedBy, 'done');
      const source = await f.sql('SELECT id::text AS id, v, extra FROM t');
      assert.equal(acked.size, source.length);
      for (const r of source) assert.deepEqual(acked.get(r.id as string), r, `row ${String(r.id)}`);
    } finally {
      await app.end();
      await migration.end();
    }
  });

  it('a chunk read paused for Pub/Sub longer than the statement limit lets a waiting ALTER through at once; the snapshot still ends with every row', async () => {
    const topic = await createTopic('snap_hold');
    // Uncompressed small messages: the reader pauses after about 1 MiB not acknowledged.
    const f = await listenerFixture(
      topic,
      'pgoutput',
      { encoding: 'json', maxMessageBytes: 64 * 1024 },
      async (sql) => {
        await sql('CREATE TABLE t (id int PRIMARY KEY, v text)');
        // More COPY text per chunk than the sockets buffer: the server blocks writing to the paused reader.
        await sql('INSERT INTO t SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 200000) g');
        await sql('ANALYZE t');
      },
    );
    const limits: SnapshotLimits = {
      lockTimeoutMs: 1000,
      statementTimeoutMs: 1500,
      idleInTransactionMs: 10_000,
      lockAttempts: 3,
    };
    const acked = new Map<string, Row>();
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const lines: string[] = [];
    const snapshot = runSnapshot(f.cfg, {
      tables: ['public.t'],
      sink: recordingSink(acked, () => released),
      limits,
      log: (line) => lines.push(line),
    });
    // The snapshot's chunk transaction holds ACCESS SHARE (its COPY is running)...
    for (;;) {
      const [r] = await f.sql(
        `SELECT count(*)::int AS n FROM pg_stat_activity
         WHERE datname = current_database() AND state = 'active' AND query LIKE 'BEGIN ISOLATION LEVEL REPEATABLE READ%'`,
      );
      if (r.n === 1) break;
    }
    // ...and the migration's ALTER completes while every publish is still unacknowledged: the snapshot let
    // go of its lock instead of holding it until Pub/Sub answers.
    await f.sql('ALTER TABLE t ADD COLUMN extra int');
    release();
    let s = await snapshot;
    assert.ok(
      lines.some((l) => /ran past 1500 ms/.test(l)) || s.blocked?.reason === 'statement-timeout',
      `no statement limit was hit: ${JSON.stringify(s)}`,
    );
    if (s.stoppedBy === 'blocked')
      s = await runSnapshot(f.cfg, { tables: ['public.t'], sink: recordingSink(acked), limits });
    assert.equal(s.stoppedBy, 'done');
    const source = await f.sql('SELECT id::text AS id, v FROM t');
    assert.equal(acked.size, source.length);
    for (const r of source) assert.equal(acked.get(r.id as string)?.v, r.v, `row ${String(r.id)}`);
  });

  it('a schema and a table whose names hold periods and quotes are snapshotted under their own names', async () => {
    const topic = await createTopic('snap_names');
    const schema = 'we.ird"s';
    const table = 'ta.b"le';
    const q = (n: string) => `"${n.replace(/"/g, '""')}"`;
    const f = await listenerFixture(topic, 'pgoutput', {}, async (sql) => {
      await sql(`CREATE SCHEMA ${q(schema)}`);
      await sql(`CREATE TABLE ${q(schema)}.${q(table)} (id int PRIMARY KEY, "v.x" text)`);
      await sql(`INSERT INTO ${q(schema)}.${q(table)} SELECT g, 'v' || g FROM generate_series(1, 300) g`);
      // A table the first period would split to: schema "we", table "ird"s.ta.b"le" does not exist.
      await sql('CREATE TABLE public.other (id int PRIMARY KEY)');
    });
    const published: OutgoingMessage[] = [];
    const sink: MessageSink = {
      publish: async (m) => {
        published.push(m);
        return String(published.length);
      },
    };
    // Named in the table list's syntax (both parts quoted: contract/table-name.ts), and as "every table".
    const key = tableKey(schema, table);
    assert.equal(key, '"we.ird""s"."ta.b""le"');
    for (const tables of [[key], undefined]) {
      published.length = 0;
      const s = await runSnapshot(f.cfg, { tables, restart: true, chunkRows: 100, sink });
      assert.equal(s.stoppedBy, 'done');
      const ours = published.filter((m) => m.attributes.schema === schema);
      assert.ok(ours.length >= 2, `${ours.length} messages`);
      const rows = new Map<string, Row>();
      for (const m of ours) {
        assert.equal(m.attributes.table, table);
        assert.equal(m.orderingKey, key);
        const batch = decodeBatch(m.data, m.attributes);
        assert.equal(batch.schema, schema);
        assert.equal(batch.table, table);
        for (const e of batch.events) rows.set(e.key!.id!, e.after!);
      }
      assert.equal(rows.size, 300);
      for (let id = 1; id <= 300; id++)
        assert.deepEqual(rows.get(String(id)), { id: String(id), 'v.x': `v${id}` });
      const [p] = await f.sql(
        'SELECT rows_done::int AS n, done FROM pgcdc.snapshot_progress WHERE table_name = $1',
        [key],
      );
      assert.deepEqual(p, { n: 300, done: true });
    }
  });
});
