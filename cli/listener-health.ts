// What the listener's newest runs say about capture, for `pgcdc status`: a TOAST lookup the application's
// lock refused (run after run, since when, the sessions in the way) and captured tables the listener skips.
// Read from the summary line each run prints (listener/run.ts ListenerSummary: stoppedBy, blockedLookup,
// skippedTables): the local run history, or the listener job's summary lines in Cloud Logging. Pure, and
// defensive: summaries of older listeners lack these fields (unknown, not "fine", and not an error).

import type { LockSession } from '../listener/lock-session';
import type { BlockedLookup } from '../listener/toast-fill';
import type { SkippedTable } from '../listener/run';

/** One listener summary as it was logged (its JSON object, whatever its version) and when. */
export interface LoggedSummary {
  at: string | null;
  summary: unknown;
}

export interface BlockedLookupStatus {
  /** What was refused the lock: the TOAST lookup of the stream, or a chunk read of the initial snapshot. */
  step: 'TOAST lookup' | 'snapshot';
  table: string;
  reason: BlockedLookup['reason'] | string;
  attempts: number;
  /** The sessions in the way, as the newest blocked run found them. */
  sessions: LockSession[];
  /** Newest runs in a row that stopped with `lookup-blocked` (or whose snapshot stopped `blocked`). */
  runs: number;
  /** Every summary read was blocked: there may be more runs than `runs`. */
  atLeast: boolean;
  /** When the oldest of those runs reported. */
  since: string | null;
}

export interface SkippedTableStatus {
  table: string;
  reason: SkippedTable['reason'] | string;
  /** What makes the listener capture it. */
  fix: string;
}

export interface ListenerHealth {
  /** When the newest summary was logged. */
  at: string | null;
  /** Null when the newest run was not blocked. */
  blockedLookup: BlockedLookupStatus | null;
  /** As the newest run reported them (an older summary without the field: none known). */
  skippedTables: SkippedTableStatus[];
}

/** Summaries read for the blocked-run count (cloud: one Cloud Logging page). */
export const SUMMARIES_READ = 50;

function record(v: unknown): Record<string, unknown> | null {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

function text(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

function session(v: unknown): LockSession | null {
  const s = record(v);
  if (!s || typeof s.pid !== 'number') return null;
  return {
    pid: s.pid,
    mode: text(s.mode),
    granted: typeof s.granted === 'boolean' ? s.granted : null,
    blockedBy: Array.isArray(s.blockedBy)
      ? s.blockedBy.filter((p): p is number => typeof p === 'number')
      : [],
    user: text(s.user),
    application: text(s.application),
    state: text(s.state),
    xactStart: text(s.xactStart),
    query: text(s.query),
  };
}

// A run's TOAST lookup (stoppedBy 'lookup-blocked') or its snapshot (snapshot.stoppedBy 'blocked', with
// snapshot.blocked shaped like blockedLookup: listener/snapshot.ts BlockedSnapshot) refused a lock.
function isBlocked(summary: unknown): boolean {
  const s = record(summary);
  return s?.stoppedBy === 'lookup-blocked' || record(s?.snapshot)?.stoppedBy === 'blocked';
}

export function skippedFix(t: { table: string; reason: string }, env: string): string {
  if (t.reason === 'not-granted')
    return `pgcdc sql init --env ${env} (grants it; its rows are then snapshotted)`;
  if (t.reason === 'unlogged')
    return `ALTER TABLE ${t.table} SET LOGGED (unlogged tables never reach the WAL), or leave it out of the captured tables`;
  return 'see the listener log';
}

/** From the listener's summaries, newest first; null when there is none. */
export function listenerHealth(newestFirst: LoggedSummary[], env: string): ListenerHealth | null {
  if (newestFirst.length === 0) return null;
  const newest = record(newestFirst[0].summary) ?? {};
  let blockedLookup: BlockedLookupStatus | null = null;
  if (isBlocked(newest)) {
    let runs = 0;
    while (runs < newestFirst.length && isBlocked(newestFirst[runs].summary)) runs++;
    const lookup = newest.stoppedBy === 'lookup-blocked';
    const b = record(lookup ? newest.blockedLookup : record(newest.snapshot)?.blocked) ?? {};
    blockedLookup = {
      step: lookup ? 'TOAST lookup' : 'snapshot',
      table: text(b.table) ?? '?',
      reason: text(b.reason) ?? '?',
      attempts: typeof b.attempts === 'number' ? b.attempts : 0,
      sessions: Array.isArray(b.sessions)
        ? b.sessions.map(session).filter((s): s is LockSession => s !== null)
        : [],
      runs,
      atLeast: runs === newestFirst.length,
      since: newestFirst[runs - 1].at,
    };
  }
  const skipped = Array.isArray(newest.skippedTables) ? newest.skippedTables : [];
  const skippedTables = skipped
    .map(record)
    .filter((t): t is Record<string, unknown> => t !== null && typeof t.table === 'string')
    .map((t) => {
      const table = { table: String(t.table), reason: text(t.reason) ?? '?' };
      return { ...table, fix: skippedFix(table, env) };
    });
  return { at: newestFirst[0].at, blockedLookup, skippedTables };
}

/**
 * The sessions to end, if someone must: those holding the lock, else the ones the waiting ALTER waits for
 * (a long transaction ahead of it), else the waiting ones.
 */
export function sessionsToEnd(sessions: Array<Pick<LockSession, 'pid' | 'granted' | 'mode'>>): number[] {
  const holders = sessions.filter((s) => s.granted === true).map((s) => s.pid);
  if (holders.length) return holders;
  const waitedFor = sessions.filter((s) => s.mode === null).map((s) => s.pid);
  if (waitedFor.length) return waitedFor;
  return sessions.map((s) => s.pid);
}
