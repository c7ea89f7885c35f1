// One bounded listener run (DESIGN §1, §4.5): mark the WAL end with a logical message, read the slot from its
// confirmed position up to that mark (or until the time limit, at a transaction boundary), publish, wait for
// every publish to be acknowledged, confirm the slot position, and report.

import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { formatLsn, parseLsn } from '../contract/lsn';
import { Catalog, expandPartitions, loadCatalog, resolveTables } from './catalog';
import { ListenerConfig } from './config';
import { Decoded, Decoder } from './decoders/types';
import { PgOutputDecoder } from './decoders/pgoutput';
import { Wal2JsonDecoder } from './decoders/wal2json';
import { ReplicationSetupError, classifyPgError, lostSlotError } from './errors';
import { EventPublisher, MessageSink, pubsubSink } from './publisher';
import { ReplicationStream, statusIntervalFor } from './replication-stream';
import { connectWithRetry, withConnectRetry } from './connect';
import { BlockedLookup, LookupBlockedError, SourceLookup } from './toast-fill';

// The Pub/Sub sink lives with the publisher; re-exported for the callers that import it from here.
export { pubsubSink };

export interface ListenerSummary {
  changes: number;
  messages: number;
  bytes: number;
  transactions: number;
  firstLsn: string | null;
  lastLsn: string | null;
  confirmedLsn: string;
  /** WAL bytes between the server's current position and the slot's confirmed position, after the run. */
  lagBytes: number;
  /** Commit time of the last transaction read (null when none). */
  lastCommitTs: string | null;
  seconds: number;
  stoppedBy: 'wal-end' | 'time-limit' | 'lookup-blocked';
  /** Peak resident memory of this process so far, in MiB (the memory bound of DESIGN §4.4). */
  peakRssMb: number;
  /** pg_replication_slots.wal_status at run start ("reserved", "extended", "unreserved"; null before PG 13). */
  slotWalStatus: string | null;
  /**
   * Set when the run hit its hard time limit inside a transaction it could not finish: the slot cannot
   * advance past that transaction, and every run will read it again from its start (README
   * "Troubleshooting: a transaction too large for one run").
   */
  stuckTransaction: StuckTransaction | null;
  /** Configured (or, with no table list, existing) tables this run cannot capture, and why. */
  skippedTables: SkippedTable[];
  /**
   * Set when a TOAST lookup could not get its lock in time (stoppedBy 'lookup-blocked'): the run stopped
   * before that change, confirmed nothing past it, and the next run retries (listener/toast-fill.ts).
   */
  blockedLookup: BlockedLookup | null;
}

export interface StuckTransaction {
  /** 0 when the server was still decoding up to its commit and had sent nothing of it yet. */
  xid: number;
  /** LSN of its first change this run read (null if none arrived before the limit). */
  startLsn: string | null;
  changesRead: number;
}

export interface SkippedTable {
  table: string;
  reason: 'unlogged' | 'not-granted';
}

export interface RunOptions {
  log?: (line: string) => void;
  /** Replaces the Pub/Sub topic (tests inject faults around the real one). */
  sink?: MessageSink;
  /** Clock for the time limit (tests make time pass deterministically). */
  now?: () => number;
  /** Problems that need a person (WARNING/ERROR severity in Cloud Logging; alerts match on them). */
  alert?: (severity: 'WARNING' | 'ERROR', message: string, fields?: Record<string, unknown>) => void;
  /**
   * What the runs of one job execution already said about skipped tables (continuous mode keeps one across
   * its runs): the WARNING is written when the set changes, not on every run. Without one, every run warns
   * (a scheduled execution is one run: it warns once, at its start).
   */
  skippedNotice?: SkippedTablesNotice;
}

/**
 * Remembers, per reason, the set of skipped tables last warned about. Continuous mode runs about once a
 * second: repeating the same WARNING every run would flood the log, while the summary's `skippedTables`
 * (read by `pgcdc status`) still lists them every run. A set that changes — a table newly skipped, or one
 * captured again — is said once more; a reason whose set became empty is said at INFO (no "not captured" in
 * it: the stack's alert matches WARNING lines that contain those words, infra/monitoring.ts).
 */
