// The initial snapshot: a table's existing rows, sent as `op: r` events through the same Pub/Sub path as
// changes, in chunks by primary key, resumable, and consistent with the stream by sequence numbers alone.
//
// Why it is consistent (see also README "Snapshot"): each chunk is read in its own REPEATABLE READ
// snapshot S, prepared so that
//   (1) every transaction whose commit record lies before L0 (the WAL position read first) is visible in
//       S — after reading L0 we wait until every transaction then running (by its xid lock, held until
//       after the commit became visible) has ended, which closes the window where a commit record is
//       written but not yet visible;
//   (2) so every transaction S does not see commits at or after L0.
// Chunk rows get the sequence (L0 - 1)/<row>. WAL records start 8-byte aligned, so no commit LSN equals
// L0 - 1: changes committed before L0 (all reflected in S) sort below the snapshot rows, and changes S does
// not see sort above them and win in BigQuery. The slot delivers every change either way, so the replica
// converges to the source whatever the concurrent writes.

import { Client, ClientConfig, QueryResult, escapeLiteral } from 'pg';
import { ColumnInfo, Row } from '../contract/events';
import { Lsn, parseLsn } from '../contract/lsn';
import { TableName, parseTableKey, quoteIdentifier, sqlTableName } from '../contract/table-name';
import { loadCatalog, resolveTables } from './catalog';
import { DEFAULT_SNAPSHOT_CHUNK_ROWS, ListenerConfig, withOutputSettings } from './config';
import { CopyTextOut } from './copy-text';
import { ReplicationSetupError, classifyPgError } from './errors';
import { MessageSink, pubsubSink } from './publisher';
import { EncodedMessage, SnapshotEventEncoder } from './snapshot-encoder';
import { SnapshotPublisher } from './snapshot-publisher';
import { connectWithRetry } from './connect';
import { formatUtcMicros } from './time';
import { describeLockSession, LockSession } from './lock-session';
import { sessionsInTheWay } from './toast-fill';

export interface SnapshotOptions {
  /** "schema.table" names; default: the configured tables, or every user table. */
  tables?: string[];
  /** Start again from the first row even if the table was snapshotted (pgcdc snapshot --table t). */
  restart?: boolean;
  /** Rows per chunk (one consistent read each). */
  chunkRows?: number;
  sink?: MessageSink;
  log?: (line: string) => void;
  alert?: (severity: 'WARNING' | 'ERROR', message: string, fields?: Record<string, unknown>) => void;
  now?: () => number;
  /** The reading session's lock and statement limits (SNAPSHOT_LIMITS by default). */
  limits?: SnapshotLimits;
}

/**
 * The reading session's limits, so that a snapshot never makes the application's queries wait (see
 * "Locks" above runSnapshot).
 */
export interface SnapshotLimits {
  lockTimeoutMs: number;
  /** Longest a chunk may hold its lock: the server's statement_timeout, and our own watch of a paused read. */
  statementTimeoutMs: number;
  idleInTransactionMs: number;
  /** Tries of a chunk whose lock was not granted within lockTimeoutMs, 1 s, 2 s... apart. */
  lockAttempts: number;
}

export const SNAPSHOT_LIMITS: SnapshotLimits = {
  lockTimeoutMs: 1000,
  statementTimeoutMs: 30_000,
  idleInTransactionMs: 10_000,
  lockAttempts: 3,
};

/** Why a snapshot stopped before its lock (stoppedBy 'blocked'), and who was in the way. */
export interface BlockedSnapshot {
  table: string;
  reason: 'lock-timeout' | 'statement-timeout';
  attempts: number;
  lockTimeoutMs: number;
  statementTimeoutMs: number;
  /** The sessions holding or awaiting ACCESS EXCLUSIVE on the table, and those they wait for. */
  sessions: LockSession[];
}

export interface SnapshotTableProgress {
  table: string;
  rowsDone: number;
  rowsEstimate: number | null;
  done: boolean;
}

