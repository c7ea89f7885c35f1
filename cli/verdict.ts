// The one-line answer of `pgcdc status`: healthy, lagging, stale or failing, with the reasons, and the exit
// code a script or an alert acts on. Pure: it reads the report the status command gathered.

import { EXIT } from './errors';
import { sessionsToEnd } from './listener-health';

export type VerdictState = 'healthy' | 'lagging' | 'stale' | 'failing';

export interface Verdict {
  state: VerdictState;
  /** The most serious reason first; empty when healthy. */
  reasons: string[];
  /** What to do about the first reason, when there is a known fix. */
  fix?: string;
}

export const VERDICT_EXIT: Record<VerdictState, number> = {
  healthy: EXIT.ok,
  lagging: EXIT.lagging,
  stale: EXIT.stale,
  failing: EXIT.failing,
};

const RANK: Record<VerdictState, number> = { healthy: 0, lagging: 1, stale: 2, failing: 3 };

/** A slot holding more WAL than this after a run is behind (a WAL segment is 16 MiB). */
export const LAG_BYTES_LIMIT = 16 * 1024 * 1024;

export interface VerdictInput {
  env: string;
  cloud: boolean;
  /** Cloud: the schedules' longest intervals, seconds (listener, sink). */
  listenerIntervalSeconds?: number;
  sinkIntervalSeconds?: number;
  slot:
    | { ok: false; error: string }
    | {
        ok: true;
        value: {
          walStatus: string | null;
          lagBytes: number | null;
          ageSeconds?: number;
          stuckTransaction?: { xid: number | string; changesRead: number; runs?: number } | null;
        } | null;
      };
  /** Newest first. */
  runs:
    | { ok: false; error: string }
    | { ok: true; value: Array<{ job: string; state: string; execution: string | null }> };
  backlog:
    | { ok: false; error: string }
    | {
        ok: true;
        value: { subscription: string; messages: number; oldestUnackedSeconds: number | null } | null;
      };
  deadLetters:
    { ok: false; error: string } | { ok: true; value: { subscription: string; messages: number } | null };
  /** What the listener's newest runs reported about capture (cli/listener-health.ts); absent: not read. */
  listener?:
    | { ok: false; error: string }
    | {
        ok: true;
        value: {
          blockedLookup: {
            /** What was refused the lock; absent: the TOAST lookup. */
            step?: 'TOAST lookup' | 'snapshot';
            table: string;
            reason: string;
            runs: number;
            atLeast: boolean;
            since: string | null;
            sessions: Array<{ pid: number; granted: boolean | null; mode: string | null }>;
          } | null;
          skippedTables: Array<{ table: string; reason: string; fix: string }>;
        } | null;
      };
}

/**
 * Newest listener runs in a row whose TOAST lookup was refused a lock before the verdict says failing: one
 * or two are a migration passing by (lagging: the pipeline waits behind it), this many is a lock someone
 * must end (README "Troubleshooting: a TOAST lookup blocked by the application's lock").
 */
export const BLOCKED_RUNS_FAILING = 3;

