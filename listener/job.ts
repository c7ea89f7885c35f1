// What one execution of the listener job does: a bounded streaming run, then, with the time that is left,
// the initial snapshot of tables that never had one (PGCDC_SNAPSHOT=auto). Used by the container entry
// point and by `pgcdc run-once --env local`, so both behave the same.

import { ListenerConfig } from './config';
import { ListenerSummary, RunOptions, SkippedTablesNotice, runListener } from './run';
import { SnapshotSummary, pendingSnapshots, runSnapshot } from './snapshot';
import { expandPartitions, loadCatalog, resolveTables } from './catalog';
import { connectWithRetry } from './connect';

export interface ListenerJobSummary extends ListenerSummary {
  snapshot: SnapshotSummary | null;
}

export async function runListenerJob(
  cfg: ListenerConfig,
  opts: RunOptions = {},
): Promise<ListenerJobSummary> {
  const now = opts.now ?? Date.now;
  const started = now();
  const stream = await runListener(cfg, opts);
  if (cfg.snapshot === 'off') return { ...stream, snapshot: null };
  // The application holds a lock that the TOAST lookup would have waited for (a migration, typically): the
  // snapshot's reads take the same ACCESS SHARE locks, so it waits for the next run too.
  if (stream.stoppedBy === 'lookup-blocked') return { ...stream, snapshot: null };
  const left = cfg.maxRunSeconds - Math.ceil((now() - started) / 1000);
  if (left <= 0) return { ...stream, snapshot: null };
  const client = await connectWithRetry(cfg.pg, { deadline: started + cfg.maxRunSeconds * 1000, now });
  let pending: string[];
  try {
    const catalog = await loadCatalog(client);
    // Unlogged tables were reported by the stream run; they are never snapshotted (listener/catalog.ts).
    const unlogged = new Set(catalog.unlogged ?? []);
    // Without a table list, the tables the SQL init granted: one created since is not readable by the
    // replicator yet. It must not stop the others' snapshots; the stream run named it (skippedTables,
    // 'not-granted') with the fix. Once `sql init` grants it, it has no finished snapshot, so the first job
    // after the grant snapshots it: that brings the rows its skipped changes made (neither decoder streamed
    // it before the grant; wal2json's add-tables follows the grants, decoders/wal2json.ts).
    const unreadable = new Set(cfg.tables.length ? [] : (catalog.unreadable ?? []));
    // A partitioned table in the list is snapshotted partition by partition, as it is streamed (run.ts).
    const tables = cfg.tables.length
      ? expandPartitions(resolveTables(cfg.tables, catalog), catalog)
      : [...catalog.tables.keys()];
    pending = await pendingSnapshots(
      client,
      tables.filter((t) => !t.startsWith('pgcdc.') && !unlogged.has(t) && !unreadable.has(t)),
    );
  } finally {
    await client.end();
  }
  if (pending.length === 0) return { ...stream, snapshot: null };
  const snapshot = await runSnapshot(
    { ...cfg, maxRunSeconds: left },
    {
      tables: pending,
      chunkRows: cfg.snapshotChunkRows,
      sink: opts.sink,
      log: opts.log,
      alert: opts.alert,
      now,
    },
  );
  return { ...stream, snapshot };
}

/**
 * The runs of one continuous execution: runListenerJob with one SkippedTablesNotice shared by all of them, so
 * skipped tables are warned about at the first run and whenever their set changes, not about once a second
 * (every summary still lists them in `skippedTables`).
 */
export function continuousRuns(
  cfg: ListenerConfig,
  opts: RunOptions = {},
): () => Promise<ListenerJobSummary> {
  const skippedNotice = opts.skippedNotice ?? new SkippedTablesNotice();
  return () => runListenerJob(cfg, { ...opts, skippedNotice });
}

