// `pgcdc status` on what the listener's newest runs reported: a TOAST lookup refused a lock run after run,
// and captured tables the listener skips — from summaries typed as the listener job prints them
// (listener/job.ts ListenerJobSummary; the blocked lookup and the skipped table as the listener's own tests
// get them: test/listener/lookup-lock.test.ts, test/listener/granted-only.test.ts), through the cloud path
// (Cloud Logging lines) and the local one (the run history `run-once --env local` appends).

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { listenerHealth, LoggedSummary } from '../../cli/listener-health';
import { recordRun } from '../../cli/runs';
import { assess, BLOCKED_RUNS_FAILING, VerdictInput } from '../../cli/verdict';
import type { StatusReport } from '../../cli/commands/status';
import { EXIT } from '../../cli/errors';
import type { ListenerJobSummary } from '../../listener/job';
import type { SinkSummary } from '../../sink/run';
import { LOOKUP_LIMITS } from '../../listener/toast-fill';
import { harness, Harness } from './fakes';

/** A listen run's summary line as listener/main.ts prints it: `{ command, ...ListenerJobSummary }`. */
function summary(over: Partial<ListenerJobSummary> = {}): ListenerJobSummary & { command: 'listen' } {
  return {
    command: 'listen',
    changes: 3,
    messages: 2,
    bytes: 912,
    transactions: 2,
    firstLsn: '0/1A2B3C8',
    lastLsn: '0/1A2B5F0',
    confirmedLsn: '0/1A2B3C0',
    lagBytes: 4096,
    lastCommitTs: '2026-01-01 11:59:58.123456+00',
    seconds: 6.4,
    stoppedBy: 'wal-end',
    peakRssMb: 88,
    slotWalStatus: 'reserved',
    stuckTransaction: null,
    skippedTables: [],
    blockedLookup: null,
    snapshot: null,
    ...over,
  };
}

/** The application's ALTER TABLE holding ACCESS EXCLUSIVE on docs (lookup-lock.test.ts, "held"). */
const HELD: ListenerJobSummary['blockedLookup'] = {
  table: 'public.docs',
  reason: 'lock-timeout',
  attempts: LOOKUP_LIMITS.lockAttempts,
  lockTimeoutMs: LOOKUP_LIMITS.lockTimeoutMs,
  statementTimeoutMs: LOOKUP_LIMITS.statementTimeoutMs,
  sessions: [
    {
      pid: 4242,
      mode: 'AccessExclusiveLock',
      granted: true,
      blockedBy: [],
      user: 'app_owner',
      application: 'psql',
      state: 'idle in transaction',
      xactStart: '2026-01-01 11:20:00.5+00',
      query: 'ALTER TABLE docs ADD COLUMN note text',
    },
  ],
};

/** An ALTER queued behind a long reader (lookup-lock.test.ts, "queued"): the reader is the one to end. */
const QUEUED: ListenerJobSummary['blockedLookup'] = {
  ...HELD,
  sessions: [
    { ...HELD.sessions[0], pid: 5001, granted: false, blockedBy: [5000], state: 'active' },
    {
      pid: 5000,
      mode: null,
      granted: null,
      blockedBy: [],
      user: 'app_owner',
      application: 'report',
      state: 'idle in transaction',
      xactStart: '2026-01-01 10:00:00+00',
      query: 'SELECT count(*) FROM docs',
    },
  ],
};

const blocked = (b: ListenerJobSummary['blockedLookup'] = HELD) =>
  summary({ stoppedBy: 'lookup-blocked', blockedLookup: b, changes: 1 });

/** Newest first, one scheduled run every 12 minutes back from 12:00. */
function history(...summaries: object[]): LoggedSummary[] {
  return summaries.map((s, i) => ({
    at: new Date(Date.UTC(2026, 0, 1, 12, 0) - i * 12 * 60_000).toISOString(),
    summary: s,
  }));
}

const healthy: VerdictInput = {
  env: 'dev',
  cloud: true,
  listenerIntervalSeconds: 720,
  sinkIntervalSeconds: 720,
  slot: { ok: true, value: { walStatus: 'reserved', lagBytes: 4096, ageSeconds: 60 } },
  runs: { ok: true, value: [] },
  backlog: { ok: true, value: null },
  deadLetters: { ok: true, value: null },
};

