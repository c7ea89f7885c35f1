// A small CopyBoth reader for PostgreSQL's streaming replication protocol, on top of `pg`.
//
// `pg` sends START_REPLICATION as a simple query; the server answers CopyBothResponse and then streams
// CopyData messages, which `pg`'s connection emits as 'copyData'. We parse the two server messages
// (XLogData 'w', primary keepalive 'k'), and send standby status updates ('r') whose flush position only
// ever moves forward and is only what the caller says has been durably handed downstream.
// Protocol: https://www.postgresql.org/docs/15/protocol-replication.html

import { Client, ClientConfig } from 'pg';
import { Lsn, formatLsn } from '../contract/lsn';
import { withOutputSettings } from './config';

/** How long `stop()` waits for the server to end the copy after our CopyDone. */
const STOP_WAIT_MS = 10_000;

// Postgres timestamps count microseconds from 2000-01-01 00:00:00 UTC.
const PG_EPOCH_MICROS = 946_684_800_000_000n;

export function nowPgMicros(): bigint {
  return BigInt(Date.now()) * 1000n - PG_EPOCH_MICROS;
}

export interface XLogData {
  walStart: Lsn;
  walEnd: Lsn;
  data: Buffer;
}

export interface StartOptions {
  slot: string;
  /** 0n = from the slot's confirmed position. */
  startLsn: Lsn;
  /** Output plugin options, e.g. { 'format-version': '2' }. */
  pluginOptions: Record<string, string>;
}