/**
 * Pauses between the runs of continuous mode (PGCDC_MODE=continuous). A run that found nothing waits a
 * moment (each run writes a small marker record). A run whose TOAST lookup the application's lock refused
 * (stoppedBy 'lookup-blocked', listener/toast-fill.ts) backs off, doubling from `blockedFirstMs` up to
 * `blockedMaxMs`: retrying at once would put a lock request into that table's queue every few seconds for as
 * long as the migration lasts (each one gives up after lock_timeout, but they keep coming). A normal run
 * resets it.
 */
export const CONTINUOUS_PAUSES = { idleMs: 1000, blockedFirstMs: 2000, blockedMaxMs: 60_000 };

/** How long to wait after a run, given how many runs in a row (this one included) were lookup-blocked. */
/**
 * Whether a run was refused a lock on a source table: its TOAST lookup (the stream stopped 'lookup-blocked')
 * or its snapshot's chunk read (the snapshot stopped 'blocked'). Either way the next run would queue for the
 * same lock, so it waits (pauseAfterRun).
 */
export function wasBlocked(summary: Pick<ListenerJobSummary, 'stoppedBy' | 'snapshot'>): boolean {
  return summary.stoppedBy === 'lookup-blocked' || summary.snapshot?.stoppedBy === 'blocked';
}

export function pauseAfterRun(
  summary: Pick<ListenerJobSummary, 'stoppedBy' | 'changes' | 'snapshot'>,
  blockedRuns: number,
  pauses = CONTINUOUS_PAUSES,
): number {
  if (wasBlocked(summary))
    return Math.min(pauses.blockedMaxMs, pauses.blockedFirstMs * 2 ** Math.max(0, blockedRuns - 1));
  return summary.changes === 0 ? pauses.idleMs : 0;
}

export interface ContinuousOptions {
  /** One listener job run (runListenerJob with the config). */
  runJob: () => Promise<ListenerJobSummary>;
  /** Prints the run's summary line. */
  report: (summary: ListenerJobSummary) => void;
  /** True once SIGTERM/SIGINT arrived: the run in progress finishes and confirms, no other starts. */
  stopping: () => boolean;
  /** Waits `ms`, or less when stopping begins (Cloud Run allows 10 s after SIGTERM). */
  pause: (ms: number) => Promise<void>;
  log?: (line: string) => void;
  pauses?: typeof CONTINUOUS_PAUSES;
}

/** Continuous mode: bounded runs back to back, each confirming what it published, until stopped. */
export async function runContinuous(o: ContinuousOptions): Promise<void> {
  let blockedRuns = 0;
  while (!o.stopping()) {
    const summary = await o.runJob();
    o.report(summary);
    blockedRuns = wasBlocked(summary) ? blockedRuns + 1 : 0;
    if (o.stopping()) return;
    const ms = pauseAfterRun(summary, blockedRuns, o.pauses);
    if (blockedRuns > 0)
      o.log?.(
        `${summary.stoppedBy === 'lookup-blocked' ? 'TOAST lookup' : 'snapshot'} blocked in ${blockedRuns} run(s) in a row ` +
          `(${summary.blockedLookup?.table ?? summary.snapshot?.blocked?.table ?? '?'}): ` +
          `next run in ${Math.round(ms / 1000)} s`,
      );
    if (ms > 0) await o.pause(ms);
  }
}

/** The stop flag and the pause of continuous mode, ended early by stop() (wired to SIGTERM and SIGINT). */
export function stopControl(): {
  stopping: () => boolean;
  stop: () => void;
  pause: (ms: number) => Promise<void>;
} {
  let stopped = false;
  const waiting = new Set<() => void>();
  return {
    stopping: () => stopped,
    stop: () => {
      stopped = true;
      for (const wake of [...waiting]) wake();
    },
    pause: (ms) =>
      stopped
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            const wake = () => {
              clearTimeout(timer);
              waiting.delete(wake);
              resolve();
            };
            const timer = setTimeout(wake, ms);
            waiting.add(wake);
          }),
  };
}