export interface SnapshotSummary {
  rows: number;
  messages: number;
  chunks: number;
  tables: SnapshotTableProgress[];
  seconds: number;
  /** 'blocked': a chunk could not get or keep its lock within the limits; the next run goes on. */
  stoppedBy: 'done' | 'time-limit' | 'blocked';
  blocked: BlockedSnapshot | null;
  /** Peak resident memory of the process so far (the job's memory limit applies to it). */
  peakRssMb: number;
  /** Requested tables not snapshotted because they cannot be captured (unlogged: never in the WAL). */
  skippedTables: { table: string; reason: 'unlogged' }[];
}

const PROGRESS = 'pgcdc.snapshot_progress';
// About this much event JSON per chunk; the first chunk of a table is small, to measure its rows.
const CHUNK_BYTES = 32 * 1024 * 1024;
const FIRST_CHUNK_ROWS = 100;
// Chunks read ahead of the last one Pub/Sub acknowledged entirely (and so repeated after a crash).
const MAX_CHUNKS_IN_FLIGHT = 4;
const OWN_SCHEMA = 'pgcdc';

/** A table to snapshot: schema and name apart (either may hold periods), and its key as progress key. */
interface TableRef extends TableName {
  name: string;
}

// A transaction whose backend waits for a heavyweight lock (a row of its pid not granted in pg_locks) is
// running a statement, so it is not between its commit record and its commit becoming visible (nothing waits
// for a heavyweight lock there): seen so after L0, it commits after L0 and need not be waited for. This
// matters for an ALTER TABLE queued behind a long transaction: it holds an xid while it waits, possibly for
// the whole run.
const NOT_WAITING_FOR_A_LOCK = `NOT EXISTS (SELECT 1 FROM pg_locks w WHERE w.pid = l.pid AND NOT w.granted)`;

// Transactions of this database running now, and not waiting for a lock (see waitForRunningTransactions).
const RUNNING_TRANSACTIONS = `SELECT DISTINCT l.transactionid::text AS xid
     FROM pg_locks l
     LEFT JOIN pg_stat_activity a ON a.pid = l.pid
     LEFT JOIN pg_prepared_xacts p ON l.pid IS NULL AND p.transaction = l.transactionid
     WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
       AND l.pid IS DISTINCT FROM pg_backend_pid()
       AND coalesce(a.datname, p.database) = current_database()
       AND ${NOT_WAITING_FOR_A_LOCK}`;

/**
 * Reads the WAL position L0, then (next statement of the same simple query: one round trip, in order) the
 * transactions running at that point (RUNNING_TRANSACTIONS).
 */
async function walPositionAndRunning(client: Client): Promise<{ l0: Lsn; running: string[] }> {
  const results = (await client.query(
    `SELECT pg_current_wal_lsn()::text AS l; ${RUNNING_TRANSACTIONS}`,
  )) as unknown as QueryResult[];
  return {
    l0: parseLsn((results[0].rows[0] as { l: string }).l),
    running: (results[1].rows as { xid: string }[]).map((r) => r.xid),
  };
}

/**
 * Waits until every transaction of this database running now has ended (commit or abort); see the header
 * comment. Running transactions are read from their xid locks, which every writing transaction holds until
 * after it became visible — unlike a snapshot's xip list, which leaves out the newest ones (xid >= xmax).
 * Only this database's transactions matter: no other database's can write the tables we read (a prepared
 * transaction has no backend: its database comes from pg_prepared_xacts). One seen waiting for a lock is
 * done with (NOT_WAITING_FOR_A_LOCK). Returns false when the deadline
 * passes first (a prepared transaction or an abandoned session can keep one open for long).
 */
export async function waitForRunningTransactions(
  client: Client,
  deadline: number,
  now: () => number,
  /** The transactions running at the point to wait for, if already read. */
  runningNow?: string[],
): Promise<boolean> {
  const running =
    runningNow ?? (await client.query<{ xid: string }>(RUNNING_TRANSACTIONS)).rows.map((r) => r.xid);
  let pending = running;
  while (pending.length > 0) {
    if (now() > deadline) return false;
    await new Promise((res) => setTimeout(res, 10));
    const still = await client.query<{ xid: string }>(
      `SELECT DISTINCT l.transactionid::text AS xid FROM pg_locks l
       WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.transactionid::text = ANY($1)
         AND ${NOT_WAITING_FOR_A_LOCK}`,
      [pending],
    );
    pending = still.rows.map((r) => r.xid);
  }
  return true;
}