/** The subset of pg's Connection we drive directly (not in @types/pg). */
interface RawConnection {
  on(event: 'copyData', listener: (msg: { chunk: Buffer }) => void): void;
  removeAllListeners(event: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
  stream: { pause(): void; resume(): void; isPaused?(): boolean };
}

/** Status update interval when the server's wal_sender_timeout is unknown or disabled (PostgreSQL's own default
 * wal_receiver_status_interval is 10 s). */
const DEFAULT_STATUS_INTERVAL_MS = 10_000;

/**
 * How often to send standby status updates so a walsender with this `wal_sender_timeout` never ends the
 * connection: the server "terminate[s] replication connections that are inactive for longer than" it
 * (https://www.postgresql.org/docs/15/runtime-config-replication.html#GUC-WAL-SENDER-TIMEOUT), and while
 * reading is paused for backpressure we do not read its keepalive requests, so only our own timer keeps
 * the connection alive. A quarter of the timeout leaves room for a late timer on a busy machine.
 */
export function statusIntervalFor(walSenderTimeoutMs: number): number {
  if (!(walSenderTimeoutMs > 0)) return DEFAULT_STATUS_INTERVAL_MS;
  return Math.max(100, Math.min(DEFAULT_STATUS_INTERVAL_MS, Math.floor(walSenderTimeoutMs / 4)));
}

/** Parses a time setting as SHOW prints it ("60s", "500ms", "1min", "0") into milliseconds. */
export function parseDurationSetting(text: string): number {
  const m = /^\s*(-?\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$/.exec(text);
  if (!m) return NaN;
  const unit = { us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 'ms'] ?? 1;
  return Number(m[1]) * unit;
}

export class ReplicationStream {
  private client: Client | undefined;
  private readonly clientConfig: ClientConfig;
  private conn!: RawConnection;
  private copyDone!: Promise<unknown>;
  private flushed: Lsn = 0n;
  private received: Lsn = 0n;
  private statusTimer: NodeJS.Timeout | undefined;
  private ended = false;
  private failure: Error | undefined;
  /** Called for every XLogData message, in order. */
  onData: (msg: XLogData) => void = () => undefined;

  constructor(pgConfig: ClientConfig) {
    // The walsender prints values (wal2json, pgoutput's text tuples) with this session's settings.
    this.clientConfig = { ...withOutputSettings(pgConfig), replication: 'database' } as ClientConfig;
  }

  /** Opens the replication connection; may be called again after a failure (a fresh client each time). */
  async connect(): Promise<void> {
    const client = new Client(this.clientConfig);
    try {
      await client.connect();
    } catch (e) {
      await client.end().catch(() => undefined);
      throw e;
    }
    this.client = client;
    this.conn = (this.client as unknown as { connection: RawConnection }).connection;
  }

  private connected(): Client {
    if (!this.client) throw new Error('the replication connection is not open (call connect() first)');
    return this.client;
  }

  /** The walsender's own wal_sender_timeout in ms (it can differ per role or connection); 0 = disabled. */
  async walSenderTimeoutMs(): Promise<number> {
    const r = await this.connected().query<{ wal_sender_timeout: string }>('SHOW wal_sender_timeout');
    return parseDurationSetting(r.rows[0]?.wal_sender_timeout ?? '');
  }

  /** Issues START_REPLICATION; resolves once the server is streaming (or rejects with its error). */
  async start(opts: StartOptions, statusIntervalMs = DEFAULT_STATUS_INTERVAL_MS): Promise<void> {
    const options = Object.entries(opts.pluginOptions)
      .map(([k, v]) => `"${k.replace(/"/g, '""')}" '${v.replace(/'/g, "''")}'`)
      .join(', ');
    const sql = `START_REPLICATION SLOT "${opts.slot}" LOGICAL ${formatLsn(opts.startLsn)}${options ? ` (${options})` : ''}`;
    this.conn.on('copyData', (msg) => this.handle(msg.chunk));
    let streaming: () => void = () => undefined;
    const started = new Promise<void>((resolve) => (streaming = resolve));
    (this.client as unknown as { connection: NodeJS.EventEmitter }).connection.once('replicationStart', () =>
      streaming(),
    );
    this.copyDone = this.connected()
      .query(sql)
      .then(
        () => {
          this.ended = true;
        },
        (e: Error) => {
          this.ended = true;
          this.failure = e;
          throw e;
        },
      );
    // Whichever comes first: the server starts streaming, or refuses (slot missing, wrong plugin...).
    await Promise.race([started, this.copyDone]);
    this.statusTimer = setInterval(() => this.sendStatus(false), statusIntervalMs);
    this.statusTimer.unref();
  }

  private handle(chunk: Buffer): void {
    const kind = chunk[0];
    if (kind === 0x77 /* 'w' XLogData */) {
      const walStart = chunk.readBigUInt64BE(1);
      const walEnd = chunk.readBigUInt64BE(9);
      if (walStart > this.received) this.received = walStart;
      this.onData({ walStart, walEnd, data: chunk.subarray(25) });
    } else if (kind === 0x6b /* 'k' keepalive */) {
      const replyRequested = chunk[17] === 1;
      // Answer when asked, so wal_sender_timeout never kills a busy but healthy run.
      if (replyRequested) this.sendStatus(false);
    }
  }

  /**
   * Report `lsn` as flushed: everything before it is durably downstream. Never moves backwards: a smaller
   * value is ignored, so a late caller cannot undo an acknowledgement.
   */
  confirm(lsn: Lsn): void {
    if (lsn > this.flushed) this.flushed = lsn;
  }

  get confirmedLsn(): Lsn {
    return this.flushed;
  }

  /** Sends a standby status update with the current confirmed position. */
  sendStatus(replyRequested: boolean): void {
    if (this.ended || !this.conn) return;
    const buf = Buffer.alloc(34);
    buf[0] = 0x72; // 'r'
    // write = flush = apply: we report only what is acknowledged downstream, never merely received.
    buf.writeBigUInt64BE(this.flushed, 1);
    buf.writeBigUInt64BE(this.flushed, 9);
    buf.writeBigUInt64BE(this.flushed, 17);
    buf.writeBigInt64BE(nowPgMicros(), 25);
    buf[33] = replyRequested ? 1 : 0;
    this.conn.sendCopyFromChunk(buf);
  }

  /** Stop reading from the socket (backpressure); TCP flow control then slows the walsender. */
  pause(): void {
    this.conn.stream.pause();
  }

  resume(): void {
    this.conn.stream.resume();
  }

  /**
   * Sends the final confirmed position, ends the copy and waits for the server to acknowledge the end, so
   * the position is in the server's memory before we disconnect.
   */
  async stop(maxWaitMs = STOP_WAIT_MS): Promise<void> {
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.resume();
    if (!this.ended && this.conn) {
      this.sendStatus(false);
      this.conn.endCopyFrom();
      // A walsender in the middle of a large transaction may keep sending it before it answers our
      // CopyDone; the position it needs was in the status update above, so do not wait for ever.
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          this.copyDone,
          new Promise((resolve) => (timer = setTimeout(resolve, maxWaitMs))),
        ]);
      } catch {
        /* reported through `failure` */
      } finally {
        clearTimeout(timer);
      }
    }
    await this.client?.end().catch(() => undefined);
    if (this.failure && !/terminat|closed/i.test(this.failure.message)) throw this.failure;
  }

  /** Abandon the connection without confirming anything more (used on errors). */
  async destroy(): Promise<void> {
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.ended = true;
    // Never connected (the connection failed): nothing to close.
    await this.client?.end().catch(() => undefined);
  }

  /** Rejects if the stream ended with an error; resolves when it ended cleanly. */
  get done(): Promise<unknown> {
    return this.copyDone;
  }
}
