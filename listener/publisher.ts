// Packs change events into Pub/Sub messages (one table per message, many events each) and tracks which
// slot position is safe to confirm: a commit's end LSN becomes confirmable only once every event decoded
// before it sits in a message Pub/Sub has acknowledged (DESIGN §4.1).

import { PubSub } from '@google-cloud/pubsub';
import { ChangeEvent, ColumnInfo, Encoding, qualifiedName } from '../contract/events';
import { encodeSerializedBatch } from '../contract/codec';
import { Lsn } from '../contract/lsn';
import { ListenerConfig } from './config';
import { EncodedEvent, TableState, isEncoded } from './decoders/types';
import { PublishError } from './errors';
import { ToastResolver, fillFromOldRow } from './toast-fill';

export interface OutgoingMessage {
  data: Buffer;
  attributes: Record<string, string>;
  /** `schema.table`: Pub/Sub delivers the messages of one ordering key in publish order. */
  orderingKey: string;
}

/** Where messages go: the real Pub/Sub topic in production, the same wrapped with faults in tests. */
export interface MessageSink {
  /** Resolves with the message id once Pub/Sub acknowledged the publish. */
  publish(msg: OutgoingMessage): Promise<string>;
}

/**
 * The real Pub/Sub topic as a MessageSink, publishing with message ordering: each message carries the
 * ordering key `schema.table` (shared decision 5). Google documents, for a subscription with message
 * ordering enabled (https://cloud.google.com/pubsub/docs/ordering):
 *  - "Messages published with the same ordering key are expected to be received in order. Assume for
 *    ordering key A, you publish messages 1, 2, and 3. With ordering enabled, 1 is expected to be delivered
 *    before 2 and 2 is expected to be delivered before 3."
 *  - "Redeliveries of a message trigger redelivery of all subsequent messages for that key, even
 *    acknowledged ones."
 * So one table's events reach the sink in seq order and a redelivery re-sends everything after it: an old
 * UPSERT can never arrive after every copy of a newer DELETE of the same key.
 * The price: "The publish throughput on each ordering key is limited to 1 MBps" (same page), i.e. per table
 * (README, "Throughput"). After a failed publish the client pauses the key ("queued-up messages of the same
 * ordering key in the publisher fail, as well as future publish requests of this ordering key",
 * https://cloud.google.com/pubsub/docs/samples/pubsub-resume-publish-with-ordering-keys): every queued
 * message rejects at once, nothing waits, and since a failed run confirms nothing past the failed message we
 * never call resumePublishing — the next run republishes from there, in order.
 */
export function pubsubSink(
  cfg: Pick<ListenerConfig, 'projectId' | 'topic'>,
): MessageSink & { close(): Promise<void> } {
  const pubsub = new PubSub({ projectId: cfg.projectId });
  const topic = pubsub.topic(cfg.topic, {
    // Our messages are already batches of events (about 1 MiB each before compression): publish them
    // almost at once, a few per request, within Pub/Sub's 10 MB request limit.
    batching: { maxMessages: 8, maxBytes: 9 * 1024 * 1024, maxMilliseconds: 5 },
    messageOrdering: true,
  });
  return {
    publish: async (msg) => {
      try {
        return await topic.publishMessage({
          data: msg.data,
          attributes: msg.attributes,
          orderingKey: msg.orderingKey,
        });
      } catch (e) {
        const err = e as Error & { code?: number };
        if (err.code === 5) {
          throw new PublishError(
            `Pub/Sub topic projects/${cfg.projectId}/topics/${cfg.topic} not found: create it (pulumi up / pgcdc local up) or fix PGCDC_TOPIC`,
          );
        }
        if (err.code === 7) {
          throw new PublishError(
            `not allowed to publish to ${cfg.topic}: grant roles/pubsub.publisher on the topic (${err.message})`,
          );
        }
        throw new PublishError(`publishing to ${cfg.topic} failed: ${err.message}`);
      }
    },
    close: () => pubsub.close(),
  };
}

interface TableBuffer {
  schema: string;
  table: string;
  state: TableState;
  columns: ColumnInfo[];
  /** Event JSON, or the event itself while it waits for its unchanged TOAST values (toast-fill.ts). */
  events: (string | ChangeEvent)[];
  /** How many entries of `events` are held events, and their JSON size before resolving. */
  held: number;
  heldChars: number;
  /** Each event's seq: a message split after resolving needs its own first and last. */
  seqs: string[];
  chars: number;
  firstIndex: number;
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

// Held events per message before the first lookup of a table tells how large its resolved values are.
const FIRST_HELD_LIMIT = 32;

export class EventPublisher {
  private readonly buffers = new Map<string, TableBuffer>();
  /** Published but not yet acknowledged flushes: id → lowest event index inside. */
  private readonly outstanding = new Map<number, { minIndex: number; chars: number }>();
  private readonly pending = new Set<Promise<void>>();
  /** Per table: settles once the table's latest flush has handed its messages to the sink (publish order). */
  private readonly tails = new Map<string, Promise<void>>();
  /** Per table: held events a message may carry, so that resolved values keep it near maxMessageBytes. */
  private readonly heldLimit = new Map<string, number>();
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
    /** Resolves unchanged TOAST values before publishing; without one they are published unchanged. */
    private readonly resolver?: ToastResolver,
  ) {}