/** A chunk read and handed to the publisher, waiting for its messages to be acknowledged. */
interface ChunkInFlight {
  rows: number;
  /** Key of its last row; null when it had none. */
  lastKey: Row | null;
  /** Fewer rows than asked for: the table ends with this chunk. */
  last: boolean;
  /** Resolves true once every message of the chunk is acknowledged, false if one failed. */
  acked: Promise<boolean>;
  settled: boolean;
}

interface ChunkReader {
  client: Client;
  table: TableRef;
  columns: ColumnInfo[];
  keyCols: string[];
  encoder: SnapshotEventEncoder;
  publisher: SnapshotPublisher;
  /** Where the encoder's messages of the chunk being read go. */
  onMessage: (msg: EncodedMessage) => void;
  maxInFlightBytes: number;
  limits: SnapshotLimits;
}

/** A chunk read ended by one of the session's limits (SnapshotLimits): nothing of it is kept. */
class ChunkTimeout extends Error {
  constructor(readonly reason: BlockedSnapshot['reason']) {
    super(`snapshot chunk read stopped by ${reason}`);
  }
}

/** 55P03 lock_not_available is lock_timeout; 57014 query_canceled is statement_timeout (we cancel nothing). */
function timeoutReason(e: unknown): BlockedSnapshot['reason'] | null {
  if (e instanceof ChunkTimeout) return e.reason;
  const code = (e as { code?: string }).code;
  if (code === '55P03') return 'lock-timeout';
  if (code === '57014') return 'statement-timeout';
  return null;
}

/**
 * Reads one chunk (rows after `lastKey`, in key order) with COPY and hands its messages to the publisher
 * as they fill: compression and publishing of a chunk overlap its reading and the next chunk's. Returns
 * null when older transactions did not end before the deadline (nothing was read). Throws ChunkTimeout
 * (or the server's lock/statement timeout error) when the chunk could not get or keep its lock in time.
 */
async function readChunk(
  r: ChunkReader,
  lastKey: Row | null,
  limit: number,
  deadline: number,
  now: () => number,
): Promise<ChunkInFlight | null> {
  const { client, columns, keyCols, encoder, publisher } = r;
  const { l0, running } = await walPositionAndRunning(client);
  if (!(await waitForRunningTransactions(client, deadline, now, running))) return null;
  const cols = columns.map((c) => quoteIdentifier(c.name)).join(', ');
  const keyList = keyCols.map(quoteIdentifier).join(', ');
  let where = '';
  if (lastKey) {
    // Row-value comparison with each key column cast from its text: resumes exactly after the last key.
    // COPY takes no bind parameters, hence literals (escapeLiteral doubles quotes and backslashes).
    const casts = keyCols.map((k) => {
      const value = lastKey[k];
      if (value === null || value === undefined)
        throw new Error(`snapshot progress of ${r.table.name} lacks key ${k}`);
      const type = columns.find((c) => c.name === k)!.type;
      return `${escapeLiteral(value)}::${type}`;
    });
    where = `WHERE (${keyList}) > (${casts.join(', ')})`;
  }
  const acks: Promise<boolean>[] = [];
  encoder.startChunk(l0, formatUtcMicros(BigInt(Date.now()) * 1000n));
  // One simple query, one round trip: the chunk's own read-only snapshot, its rows, the end of it.
  const copy = new CopyTextOut(
    'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; ' +
      `COPY (SELECT ${cols} FROM ${sqlTableName(r.table)} ${where} ORDER BY ${keyList} LIMIT ${limit}) TO STDOUT; ` +
      'COMMIT',
    (line) => encoder.addLine(line),
  );
  r.onMessage = (msg) => {
    acks.push(publisher.send(msg));
    if (publisher.inFlightBytes > r.maxInFlightBytes) {
      // Stop reading the socket until the publisher caught up: TCP holds the rest back at the server.
      copy.pause();
      void publisher.below(r.maxInFlightBytes).then(() => copy.resume());
    }
  };
  // The server's statement_timeout cannot end a read it is blocked writing to us (a backend waiting on its
  // socket only reacts to termination), so a read paused for Pub/Sub longer than the same limit is ended
  // here: closing the connection ends the backend's transaction and its lock.
  let timedOut = false;
  const watch = setTimeout(() => {
    timedOut = true;
    copy.abort();
  }, r.limits.statementTimeoutMs);
  let rows: number;
  try {
    rows = await client.query(copy).done;
  } catch (e) {
    // A failed statement leaves the transaction open (aborted) when BEGIN had run.
    if (!timedOut) await client.query('ROLLBACK').catch(() => undefined);
    throw timedOut ? new ChunkTimeout('statement-timeout') : e;
  } finally {
    clearTimeout(watch);
  }
  const key = encoder.endChunk();
  const chunk: ChunkInFlight = {
    rows,
    lastKey: key,
    last: rows < limit,
    acked: Promise.all(acks).then((ok) => ok.every(Boolean)),
    settled: false,
  };
  void chunk.acked.then(() => (chunk.settled = true));
  return chunk;
}

