// Packs change events into Pub/Sub messages (one table per message, many events each) and tracks which
// slot position is safe to confirm: a commit's end LSN becomes confirmable only once every event decoded
// before it sits in a message Pub/Sub has acknowledged (DESIGN §4.1).

import { ChangeEvent, ColumnInfo, Encoding } from '../contract/events';
import { encodeSerializedBatch } from '../contract/codec';
import { Lsn } from '../contract/lsn';
import { TableState } from './decoders/types';

export interface OutgoingMessage {
  data: Buffer;
  attributes: Record<string, string>;
}

/** Where messages go: the real Pub/Sub topic in production, the same wrapped with faults in tests. */
export interface MessageSink {
  /** Resolves with the message id once Pub/Sub acknowledged the publish. */
  publish(msg: OutgoingMessage): Promise<string>;
}

interface TableBuffer {
  schema: string;
  table: string;
  columns: ColumnInfo[];
  events: string[];
  chars: number;
  firstIndex: number;
  firstSeq: string;
  lastSeq: string;
}

export interface PublisherOptions {
  encoding: Encoding;
  maxMessageBytes: number;
  maxEventsPerMessage: number;
}

export interface PublisherStats {
  events: number;
  messages: number;
  /** Payload bytes as sent (after compression). */
  bytes: number;
  /** Characters of event JSON added (before compression). */
  chars: number;
}

export class EventPublisher {
  private readonly buffers = new Map<string, TableBuffer>();
  /** Published but not yet acknowledged messages: id → lowest event index inside. */
  private readonly outstanding = new Map<number, { minIndex: number; chars: number }>();
  private readonly pending = new Set<Promise<void>>();
  private checkpoints: { after: number; lsn: Lsn }[] = [];
  private checkpointHead = 0;
  private nextIndex = 0;
  private nextMessageId = 0;
  private confirmableLsn: Lsn = 0n;
  /** Characters of event JSON held in buffers or awaiting acknowledgement (memory bound). */
  inFlightChars = 0;
  failure: Error | undefined;
  readonly stats: PublisherStats = { events: 0, messages: 0, bytes: 0, chars: 0 };
  /** Called whenever the confirmable position moves forward, and whenever in-flight bytes drop. */
  onProgress: (confirmable: Lsn) => void = () => undefined;

  constructor(
    private readonly sink: MessageSink,
    private readonly opts: PublisherOptions,
  ) {}

  add(table: TableState, event: ChangeEvent): void {
    const key = `${table.schema}.${table.table}`;
    let buf = this.buffers.get(key);
    // A new column list starts a new message: every message describes its events' columns exactly.
    if (buf && buf.columns !== table.columns) {
      this.flush(key, buf);
      buf = undefined;
    }
    const json = JSON.stringify(event);
    if (!buf) {
      buf = {
        schema: table.schema,
        table: table.table,
        columns: table.columns,
        events: [],
        chars: 0,
        firstIndex: this.nextIndex,
        firstSeq: event.seq,
        lastSeq: event.seq,
      };
      this.buffers.set(key, buf);
    }
    buf.events.push(json);
    buf.chars += json.length;
    buf.lastSeq = event.seq;
    this.inFlightChars += json.length;
    this.stats.chars += json.length;
    this.nextIndex++;
    this.stats.events++;
    if (buf.events.length >= this.opts.maxEventsPerMessage || buf.chars >= this.opts.maxMessageBytes) {
      this.flush(key, buf);
    }
  }

  /** A transaction committed: its end LSN is confirmable once everything decoded so far is acknowledged. */
  commit(endLsn: Lsn): void {
    this.checkpoints.push({ after: this.nextIndex, lsn: endLsn });
    this.advance();
  }

  flushAll(): void {
    for (const [key, buf] of this.buffers) this.flush(key, buf);
  }

  /** Waits for every message handed to Pub/Sub so far to be acknowledged or failed. */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  get confirmable(): Lsn {
    return this.confirmableLsn;
  }

  private flush(key: string, buf: TableBuffer): void {
    this.buffers.delete(key);
    if (buf.events.length === 0) return;
    const id = this.nextMessageId++;
    this.outstanding.set(id, { minIndex: buf.firstIndex, chars: buf.chars });
    const p = encodeSerializedBatch(
      { v: 1, schema: buf.schema, table: buf.table, columns: buf.columns },
      buf.events,
      buf.firstSeq,
      buf.lastSeq,
      this.opts.encoding,
    )
      .then(async ({ data, attributes }) => {
        await this.sink.publish({ data, attributes });
        this.stats.messages++;
        this.stats.bytes += data.length;
        this.outstanding.delete(id);
        this.inFlightChars -= buf.chars;
        this.advance();
      })
      .catch((e: unknown) => {
        // The message stays outstanding: nothing at or after its first event can ever be confirmed.
        this.failure ??= e instanceof Error ? e : new Error(String(e));
        // Tell the run now: it may be paused on in-flight bytes that will never be acknowledged.
        this.onProgress(this.confirmableLsn);
      })
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Lowest event index not yet acknowledged (buffered or in flight). */
  private watermark(): number {
    let w = this.nextIndex;
    for (const b of this.buffers.values()) if (b.firstIndex < w) w = b.firstIndex;
    for (const o of this.outstanding.values()) if (o.minIndex < w) w = o.minIndex;
    return w;
  }

  private advance(): void {
    const w = this.watermark();
    while (
      this.checkpointHead < this.checkpoints.length &&
      this.checkpoints[this.checkpointHead].after <= w
    ) {
      const lsn = this.checkpoints[this.checkpointHead++].lsn;
      if (lsn > this.confirmableLsn) this.confirmableLsn = lsn;
    }
    if (this.checkpointHead > 4096 && this.checkpointHead * 2 > this.checkpoints.length) {
      this.checkpoints = this.checkpoints.slice(this.checkpointHead);
      this.checkpointHead = 0;
    }
    this.onProgress(this.confirmableLsn);
  }
}
