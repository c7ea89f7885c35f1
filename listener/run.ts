// One bounded listener run (DESIGN §1, §4.5): mark the WAL end with a logical message, read the slot from its
// confirmed position up to that mark (or until the time limit, at a transaction boundary), publish, wait for
// every publish to be acknowledged, confirm the slot position, and report.

import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { formatLsn, parseLsn } from '../contract/lsn';
import { loadCatalog } from './catalog';
import { ListenerConfig } from './config';
import { Decoded, Decoder } from './decoders/types';
import { PgOutputDecoder } from './decoders/pgoutput';
import { Wal2JsonDecoder } from './decoders/wal2json';
import { ReplicationSetupError, classifyPgError } from './errors';
import { EventPublisher, MessageSink, pubsubSink } from './publisher';
import { ReplicationStream } from './replication-stream';
import { SourceLookup } from './toast-fill';

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
  stoppedBy: 'wal-end' | 'time-limit';
  /** Peak resident memory of this process so far, in MiB (the memory bound of DESIGN §4.4). */
  peakRssMb: number;
}

export interface RunOptions {
  log?: (line: string) => void;
  /** Replaces the Pub/Sub topic (tests inject faults around the real one). */
  sink?: MessageSink;
  /** Clock for the time limit (tests make time pass deterministically). */
  now?: () => number;
}

/** Prefix of the logical messages that mark the WAL end a run reads up to; they also advance idle slots. */
export const MARKER_PREFIX = 'pgcdc.marker';

async function checkSlot(client: Client, cfg: ListenerConfig): Promise<void> {
  const wal = await client.query<{ wal_level: string }>('SHOW wal_level');
  if (wal.rows[0].wal_level !== 'logical') {
    throw new ReplicationSetupError(
      `wal_level is "${wal.rows[0].wal_level}"; logical decoding needs wal_level=logical ` +
        '(Cloud SQL: set the flag cloudsql.logical_decoding=on), then restart the server',
    );
  }
  const slot = await client.query<{ plugin: string; database: string; slot_type: string }>(
    'SELECT plugin, database, slot_type FROM pg_replication_slots WHERE slot_name = $1',
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
  if (cfg.decoder === 'pgoutput') {
    const pub = await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [cfg.publication]);
    if (pub.rowCount === 0) {
      throw new ReplicationSetupError(
        `publication "${cfg.publication}" does not exist; pgoutput needs it. Run \`pgcdc sql init\`, or: ` +
          `CREATE PUBLICATION ${cfg.publication} FOR ALL TABLES;`,
      );
    }
  }
}

export async function runListener(cfg: ListenerConfig, opts: RunOptions = {}): Promise<ListenerSummary> {
  const now = opts.now ?? Date.now;
  const started = now();
  const log = opts.log ?? (() => undefined);
  const ctx = { slot: cfg.slot, user: cfg.pg.user, host: String(cfg.pg.host) };
  const sql = new Client({ ...cfg.pg, application_name: 'pgcdc-listener-control' });
  try {
    await sql.connect();
  } catch (e) {
    throw classifyPgError(e, ctx);
  }
  const ownSink = opts.sink ? undefined : pubsubSink(cfg);
  const sink = opts.sink ?? ownSink!;
  const stream = new ReplicationStream(cfg.pg);
  const toastLookup = new SourceLookup(cfg.pg);
  try {
    await checkSlot(sql, cfg);
    const catalog = await loadCatalog(sql);
    const decoder: Decoder =
      cfg.decoder === 'pgoutput'
        ? new PgOutputDecoder(catalog, cfg.publication, cfg.tables)
        : new Wal2JsonDecoder(catalog, cfg.tables);

    try {
      await stream.connect();
    } catch (e) {
      throw classifyPgError(e, ctx);
    }
    // The WAL end this run reads to: a transactional logical message, whose commit also flushes the WAL
    // (a non-transactional one would not be decoded until something else flushed it).
    const runId = randomUUID();
    const marker = await sql.query<{ lsn: string }>(
      'SELECT pg_logical_emit_message(true, $1, $2)::text AS lsn',
      [MARKER_PREFIX, runId],
    );
    const targetLsn = parseLsn(marker.rows[0].lsn);

    // Unchanged TOAST values are looked up on the source table before publishing (toast-fill.ts).
    const publisher = new EventPublisher(sink, cfg, toastLookup);
    const deadline = started + cfg.maxRunSeconds * 1000;
    let stoppedBy: ListenerSummary['stoppedBy'] = 'wal-end';
    let transactions = 0;
    let firstLsn: string | null = null;
    let lastLsn: string | null = null;
    let lastCommitTs: string | null = null;
    let sawMarker = false;
    let paused = false;
    let finish: () => void = () => undefined;
    let fail: (e: Error) => void = () => undefined;
    const finished = new Promise<void>((resolve, reject) => {
      finish = resolve;
      fail = reject;
    });
    let done = false;

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
          return;
        case 'change':
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
          transactions++;
          publisher.commit(item.endLsn);
          // Stop at a transaction boundary: at our own mark, or past the time limit (finishing the current
          // transaction guarantees progress even when one transaction takes longer than the limit).
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
      await stream.start({ slot: cfg.slot, startLsn: 0n, pluginOptions: decoder.pluginOptions });
    } catch (e) {
      throw classifyPgError(e, ctx);
    }
    stream.done.then(
      () => fail(new Error('the server ended replication before the run reached its end mark')),
      (e: Error) => fail(classifyPgError(e, ctx)),
    );
    const flushTimer = setInterval(() => publisher.flushAll(), 2000);
    try {
      await finished;
    } finally {
      clearInterval(flushTimer);
      done = true;
      stream.pause();
      publisher.flushAll();
      await publisher.drain();
    }
    if (publisher.failure) throw publisher.failure;
    stream.confirm(publisher.confirmable);
    await stream.stop();
    log(`confirmed ${formatLsn(stream.confirmedLsn)}`);

    const lag = await sql.query<{ lag: string | null }>(
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
    await sql.end().catch(() => undefined);
    await toastLookup.close();
    await ownSink?.close().catch(() => undefined);
  }
}