/**
 * The reading session's settings (https://www.postgresql.org/docs/15/runtime-config-client.html), the
 * same protection as the TOAST lookup's (listener/toast-fill.ts):
 *  - lock_timeout: "Abort any statement that waits longer than the specified amount of time while
 *    attempting to acquire a lock on a table, index, row, or other database object." A chunk whose ACCESS
 *    SHARE lock queues behind an ALTER TABLE (itself waiting for a long transaction) gives up instead of
 *    waiting; we retry it a few times, then stop the snapshot until the next run.
 *  - statement_timeout: "Abort any statement that takes more than the specified amount of time." Bounds how
 *    long a granted chunk read can make an ALTER (and every query queued behind it) wait.
 *  - idle_in_transaction_session_timeout: "Terminate any session that has been idle (that is, waiting for
 *    a client query) within an open transaction for longer than the specified amount of time." Our lock is
 *    released even if this process stalls inside a chunk's transaction.
 * And https://www.postgresql.org/docs/15/runtime-config-wal.html, synchronous_commit: "setting this
 * parameter to off does not create any risk of database inconsistency: an operating system or database
 * crash might result in some recent allegedly-committed transactions being lost, but the database state
 * will be just the same as if those transactions had been aborted cleanly." The session writes only its
 * progress: a lost progress write repeats chunks (idempotent by seq), and each chunk's write no longer waits
 * for a WAL flush.
 */
function sessionSettings(l: SnapshotLimits): string {
  return (
    `SET lock_timeout = ${l.lockTimeoutMs}; SET statement_timeout = ${l.statementTimeoutMs}; ` +
    `SET idle_in_transaction_session_timeout = ${l.idleInTransactionMs}; SET synchronous_commit = off`
  );
}

async function connectSnapshotSession(
  cfg: ListenerConfig,
  limits: SnapshotLimits,
  retry: { deadline: number; now: () => number; log: (line: string) => void },
): Promise<Client> {
  let client: Client;
  try {
    client = await connectWithRetry(withOutputSettings(cfg.pg as ClientConfig), retry);
  } catch (e) {
    throw classifyPgError(e, { slot: cfg.slot, user: cfg.pg.user, host: String(cfg.pg.host) });
  }
  // A connection the server ended (or we closed on a timeout) is reported by the query that uses it next.
  client.on('error', () => undefined);
  await client.query(sessionSettings(limits));
  return client;
}

function describeBlockedSnapshot(b: BlockedSnapshot, rowsDone: number): string {
  const who = b.sessions.map(describeLockSession);
  const why =
    b.reason === 'lock-timeout'
      ? `a chunk could not lock the table within lock_timeout (${b.lockTimeoutMs} ms, ${b.attempts} attempts)`
      : `a chunk read ran past ${b.statementTimeoutMs} ms holding its lock`;
  return (
    `snapshot of ${b.table} stopped: ${why}, and pgcdc does not make the application's queries wait. ` +
    `${who.length ? `In the way: ${who.join('; ')}. ` : ''}` +
    `Progress is kept (${rowsDone} rows); the next run goes on from there. ` +
    'If this repeats, end or shorten the session in the way (pg_terminate_backend), or let the ALTER finish.'
  );
}

