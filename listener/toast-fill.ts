// Unchanged TOAST values resolved before publishing (shared decision 4). An update that leaves a TOASTed
// column untouched does not carry its value in the WAL (pgoutput marks it 'u', wal2json leaves it out). A
// BigQuery CDC UPSERT replaces the whole row, so the value must travel with the event. We take it:
//   1. from the event's own old row when the decoder sent a full one (REPLICA IDENTITY FULL: pgoutput's 'O'
//      tuple and wal2json's `identity` hold the whole old row, TOAST values inline): the WAL truth;
//   2. otherwise from the source table, one batched primary-key lookup per table per message, on an ordinary
//      connection with the same session settings as the replication connection (so every value prints in
//      the text the decoders produce: same DateStyle, IntervalStyle, TimeZone, bytea_output,
//      extra_float_digits, lc_monetary — the defaults of the same role and database plus our options).
//
// Why a value read now is right (decision 4): the final replica row of a key is its highest-seq event. The
// lookup runs in a snapshot that sees the event's transaction (checked below), so it reads the row as of a
// time T at or after the event's commit: that is the event's value unless a later change of the row
// committed before T — and that later change is in the WAL after this one, is decoded, resolved and
// published after it (per-table ordering key) with a higher seq, and wins. So the replica converges to the
// source; the history keeps the WAL truth by flagging such columns in `fromSource`.
// A row that no longer exists at T was deleted, re-keyed or truncated by a later change: the event is marked
// `superseded` (history only) and its columns stay `unchanged`.
//
// The lookup must never hurt the application (README "Troubleshooting: a TOAST lookup blocked by a lock").
// Its SELECT takes ACCESS SHARE on the table, which conflicts only with ACCESS EXCLUSIVE (ALTER TABLE, DROP,
// TRUNCATE, VACUUM FULL...). Two ways it could: waiting behind an ALTER that itself waits for a long
// transaction (harmless to others, but our run would hang), or being granted first and running long, so
// that the ALTER waits for us and every application query queues behind the ALTER. The lookup session sets
// (https://www.postgresql.org/docs/15/runtime-config-client.html):
//  - lock_timeout: "Abort any statement that waits longer than the specified amount of time while attempting
//    to acquire a lock on a table, index, row, or other database object. The time limit applies separately
//    to each lock acquisition attempt. The limit applies both to explicit locking requests (such as LOCK
//    TABLE ...) and to implicitly-acquired locks."
//  - statement_timeout: "Abort any statement that takes more than the specified amount of time." Bounds how
//    long a granted lookup can make an ALTER wait.
//  - idle_in_transaction_session_timeout: "Terminate any session that has been idle (that is, waiting for a
//    client query) within an open transaction for longer than the specified amount of time." Our lock is
//    released even if this process stalls between the statements of a lookup.
// A lookup over statement_timeout is retried in halves (slow, not blocked: lock waits end sooner); one that
// cannot get its lock after LOOKUP_LIMITS.lockAttempts tries, or a single row over statement_timeout, throws
// LookupBlockedError, naming the table and the sessions in the way (pg_locks, pg_blocking_pids). The run
// then stops: nothing at or after the unresolved change is confirmed, and the next run reads it again.

import { Client, ClientConfig } from 'pg';
import { ChangeEvent, ColumnInfo, Row, qualifiedName, setColumn } from '../contract/events';
import { quoteIdentifier, sqlTableName } from '../contract/table-name';
import { withOutputSettings } from './config';
import { TableState } from './decoders/types';
import { ReplicationSetupError } from './errors';
import { describeLockSession, LockSession } from './lock-session';