export class SkippedTablesNotice {
  private readonly said = new Map<SkippedTable['reason'], string>();

  /** 'warn': a new non-empty set; 'cleared': the set became empty; 'same': nothing to say. */
  change(reason: SkippedTable['reason'], tables: string[]): 'warn' | 'cleared' | 'same' {
    const now = JSON.stringify([...tables].sort());
    const before = this.said.get(reason) ?? JSON.stringify([]);
    this.said.set(reason, now);
    if (now === before) return 'same';
    return tables.length > 0 ? 'warn' : 'cleared';
  }
}

/**
 * After the time limit a run still finishes the transaction it is in (so a long transaction does not stall
 * the pipeline), for at most as long again; a transaction still unfinished at twice the limit is reported
 * as stuck (`stuckTransaction`) rather than left to the job timeout, which would kill the run unnoticed.
 * So the job timeout must exceed 2 × PGCDC_MAX_RUN_SECONDS plus the time to drain and confirm (the
 * defaults: 300 s and 900 s).
 */
export function hardLimitSeconds(maxRunSeconds: number): number {
  return 2 * maxRunSeconds;
}

/** Checks the clock every this many changes while inside a transaction (cheap, and deterministic in tests). */
const CLOCK_CHECK_EVERY = 256;

/** Prefix of the logical messages that mark the WAL end a run reads up to; they also advance idle slots. */
export const MARKER_PREFIX = 'pgcdc.marker';

async function checkSlot(client: Client, cfg: ListenerConfig): Promise<string | null> {
  const wal = await client.query<{ wal_level: string }>('SHOW wal_level');
  if (wal.rows[0].wal_level !== 'logical') {
    throw new ReplicationSetupError(
      `wal_level is "${wal.rows[0].wal_level}"; logical decoding needs wal_level=logical ` +
        '(Cloud SQL: set the flag cloudsql.logical_decoding=on), then restart the server',
    );
  }
  // wal_status exists from PostgreSQL 13 on; read through to_jsonb so older servers simply give null.
  const slot = await client.query<{
    plugin: string;
    database: string;
    slot_type: string;
    wal_status: string | null;
  }>(
    `SELECT plugin, database, slot_type, to_jsonb(s) ->> 'wal_status' AS wal_status
     FROM pg_replication_slots s WHERE slot_name = $1`,
    [cfg.slot],
  );
  const db = String(cfg.pg.database);
  if (slot.rowCount === 0) {
    throw new ReplicationSetupError(
      `replication slot "${cfg.slot}" does not exist in this server. Run \`pgcdc sql init\`, or: ` +
        `SELECT pg_create_logical_replication_slot('${cfg.slot}', '${cfg.decoder}');`,
    );
  }
  const s = slot.rows[0];
  if (s.slot_type !== 'logical' || s.plugin !== cfg.decoder) {
    throw new ReplicationSetupError(
      `replication slot "${cfg.slot}" uses plugin "${s.plugin ?? s.slot_type}", but PGCDC_DECODER is "${cfg.decoder}". ` +
        `Set PGCDC_DECODER=${s.plugin}, or drop and recreate the slot with plugin ${cfg.decoder}.`,
    );
  }
  if (s.database !== db) {
    throw new ReplicationSetupError(
      `replication slot "${cfg.slot}" belongs to database "${s.database}", not "${db}"`,
    );
  }
  // "lost means that this slot is no longer usable"
  // (https://www.postgresql.org/docs/15/view-pg-replication-slots.html, wal_status).
  if (s.wal_status === 'lost') throw lostSlotError(cfg.slot);
  if (cfg.decoder === 'pgoutput') {
    const pub = await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [cfg.publication]);
    if (pub.rowCount === 0) {
      // Not FOR ALL TABLES: that would make UPDATE/DELETE fail on the application's keyless tables.
      throw new ReplicationSetupError(
        `publication "${cfg.publication}" does not exist; pgoutput needs it. Run \`pgcdc sql init --env <env>\`: ` +
          'it publishes exactly the captured tables',
      );
    }
  }
  return s.wal_status;
}