// Locks. A chunk's COPY takes ACCESS SHARE on the table, which conflicts only with ACCESS EXCLUSIVE (ALTER
// TABLE, DROP, TRUNCATE, VACUUM FULL...). It must not hurt the application in either of two ways: waiting in
// the lock queue behind an ALTER that itself waits for a long transaction (our run would hang), or being
// granted and held long, so that an ALTER queues behind us and every application query behind the ALTER.
// sessionSettings bounds both; a chunk that hits a limit is dropped whole (nothing of it is recorded), the
// chunks acknowledged before it are recorded, and the snapshot stops with a WARNING naming the sessions in
// the way, to go on in the next run.
export async function runSnapshot(cfg: ListenerConfig, opts: SnapshotOptions = {}): Promise<SnapshotSummary> {
  const now = opts.now ?? Date.now;
  const started = now();
  const deadline = started + cfg.maxRunSeconds * 1000;
  const log = opts.log ?? (() => undefined);
  const alert = opts.alert ?? ((_s, m) => log(m));
  const chunkRows = opts.chunkRows ?? DEFAULT_SNAPSHOT_CHUNK_ROWS;
  const limits = opts.limits ?? SNAPSHOT_LIMITS;
  let client = await connectSnapshotSession(cfg, limits, { deadline, now, log });
  const ownSink = opts.sink ? undefined : pubsubSink(cfg);
  const sink = opts.sink ?? ownSink!;
  const publishers: SnapshotPublisher[] = [];
  const summary: SnapshotSummary = {
    rows: 0,
    messages: 0,
    chunks: 0,
    tables: [],
    seconds: 0,
    stoppedBy: 'done',
    blocked: null,
    peakRssMb: 0,
    skippedTables: [],
  };
  try {
    const exists = await client.query("SELECT to_regclass('pgcdc.snapshot_progress') IS NOT NULL AS ok");
    if (!exists.rows[0].ok) {
      throw new ReplicationSetupError(
        `${PROGRESS} does not exist: run \`pgcdc sql init\` (sql/0-init.sql creates it)`,
      );
    }
    const catalog = await loadCatalog(client);
    const unreadable = new Set(catalog.unreadable ?? []);
    // Entries in the identifier syntax (--table, PGCDC_TABLES) → table keys (contract/table-name.ts).
    const named = opts.tables
      ? resolveTables(opts.tables, catalog, '--table')
      : cfg.tables.length
        ? resolveTables(cfg.tables, catalog)
        : undefined;
    // Without a table list, "every table" means every table the replicator was granted by the last SQL init:
    // one created since is neither granted nor (pgoutput) published until `pgcdc sql init` runs again.
    const wanted = named ?? [...catalog.tables.keys()].filter((t) => !unreadable.has(t));
    const tables = wanted.filter((t) => !t.startsWith(`${OWN_SCHEMA}.`));
    const notGranted = tables.filter((t) => unreadable.has(t));
    if (notGranted.length > 0) {
      throw new ReplicationSetupError(
        `snapshot: ${cfg.pg.user ?? 'the replicator'} may not read ${notGranted.join(', ')}: run \`pgcdc sql init --env <env>\` ` +
          'with the table in the captured tables (it grants SELECT on exactly those)',
      );
    }
    const unlogged = new Set(catalog.unlogged ?? []);
    for (const table of tables) {
      if (unlogged.has(table)) {
        // Its changes never reach the slot: a snapshot would be a copy that silently goes stale.
        summary.skippedTables.push({ table, reason: 'unlogged' });
        continue;
      }
      const columns = catalog.tables.get(table);
      if (!columns) throw new ReplicationSetupError(`snapshot: table ${table} does not exist`);
      const ref: TableRef = { ...parseTableKey(table), name: table };
      const keyCols = await primaryKeyOrder(client, sqlTableName(ref), columns);
      if (keyCols.some((k) => !columns.some((c) => c.name === k))) {
        // A generated key column is in no event (listener/catalog.ts): the stream has no key for this
        // table either, so it is history-only like a keyless one.
        log(`snapshot ${table}: its primary key includes a generated column, not snapshotted (history only)`);
        continue;
      }
      if (keyCols.length === 0) {
        // No order to read it by in bounded chunks, and no replica to fill (history only): say so, skip it.
        log(
          `snapshot ${table}: no primary key, not snapshotted (its BigQuery history starts with the stream)`,
        );
        continue;
      }
      const rowsEstimate = await estimateRows(client, sqlTableName(ref));
      if (opts.restart) await client.query(`DELETE FROM ${PROGRESS} WHERE table_name = $1`, [table]);
      await client.query(
        `INSERT INTO ${PROGRESS} (table_name, rows_estimate) VALUES ($1, $2)
         ON CONFLICT (table_name) DO UPDATE SET rows_estimate = EXCLUDED.rows_estimate`,
        [table, rowsEstimate],
      );
      const p = await client.query<{ last_key: Row | null; rows_done: string; done: boolean }>(
        `SELECT last_key, rows_done::text, done FROM ${PROGRESS} WHERE table_name = $1`,
        [table],
      );
      let lastKey = p.rows[0].last_key;
      let rowsDone = Number(p.rows[0].rows_done);
      let done = p.rows[0].done;
      const publisher = new SnapshotPublisher(sink, ref.schema, ref.table, cfg.encoding);
      publishers.push(publisher);
      const reader: ChunkReader = {
        client,
        table: ref,
        columns,
        keyCols,
        publisher,
        encoder: new SnapshotEventEncoder(
          { v: 1, schema: ref.schema, table: ref.table, columns },
          keyCols,
          cfg,
          (m) => reader.onMessage(m),
        ),
        onMessage: () => undefined,
        maxInFlightBytes: Math.max(2 * cfg.maxMessageBytes, Math.min(16 * cfg.maxMessageBytes, 64 << 20)),
        limits,
      };
      // Chunks read whose messages are not all acknowledged yet, oldest first.
      const inFlight: ChunkInFlight[] = [];
      const record = async (chunk: ChunkInFlight) => {
        inFlight.shift();
        done = chunk.last;
        if (chunk.lastKey) lastKey = chunk.lastKey;
        rowsDone += chunk.rows;
        await client.query(
          `UPDATE ${PROGRESS} SET last_key = $2, rows_done = $3, done = $4, updated_at = now() WHERE table_name = $1`,
          [table, JSON.stringify(lastKey), rowsDone, done],
        );
        summary.rows += chunk.rows;
        summary.chunks++;
        log(`snapshot ${table}: ${rowsDone} of ~${rowsEstimate ?? '?'} rows${done ? ', done' : ''}`);
      };
      // Progress moves, chunk by chunk in key order, only once Pub/Sub acknowledged every message of the
      // chunk: a crash repeats at most the chunks in flight (MAX_CHUNKS_IN_FLIGHT). It runs between chunk
      // reads, on the reading connection (never inside a chunk's read-only transaction). recordProgress
      // records the acknowledged chunks at the head, and waits for more until at most `keep` remain.
      const recordProgress = async (keep: number) => {
        while (inFlight.length > 0 && (inFlight.length > keep || inFlight[0].settled)) {
          if (!(await inFlight[0].acked)) throw publisher.failure ?? new Error('snapshot: a publish failed');
          await record(inFlight[0]);
        }
      };
      // Rows per chunk adapt to the table's row size so a chunk holds about CHUNK_BYTES (a bounded lock hold
      // and repeat after a crash; memory is bounded by the publisher's bytes in flight, DESIGN §4.4): a first
      // small chunk measures, later ones use the measured average.
      let limit = Math.min(chunkRows, FIRST_CHUNK_ROWS);
      let readKey = lastKey;
      let readAll = done;
      let lockFailures = 0;
      let chunkBytes = CHUNK_BYTES;
      let failure: unknown;
      try {
        while (!readAll) {
          if (now() > deadline) {
            summary.stoppedBy = 'time-limit';
            break;
          }
          if (publisher.failure) break;
          await recordProgress(MAX_CHUNKS_IN_FLIGHT - 1);
          let chunk: ChunkInFlight | null;
          try {
            chunk = await readChunk(reader, readKey, limit, deadline, now);
          } catch (e) {
            const reason = timeoutReason(e);
            if (!reason) throw e;
            if (reason === 'lock-timeout') lockFailures++;
            if (reason === 'lock-timeout' && lockFailures < limits.lockAttempts) {
              // No lock is held while we wait; the ALTER in the way usually finishes within seconds.
              await new Promise((res) => setTimeout(res, 1000 * lockFailures));
              continue;
            }
            // The chunk is dropped (a closed connection is replaced, to go on or record the acknowledged ones).
            if (reason === 'statement-timeout') {
              await client.end().catch(() => undefined);
              client = reader.client = await connectSnapshotSession(cfg, limits, {
                deadline: now() + 15_000,
                now,
                log,
              });
            }
            const sessions = await sessionsInTheWay(client, ref).catch(() => [] as LockSession[]);
            if (reason === 'statement-timeout' && sessions.length === 0 && limit > 1) {
              // Slow rather than in anyone's way: go on with smaller chunks.
              log(
                `snapshot ${table}: a chunk read ran past ${limits.statementTimeoutMs} ms (nobody waits for its lock); going on with chunks a quarter the size`,
              );
              chunkBytes = Math.max(1, Math.floor(chunkBytes / 4));
              limit = Math.max(1, Math.floor(limit / 4));
              continue;
            }
            summary.blocked = {
              table,
              reason,
              attempts: reason === 'lock-timeout' ? lockFailures : 1,
              lockTimeoutMs: limits.lockTimeoutMs,
              statementTimeoutMs: limits.statementTimeoutMs,
              sessions,
            };
            summary.stoppedBy = 'blocked';
            break;
          }
          if (!chunk) {
            log(
              `snapshot ${table}: transactions older than the chunk are still running; continuing next run`,
            );
            summary.stoppedBy = 'time-limit';
            break;
          }
          lockFailures = 0;
          inFlight.push(chunk);
          readAll = chunk.last;
          if (chunk.lastKey) readKey = chunk.lastKey;
          const avg = chunk.rows ? reader.encoder.chunkBytes / chunk.rows : 1;
          limit = Math.max(1, Math.min(chunkRows, Math.floor(chunkBytes / Math.max(1, avg))));
        }
      } catch (e) {
        failure = e;
      } finally {
        // Whatever ended the loop, what was sent is acknowledged (or failed) before progress is final.
        await publisher.drain();
      }
      // Every chunk acknowledged in full before whatever ended the loop is recorded, in key order, up to the
      // first one that is not (nothing past it). A failure may have broken the reading connection: then a
      // fresh one records them.
      const acknowledged: ChunkInFlight[] = [];
      for (const chunk of inFlight) {
        if (!(await chunk.acked)) break;
        acknowledged.push(chunk);
      }
      if (acknowledged.length > 0 && failure !== undefined) {
        const alive = await client.query('SELECT 1').then(
          () => true,
          () => false,
        );
        if (!alive) {
          await client.end().catch(() => undefined);
          client = reader.client = await connectSnapshotSession(cfg, limits, {
            deadline: now() + 15_000,
            now,
            log,
          });
        }
      }
      for (const chunk of acknowledged) await record(chunk);
      if (failure !== undefined) throw failure;
      if (publisher.failure) throw publisher.failure;
      summary.tables.push({ table, rowsDone, rowsEstimate, done });
      if (summary.blocked) {
        alert('WARNING', describeBlockedSnapshot(summary.blocked, rowsDone), {
          blockedSnapshot: summary.blocked,
        });
      }
      if (summary.stoppedBy !== 'done') break;
    }
    if (summary.skippedTables.length > 0) {
      alert(
        'WARNING',
        `snapshot: not snapshotted, because unlogged tables are never written to the WAL: ${summary.skippedTables.map((t) => t.table).join(', ')}`,
        { skippedTables: summary.skippedTables },
      );
    }
  } finally {
    await client.end().catch(() => undefined);
    await Promise.all(publishers.map((p) => p.drain()));
    await ownSink?.close().catch(() => undefined);
  }
  summary.messages = publishers.reduce((n, p) => n + p.stats.messages, 0);
  summary.seconds = (now() - started) / 1000;
  summary.peakRssMb = Math.round(process.resourceUsage().maxRSS / 1024);
  return summary;
}

