// Compresses and publishes the snapshot's messages while the next rows are being read: gzip runs on
// libuv's thread pool (zlib's async API), publishing keeps the order of one table's messages (the ordering
// key, shared decision 5), and the bytes in flight are bounded so the reader can be paused.

import { gzip as gzipCb } from 'node:zlib';
import { promisify } from 'node:util';
import { CONTRACT_VERSION, Encoding, qualifiedName } from '../contract/events';
import { EncodedMessage } from './snapshot-encoder';
import { MessageSink } from './publisher';

const gzip = promisify(gzipCb);

export interface SnapshotPublisherStats {
  messages: number;
  /** Payload bytes as sent (after compression). */
  bytes: number;
}

export class SnapshotPublisher {
  /** Settles once the latest message was handed to the sink (publish calls stay in order). */
  private tail: Promise<void> = Promise.resolve();
  private readonly pending = new Set<Promise<boolean>>();
  private waiters: (() => void)[] = [];
  /** Memory held by messages handed to send() and not yet acknowledged or failed (EncodedMessage.heldBytes). */
  inFlightBytes = 0;
  failure: Error | undefined;
  readonly stats: SnapshotPublisherStats = { messages: 0, bytes: 0 };

  constructor(
    private readonly sink: MessageSink,
    private readonly schema: string,
    private readonly table: string,
    private readonly encoding: Encoding,
  ) {}

  /**
   * Compresses and publishes one message. The promise resolves once Pub/Sub acknowledged it (true) or it
   * failed (false; it never rejects: the error is kept in `failure`).
   */
  send(msg: EncodedMessage): Promise<boolean> {
    // What the message holds until acknowledged: its JSON buffer until compressed, then the compressed
    // payload (the sink keeps it until Pub/Sub answers); uncompressed, the buffer itself is the payload.
    let size = msg.heldBytes;
    this.inFlightBytes += size;
    // Level 1, as contract/codec.ts encodes batches: Pub/Sub bills bytes but CPU time bounds a job's run.
    // Compressed, the JSON bytes are free for the next message once gzip read them; uncompressed, they are
    // the payload and the sink may keep them, so they are never reused.
    const data =
      this.encoding === 'json+gzip'
        ? gzip(msg.json, { level: 1 })
            .then((payload) => {
              this.inFlightBytes -= size - payload.length;
              size = payload.length;
              this.wake();
              return payload;
            })
            .finally(() => msg.release())
        : Promise.resolve(msg.json);
    const previous = this.tail;
    let handedOver: () => void = () => undefined;
    this.tail = new Promise<void>((resolve) => (handedOver = resolve));
    const p = (async () => {
      try {
        const payload = await data;
        await previous;
        // Never publish past a message that failed: the run ends, its progress stays before that message.
        if (this.failure) throw this.failure;
        const ack = this.sink.publish({
          data: payload,
          attributes: {
            v: CONTRACT_VERSION,
            schema: this.schema,
            table: this.table,
            count: String(msg.count),
            firstSeq: msg.firstSeq,
            lastSeq: msg.lastSeq,
            encoding: this.encoding,
          },
          // The stream's key for the same table (publisher.ts): one ordering key per table.
          orderingKey: qualifiedName(this.schema, this.table),
        });
        handedOver();
        await ack;
        this.stats.messages++;
        this.stats.bytes += payload.length;
        return true;
      } catch (e: unknown) {
        this.failure ??= e instanceof Error ? e : new Error(String(e));
        handedOver();
        return false;
      } finally {
        this.inFlightBytes -= size;
        this.wake();
      }
    })().finally(() => this.pending.delete(p));
    this.pending.add(p);
    return p;
  }

  private wake(): void {
    const ready = this.waiters;
    this.waiters = [];
    for (const w of ready) w();
  }

  /** Resolves once at most `bytes` are in flight (at once if so already). */
  async below(bytes: number): Promise<void> {
    while (this.inFlightBytes > bytes && !this.failure) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Waits for every message sent so far to be acknowledged or failed. */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }
}
