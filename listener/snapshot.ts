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
import { loadCatalog } from './catalog';
import { ListenerConfig, withOutputSettings } from './config';
import { CopyTextOut } from './copy-text';
import { ReplicationSetupError, classifyPgError } from './errors';
import { MessageSink, pubsubSink } from './publisher';
import { EncodedMessage, SnapshotEventEncoder } from './snapshot-encoder';
import { SnapshotPublisher } from './snapshot-publisher';
import { connectWithRetry } from './connect';
import { formatUtcMicros } from './time';

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
  stoppedBy: 'done' | 'time-limit';
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

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function qualified(table: string): string {
  const dot = table.indexOf('.');
  return `${quoteIdent(table.slice(0, dot))}.${quoteIdent(table.slice(dot + 1))}`;
}

// Transactions of this database running now (see waitForRunningTransactions).
const RUNNING_TRANSACTIONS = `SELECT DISTINCT l.transactionid::text AS xid
     FROM pg_locks l
     LEFT JOIN pg_stat_activity a ON a.pid = l.pid
     LEFT JOIN pg_prepared_xacts p ON l.pid IS NULL AND p.transaction = l.transactionid
     WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
       AND l.pid IS DISTINCT FROM pg_backend_pid()
       AND coalesce(a.datname, p.database) = current_database()`;

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
 * transaction has no backend: its database comes from pg_prepared_xacts). Returns false when the deadline
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
      `SELECT DISTINCT transactionid::text AS xid FROM pg_locks
       WHERE locktype = 'transactionid' AND mode = 'ExclusiveLock' AND transactionid::text = ANY($1)`,
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
  table: string;
  columns: ColumnInfo[];
  keyCols: string[];
  encoder: SnapshotEventEncoder;
  publisher: SnapshotPublisher;
  /** Where the encoder's messages of the chunk being read go. */
  onMessage: (msg: EncodedMessage) => void;
  maxInFlightBytes: number;
}