/** Key columns in the primary key's own order, so `ORDER BY` and the resume condition can use its index. */
async function primaryKeyOrder(client: Client, relation: string, columns: ColumnInfo[]): Promise<string[]> {
  const r = await client.query<{ name: string }>(
    `SELECT a.attname AS name FROM pg_index i
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
     WHERE i.indrelid = $1::regclass AND i.indisprimary
     ORDER BY array_position(i.indkey::int2[], a.attnum)`,
    [relation],
  );
  const ordered = r.rows.map((x) => x.name);
  return ordered.length ? ordered : columns.filter((c) => c.key).map((c) => c.name);
}

// Below this size a table that was never analysed is simply counted for its progress estimate.
const COUNT_BELOW_BYTES = 64 * 1024 * 1024;

/**
 * The planner's row estimate (free). A table never vacuumed or analysed has none (-1): count it when it is
 * small, else report the total as unknown rather than scan a large table twice.
 */
async function estimateRows(client: Client, relation: string): Promise<number | null> {
  try {
    // pg_relation_size opens the table (ACCESS SHARE), like the count.
    const r = await client.query<{ n: string; bytes: string }>(
      'SELECT reltuples::bigint::text AS n, pg_relation_size(oid)::text AS bytes FROM pg_class WHERE oid = $1::regclass',
      [relation],
    );
    const { n, bytes } = r.rows[0];
    if (Number(n) >= 0) return Number(n);
    if (Number(bytes) >= COUNT_BELOW_BYTES) return null;
    const c = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${relation}`);
    return Number(c.rows[0].n);
  } catch (e) {
    // Its lock waited behind an ALTER (lock_timeout): an estimate is not worth waiting for; the chunks
    // then meet the same lock and stop the snapshot the usual way.
    if (timeoutReason(e)) return null;
    throw e;
  }
}

/** Tables whose snapshot has not completed (never started, or interrupted). */
export async function pendingSnapshots(client: Client, tables: string[]): Promise<string[]> {
  // Progress rows are keyed by table key (contract/table-name.ts). Before quoted names, the key was
  // schema.table unquoted: a table whose name is not plain lower case finished under that older key is done
  // too, not snapshotted again. legacyProgressKeys says which tables that older key can still vouch for.
  const legacy = legacyProgressKeys(tables);
  const r = await client.query<{ table_name: string }>(
    `SELECT table_name FROM ${PROGRESS} WHERE done AND table_name = ANY($1)`,
    [[...new Set([...tables, ...legacy.values()])]],
  );
  const done = new Set(r.rows.map((x) => x.table_name));
  return tables.filter((t) => !done.has(t) && !done.has(legacy.get(t) ?? t));
}

/**
 * Table key → its pre-quoting progress key (`schema.table`, parts unquoted), for the tables that key names
 * unambiguously. Two tables can share one: "a.b".c and a."b.c" were both a.b.c, and a finished a.b.c says
 * nothing about which of them finished, so neither gets it. Both are then snapshotted again, which is safe:
 * snapshot rows are UPSERTs sequenced just below the WAL position they were read at (the header above), so a
 * second copy of a row carries its current values and loses to every later change.
 */
export function legacyProgressKeys(tables: string[]): Map<string, string> {
  const byLegacy = new Map<string, string[]>();
  for (const t of new Set(tables)) {
    const n = parseTableKey(t);
    const old = `${n.schema}.${n.table}`;
    if (old === t) continue;
    byLegacy.set(old, [...(byLegacy.get(old) ?? []), t]);
  }
  const out = new Map<string, string>();
  for (const [old, ts] of byLegacy) if (ts.length === 1) out.set(ts[0]!, old);
  return out;
}