describe('status: what the listener runs reported about capture', () => {
  it('counts the newest runs in a row whose lookup was blocked, since the oldest of them, with the sessions in the way', () => {
    const h = listenerHealth(history(blocked(), blocked(), blocked(), summary(), blocked()), 'dev');
    assert.ok(h?.blockedLookup);
    assert.deepEqual(
      { ...h.blockedLookup, sessions: h.blockedLookup.sessions.map((s) => s.pid) },
      {
        step: 'TOAST lookup',
        table: 'public.docs',
        reason: 'lock-timeout',
        attempts: 3,
        sessions: [4242],
        runs: 3,
        atLeast: false,
        since: '2026-01-01T11:36:00.000Z',
      },
    );
    assert.deepEqual(h.blockedLookup.sessions[0], HELD.sessions[0]);
    const v = assess({ ...healthy, listener: { ok: true, value: h } });
    assert.equal(v.state, 'failing');
    assert.equal(
      v.reasons[0],
      'the TOAST lookup of public.docs was refused a lock by the application in 3 listener runs in a row ' +
        '(since 2026-01-01T11:36:00.000Z): changes from there on wait, nothing is lost',
    );
    assert.match(v.fix ?? '', /^end the session in the way \(SELECT pg_terminate_backend\(4242\);\)/);
  });

  it('a snapshot refused its lock counts like a blocked lookup, and says it is the snapshot', () => {
    // listener/job.ts: the stream run ended normally, its snapshot stopped 'blocked' (snapshot-limits.test.ts).
    const snapshotBlocked = summary({
      snapshot: {
        rows: 0,
        messages: 0,
        chunks: 0,
        tables: [],
        seconds: 3.2,
        stoppedBy: 'blocked',
        blocked: { ...HELD, table: 'public.orders' },
        peakRssMb: 95,
        skippedTables: [],
      },
    });
    const h = listenerHealth(history(snapshotBlocked, blocked(), snapshotBlocked, summary()), 'dev');
    assert.equal(h?.blockedLookup?.step, 'snapshot');
    assert.equal(h?.blockedLookup?.table, 'public.orders');
    assert.equal(h?.blockedLookup?.runs, 3);
    assert.deepEqual(
      h?.blockedLookup?.sessions.map((x) => x.pid),
      [4242],
    );
    const v = assess({ ...healthy, listener: { ok: true, value: h } });
    assert.equal(v.state, 'failing');
    assert.match(
      v.reasons[0],
      /^the snapshot of public\.orders was refused a lock by the application in 3 listener runs in a row/,
    );
    assert.match(v.fix ?? '', /pg_terminate_backend\(4242\)/);
  });

  it('fewer blocked runs than the limit are lagging; every summary read blocked says "at least"', () => {
    for (let n = 1; n < BLOCKED_RUNS_FAILING; n++) {
      const runs = [...Array(n).fill(blocked()), summary()];
      const h = listenerHealth(history(...runs), 'dev');
      assert.equal(assess({ ...healthy, listener: { ok: true, value: h } }).state, 'lagging', `${n} runs`);
    }
    const all = listenerHealth(history(blocked(), blocked(), blocked(), blocked()), 'dev');
    assert.equal(all?.blockedLookup?.atLeast, true);
    assert.match(
      assess({ ...healthy, listener: { ok: true, value: all } }).reasons[0],
      /in at least 4 listener runs in a row/,
    );
  });

  it('an ALTER queued behind a long transaction: the session to end is the one it waits for', () => {
    const h = listenerHealth(history(blocked(QUEUED), blocked(QUEUED), blocked(QUEUED)), 'dev');
    const v = assess({ ...healthy, listener: { ok: true, value: h } });
    assert.match(v.fix ?? '', /pg_terminate_backend\(5000\)/);
    assert.doesNotMatch(v.fix ?? '', /5001/);
  });

  it('a normal run after blocked ones clears it; a summary of an older listener (no such fields) is healthy', () => {
    const cleared = listenerHealth(history(summary(), blocked(), blocked(), blocked()), 'dev');
    assert.deepEqual(cleared, { at: '2026-01-01T12:00:00.000Z', blockedLookup: null, skippedTables: [] });
    assert.deepEqual(assess({ ...healthy, listener: { ok: true, value: cleared } }), {
      state: 'healthy',
      reasons: [],
    });
    const old = listenerHealth(
      history({ confirmedLsn: '0/2000000', lagBytes: 0, stoppedBy: 'wal-end', changes: 0 }),
      'dev',
    );
    assert.deepEqual(old?.skippedTables, []);
    assert.equal(old?.blockedLookup, null);
    assert.equal(listenerHealth([], 'dev'), null);
  });

  it('a table created after the last sql init is failing with `pgcdc sql init` as the fix; an unlogged one is lagging', () => {
    const h = listenerHealth(
      history(
        summary({
          skippedTables: [
            { table: 'public.later', reason: 'not-granted' },
            { table: 'public.u', reason: 'unlogged' },
          ],
        }),
      ),
      'dev',
    );
    assert.deepEqual(
      h?.skippedTables.map((t) => [t.table, t.reason]),
      [
        ['public.later', 'not-granted'],
        ['public.u', 'unlogged'],
      ],
    );
    const v = assess({ ...healthy, listener: { ok: true, value: h } });
    assert.equal(v.state, 'failing');
    assert.deepEqual(v.reasons, [
      'public.later is not captured: the replicator may not read it (created after the last sql init)',
      'public.u is not captured: it is unlogged, so its changes never reach the WAL',
    ]);
    assert.match(v.fix ?? '', /^pgcdc sql init --env dev/);
    const unlogged = assess({
      ...healthy,
      listener: { ok: true, value: { ...h!, skippedTables: h!.skippedTables.slice(1) } },
    });
    assert.equal(unlogged.state, 'lagging');
    assert.match(unlogged.fix ?? '', /^ALTER TABLE public\.u SET LOGGED/);
  });

  it('a single row over statement_timeout is said so, not called a lock', () => {
    const slow = blocked({ ...HELD, reason: 'statement-timeout', attempts: 1, sessions: [] });
    const h = listenerHealth(history(slow, summary()), 'dev');
    const v = assess({ ...healthy, listener: { ok: true, value: h } });
    assert.equal(v.state, 'lagging');
    assert.match(
      v.reasons[0],
      /^the TOAST lookup of public\.docs ran past statement_timeout in 1 listener run in a row/,
    );
    assert.match(
      v.fix ?? '',
      /^a single primary-key lookup on that table takes longer than statement_timeout/,
    );
  });

  it('reports it cannot read the listener reports instead of calling the pipeline healthy', () => {
    const v = assess({ ...healthy, listener: { ok: false, error: 'PERMISSION_DENIED' } });
    assert.equal(v.state, 'failing');
    assert.equal(v.reasons[0], "the listener's reports could not be read: PERMISSION_DENIED");
  });
});