/**
 * The publications pgoutput reads: the captured keyed tables' and, when the SQL init made it, the
 * insert-only one of the keyless tables (sql/0-init.sql), whose inserts and truncates reach the history.
 */
async function publicationsToRead(client: Client, cfg: ListenerConfig): Promise<string> {
  const inserts = `${cfg.publication}_inserts`;
  const found = await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [inserts]);
  return found.rowCount ? `${cfg.publication},${inserts}` : cfg.publication;
}

export async function runListener(cfg: ListenerConfig, opts: RunOptions = {}): Promise<ListenerSummary> {
  const now = opts.now ?? Date.now;
  const started = now();
  const deadline = started + cfg.maxRunSeconds * 1000;
  const hardDeadline = started + hardLimitSeconds(cfg.maxRunSeconds) * 1000;
  const log = opts.log ?? (() => undefined);
  const alert = opts.alert ?? ((_severity, message) => log(message));
  const ctx = { slot: cfg.slot, user: cfg.pg.user, host: String(cfg.pg.host) };
  const retry = { deadline, now, log };
  let control: Client;
  try {
    control = await connectWithRetry({ ...cfg.pg, application_name: 'pgcdc-listener-control' }, retry);
  } catch (e) {
    throw classifyPgError(e, ctx);
  }
  const ownSink = opts.sink ? undefined : pubsubSink(cfg);
  const sink = opts.sink ?? ownSink!;
  const stream = new ReplicationStream(cfg.pg);
  const toastLookup = new SourceLookup(cfg.pg);
  try {
    const slotWalStatus = await checkSlot(control, cfg);
    if (slotWalStatus === 'unreserved') {
      alert(
        'WARNING',
        `replication slot "${cfg.slot}" is about to lose WAL it has not delivered (wal_status = unreserved): ` +
          'this run must catch up before the next checkpoint, or the slot is invalidated',
        { slot: cfg.slot, slotWalStatus },
      );
    }
    const catalog = await loadCatalog(control);
    // A partitioned table in PGCDC_TABLES means its partitions, whose names its changes arrive under.
    const tables = expandPartitions(resolveTables(cfg.tables, catalog), catalog);
    const skippedTables = notCaptured({ tables }, catalog);
    // Said when the set changes (every run without a notice: a scheduled execution is one run).
    const notice = opts.skippedNotice ?? new SkippedTablesNotice();
    const unlogged = skippedTables.filter((t) => t.reason === 'unlogged');
    const unloggedChange = notice.change(
      'unlogged',
      unlogged.map((t) => t.table),
    );
    if (unloggedChange === 'cleared') log('tables skipped as unlogged: none any more');
    if (unloggedChange === 'warn') {
      // Unlogged tables never reach the WAL, so their replica would silently freeze.
      alert(
        'WARNING',
        `not captured, because unlogged tables are never written to the WAL: ${unlogged.map((t) => t.table).join(', ')}. ` +
          'ALTER TABLE ... SET LOGGED to capture one (its rows are then snapshotted).',
        { skippedTables: unlogged },
      );
    }
    const notGranted = skippedTables.filter((t) => t.reason === 'not-granted');
    const notGrantedChange = notice.change(
      'not-granted',
      notGranted.map((t) => t.table),
    );
    if (notGrantedChange === 'cleared')
      log('tables skipped as not readable by the replicator: none any more');
    if (notGrantedChange === 'warn') {
      // Neither decoder streams them (not in pgoutput's publications, not in wal2json's add-tables).
      alert(
        'WARNING',
        `not captured yet, because the replicator may not read them (created after the last sql init): ${notGranted.map((t) => t.table).join(', ')}. ` +
          'Run `pgcdc sql init --env <env>` to capture them (their existing rows are then snapshotted).',
        { skippedTables: notGranted },
      );
    }
    const decoder: Decoder =
      cfg.decoder === 'pgoutput'
        ? new PgOutputDecoder(catalog, await publicationsToRead(control, cfg), tables)
        : new Wal2JsonDecoder(catalog, tables);

    try {
      await withConnectRetry(() => stream.connect(), { ...retry, what: 'replication connection' });
    } catch (e) {
      throw classifyPgError(e, ctx);
    }
    const statusIntervalMs = statusIntervalFor(await stream.walSenderTimeoutMs());
    // The WAL end this run reads to: a transactional logical message, whose commit also flushes the WAL
    // (a non-transactional one would not be decoded until something else flushed it).
    const runId = randomUUID();
    const marker = await control.query<{ lsn: string }>(
      'SELECT pg_logical_emit_message(true, $1, $2)::text AS lsn',
      [MARKER_PREFIX, runId],
    );
    const targetLsn = parseLsn(marker.rows[0].lsn);

    // Unchanged TOAST values are looked up on the source table before publishing (toast-fill.ts).
    const publisher = new EventPublisher(sink, cfg, toastLookup);
    let stoppedBy: ListenerSummary['stoppedBy'] = 'wal-end';
    let transactions = 0;
    let firstLsn: string | null = null;
    let lastLsn: string | null = null;
    let lastCommitTs: string | null = null;
    let sawMarker = false;
    let paused = false;
    // The transaction being read, for the stuck-transaction report.
    let open: StuckTransaction | null = null;
    let stuckTransaction: StuckTransaction | null = null;
    let finish: () => void = () => undefined;
    let fail: (e: Error) => void = () => undefined;
    const finished = new Promise<void>((resolve, reject) => {
      finish = resolve;
      fail = reject;
    });
    let done = false;

    /** Past the hard limit: stop now, even inside a transaction (which then is reported as stuck). */
    const checkHardLimit = () => {
      if (done || now() <= hardDeadline) return;
      stoppedBy = 'time-limit';
      // Inside a transaction: that one. Nothing at all received yet: the server is still decoding WAL up to
      // a large transaction's commit (it sends a transaction only once it reached its commit record), whose
      // xid we cannot know yet (0).
      stuckTransaction = open
        ? { ...open }
        : transactions === 0
          ? { xid: 0, startLsn: null, changesRead: 0 }
          : null;
      done = true;
      finish();
    };

    publisher.onProgress = (confirmable) => {
      stream.confirm(confirmable);
      if (publisher.failure) fail(publisher.failure);
      if (paused && publisher.inFlightChars < cfg.maxInFlightBytes / 2) {
        paused = false;
        stream.resume();
      }
    };

    const onItem = (item: Decoded) => {
      switch (item.kind) {
        case 'begin':
          lastCommitTs = item.commitTs;
          open = { xid: item.xid, startLsn: null, changesRead: 0 };
          return;
        case 'change':
          if (open) {
            open.startLsn ??= item.event.lsn;
            if (++open.changesRead % CLOCK_CHECK_EVERY === 0) checkHardLimit();
            if (done) return;
          }
          // pgcdc's own bookkeeping (snapshot progress) is not user data.
          if (item.table.schema === 'pgcdc') return;
          firstLsn ??= item.event.lsn;
          lastLsn = item.event.lsn;
          publisher.add(item.table, item.event);
          if (publisher.inFlightChars > cfg.maxInFlightBytes && !paused) {
            paused = true;
            stream.pause();
          }
          return;
        case 'message':
          if (item.prefix === MARKER_PREFIX && item.content === runId) sawMarker = true;
          return;
        case 'commit':
          open = null;
          transactions++;
          publisher.commit(item.endLsn);
          // Stop at a transaction boundary: at our own mark, or past the time limit (finishing the current
          // transaction, within the grace period, guarantees progress when one runs over the limit).
          if (sawMarker || item.endLsn > targetLsn) {
            done = true;
            finish();
          } else if (now() > deadline) {
            stoppedBy = 'time-limit';
            done = true;
            finish();
          }
          return;
      }
    };

    stream.onData = (msg) => {
      if (done) return;
      try {
        decoder.decode(msg, onItem);
      } catch (e) {
        fail(e as Error);
      }
    };
    try {
      await stream.start(
        { slot: cfg.slot, startLsn: 0n, pluginOptions: decoder.pluginOptions },
        statusIntervalMs,
      );
    } catch (e) {
      throw classifyPgError(e, ctx);
    }
    stream.done.then(
      () => fail(new Error('the server ended replication before the run reached its end mark')),
      (e: Error) => fail(classifyPgError(e, ctx)),
    );
    // Also watches the hard limit while nothing arrives (reading paused, or the server still decoding).
    const flushTimer = setInterval(() => {
      publisher.flushAll();
      checkHardLimit();
    }, 2000);
    let blocked: LookupBlockedError | undefined;
    try {
      await finished;
    } catch (e) {
      // A lookup that would wait on the application's locks stops the run (below), nothing else does.
      if (!(e instanceof LookupBlockedError)) throw e;
    } finally {
      clearInterval(flushTimer);
      done = true;
      stream.pause();
      publisher.flushAll();
      await publisher.drain();
    }
    if (publisher.failure instanceof LookupBlockedError) {
      // Stop here: what was acknowledged before the unresolved change is confirmed, nothing after it.
      blocked = publisher.failure;
      stoppedBy = 'lookup-blocked';
    } else if (publisher.failure) throw publisher.failure;
    stream.confirm(publisher.confirmable);
    await stream.stop();
    log(`confirmed ${formatLsn(stream.confirmedLsn)}`);
    const stuck = stuckTransaction as StuckTransaction | null;
    if (stuck) {
      alert(
        'ERROR',
        `${stuck.xid ? `transaction ${stuck.xid}` : 'a transaction the server was still decoding'} is too large ` +
          `to finish within one run: ${stuck.changesRead} changes read in ` +
          `${Math.round((now() - started) / 1000)} s, and the slot cannot advance past it, so every run starts it ` +
          'again. Raise PGCDC_MAX_RUN_SECONDS and the job timeout (README "Troubleshooting").',
        { stuckTransaction: stuck, slot: cfg.slot },
      );
    }

    if (blocked) {
      alert('WARNING', blocked.message, { blockedLookup: blocked.blocked, slot: cfg.slot });
    }

    const lag = await control.query<{ lag: string | null }>(
      'SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::text AS lag FROM pg_replication_slots WHERE slot_name = $1',
      [cfg.slot],
    );
    return {
      changes: publisher.stats.events,
      messages: publisher.stats.messages,
      bytes: publisher.stats.bytes,
      transactions,
      firstLsn,
      lastLsn,
      confirmedLsn: formatLsn(stream.confirmedLsn),
      lagBytes: Number(lag.rows[0]?.lag ?? 0),
      lastCommitTs,
      seconds: (Date.now() - started) / 1000,
      stoppedBy,
      peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
      slotWalStatus,
      stuckTransaction: stuck,
      skippedTables,
      blockedLookup: blocked?.blocked ?? null,
    };
  } catch (e) {
    // Whatever was acknowledged is still safe to confirm; anything else is read again next run.
    try {
      stream.sendStatus(false);
    } catch {
      /* the connection is already gone */
    }
    await stream.destroy();
    throw e;
  } finally {
    await control.end().catch(() => undefined);
    await toastLookup.close();
    await ownSink?.close().catch(() => undefined);
  }
}

/**
 * Tables in scope that cannot be captured: unlogged ones, and ones the role may not read (listener/catalog.ts;
 * an unlogged table is reported as unlogged only).
 */
export function notCaptured(cfg: Pick<ListenerConfig, 'tables'>, catalog: Catalog): SkippedTable[] {
  const inScope = (names: string[]) =>
    (cfg.tables.length ? names.filter((t) => cfg.tables.includes(t)) : names).filter(
      (t) => !t.startsWith('pgcdc.'),
    );
  const unlogged = inScope(catalog.unlogged ?? []);
  const notGranted = inScope(catalog.unreadable ?? []).filter((t) => !unlogged.includes(t));
  return [
    ...unlogged.map((table): SkippedTable => ({ table, reason: 'unlogged' })),
    ...notGranted.map((table): SkippedTable => ({ table, reason: 'not-granted' })),
  ];
}
