// A session in the way of a lock the listener needs (the TOAST lookup, a snapshot chunk), and how the listener's
// WARNINGs and `pgcdc status` describe it. No imports: the CLI loads this without the listener's runtime.

/** A session holding or awaiting a lock that conflicts with the lookup's (or a snapshot chunk's), from pg_locks/pg_stat_activity. */
export interface LockSession {
  pid: number;
  /** e.g. AccessExclusiveLock; null for a session listed only because another one waits for it. */
  mode: string | null;
  granted: boolean | null;
  /** pg_blocking_pids(pid): the sessions it waits for (an ALTER TABLE queued behind a long transaction). */
  blockedBy: number[];
  user: string | null;
  application: string | null;
  state: string | null;
  xactStart: string | null;
  /** Up to 200 characters; "<insufficient privilege>" for other roles' sessions unless pg_read_all_stats. */
  query: string | null;
}

/** "pid 4242 holds AccessExclusiveLock (user app, application "psql", idle in transaction since …): ALTER …" */
export function describeLockSession(s: LockSession): string {
  const what = s.mode ? `${s.granted ? 'holds' : 'waits for'} ${s.mode}` : 'is waited for';
  const by = s.blockedBy.length ? `, blocked by pid ${s.blockedBy.join(', ')}` : '';
  const detail = [s.user && `user ${s.user}`, s.application && `application "${s.application}"`, s.state]
    .filter(Boolean)
    .join(', ');
  const since = s.xactStart ? ` since ${s.xactStart}` : '';
  const query = s.query ? `: ${s.query.replace(/\s+/g, ' ').slice(0, 120)}` : '';
  return `pid ${s.pid} ${what}${by}${detail || since ? ` (${detail}${since})` : ''}${query}`;
}