  /** Buffers one event; a decoder's pre-serialised event (EncodedEvent) goes in as its JSON text. */
  add(table: TableState, event: ChangeEvent | EncodedEvent): void {
    const key = qualifiedName(table.schema, table.table);
    let buf = this.buffers.get(key);
    // A new column list starts a new message: every message describes its events' columns exactly.
    if (buf && buf.columns !== table.columns) {
      this.flush(key, buf);
      buf = undefined;
    }
    // Unchanged TOAST values: from the event's own old row when it has them, else looked up at flush.
    // An encoded event has no unchanged columns (types.ts), so it is never held.
    const encoded = isEncoded(event);
    const hold = !encoded && this.resolver !== undefined && event.op === 'u' && !fillFromOldRow(event);
    const json = encoded ? event.json : JSON.stringify(event);
    if (!buf) {
      buf = {
        schema: table.schema,
        table: table.table,
        state: table,
        columns: table.columns,
        events: [],
        held: 0,
        heldChars: 0,
        seqs: [],
        chars: 0,
        firstIndex: this.nextIndex,
      };
      this.buffers.set(key, buf);
    }
    buf.events.push(hold ? (event as ChangeEvent) : json);
    if (hold) {
      buf.held++;
      buf.heldChars += json.length;
    }
    buf.seqs.push(event.seq);
    buf.chars += json.length;
    this.inFlightChars += json.length;
    this.stats.chars += json.length;
    this.nextIndex++;
    this.stats.events++;
    if (
      buf.events.length >= this.opts.maxEventsPerMessage ||
      buf.chars >= this.opts.maxMessageBytes ||
      buf.held >= (this.heldLimit.get(key) ?? FIRST_HELD_LIMIT)
    ) {
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

  /**
   * Resolves the held events, then cuts the buffer into messages (a resolved buffer may have outgrown one)
   * and compresses them. Runs concurrently with other flushes; publishing waits for the table's turn.
   */
  private async prepare(key: string, buf: TableBuffer, entry: { chars: number }): Promise<OutgoingMessage[]> {
    let events = buf.events as string[];
    if (buf.held > 0) {
      const held = buf.events.filter((e): e is ChangeEvent => typeof e !== 'string');
      await this.resolver!.resolve(buf.state, held);
      let added = 0;
      events = buf.events.map((e) => {
        if (typeof e === 'string') return e;
        const json = JSON.stringify(e);
        added += json.length;
        return json;
      });
      // Held events were counted at their unresolved size: count what the values added.
      const growth = added - buf.heldChars;
      entry.chars += growth;
      this.inFlightChars += growth;
      const perEvent = added / buf.held;
      this.heldLimit.set(
        key,
        Math.max(
          1,
          Math.min(this.opts.maxEventsPerMessage, Math.floor(this.opts.maxMessageBytes / perEvent)),
        ),
      );
    }
    const header = { v: 1 as const, schema: buf.schema, table: buf.table, columns: buf.columns };
    const last = events.length - 1;
    if (buf.held === 0) {
      const { data, attributes } = await encodeSerializedBatch(
        header,
        events,
        buf.seqs[0],
        buf.seqs[last],
        this.opts.encoding,
      );
      return [{ data, attributes, orderingKey: key }];
    }
    const out: Promise<OutgoingMessage>[] = [];
    let from = 0;
    let chars = 0;
    for (let i = 0; i <= events.length; i++) {
      const cut = i === events.length || (i > from && chars + events[i].length > this.opts.maxMessageBytes);
      if (cut && i > from) {
        const slice = events.slice(from, i);
        out.push(
          encodeSerializedBatch(header, slice, buf.seqs[from], buf.seqs[i - 1], this.opts.encoding).then(
            ({ data, attributes }) => ({ data, attributes, orderingKey: key }),
          ),
        );
        from = i;
        chars = 0;
      }
      if (i < events.length) chars += events[i].length;
    }
    return Promise.all(out);
  }

  private flush(key: string, buf: TableBuffer): void {
    this.buffers.delete(key);
    if (buf.events.length === 0) return;
    const id = this.nextMessageId++;
    const entry = { minIndex: buf.firstIndex, chars: buf.chars };
    this.outstanding.set(id, entry);
    const prepared = this.prepare(key, buf, entry);
    const previous = this.tails.get(key) ?? Promise.resolve();
    let handedOver: () => void = () => undefined;
    this.tails.set(key, new Promise<void>((resolve) => (handedOver = resolve)));
    const p = (async () => {
      try {
        const messages = await prepared;
        // Publish calls in flush order per table: with message ordering the client sends one table's
        // messages in the order publish is called, and Pub/Sub delivers them in that order.
        await previous;
        // Never publish past a message that failed: the run ends and the next one republishes from it.
        if (this.failure) throw this.failure;
        const acks = messages.map((m) => this.sink.publish(m));
        handedOver();
        const results = await Promise.allSettled(acks);
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
        this.stats.messages += messages.length;
        for (const m of messages) this.stats.bytes += m.data.length;
        this.outstanding.delete(id);
        this.inFlightChars -= entry.chars;
        this.advance();
      } catch (e: unknown) {
        // The flush stays outstanding: nothing at or after its first event can ever be confirmed.
        this.failure ??= e instanceof Error ? e : new Error(String(e));
        handedOver();
        // Tell the run now: it may be paused on in-flight bytes that will never be acknowledged.
        this.onProgress(this.confirmableLsn);
      }
    })().finally(() => this.pending.delete(p));
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