/**
 * Reads one chunk (rows after `lastKey`, in key order) with COPY and hands its messages to the publisher
 * as they fill: compression and publishing of a chunk overlap its reading and the next chunk's. Returns
 * null when older transactions did not end before the deadline (nothing was read).
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
  const cols = columns.map((c) => quoteIdent(c.name)).join(', ');
  const keyList = keyCols.map(quoteIdent).join(', ');
  let where = '';
  if (lastKey) {
    // Row-value comparison with each key column cast from its text: resumes exactly after the last key.
    // COPY takes no bind parameters, hence literals (escapeLiteral doubles quotes and backslashes).
    const casts = keyCols.map((k) => {
      const value = lastKey[k];
      if (value === null || value === undefined)
        throw new Error(`snapshot progress of ${r.table} lacks key ${k}`);
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
      `COPY (SELECT ${cols} FROM ${qualified(r.table)} ${where} ORDER BY ${keyList} LIMIT ${limit}) TO STDOUT; ` +
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
  let rows: number;
  try {
    rows = await client.query(copy).done;
  } catch (e) {
    // A failed statement leaves the transaction open (aborted) when BEGIN had run.
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
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

export async function runSnapshot(cfg: ListenerConfig, opts: SnapshotOptions = {}): Promise<SnapshotSummary> {
  const now = opts.now ?? Date.now;
  const started = now();
  const deadline = started + cfg.maxRunSeconds * 1000;
  const log = opts.log ?? (() => undefined);
  const chunkRows = opts.chunkRows ?? 10_000;
  let client: Client;
  try {
    client = await connectWithRetry(withOutputSettings(cfg.pg as ClientConfig), { deadline, now, log });
  } catch (e) {
    throw classifyPgError(e, { slot: cfg.slot, user: cfg.pg.user, host: String(cfg.pg.host) });
  }
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
    const named = opts.tables ?? (cfg.tables.length ? cfg.tables : undefined);
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
      const keyCols = await primaryKeyOrder(client, qualified(table), columns);
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
      const rowsEstimate = await estimateRows(client, qualified(table));
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
      const [schema, name] = [table.slice(0, table.indexOf('.')), table.slice(table.indexOf('.') + 1)];
      const publisher = new SnapshotPublisher(sink, schema, name, cfg.encoding);
      publishers.push(publisher);
      const reader: ChunkReader = {
        client,
        table,
        columns,
        keyCols,
        publisher,
        encoder: new SnapshotEventEncoder({ v: 1, schema, table: name, columns }, keyCols, cfg, (m) =>
          reader.onMessage(m),
        ),
        onMessage: () => undefined,
        maxInFlightBytes: Math.max(2 * cfg.maxMessageBytes, Math.min(16 * cfg.maxMessageBytes, 64 << 20)),
      };
      // Chunks read whose messages are not all acknowledged yet, oldest first.
      const inFlight: ChunkInFlight[] = [];
      // Progress moves, chunk by chunk in key order, only once Pub/Sub acknowledged every message of the
      // chunk: a crash repeats at most the chunks in flight (MAX_CHUNKS_IN_FLIGHT). It runs between chunk
      // reads, on the reading connection (never inside a chunk's read-only transaction). recordProgress
      // records the acknowledged chunks at the head, and waits for more until at most `keep` remain.
      const recordProgress = async (keep: number) => {
        while (inFlight.length > 0 && (inFlight.length > keep || inFlight[0].settled)) {
          const chunk = inFlight[0];
          if (!(await chunk.acked)) throw publisher.failure ?? new Error('snapshot: a publish failed');
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
        }
      };
      // Rows per chunk adapt to the table's row size so a chunk holds about CHUNK_BYTES (bounded memory,
      // DESIGN §4.4): a first small chunk measures, later ones use the measured average.
      let limit = Math.min(chunkRows, FIRST_CHUNK_ROWS);
      let readKey = lastKey;
      let readAll = done;
      try {
        while (!readAll) {
          if (now() > deadline) {
            summary.stoppedBy = 'time-limit';
            break;
          }
          if (publisher.failure) break;
          await recordProgress(MAX_CHUNKS_IN_FLIGHT - 1);
          const chunk = await readChunk(reader, readKey, limit, deadline, now);
          if (!chunk) {
            log(
              `snapshot ${table}: transactions older than the chunk are still running; continuing next run`,
            );
            summary.stoppedBy = 'time-limit';
            break;
          }
          inFlight.push(chunk);
          readAll = chunk.last;
          if (chunk.lastKey) readKey = chunk.lastKey;
          const avg = chunk.rows ? reader.encoder.chunkBytes / chunk.rows : 1;
          limit = Math.max(1, Math.min(chunkRows, Math.floor(CHUNK_BYTES / Math.max(1, avg))));
        }
      } finally {
        // Whatever ended the loop, what was sent is acknowledged (or failed) before progress is final.
        await publisher.drain();
      }
      await recordProgress(0);
      if (publisher.failure) throw publisher.failure;
      summary.tables.push({ table, rowsDone, rowsEstimate, done });
      if (summary.stoppedBy === 'time-limit') break;
    }
    if (summary.skippedTables.length > 0) {
      (opts.alert ?? ((_s, m) => log(m)))(
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
  const r = await client.query<{ n: string; bytes: string }>(
    'SELECT reltuples::bigint::text AS n, pg_relation_size(oid)::text AS bytes FROM pg_class WHERE oid = $1::regclass',
    [relation],
  );
  const { n, bytes } = r.rows[0];
  if (Number(n) >= 0) return Number(n);
  if (Number(bytes) >= COUNT_BELOW_BYTES) return null;
  const c = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${relation}`);
  return Number(c.rows[0].n);
}

/** Tables whose snapshot has not completed (never started, or interrupted). */
export async function pendingSnapshots(client: Client, tables: string[]): Promise<string[]> {
  const r = await client.query<{ table_name: string }>(
    `SELECT table_name FROM ${PROGRESS} WHERE done AND table_name = ANY($1)`,
    [tables],
  );
  const done = new Set(r.rows.map((x) => x.table_name));
  return tables.filter((t) => !done.has(t));
}