function duration(s: number): string {
  if (s < 120) return `${Math.round(s)}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

export function assess(r: VerdictInput): Verdict {
  const found: Array<{ state: VerdictState; reason: string; fix?: string }> = [];
  const add = (state: VerdictState, reason: string, fix?: string) => found.push({ state, reason, fix });
  const init = `pgcdc sql init --env ${r.env}`;

  if (!r.slot.ok) add('failing', `the slot could not be read: ${r.slot.error}`);
  else if (!r.slot.value) {
    if (r.cloud) add('stale', 'no listener run has reported yet', `pgcdc run-once --env ${r.env}`);
    else add('failing', 'there is no replication slot', init);
  } else {
    const s = r.slot.value;
    if (s.walStatus === 'lost')
      add(
        'failing',
        'the replication slot is lost: PostgreSQL removed WAL it still needed, changes since then cannot be streamed',
        `${init} (recreates the slot; then \`pgcdc snapshot --env ${r.env} --restart\` resends the tables)`,
      );
    else if (s.walStatus === 'unreserved')
      add(
        'failing',
        'the replication slot is past max_slot_wal_keep_size: the next checkpoint can remove WAL it still needs',
        `pgcdc run-once --env ${r.env}`,
      );
    if (s.stuckTransaction)
      add(
        'lagging',
        `transaction ${s.stuckTransaction.xid} could not be finished within a run (${s.stuckTransaction.changesRead} changes read` +
          `${s.stuckTransaction.runs ? `, ${s.stuckTransaction.runs} runs` : ''}); the slot cannot advance past it`,
        `raise pgcdc:listenerMaxRunSeconds in Pulumi.${r.env}.yaml, then pgcdc deploy --env ${r.env}`,
      );
    if (r.cloud && s.ageSeconds !== undefined && r.listenerIntervalSeconds) {
      if (s.ageSeconds > 2 * r.listenerIntervalSeconds)
        add(
          'stale',
          `the newest listener report is ${duration(s.ageSeconds)} old (scheduled every ${duration(r.listenerIntervalSeconds)})`,
          `pgcdc run-once --env ${r.env}`,
        );
    }
    if (s.lagBytes !== null && s.lagBytes > LAG_BYTES_LIMIT)
      add(
        'lagging',
        `the slot holds ${Math.round(s.lagBytes / 1024 / 1024)} MiB of WAL not yet confirmed${r.cloud ? ' (at the last run)' : ''}`,
      );
  }

  if (r.listener && !r.listener.ok)
    add('failing', `the listener's reports could not be read: ${r.listener.error}`);
  else if (r.listener?.value) {
    const { blockedLookup: b, skippedTables } = r.listener.value;
    if (b) {
      const runs = `${b.atLeast ? 'at least ' : ''}${b.runs} listener run${b.runs === 1 ? '' : 's'} in a row`;
      const pids = sessionsToEnd(b.sessions);
      add(
        b.runs >= BLOCKED_RUNS_FAILING ? 'failing' : 'lagging',
        `the ${b.step ?? 'TOAST lookup'} of ${b.table} ${b.reason === 'statement-timeout' ? 'ran past statement_timeout' : 'was refused a lock by the application'} in ${runs}` +
          `${b.since ? ` (since ${b.since})` : ''}: changes from there on wait, nothing is lost`,
        b.reason === 'statement-timeout'
          ? b.step === 'snapshot'
            ? 'a chunk read of that table takes longer than statement_timeout even at its smallest: check what slows reads of it (README "Troubleshooting"); the next run retries'
            : 'a single primary-key lookup on that table takes longer than statement_timeout: check its primary-key index and what holds it up (README "Troubleshooting"); the next run retries'
          : pids.length
            ? `end the session in the way (SELECT pg_terminate_backend(${pids.join('), pg_terminate_backend(')});) or let the migration finish; the next run retries`
            : 'let the migration on that table finish (its lock is gone by the next run: it retries)',
      );
    }
    for (const t of skippedTables)
      add(
        t.reason === 'unlogged' ? 'lagging' : 'failing',
        t.reason === 'not-granted'
          ? `${t.table} is not captured: the replicator may not read it (created after the last sql init)`
          : t.reason === 'unlogged'
            ? `${t.table} is not captured: it is unlogged, so its changes never reach the WAL`
            : `${t.table} is not captured (${t.reason})`,
        t.fix,
      );
  }

  if (!r.runs.ok) add('failing', `the runs could not be read: ${r.runs.error}`);
  else {
    // The newest run of each job decides: an older failure already recovered from is history.
    const newest = new Map<string, { state: string; execution: string | null }>();
    for (const run of r.runs.value) if (!newest.has(run.job)) newest.set(run.job, run);
    for (const [job, run] of newest) {
      if (run.state === 'failed')
        add('failing', `the newest ${job} run${run.execution ? ` (${run.execution})` : ''} failed`);
    }
  }

  if (!r.backlog.ok) add('failing', `the subscription backlog could not be read: ${r.backlog.error}`);
  else if (r.backlog.value && r.backlog.value.messages > 0) {
    const b = r.backlog.value;
    const age = b.oldestUnackedSeconds;
    // In the cloud, messages younger than two sink intervals are the schedule at work, not a lag.
    const limit = r.cloud && r.sinkIntervalSeconds ? 2 * r.sinkIntervalSeconds : 0;
    if (!r.cloud || age === null || age > limit)
      add(
        'lagging',
        `${b.messages} message(s) waiting in ${b.subscription}${age !== null ? `, the oldest ${duration(age)} old` : ''}`,
        r.cloud ? undefined : `pgcdc run-once --env ${r.env}`,
      );
  }
  if (!r.deadLetters.ok) add('failing', `the dead-letter backlog could not be read: ${r.deadLetters.error}`);
  else if (r.deadLetters.value && r.deadLetters.value.messages > 0)
    add(
      'lagging',
      `${r.deadLetters.value.messages} dead letter(s) in ${r.deadLetters.value.subscription} not yet recorded in _failed (the sink records them on its next run)`,
    );

  if (found.length === 0) return { state: 'healthy', reasons: [] };
  found.sort((a, b) => RANK[b.state] - RANK[a.state]);
  const first = found[0];
  return {
    state: first.state,
    reasons: found.map((f) => f.reason),
    ...(first.fix ? { fix: first.fix } : {}),
  };
}
