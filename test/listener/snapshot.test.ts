// Initial snapshot (issue: existing rows reach BigQuery, consistent with the stream).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { Client } from 'pg';
import { ChangeEvent, Row } from '../../contract/events';
import { runListener } from '../../listener/run';
import { decodeBatch } from '../../contract/codec';
import { MessageSink, OutgoingMessage } from '../../listener/publisher';
import { runSnapshot } from '../../listener/snapshot';
import { CdcReplica } from '../support/cdc';
import { TestTopic, createTopic, pullAll } from '../support/pubsub';
import { ListenerFixture, listenerEnv, listenerFixture } from '../support/listener';

async function existingRows(n: number) {
  return async (sql: (text: string) => Promise<unknown>) => {
    await sql('CREATE TABLE t (id int PRIMARY KEY, v text, n int)');
    await sql(`INSERT INTO t SELECT g, md5(g::text), 0 FROM generate_series(1, ${n}) g`);
    await sql('ANALYZE t');
  };
}

/** Updates, deletes and inserts rows at random, one small transaction after another, until stopped. */
function concurrentWriter(db: object, maxId: number): { stop(): Promise<number> } {
  let running = true;
  let transactions = 0;
  const loop = (async () => {
    const c = new Client(db);
    await c.connect();
    try {
      while (running) {
        const id = 1 + Math.floor(Math.random() * maxId);
        const r = Math.random();
        if (r < 0.6) await c.query('UPDATE t SET v = md5(random()::text), n = n + 1 WHERE id = $1', [id]);
        else if (r < 0.85) await c.query('DELETE FROM t WHERE id = $1', [id]);
        else
          await c.query("INSERT INTO t VALUES ($1, 'reinserted', -1) ON CONFLICT (id) DO UPDATE SET n = -2", [
            id,
          ]);
        transactions++;
      }
    } finally {
      await c.end();
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return transactions;
    },
  };
}

/** Everything in the topic folded into the replica BigQuery CDC would hold, compared with the source table. */
async function assertReplicaEqualsSource(
  f: ListenerFixture,
  topic: TestTopic,
  extra: ChangeEvent[] = [],
): Promise<number> {
  const replica = new CdcReplica(['id']);
  const events = [...extra];
  for (const p of await pullAll(topic)) events.push(...p.batch.events);
  // Arrival order must not matter: apply in reverse.
  for (let i = events.length - 1; i >= 0; i--) replica.apply(events[i]);
  const live = replica.live();
  const source = await f.sql('SELECT id::text AS id, v, n::text AS n FROM t');
  const expected = new Map(source.map((r) => [JSON.stringify([r.id]), r as Row]));
  assert.equal(live.size, expected.size, 'row count');
  for (const [k, row] of expected) assert.deepEqual(live.get(k), row, `row ${k}`);
  return events.length;
}

describe('initial snapshot', function () {
  this.timeout(900_000);

  it('1M existing rows with a writer updating and deleting throughout: the replica equals the source', async () => {
    const topic = await createTopic('snap_big');
    const f = await listenerFixture(
      topic,
      'wal2json',
      { snapshotChunkRows: 50_000 },
      await existingRows(1_000_000),
    );
    const writer = concurrentWriter(f.db, 1_000_000);
    const snap = await runSnapshot(f.cfg, { tables: ['public.t'], chunkRows: f.cfg.snapshotChunkRows });
    const writes = await writer.stop();
    assert.equal(snap.stoppedBy, 'done');
    assert.ok(snap.rows >= 990_000, `snapshot read ${snap.rows} rows`);
    assert.ok(writes > 100, `only ${writes} concurrent transactions`);
    await runListener(f.cfg);
    const events = await assertReplicaEqualsSource(f, topic);
    console.log(
      `      ${snap.rows} snapshot rows in ${snap.chunks} chunks, ${writes} concurrent transactions, ${events} events`,
    );
  });

  it('a snapshot killed mid-way resumes after its last acknowledged chunk and still ends equal', async () => {
    const topic = await createTopic('snap_kill');
    const f = await listenerFixture(
      topic,
      'pgoutput',
      { snapshotChunkRows: 5_000 },
      await existingRows(200_000),
    );
    const writer = concurrentWriter(f.db, 200_000);
    const child = spawn(process.execPath, [path.resolve(__dirname, '../../listener/main.js'), 'snapshot'], {
      env: { ...process.env, ...listenerEnv(f.cfg) },
      stdio: 'ignore',
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const progress = async () =>
      Number((await f.sql('SELECT coalesce(max(rows_done), 0)::int AS n FROM pgcdc.snapshot_progress'))[0].n);
    const deadline = Date.now() + 120_000;
    while ((await progress()) < 20_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    assert.equal(await exited, null, 'the snapshot finished before it could be killed');
    const doneBeforeKill = await progress();
    assert.ok(doneBeforeKill > 0 && doneBeforeKill < 200_000, `killed at ${doneBeforeKill}`);

    const resumed = await runSnapshot(f.cfg, { tables: ['public.t'], chunkRows: 5_000 });
    await writer.stop();
    assert.equal(resumed.stoppedBy, 'done');
    // It went on from the last acknowledged chunk instead of starting over.
    assert.ok(resumed.rows <= 200_000 - doneBeforeKill + 5_000, `resumed run read ${resumed.rows} rows`);
    await runListener(f.cfg);
    await assertReplicaEqualsSource(f, topic);
  });

  it('a publish failing while later chunks are in flight moves progress only past fully acknowledged chunks; a rerun completes', async () => {
    const topic = await createTopic('snap_fail');
    const f = await listenerFixture(
      topic,
      'pgoutput',
      { maxEventsPerMessage: 100 },
      await existingRows(20_000),
    );
    const acked = new Map<string, Row>();
    let publishes = 0;
    const record = (m: OutgoingMessage) => {
      const batch = decodeBatch(m.data, m.attributes);
      for (const e of batch.events) acked.set(e.key!.id!, e.after!);
    };
    // Fails the 57th message (in the sixth chunk of 1000 rows); the reader does not wait for acks, so later
    // chunks may be read, and even published, meanwhile.
    const failing: MessageSink = {
      publish: async (m) => {
        if (++publishes === 57) throw new Error('injected publish failure');
        record(m);
        return String(publishes);
      },
    };
    await assert.rejects(
      runSnapshot(f.cfg, { tables: ['public.t'], chunkRows: 1000, sink: failing }),
      /injected publish failure/,
    );
    const [p] = await f.sql('SELECT last_key, rows_done::int AS n, done FROM pgcdc.snapshot_progress');
    const lastKey = Number((p.last_key as Row).id);
    assert.equal(p.done, false);
    assert.ok(lastKey >= 1000 && lastKey < 6000, `progress at ${lastKey}`);
    assert.equal(p.n, lastKey);
    // Every row the progress claims was acknowledged.
    for (let id = 1; id <= lastKey; id++)
      assert.ok(acked.has(String(id)), `row ${id} claimed, not published`);

    const good: MessageSink = {
      publish: async (m) => {
        record(m);
        return 'ok';
      },
    };
    const rerun = await runSnapshot(f.cfg, { tables: ['public.t'], chunkRows: 1000, sink: good });
    assert.equal(rerun.stoppedBy, 'done');
    assert.equal(rerun.rows, 20_000 - lastKey);
    const source = await f.sql('SELECT id::text AS id, v, n::text AS n FROM t');
    assert.equal(acked.size, source.length);
    for (const r of source) assert.deepEqual(acked.get(r.id as string), r, `row ${String(r.id)}`);
  });

  it('runs by itself after a listen run for tables never snapshotted, bounded by the run time, then never again', async () => {
    const topic = await createTopic('snap_auto');
    const f = await listenerFixture(
      topic,
      'wal2json',
      { snapshot: 'auto', snapshotChunkRows: 1000 },
      await existingRows(3000),
    );
    const { runListenerJob } = await import('../../listener/job');
    const first = await runListenerJob(f.cfg);
    assert.equal(first.snapshot?.rows, 3000);
    assert.deepEqual(first.snapshot?.tables, [
      { table: 'public.t', rowsDone: 3000, rowsEstimate: 3000, done: true },
    ]);
    const second = await runListenerJob(f.cfg);
    assert.equal(second.snapshot, null);
    const events = (await pullAll(topic)).flatMap((p) => p.batch.events);
    assert.equal(events.filter((e) => e.op === 'r').length, 3000);
  });
});