describe('pgcdc status shows a blocked lookup and skipped tables', () => {
  let h: Harness;
  afterEach(() => h?.cleanup());

  it('cloud: from the listener job summary lines in Cloud Logging, with the verdict and exit code', async () => {
    h = harness();
    const lines = history(
      blocked(),
      blocked(),
      summary({ stoppedBy: 'lookup-blocked', blockedLookup: HELD, skippedTables: [] }),
      summary(),
    );
    lines[0].summary = {
      ...(lines[0].summary as object),
      skippedTables: [{ table: 'public.later', reason: 'not-granted' }],
    };
    h.logs.history.set(
      'pgcdc-listener',
      lines.map((l) => ({ at: l.at!, summary: l.summary as Record<string, unknown> })),
    );
    h.logs.summaries.set('pgcdc-listener', lines[0].summary as Record<string, unknown>);
    h.logs.at.set('pgcdc-listener', lines[0].at!);
    assert.equal(await h.run('status', '--env', 'dev'), EXIT.failing, h.out.stderr);
    const out = h.out.stdout;
    assert.match(
      out,
      /^dev: failing — the TOAST lookup of public\.docs was refused a lock .* in 3 listener runs in a row/,
    );
    assert.match(out, /also: public\.later is not captured: the replicator may not read it/);
    assert.match(out, /fix: end the session in the way \(SELECT pg_terminate_backend\(4242\);\)/);
    assert.match(
      out,
      /Listener capture\n {2}TOAST lookup of public\.docs was refused a lock in the last 3 run\(s\), since 2026-01-01T11:36:00\.000Z \(lock-timeout, 3 attempt\(s\) a run\)/,
    );
    assert.match(
      out,
      / {4}in the way: pid 4242 holds AccessExclusiveLock \(user app_owner, application "psql", idle in transaction since 2026-01-01 11:20:00\.5\+00\): ALTER TABLE docs ADD COLUMN note text\n/,
    );
    assert.match(
      out,
      /not captured: public\.later \(the replicator may not read it: created after the last sql init\); fix: pgcdc sql init --env dev/,
    );
    assert.deepEqual(h.logs.recentRequests, [
      { project: 'acme-data-123', job: 'pgcdc-listener', field: 'confirmedLsn', limit: 50 },
    ]);

    const printed = out.length;
    assert.equal(await h.run('status', '--env', 'dev', '--json'), EXIT.failing);
    const report = JSON.parse(h.out.stdout.slice(printed)) as StatusReport;
    assert.ok(report.listener.ok && report.listener.value?.blockedLookup);
    assert.equal(report.listener.value.blockedLookup.runs, 3);
    assert.equal(report.listener.value.skippedTables[0].table, 'public.later');
  });

  it('local: from the run history that run-once appends', async () => {
    h = harness({
      deps: {
        local: {
          // Nothing listens on these ports: the other sections say "unavailable", the run history is a file.
          read: () => ({
            pg: { host: '127.0.0.1', port: 1, user: 'postgres', database: 'pgcdc' },
            pubsubEmulatorHost: '127.0.0.1:1',
            bigQueryEmulatorHost: 'http://127.0.0.1:1',
            bigQueryStorageEmulatorHost: '127.0.0.1:1',
            project: 'pgcdc-local',
            topic: 'pgcdc-changes',
            subscription: 'pgcdc-sink',
            deadLetterTopic: 'pgcdc-dead-letter',
            deadLetterSubscription: 'pgcdc-dead-letter-sub',
            dataset: 'pgcdc',
            slot: 'pgcdc_slot',
            publication: 'pgcdc_pub',
            decoder: 'pgoutput',
            pgDataDir: '/nonexistent',
            pids: { pubsub: 0, bigquery: 0 },
            startedAt: '2026-01-01T00:00:00Z',
          }),
          up: async () => {
            throw new Error('not used');
          },
          down: async () => ({ stopped: [] }),
          env: () => ({}),
        },
      },
    });
    mkdirSync(h.deps.localDir, { recursive: true });
    const sink = null as SinkSummary | null;
    recordRun(h.deps.localDir, { at: '2026-01-01T11:00:00.000Z', ok: true, listener: summary(), sink });
    recordRun(h.deps.localDir, { at: '2026-01-01T11:10:00.000Z', ok: true, listener: blocked(QUEUED), sink });
    // A listener that failed outright has no summary: it neither counts nor ends the blocked streak.
    recordRun(h.deps.localDir, {
      at: '2026-01-01T11:15:00.000Z',
      ok: false,
      listener: null,
      sink,
      error: 'x',
    });
    recordRun(h.deps.localDir, { at: '2026-01-01T11:20:00.000Z', ok: true, listener: blocked(QUEUED), sink });
    await h.run('status', '--env', 'local', '--json');
    const report = JSON.parse(h.out.stdout) as StatusReport;
    assert.ok(report.listener.ok);
    assert.deepEqual(
      report.listener.value?.blockedLookup && {
        runs: report.listener.value.blockedLookup.runs,
        since: report.listener.value.blockedLookup.since,
        pids: report.listener.value.blockedLookup.sessions.map((s) => s.pid),
      },
      { runs: 2, since: '2026-01-01T11:10:00.000Z', pids: [5001, 5000] },
    );
    assert.ok(
      report.verdict.reasons.some((r) =>
        /TOAST lookup of public\.docs .* in 2 listener runs in a row/.test(r),
      ),
      JSON.stringify(report.verdict),
    );
  });
});
