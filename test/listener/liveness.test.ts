// Liveness (issue 10.6, 9.5): a paused stream is not killed by wal_sender_timeout; a transaction too large
// for one run is reported, not silently retried for ever; the snapshot waits only for its own database's
// transactions; connections are retried while the network path comes up.

import assert from 'node:assert/strict';
import net from 'node:net';
import { Client } from 'pg';
import { parseLsn } from '../../contract/lsn';
import { MessageSink } from '../../listener/publisher';
import { pubsubSink, runListener } from '../../listener/run';
import { parseDurationSetting, statusIntervalFor } from '../../listener/replication-stream';
import { isRetryableConnectError } from '../../listener/connect';
import { runSnapshot } from '../../listener/snapshot';
import { freePort } from '../../local/ports';
import { createTopic, pullAll } from '../support/pubsub';
import { listenerFixture } from '../support/listener';
import { confirmedFlush } from '../support/slot';
import { freshDatabase } from '../support/stack';

/** Resolves when `check` returns true, polling (each poll is a query: an observation, not a guess). */
async function until(check: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('listener: liveness', function () {
  this.timeout(180_000);

  it('status updates follow the server’s wal_sender_timeout', () => {
    assert.equal(parseDurationSetting('60s'), 60_000);
    assert.equal(parseDurationSetting('1min'), 60_000);
    assert.equal(parseDurationSetting('500ms'), 500);
    assert.equal(parseDurationSetting('0'), 0);
    assert.equal(statusIntervalFor(60_000), 10_000);
    assert.equal(statusIntervalFor(2_000), 500);
    assert.equal(statusIntervalFor(0), 10_000, 'disabled timeout: the default interval');
  });

  it('a stream paused for several times wal_sender_timeout is not killed, and the run then completes', async () => {
    const topic = await createTopic('paused');
    const f = await listenerFixture(topic, 'pgoutput', { maxInFlightBytes: 20_000, maxMessageBytes: 2000 });
    // The walsender of this run times out after 2 s of silence from us.
    f.cfg.pg = { ...f.cfg.pg, options: '-c wal_sender_timeout=2s' };
    await f.sql('CREATE TABLE t (id int PRIMARY KEY, v text)');
    await f.sql('INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 3000) g');
    const real = pubsubSink(f.cfg);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    let firstPublish: () => void = () => undefined;
    const publishing = new Promise<void>((r) => (firstPublish = r));
    // Pub/Sub stalls: every publish waits at the gate, so in-flight bytes stay over the limit and reading pauses.
    const stalled: MessageSink = {
      publish: async (msg) => {
        firstPublish();
        await gate;
        return real.publish(msg);
      },
    };
    const run = runListener(f.cfg, { sink: stalled });
    run.catch(() => undefined);
    await publishing;
    const pausedAt = Date.now();
    const walsender = async () =>
      (
        await f.sql('SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1', [f.cfg.slot])
      )[0].pid as number | null;
    const pid = await walsender();
    assert.ok(pid, 'no walsender reads the slot');
    // Stay paused for 3 × wal_sender_timeout, checking the same walsender is still there all along.
    await until(async () => {
      assert.equal(await walsender(), pid, 'the server ended the paused replication connection');
      return Date.now() - pausedAt > 6_000;
    }, 'the pause to last 6 s');
    release();
    const summary = await run;
    await real.close();
    assert.equal(summary.changes, 3000);
    const ids = new Set((await pullAll(topic)).flatMap((p) => p.batch.events.map((e) => e.key!.id)));
    assert.equal(ids.size, 3000);
  });

  it('a transaction too large for one run is reported as stuckTransaction; the slot stays before it', async () => {
    const topic = await createTopic('stuck');
    const f = await listenerFixture(topic, 'pgoutput', { maxRunSeconds: 2 });
    await f.sql('CREATE TABLE t (id int PRIMARY KEY)');
    await f.sql('INSERT INTO t VALUES (0)');
    const c = new Client(f.db);
    await c.connect();
    let xid: number;
    try {
      await c.query('BEGIN');
      await c.query('INSERT INTO t SELECT generate_series(1, 50000)');
      xid = Number((await c.query<{ x: string }>('SELECT txid_current()::text AS x')).rows[0].x);
      await c.query('COMMIT');
    } finally {
      await c.end();
    }
    const alerts: { severity: string; message: string; fields?: Record<string, unknown> }[] = [];
    // A clock that moves one second each time the listener looks: the hard limit (2 × 2 s)
    // falls inside the 50,000-row transaction whatever the machine's speed.
    let t = 0;
    const first = await runListener(f.cfg, {
      now: () => (t += 1000),
      alert: (severity, message, fields) => alerts.push({ severity, message, fields }),
    });
    assert.equal(first.stoppedBy, 'time-limit');
    assert.ok(first.stuckTransaction, 'no stuckTransaction in the summary');
    assert.equal(first.stuckTransaction.xid, xid);
    assert.ok(first.stuckTransaction.changesRead > 0 && first.stuckTransaction.changesRead < 50000);
    assert.match(first.stuckTransaction.startLsn ?? '', /^[0-9A-F]+\/[0-9A-F]+$/);
    const stuckAlert = alerts.find((a) => a.fields?.stuckTransaction);
    assert.equal(stuckAlert?.severity, 'ERROR');
    assert.match(stuckAlert!.message, new RegExp(`transaction ${xid} is too large.*PGCDC_MAX_RUN_SECONDS`));
    // The slot did not move past the unfinished transaction: the first insert only.
    const confirmed = await confirmedFlush(f.db, f.cfg.slot);
    assert.ok(
      confirmed <= parseLsn(first.stuckTransaction.startLsn!),
      'slot confirmed into the stuck transaction',
    );

    // With time enough, the next run delivers it whole and reports nothing stuck.
    await pullAll(topic);
    const second = await runListener({ ...f.cfg, maxRunSeconds: 300 });
    assert.equal(second.stuckTransaction, null);
    assert.equal(second.stoppedBy, 'wal-end');
    const ids = new Set((await pullAll(topic)).flatMap((p) => p.batch.events.map((e) => e.key!.id)));
    assert.equal(ids.size, 50000);
  });

  it('the snapshot does not wait for transactions of other databases, only for its own', async () => {
    const topic = await createTopic('snapwait');
    const f = await listenerFixture(topic, 'pgoutput', { maxRunSeconds: 20 }, async (sql) => {
      await sql('CREATE TABLE t (id int PRIMARY KEY)');
      await sql('INSERT INTO t SELECT generate_series(1, 100)');
    });
    const elsewhere = new Client(await freshDatabase('other'));
    await elsewhere.connect();
    const here = new Client(f.db);
    await here.connect();
    try {
      // A writing transaction (it has an xid) left open in another database.
      await elsewhere.query('CREATE TABLE x (id int)');
      await elsewhere.query('BEGIN');
      await elsewhere.query('INSERT INTO x VALUES (1)');
      // A fake clock: had the snapshot waited for that transaction, it would give up at the deadline.
      let t = 0;
      const snap = await runSnapshot(f.cfg, { tables: ['public.t'], now: () => (t += 1000) });
      assert.equal(snap.stoppedBy, 'done');
      assert.equal(snap.rows, 100);

      // One open in its own database is still waited for (consistency), until the deadline.
      await here.query('CREATE TABLE y (id int)');
      await here.query('BEGIN');
      await here.query('INSERT INTO y VALUES (1)');
      t = 0;
      const blocked = await runSnapshot(f.cfg, {
        tables: ['public.t'],
        restart: true,
        now: () => (t += 1000),
      });
      assert.equal(blocked.stoppedBy, 'time-limit');
      assert.equal(blocked.rows, 0);
    } finally {
      await elsewhere.end();
      await here.end();
    }
  });

  it('a database that is not reachable yet is retried with backoff within the run; the run then succeeds', async () => {
    const topic = await createTopic('retry');
    const f = await listenerFixture(topic, 'pgoutput');
    await f.sql('CREATE TABLE t (id int PRIMARY KEY)');
    await f.sql('INSERT INTO t VALUES (1), (2)');
    // Nothing listens on this port until the listener has failed once; then a proxy to the database opens.
    const port = await freePort();
    const proxy = net.createServer((sock) => {
      const up = net.connect(f.db.port, f.db.host);
      sock.pipe(up).pipe(sock);
      sock.on('error', () => up.destroy());
      up.on('error', () => sock.destroy());
    });
    const lines: string[] = [];
    try {
      const summary = await runListener(
        { ...f.cfg, pg: { ...f.cfg.pg, port } },
        {
          log: (line) => {
            lines.push(line);
            if (/not reachable yet/.test(line) && !proxy.listening) proxy.listen(port, '127.0.0.1');
          },
        },
      );
      assert.equal(summary.changes, 2);
      assert.match(lines[0], /database not reachable yet \(attempt 1: .*ECONNREFUSED.*\); retrying in 1 s/);
    } finally {
      proxy.close();
    }
    assert.equal(isRetryableConnectError(Object.assign(new Error('x'), { code: '28P01' })), false);
    assert.equal(isRetryableConnectError(new Error('Connection terminated due to connection timeout')), true);
  });
});
