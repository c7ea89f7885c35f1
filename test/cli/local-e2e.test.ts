// The local stack for real: `pgcdc local up`, `sql init`, `run-once`, `status`, `demo` and `local down` run
// through commander with the real dependencies (Postgres, the Pub/Sub emulator, our BigQuery emulator, the
// listener and the sink in-process), and the `pgcdc` executable itself runs the README's first command.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { differences, replicaRows, sourceRows } from '../../cli/commands/demo';
import type { StatusReport } from '../../cli/commands/status';
import type { RunOnceResult } from '../../cli/commands/run-once';
import { withEnv } from '../../cli/commands/shared';
import { CliDeps, defaultDeps } from '../../cli/deps';
import { EXIT } from '../../cli/errors';
import { BufferedOutput, bufferOutput } from '../../cli/output';
import { runCli } from '../../cli/program';
import { LocalEndpoints, alive, localDown } from '../../local/stack';

/** A fresh directory the `postgres` user can traverse (initdb runs as postgres when we are root). */
function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

/** Polls `check` until it returns true or the deadline passes (then fails with `what`). */
async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`not true after ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('pgcdc against the local stack, end to end', function () {
  let dir: string;
  let out: BufferedOutput;
  let deps: CliDeps;
  const cli = async (...argv: string[]) => {
    out = bufferOutput();
    deps = defaultDeps({ output: out, localDir: dir });
    return runCli(argv, deps);
  };
  const endpoints = () =>
    JSON.parse(readFileSync(path.join(dir, 'endpoints.json'), 'utf8')) as LocalEndpoints;

  before(() => {
    dir = tempDir('pgcdc-cli-local-');
  });
  after(async () => {
    await localDown({ dir, purge: true });
  });

  it('local up starts Postgres and both emulators, prints the endpoints and writes them for later commands', async () => {
    assert.equal(await cli('local', 'up'), EXIT.ok, out.stderr);
    const e = endpoints();
    assert.match(
      out.stdout,
      new RegExp(`PostgreSQL\\s+postgresql://postgres@127\\.0\\.0\\.1:${e.pg.port}/pgcdc`),
    );
    assert.match(out.stdout, new RegExp(`Pub/Sub emulator\\s+${e.pubsubEmulatorHost.replace(/\./g, '\\.')}`));
    assert.match(
      out.stdout,
      /BigQuery emulator\s+http:\/\/127\.0\.0\.1:\d+\s+\(dataset pgcdc-local\.pgcdc\)/,
    );
    assert.equal(e.project, 'pgcdc-local');
    assert.equal(e.topic, 'pgcdc-changes');
    assert.equal(e.subscription, 'pgcdc-sink');
    assert.ok(alive(e.pids.pubsub) && alive(e.pids.bigquery));

    // A second `up` finds the running stack instead of starting another.
    assert.equal(await cli('local', 'up'), EXIT.ok, out.stderr);
    assert.match(out.stdout, /already up/);
    assert.deepEqual(endpoints().pids, e.pids);
  });

  it('run-once before sql init fails with the job-failed code, naming the listener', async () => {
    assert.equal(await cli('run-once', '--env', 'local'), EXIT.jobFailed);
    // The listener logs in as the replicator, which only sql init creates.
    assert.match(out.stderr, /error: listener failed: .*role "pgcdc_replicator" does not exist/);
    assert.match(out.stderr, /Rerun with --verbose/);
  });

  it('sql init --env local creates the slot, the publication and the sample table', async () => {
    assert.equal(await cli('sql', 'init', '--env', 'local'), EXIT.ok, out.stderr);
    assert.match(out.stdout, /created logical replication slot pgcdc_slot \(plugin pgoutput\)/);
    const e = endpoints();
    const pg = new Client(e.pg);
    await pg.connect();
    try {
      const slot = await pg.query("SELECT plugin FROM pg_replication_slots WHERE slot_name = 'pgcdc_slot'");
      assert.deepEqual(slot.rows, [{ plugin: 'pgoutput' }]);
      const n = await pg.query('SELECT count(*)::int AS n FROM public.customers');
      assert.equal(n.rows[0].n, 30);
    } finally {
      await pg.end();
    }
  });

  it('run-once --env local carries inserts, updates and deletes into the BigQuery replica, and the replica matches the source', async () => {
    const e = endpoints();
    const pg = new Client(e.pg);
    await pg.connect();
    try {
      await pg.query(
        `INSERT INTO public.customers (customer_id, first_name, last_name, email) VALUES (5001, 'Hedy', 'Lamarr', 'hedy@example.com')`,
      );
      await pg.query(
        `UPDATE public.customers SET loyalty_points = 4242, phone = NULL WHERE customer_id = 2005`,
      );
      await pg.query(`DELETE FROM public.customers WHERE customer_id IN (2006, 2007)`);
    } finally {
      await pg.end();
    }
    assert.equal(await cli('run-once', '--env', 'local', '--json'), EXIT.ok, out.stderr);
    const result = JSON.parse(out.stdout) as RunOnceResult;
    assert.equal(result.env, 'local');
    // 1 insert + 1 update + 2 deletes (the 30 sample rows existed before the slot: the snapshot sends them).
    assert.equal(result.listener.summary?.changes, 4);
    // The listener job then snapshots the table (never snapshotted): its 29 rows follow as `r` events.
    assert.equal(result.listener.summary?.snapshot?.rows, 29);
    assert.equal(result.sink.summary?.events, 4 + 29);
    assert.equal(result.sink.summary?.failed, 0);

    let diff: string[] = [];
    await eventually('the replica matches the source', async () => {
      diff = differences(await sourceRows(e.pg), await replicaRows(e).catch(() => new Map()));
      return diff.length === 0;
    });
    const replica = await replicaRows(e);
    assert.equal(replica.size, 29);
    assert.equal(replica.get('5001')?.email, 'hedy@example.com');
    assert.equal(replica.get('2005')?.loyalty_points, '4242');
    assert.equal(replica.get('2005')?.phone, null);
    assert.ok(!replica.has('2006') && !replica.has('2007'));
  });

  it('status --env local reports the slot caught up, the run, an empty backlog, no failed rows and the replica table', async () => {
    assert.equal(await cli('status', '--env', 'local', '--json'), EXIT.ok, out.stderr);
    const report = JSON.parse(out.stdout) as StatusReport;
    assert.ok(report.slot.ok && report.slot.value, JSON.stringify(report.slot));
    assert.equal(report.slot.value.slot, 'pgcdc_slot');
    assert.ok((report.slot.value.lagBytes ?? Infinity) < 1024 * 1024, `lag ${report.slot.value.lagBytes}`);
    assert.ok(report.runs.ok);
    // Newest first: the successful run, then the one that failed before sql init.
    assert.deepEqual(
      report.runs.value.map((r) => r.state),
      ['succeeded', 'failed'],
    );
    assert.deepEqual(report.verdict, { state: 'healthy', reasons: [] });
    assert.equal(report.slot.value.walStatus, 'reserved');
    assert.deepEqual(report.backlog, {
      ok: true,
      value: { subscription: 'pgcdc-sink', messages: 0, oldestUnackedSeconds: null },
    });
    assert.ok(report.failedRows.ok);
    assert.equal(report.failedRows.value.rows ?? 0, 0);
    // The first run-once snapshotted customers (never snapshotted before): progress is reported per table.
    assert.deepEqual(report.snapshots, {
      ok: true,
      value: [{ table: 'public.customers', rowsDone: 29, rowsEstimate: 29, done: true }],
    });
    assert.ok(report.replica.ok);
    const customers = report.replica.value.find((t) => t.table === 'customers');
    assert.ok(customers, JSON.stringify(report.replica.value));

    assert.equal(await cli('status', '--env', 'local'), EXIT.ok, out.stderr);
    assert.match(out.stdout, /^local: healthy\n/);
    assert.match(out.stdout, /pgcdc_slot \(pgoutput\): confirmed \d+\/[0-9A-F]+, WAL status reserved/);
    assert.doesNotMatch(out.stdout, /WAL at/);
    assert.match(out.stdout, /pgcdc-sink: 0 message\(s\) waiting/);
    assert.match(out.stdout, /Initial snapshots\n {2}public\.customers: 29 of ~29 rows, done/);
  });

  it('status counts a waiting message without consuming it: after 10 calls the sink still gets it on its first delivery', async () => {
    const e = endpoints();
    const pg = new Client(e.pg);
    await pg.connect();
    try {
      await pg.query(
        `UPDATE public.customers SET loyalty_points = loyalty_points + 1 WHERE customer_id = 2010`,
      );
    } finally {
      await pg.end();
    }
    // Only the listener runs: its message waits in the subscription.
    deps = defaultDeps({ output: bufferOutput(), localDir: dir });
    const env = deps.local.env(e);
    await withEnv(env, () => deps.pipeline.listenOnce(env, () => undefined));
    // The subscription dead-letters after 5 delivery attempts: 10 counts that pulled would have lost it.
    for (let i = 0; i < 10; i++) {
      assert.equal(await cli('status', '--env', 'local', '--json'), EXIT.lagging, out.stdout);
      const report = JSON.parse(out.stdout) as StatusReport;
      assert.ok(report.backlog.ok && report.backlog.value);
      assert.equal(report.backlog.value.messages, 1, `call ${i + 1}`);
      assert.equal(report.backlog.value.countedSince, undefined);
      assert.equal(report.verdict.state, 'lagging');
      assert.match(report.verdict.reasons[0], /^1 message\(s\) waiting in pgcdc-sink/);
    }
    assert.equal(await cli('status', '--env', 'local'), EXIT.lagging);
    assert.match(out.stdout, /^local: lagging — 1 message\(s\) waiting in pgcdc-sink, the oldest \d+s old\n/);
    assert.match(out.stdout, /fix: pgcdc run-once --env local/);

    // local down refuses: the emulator would lose the message the slot has already moved past.
    assert.equal(await cli('local', 'down'), EXIT.wouldLoseMessages);
    assert.match(
      out.stderr,
      /would lose 1 change message\(s\) not yet written to BigQuery in pgcdc-sink .*the Pub\/Sub emulator keeps nothing across a restart/,
    );
    assert.match(out.stderr, /pgcdc run-once --env local.*--force/);
    assert.ok(alive(e.pids.pubsub), 'the emulator still runs');

    // The real subscription never delivered it: the first pull is delivery attempt 1.
    const api = `http://${e.pubsubEmulatorHost}/v1/projects/${e.project}/subscriptions/${e.subscription}`;
    const pulled = (await (
      await fetch(`${api}:pull`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ maxMessages: 10, returnImmediately: true }),
      })
    ).json()) as { receivedMessages: Array<{ ackId: string; deliveryAttempt: number }> };
    assert.deepEqual(
      pulled.receivedMessages.map((m) => m.deliveryAttempt),
      [1],
    );
    // Handed straight back (attempt 2 of 5 for the sink), as a crashed consumer would.
    await fetch(`${api}:modifyAckDeadline`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ackIds: [pulled.receivedMessages[0].ackId], ackDeadlineSeconds: 0 }),
    });

    assert.equal(await cli('run-once', '--env', 'local', '--json'), EXIT.ok, out.stderr);
    const run = JSON.parse(out.stdout) as RunOnceResult;
    assert.equal(run.sink.summary?.events, 1);
    assert.equal(run.sink.summary?.failed, 0);
    assert.equal(run.sink.summary?.deadLetters ?? 0, 0);
    await eventually(
      'the replica matches the source',
      async () => differences(await sourceRows(e.pg), await replicaRows(e)).length === 0,
    );
    assert.equal(await cli('status', '--env', 'local', '--json'), EXIT.ok, out.stderr);
    const after = JSON.parse(out.stdout) as StatusReport;
    assert.ok(after.failedRows.ok);
    assert.equal(after.failedRows.value.rows ?? 0, 0, 'nothing dead-lettered into _failed');
    assert.deepEqual(after.deadLetters, {
      ok: true,
      value: { subscription: 'pgcdc-dead-letter-sub', messages: 0, oldestUnackedSeconds: null },
    });
  });

  it('status --env local names a table created after sql init (fix: sql init), then a TOAST lookup the application locks out run after run, with the session in the way; both clear once fixed', async function () {
    // Four local runs (listener and sink each), slow on a loaded machine.
    this.timeout(600_000);
    const e = endpoints();
    // The application's owner creates a table after the init: the replicator may not read it yet.
    const owner = new Client({ ...e.pg, user: e.roles?.owner ?? e.pg.user });
    await owner.connect();
    try {
      await owner.query('CREATE TABLE public.docs (id int PRIMARY KEY, small text, big text)');
      await owner.query('ALTER TABLE public.docs ALTER COLUMN big SET STORAGE EXTERNAL');
      await owner.query(
        "INSERT INTO public.docs SELECT 1, 'a', string_agg(md5(g::text), '') FROM generate_series(1, 130) g",
      );
      assert.equal(await cli('run-once', '--env', 'local'), EXIT.ok, out.stderr);
      assert.match(out.stdout, /not captured: public\.docs \(not-granted\)/);
      assert.equal(await cli('status', '--env', 'local', '--json'), EXIT.failing, out.stdout);
      const skipped = JSON.parse(out.stdout) as StatusReport;
      assert.deepEqual(skipped.verdict.reasons, [
        'public.docs is not captured: the replicator may not read it (created after the last sql init)',
      ]);
      assert.match(skipped.verdict.fix ?? '', /^pgcdc sql init --env local/);
      assert.equal(await cli('status', '--env', 'local'), EXIT.failing);
      assert.match(
        out.stdout,
        /Listener capture\n {2}not captured: public\.docs \(the replicator may not read it: created after the last sql init\); fix: pgcdc sql init --env local/,
      );

      assert.equal(await cli('sql', 'init', '--env', 'local'), EXIT.ok, out.stderr);
      // Granted now: an update that leaves big unchanged needs the lookup, and the application holds ACCESS
      // EXCLUSIVE (a blocked run snapshots nothing either: docs waits for the run after the lock).
      await owner.query("UPDATE public.docs SET small = 'b' WHERE id = 1");
      const [{ pid }] = (await owner.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows;
      await owner.query('BEGIN');
      await owner.query('LOCK TABLE public.docs IN ACCESS EXCLUSIVE MODE');
      for (let run = 1; run <= 2; run++) {
        assert.equal(await cli('run-once', '--env', 'local', '--json'), EXIT.ok, out.stderr);
        const r = JSON.parse(out.stdout) as RunOnceResult;
        assert.equal(r.listener.summary?.stoppedBy, 'lookup-blocked', `run ${run}`);
      }
      assert.equal(await cli('status', '--env', 'local', '--json'), EXIT.lagging, out.stdout);
      const blocked = JSON.parse(out.stdout) as StatusReport;
      assert.match(
        blocked.verdict.reasons[0],
        /^the TOAST lookup of public\.docs was refused a lock by the application in 2 listener runs in a row \(since /,
      );
      assert.ok(blocked.verdict.fix?.includes(`pg_terminate_backend(${pid})`), blocked.verdict.fix);
      assert.ok(blocked.listener.ok && blocked.listener.value?.blockedLookup);
      assert.equal(blocked.listener.value.blockedLookup.runs, 2);
      assert.equal(await cli('status', '--env', 'local'), EXIT.lagging);
      assert.match(out.stdout, new RegExp(`in the way: pid ${pid} holds AccessExclusiveLock`));
      await owner.query('ROLLBACK');
    } finally {
      await owner.end();
    }
    // The lock gone: the next run delivers the update (and snapshots docs), and status is healthy again.
    assert.equal(await cli('run-once', '--env', 'local', '--json'), EXIT.ok, out.stderr);
    const released = JSON.parse(out.stdout) as RunOnceResult;
    assert.equal(released.listener.summary?.stoppedBy, 'wal-end');
    assert.equal(released.listener.summary?.snapshot?.rows, 1, 'the first job after the grant snapshots it');
    assert.equal(await cli('status', '--env', 'local', '--json'), EXIT.ok, out.stdout);
    const healthy = JSON.parse(out.stdout) as StatusReport;
    assert.deepEqual(healthy.verdict, { state: 'healthy', reasons: [] });
    assert.deepEqual(healthy.listener, {
      ok: true,
      value: {
        at: healthy.listener.ok ? healthy.listener.value?.at : null,
        blockedLookup: null,
        skippedTables: [],
      },
    });
  });

  it('demo on the running stack applies its changes and shows source and replica side by side, matching', async () => {
    assert.equal(await cli('demo'), EXIT.ok, out.stderr);
    assert.match(out.stdout, /inserted customer 9001/);
    assert.match(
      out.stdout,
      /customer_id\s+source\.first_name\s+source\.email\s+source\.loyalty_points\s+│\s+replica\.first_name/,
    );
    assert.match(
      out.stdout,
      /9001\s+Demo\s+demo9001@example\.com\s+10\s+│\s+Demo\s+demo9001@example\.com\s+10\s+✓/,
    );
    assert.match(out.stdout, /The replica matches the source: \d+ rows, every column equal\./);
  });

  it('local down stops everything, is idempotent, and later local commands say the stack is not up', async () => {
    const e = endpoints();
    assert.equal(await cli('local', 'down'), EXIT.ok, out.stderr);
    assert.match(out.stdout, /Stopped: BigQuery emulator, Pub\/Sub emulator, PostgreSQL\./);
    assert.ok(!alive(e.pids.pubsub) && !alive(e.pids.bigquery));
    assert.ok(!existsSync(path.join(e.pgDataDir, 'postmaster.pid')));
    assert.ok(!existsSync(path.join(dir, 'endpoints.json')));
    assert.equal(await cli('local', 'down'), EXIT.ok, out.stderr);
    assert.match(out.stdout, /The local stack was not running\./);
    assert.equal(await cli('run-once', '--env', 'local'), EXIT.localStackNotUp);
    assert.match(out.stderr, /Run `pgcdc local up` first/);
  });
});

describe('the pgcdc executable', () => {
  const main = path.resolve(__dirname, '..', '..', 'cli', 'main.js');
  let dir: string;
  before(() => {
    dir = tempDir('pgcdc-cli-bin-');
  });
  after(async () => {
    await localDown({ dir });
    rmSync(dir, { recursive: true, force: true });
  });

  const bin = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [main, ...args],
        { env: { ...process.env, PGCDC_LOCAL_DIR: dir }, timeout: 110_000 },
        (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });

  it('`pgcdc demo` goes from nothing to rows in the local BigQuery replica and exits on its own', async () => {
    const r = await bin(['demo']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /The local stack is up:/);
    assert.match(r.stdout, /The replica matches the source: 30 rows, every column equal\./);
    // Plain progress (not a TTY) on stderr, no stray warnings from the Google libraries.
    assert.match(r.stderr, /Sink: Pub\/Sub → BigQuery: done/);
    assert.doesNotMatch(r.stderr, /Warning/);
  });

  it('an unknown option exits with the usage code and shows the help hint', async () => {
    const r = await bin(['status', '--env', 'local', '--frobnicate']);
    assert.equal(r.code, EXIT.usage);
    assert.match(r.stderr, /unknown option '--frobnicate'/);
  });
});