/** Resolves the `unchanged` columns of updates (mutating the events) before their message is published. */
export interface ToastResolver {
  resolve(table: TableState, events: ChangeEvent[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * Step 1: fills unchanged columns from the event's own old row. Returns true when nothing is left to look up.
 * A value found in the old row is the WAL's own, so it is neither `unchanged` nor `fromSource`.
 */
export function fillFromOldRow(ev: ChangeEvent): boolean {
  if (ev.unchanged.length === 0) return true;
  const before = ev.before;
  const after = ev.after;
  if (!before || !after) return false;
  const left: string[] = [];
  for (const c of ev.unchanged) {
    if (Object.hasOwn(before, c)) setColumn(after, c, before[c]);
    else left.push(c);
  }
  ev.unchanged = left;
  return left.length === 0;
}

/** `pg` returning every value as the text Postgres sent (the type output function's text). */
const RAW_TEXT = { getTypeParser: () => (value: string) => value };

/** A parsed `pg_current_snapshot()`: "xmin:xmax:xip,...", 64-bit transaction ids. */
export interface XidSnapshot {
  xmin: bigint;
  xmax: bigint;
  xip: Set<bigint>;
}

export function parseSnapshot(text: string): XidSnapshot {
  const [xmin, xmax, xip = ''] = text.split(':');
  return {
    xmin: BigInt(xmin),
    xmax: BigInt(xmax),
    xip: new Set(xip === '' ? [] : xip.split(',').map((x) => BigInt(x))),
  };
}

/**
 * Whether the transaction with this 32-bit xid (as the decoders report it) has ended in the snapshot. A
 * commit is written to the WAL (and may be decoded) a moment before it becomes visible to other snapshots;
 * reading in that moment would return the row before the change. The 32-bit id is widened with the epoch of
 * the snapshot's xmax: a decoded transaction is never more than 2^31 ids older than a snapshot taken after.
 */
export function committedInSnapshot(xid: number, snap: XidSnapshot): boolean {
  const low = BigInt(xid >>> 0);
  const back = ((((snap.xmax & 0xffffffffn) - low) % 0x100000000n) + 0x100000000n) % 0x100000000n;
  const full = snap.xmax - back;
  if (full < snap.xmin) return true;
  if (full >= snap.xmax) return false;
  return !snap.xip.has(full);
}

export interface LookupStats {
  lookups: number;
  rowsRead: number;
  resolved: number;
  superseded: number;
}

/** The lookup session's limits (see the top of this file). */
export interface LookupLimits {
  lockTimeoutMs: number;
  statementTimeoutMs: number;
  idleInTransactionMs: number;
  /** Tries per lookup before the run gives up on it; 1 s, 2 s... apart (no lock is held in between). */
  lockAttempts: number;
}

export const LOOKUP_LIMITS: LookupLimits = {
  lockTimeoutMs: 1000,
  statementTimeoutMs: 10_000,
  idleInTransactionMs: 10_000,
  lockAttempts: 3,
};

export interface BlockedLookup {
  table: string;
  reason: 'lock-timeout' | 'statement-timeout';
  attempts: number;
  lockTimeoutMs: number;
  statementTimeoutMs: number;
  /** The sessions in the way, as found right after the last attempt (empty if they had just gone). */
  sessions: LockSession[];
}

/** The lookup of a table could not get its lock in time: the run stops before the unresolved change. */
export class LookupBlockedError extends Error {
  constructor(readonly blocked: BlockedLookup) {
    super(describeBlocked(blocked));
    this.name = 'LookupBlockedError';
  }
}

export function describeBlocked(b: BlockedLookup): string {
  const who = b.sessions.map(describeLockSession);
  const why =
    b.reason === 'lock-timeout'
      ? `could not lock it within lock_timeout (${b.lockTimeoutMs} ms, ${b.attempts} attempts)`
      : `its lookup ran past statement_timeout (${b.statementTimeoutMs} ms)`;
  return (
    `unchanged TOAST values of ${b.table} not resolved: ${why}, and pgcdc does not wait on the application's locks. ` +
    `${who.length ? `In the way: ${who.join('; ')}. ` : ''}` +
    'The run stopped before that change without confirming it; the next run retries. ' +
    'If this repeats, end or shorten the session in the way (pg_terminate_backend), or let the ALTER finish.'
  );
}

// A decoded commit not yet visible after this long is held up by something (typically a synchronous
// standby that does not confirm): the run fails with a clear message and the next run reads it again.
const VISIBILITY_WAIT_MS = 60_000;

/** Step 2: one batched primary-key lookup on the source table per call, on a connection opened on first use. */
export class SourceLookup implements ToastResolver {
  private client: Client | undefined;
  private connecting: Promise<Client> | undefined;
  /** One lookup at a time on the connection; calls queue in the order they were made. */
  private queue: Promise<unknown> = Promise.resolve();
  readonly stats: LookupStats = { lookups: 0, rowsRead: 0, resolved: 0, superseded: 0 };

  /** Set once a lookup was blocked: every later one fails at once (the run stops before them anyway). */
  private blocked: LookupBlockedError | undefined;

  constructor(
    private readonly pg: ClientConfig,
    private readonly wait: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
    private readonly limits: LookupLimits = LOOKUP_LIMITS,
  ) {}

  resolve(table: TableState, events: ChangeEvent[]): Promise<void> {
    const run = this.queue.then(() => {
      if (this.blocked) throw this.blocked;
      return this.lookup(table, events);
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    this.connecting = undefined;
    if (c) await c.end().catch(() => undefined);
  }

  private async connection(): Promise<Client> {
    if (this.client) return this.client;
    this.connecting ??= (async () => {
      const c = new Client({ ...withOutputSettings(this.pg), application_name: 'pgcdc-listener-toast' });
      // A session the server ends (idle_in_transaction_session_timeout) fails the pending query instead, and
      // is forgotten so the next lookup connects afresh rather than failing the run on a dead connection.
      const forget = () => {
        if (this.client === c) {
          this.client = undefined;
          this.connecting = undefined;
        }
      };
      c.on('error', forget);
      c.on('end', forget);
      await c.connect();
      const l = this.limits;
      await c.query(
        `SET lock_timeout = ${l.lockTimeoutMs}; SET statement_timeout = ${l.statementTimeoutMs}; ` +
          `SET idle_in_transaction_session_timeout = ${l.idleInTransactionMs}`,
      );
      this.client = c;
      return c;
    })();
    return this.connecting;
  }

  private async lookup(table: TableState, events: ChangeEvent[]): Promise<void> {
    const keyCols = table.columns.filter((c) => c.key);
    // Events whose key we know in full (a table without a key has no row to find: values stay unchanged).
    const wanted = events.filter(
      (e) =>
        e.unchanged.length > 0 &&
        e.after !== null &&
        e.key !== null &&
        keyCols.length > 0 &&
        keyCols.every((k) => typeof e.key![k.name] === 'string'),
    );
    if (wanted.length === 0) return;
    const client = await this.connection();
    const started = Date.now();
    let lockFailures = 0;
    for (let attempt = 0; ; attempt++) {
      let done: boolean;
      try {
        done = await this.lookupOnce(client, table, keyCols, wanted);
      } catch (e) {
        const reason = timeoutReason(e);
        if (!reason) throw e;
        if (reason === 'statement-timeout' && wanted.length > 1) {
          // Slow rather than blocked (a lock wait ends at lock_timeout): halve the batch, each half its own
          // statement and transaction, so one slow row cannot stall the others.
          const half = Math.ceil(wanted.length / 2);
          await this.lookup(table, wanted.slice(0, half));
          await this.lookup(table, wanted.slice(half));
          return;
        }
        lockFailures++;
        if (reason === 'lock-timeout' && lockFailures < this.limits.lockAttempts) {
          await this.wait(1000 * lockFailures);
          continue;
        }
        this.blocked = new LookupBlockedError({
          table: qualifiedName(table.schema, table.table),
          reason,
          attempts: lockFailures,
          lockTimeoutMs: this.limits.lockTimeoutMs,
          statementTimeoutMs: this.limits.statementTimeoutMs,
          sessions: await sessionsInTheWay(client, table).catch(() => []),
        });
        throw this.blocked;
      }
      if (done) return;
      if (Date.now() - started > VISIBILITY_WAIT_MS) {
        throw new Error(
          `unchanged TOAST values of ${qualifiedName(table.schema, table.table)}: a decoded transaction is still not visible ` +
            `after ${VISIBILITY_WAIT_MS / 1000} s (is a synchronous standby holding commits?); the next run retries`,
        );
      }
      await this.wait(Math.min(100, 2 ** attempt));
    }
  }

  /** Returns false when a transaction of the events is not yet visible (nothing changed; try again). */
  private async lookupOnce(
    client: Client,
    table: TableState,
    keyCols: ColumnInfo[],
    events: ChangeEvent[],
  ): Promise<boolean> {
    const relation = sqlTableName(table);
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    let open = true;
    try {
      // The lock first (it takes no snapshot): the table's columns cannot change until we commit, so the
      // catalog we read next describes the rows we read after. ACCESS SHARE, like any SELECT.
      try {
        await client.query(`LOCK TABLE ONLY ${relation} IN ACCESS SHARE MODE`);
      } catch (e) {
        const code = (e as { code?: string }).code;
        // Dropped or renamed since the change: no row to read; the values stay unchanged.
        if (code === '42P01') return true;
        if (code === '42501') {
          throw new ReplicationSetupError(
            `cannot read ${qualifiedName(table.schema, table.table)} to resolve unchanged TOAST values: the listener's role ` +
              `needs SELECT on every captured table (pgcdc sql init grants it): ${(e as Error).message}`,
          );
        }
        throw e;
      }
      const head = await client.query<{ snap: string; cols: [string, number, string][] | null }>(
        `SELECT pg_current_snapshot()::text AS snap,
                (SELECT json_agg(json_build_array(attname, atttypid::int, format_type(atttypid, NULL)))
                 FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped) AS cols`,
        [relation],
      );
      const snap = parseSnapshot(head.rows[0].snap);
      if (!events.every((e) => committedInSnapshot(e.xid, snap))) return false;
      const current = new Map((head.rows[0].cols ?? []).map(([name, oid, type]) => [name, { oid, type }]));
      if (!keyCols.every((k) => current.has(k.name))) return true;
      // A column is read only if the table still has it under the same name and type. One dropped, renamed
      // or retyped since the change cannot give this change's value: it stays unchanged.
      const byName = new Map(table.columns.map((c) => [c.name, c]));
      const readable = new Set<string>();
      for (const e of events) {
        for (const c of e.unchanged) {
          const was = byName.get(c);
          if (was && current.get(c)?.oid === was.oid) readable.add(c);
        }
      }
      const cols = [...readable];
      const keys: Row[] = [];
      const ordinal = new Map<string, number>();
      const eventKey = (e: ChangeEvent) => JSON.stringify(keyCols.map((k) => e.key![k.name]));
      for (const e of events) {
        const k = eventKey(e);
        if (!ordinal.has(k)) {
          ordinal.set(k, keys.length);
          keys.push(e.key!);
        }
      }
      // unnest(text[]...) WITH ORDINALITY joined on the key: one statement whatever the batch size, values
      // cast by the key columns' current types, and each found row names the key it answers by ordinal.
      const args = keyCols.map((k) => keys.map((row) => row[k.name]));
      const aliases = keyCols.map((_, i) => `k${i}`);
      const on = keyCols
        .map((k, i) => `t.${quoteIdentifier(k.name)} = k.k${i}::${current.get(k.name)!.type}`)
        .join(' AND ');
      const select = ['k.i::text AS "?i"', ...cols.map((c, i) => `t.${quoteIdentifier(c)} AS "?${i}"`)];
      const res = await client.query({
        text:
          `SELECT ${select.join(', ')} FROM unnest(${args.map((_, i) => `$${i + 1}::text[]`).join(', ')}) ` +
          `WITH ORDINALITY AS k(${aliases.join(', ')}, i) JOIN ONLY ${relation} AS t ON ${on}`,
        values: args,
        types: RAW_TEXT,
      });
      await client.query('COMMIT');
      open = false;
      this.stats.lookups++;
      this.stats.rowsRead += res.rows.length;
      const found = new Map<number, Record<string, string | null>>();
      for (const r of res.rows as Record<string, string | null>[]) found.set(Number(r['?i']) - 1, r);
      for (const e of events) {
        const row = found.get(ordinal.get(eventKey(e))!);
        if (!row) {
          e.superseded = true;
          this.stats.superseded++;
          continue;
        }
        const left: string[] = [];
        for (const c of e.unchanged) {
          const i = cols.indexOf(c);
          if (i < 0) {
            left.push(c);
            continue;
          }
          setColumn(e.after!, c, row[`?${i}`]);
          e.fromSource.push(c);
          this.stats.resolved++;
        }
        e.unchanged = left;
      }
      return true;
    } finally {
      // An early return or an error leaves the read-only transaction open.
      if (open) await client.query('ROLLBACK').catch(() => undefined);
    }
  }
}

/** 55P03 lock_not_available is lock_timeout; 57014 query_canceled is statement_timeout here (we cancel nothing). */
function timeoutReason(e: unknown): BlockedLookup['reason'] | null {
  const code = (e as { code?: string }).code;
  if (code === '55P03') return 'lock-timeout';
  if (code === '57014') return 'statement-timeout';
  return null;
}

/**
 * The sessions whose locks conflict with the lookup's ACCESS SHARE on the table or its indexes (only ACCESS
 * EXCLUSIVE does), held or awaited, and the sessions those wait for ("pg_blocking_pids ... Returns an array
 * of the process ID(s) of the sessions that are blocking the server process with the specified process ID
 * from acquiring a lock", https://www.postgresql.org/docs/15/functions-info.html). Our own lock is gone by
 * now, so our pid is blocked by nobody: the lock table itself says who is in the way. Takes no table lock.
 */
export async function sessionsInTheWay(
  client: Client,
  table: Pick<TableState, 'schema' | 'table'>,
): Promise<LockSession[]> {
  const relation = sqlTableName(table);
  const r = await client.query<{
    pid: number;
    mode: string | null;
    granted: boolean | null;
    blocked_by: number[];
    user: string | null;
    application: string | null;
    state: string | null;
    xact_start: string | null;
    query: string | null;
  }>(
    `WITH rel AS (SELECT to_regclass($1) AS oid),
     conflicting AS (
       SELECT l.pid, l.mode, l.granted FROM pg_locks l, rel
       WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock' AND l.pid <> pg_backend_pid()
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND (l.relation = rel.oid OR l.relation IN (SELECT indexrelid FROM pg_index WHERE indrelid = rel.oid))),
     sessions AS (
       SELECT pid, mode, granted FROM conflicting
       UNION
       SELECT b.pid, NULL, NULL FROM conflicting c, unnest(pg_blocking_pids(c.pid)) AS b(pid)
       WHERE b.pid NOT IN (SELECT pid FROM conflicting))
     SELECT s.pid, s.mode, s.granted, pg_blocking_pids(s.pid) AS blocked_by, a.usename AS user,
            a.application_name AS application, a.state, a.xact_start::text AS xact_start,
            left(a.query, 200) AS query
     FROM sessions s LEFT JOIN pg_stat_activity a ON a.pid = s.pid
     ORDER BY s.granted DESC NULLS LAST, s.pid LIMIT 20`,
    [relation],
  );
  return r.rows.map((x) => ({
    pid: x.pid,
    mode: x.mode,
    granted: x.granted,
    blockedBy: x.blocked_by,
    user: x.user,
    application: x.application,
    state: x.state,
    xactStart: x.xact_start,
    query: x.query,
  }));
}
