// One sink run. A puller pulls messages and queues them per source table (one Pub/Sub ordering key per
// table, decision 5 in the design); up to MAX_TABLE_WORKERS tables are written at once, each table's
// messages strictly in delivery order, a batch at a time: BigQuery first (tables.ts order: history,
// truncates, replica), then `_failed` records, then the ack. So pulling, decoding, writing and acking
// overlap across tables (and, within a table, the next batch is decoded while the current one is written),
// in-flight messages are bounded, and one table never waits for another:
//   - a table whose new schema the Write API does not see yet is retried later (backoff), the others go on;
//   - a table BigQuery refuses permanently (HTTP 400) has its messages recorded in `_failed`, raw and
//     republishable, then acked — never a reason to hold back other tables;
//   - anything else (BigQuery or Pub/Sub unreachable) ends the run; nothing unwritten is acked, and
//     everything in hand is given back (nack) for the next run.
// Acks and nacks respect ordering: within a table only a prefix of the delivered messages is ever acked,
// and a give-back returns every message in hand ("When the Pub/Sub service redelivers a message with an
// ordering key, the Pub/Sub service also redelivers every subsequent message with the same ordering key,
// including acknowledged messages", https://cloud.google.com/pubsub/docs/ordering).
//
// When is a bounded run done: when a pull that started with no message in hand waited the full pull wait
// and the server answered with nothing (a pull our own deadline cut short does not count). With ordering keys Pub/Sub (and its emulator) holds back a key's next messages
// while earlier ones are outstanding, and any pull may return fewer messages than are available, so an
// empty pull while we hold messages proves nothing; one with nothing outstanding anywhere does (up to
// messages published meanwhile, which are the next run's). Otherwise the run ends at its time budget.

import { ContractError, decodeBatch, decodeSizedBatch, gzipDecodedSize } from '../contract/codec';
import { qualifiedName } from '../contract/events';
import { SchemaPropagatingError } from './append';
import { BigQueryApiError, BigQueryRest } from './bigquery-rest';
import { bigQueryClient, storageWriteClient, subscriberClient } from './clients';
import type { SinkConfig } from './config';
import { FailedRecord, FailedTable, rawMessageFailure } from './failed';
import { StorageWriteError } from './storage-writer';
import { Inbound, PubSubError, SubscriptionReader } from './subscription';
import { TableMessage, TableSink } from './table-sink';
import { WriterPool } from './writer-pool';

export interface SinkSummary {
  messages: number;
  /** Messages Pub/Sub gave up delivering (dead-letter subscription), now recorded in `_failed`. */
  deadLetters: number;
  events: number;
  replicaRows: number;
  changelogRows: number;
  /** `_failed` records written (errors and warnings). */
  failed: number;
  tables: string[];
  /** Messages given back un-acked at the end (time budget, signal, or a table still retrying). */
  givenBack: number;
  /**
   * The most JSON text (chars) held decoded at once during the run, all tables together: what
   * DECODED_CHARS_BUDGET bounds (plus one message per worker). Shows how close a run came to the bound.
   */
  peakDecodedChars: number;
  seconds: number;
}

/** BigQuery refused or could not be reached (exit code 6). */
export class BigQueryError extends Error {
  override name = 'BigQueryError';
}

export { PubSubError };

/** Tables written at the same time. */
export const MAX_TABLE_WORKERS = 4;
// Bounded memory. Pulled, un-acked messages are kept as Pub/Sub delivered them (compressed), at most this
// many bytes of them; a message is decoded only when its table's worker takes it into a batch (or decodes it
// ahead, below), and a batch takes messages until their JSON text reaches BATCH_JSON_CHARS (at least one
// message). So what is decoded at any time is at most DECODED_CHARS_BUDGET of JSON plus one message per
// worker, whatever the backlog: decoded events and their rows cost a few bytes of heap per byte of JSON, and
// the job runs in a 512Mi container (sink/runtime.ts). Decoding everything pulled at once held a whole
// backlog in the heap (600 MB RSS on bench:e2e's 170,700 changes, and 7× the CPU in garbage collection under
// the job's heap cap).
const MAX_IN_HAND_BYTES = 32 * 1024 * 1024;
export const BATCH_JSON_CHARS = 8 * 1024 * 1024;
// While a table's batch is written, its next batch is decoded ahead (takeBatch's `ahead`), so BigQuery's work
// on the one overlaps the sink's decoding of the other instead of taking turns with it. Decoded JSON across
// all tables (batches being written and batches decoded ahead) is what the budget bounds: a batch decodes past
// its first message, and a table decodes ahead at all, only while the total leaves room, so with every worker
// busy on full batches nothing is decoded ahead.
export const DECODED_CHARS_BUDGET = MAX_TABLE_WORKERS * BATCH_JSON_CHARS;
// A table whose schema change the Write API does not see yet is retried after these delays (the last one
// repeats): BigQuery speaks of minutes.
const PROPAGATION_BACKOFF_MS = [1000, 2000, 5000, 10_000, 20_000, 30_000];
// Longest stretch of decoding before the event loop gets a turn.
const ROUTE_SLICE_MS = 20;

interface Queued {
  inbound: Inbound;
  /** Set while decoded: when a batch takes it, or ahead of that while the table's current batch is written. */
  message?: TableMessage;
  /** Size of the decoded payload as JSON text. */
  chars: number;
  /** Why the payload cannot be read (decided when it is decoded). */
  poison?: string;
}

interface TableQueue {
  name: string;
  sink: TableSink;
  pending: Queued[];
  running: boolean;
  notBefore: number;
  retries: number;
  timer?: NodeJS.Timeout;
  /** The table's last batch recorded and acked (or its failure reported): acks go out in order. */
  acked: Promise<void>;
}

export async function runSink(
  cfg: SinkConfig,
  opts: { log?: (line: string) => void; signal?: AbortSignal } = {},
): Promise<SinkSummary> {
  const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const started = Date.now();
  const deadline = started + cfg.maxRunSeconds * 1000;
  const waitMs = cfg.pullWaitSeconds * 1000;
  const maxInHand = Math.max(cfg.batchMessages * MAX_TABLE_WORKERS * 2, 100);
  const summary: SinkSummary = {
    messages: 0,
    deadLetters: 0,
    events: 0,
    replicaRows: 0,
    changelogRows: 0,
    failed: 0,
    tables: [],
    givenBack: 0,
    peakDecodedChars: 0,
    seconds: 0,
  };
  const tablesSeen = new Set<string>();

  const rest = new BigQueryRest(bigQueryClient(cfg), cfg.bigQueryProject, cfg.dataset, cfg.location);
  const writer = storageWriteClient(cfg);
  const pool = new WriterPool(writer);
  const reader = new SubscriptionReader(subscriberClient(), cfg.subscription);
  const failedTable = new FailedTable(rest, writer, cfg.subscription);
  const ctx = { rest, pool, maxStalenessMinutes: cfg.maxStalenessMinutes, log };
  const queues = new Map<string, TableQueue>();

  // Every message pulled and not acked: leases renewed until we ack or give it back.
  const inHand = new Set<Inbound>();
  let inHandBytes = 0;
  /** JSON chars of the messages held decoded (Queued.message set), all tables. */
  let decodedChars = 0;
  const forget = (t: Queued): void => {
    if (!t.message) return;
    decodedChars -= t.chars;
    t.message = undefined;
  };
  let largestMessage = 0;
  const lease = reader.keepLeased(() => [...inHand]);
  let fatal: Error | null = null;
  let stopping = false;
  let running = 0;
  /** Ack chains still going (a batch written, its `_failed` records and ack not yet done). */
  const acking = new Set<Promise<void>>();
  const waitingForWorker: TableQueue[] = [];
  let wakers: (() => void)[] = [];
  const changed = () => {
    const w = wakers;
    wakers = [];
    w.forEach((f) => f());
  };
  const nextChange = () => new Promise<void>((resolve) => wakers.push(resolve));
  const release = (messages: Inbound[]) => {
    for (const m of messages) if (inHand.delete(m)) inHandBytes -= m.data.length;
    changed();
  };
  let onFatal: () => void = () => undefined;
  const fatalHappened = new Promise<void>((resolve) => (onFatal = resolve));
  const fail = (e: unknown) => {
    fatal ??= classify(e);
    onFatal();
    changed();
  };
  // One `_failed` write at a time: it is one table, one connection.
  let failedChain: Promise<void> = Promise.resolve();
  const writeFailed = (records: FailedRecord[]): Promise<void> => {
    if (records.length === 0) return Promise.resolve();
    const p = failedChain.then(() => failedTable.write(records));
    failedChain = p.catch(() => undefined);
    summary.failed += records.length;
    return p;
  };

  const kick = (q: TableQueue): void => {
    if (q.running || stopping || fatal || q.pending.length === 0) return;
    const wait = q.notBefore - Date.now();
    if (wait > 0) {
      if (!q.timer) {
        q.timer = setTimeout(() => {
          q.timer = undefined;
          kick(q);
        }, wait);
      }
      return;
    }
    if (running >= MAX_TABLE_WORKERS) {
      if (!waitingForWorker.includes(q)) waitingForWorker.push(q);
      return;
    }
    running += 1;
    q.running = true;
    void work(q).finally(() => {
      running -= 1;
      q.running = false;
      kick(q);
      while (running < MAX_TABLE_WORKERS && waitingForWorker.length > 0) kick(waitingForWorker.shift()!);
      changed();
    });
  };

  /**
   * The batch that starts at `from` in a table's queue: up to cfg.batchMessages messages and BATCH_JSON_CHARS
   * of decoded JSON (at least one message), each decoded now. A payload that is not a valid batch of this
   * very table is poison: recorded raw in `_failed` with the batch, and acked with it. `ahead`: the batch
   * after the one being written, decoded early (work() takes it later from the queue's head); then even its
   * first message waits for room in the budget, and decoding stops once `ahead.stop` is set.
   */
  const takeBatch = async (q: TableQueue, from = 0, ahead?: { stop: boolean }): Promise<Queued[]> => {
    const take: Queued[] = [];
    let chars = 0;
    let sliceStart = Date.now();
    // The entries themselves, not positions: the queue may change while decoding yields.
    for (const t of q.pending.slice(from, from + cfg.batchMessages)) {
      // Stop before a message that would take the batch past its budget (a first message always goes).
      const size = t.message ? t.chars : decodedSize(t.inbound);
      if (take.length > 0 && chars + size > BATCH_JSON_CHARS) break;
      // Past its first message (or decoding ahead) a batch decodes only within the run's budget (other
      // tables' batches, and batches decoded ahead, count too), so decoded JSON stays within
      // DECODED_CHARS_BUDGET plus one message per worker.
      if ((take.length > 0 || ahead) && !t.message && decodedChars + size > DECODED_CHARS_BUDGET) break;
      if (!t.message && t.poison === undefined) {
        // Decoding is synchronous: between messages, let acks, lease renewals and other tables run.
        if (Date.now() - sliceStart >= ROUTE_SLICE_MS) {
          await new Promise((r) => setImmediate(r));
          sliceStart = Date.now();
        }
        if (ahead && (ahead.stop || stopping || fatal)) break;
        decodeQueued(t, q);
      }
      take.push(t);
      chars += t.message ? t.chars : size;
    }
    return take;
  };

  const decodeQueued = (t: Queued, q: TableQueue): void => {
    const m = t.inbound;
    try {
      const { batch, chars } = decodeSizedBatch(m.data, m.attributes);
      if (batch.schema !== q.sink.schema || batch.table !== q.sink.table) {
        t.poison = `its payload is a batch of ${qualifiedName(batch.schema, batch.table)} but its attributes say ${q.name}`;
        return;
      }
      tablesSeen.add(q.name);
      t.chars = chars;
      t.message = { messageId: m.messageId, attributes: m.attributes, attempts: m.attempts, batch };
      decodedChars += chars;
      // The high-water mark, kept where the total can only have grown (one comparison per message).
      if (decodedChars > summary.peakDecodedChars) summary.peakDecodedChars = decodedChars;
    } catch (e) {
      if (!(e instanceof ContractError)) throw e;
      t.poison = e.message;
    }
  };

  /**
   * Writes the next batch of one table's messages (a prefix, in delivery order), then records and acks it
   * behind: while the batch is written the table's next batch is decoded (takeBatch's `ahead`), and once
   * BigQuery accepted it the next batch is written while this one's `_failed` records and ack go out. A
   * table's acks stay in delivery order (one chain per table), each after its own `_failed` records, and none
   * is sent once the run has failed: what is not acked is given back.
   */
  const work = async (q: TableQueue): Promise<void> => {
    let take: Queued[] = [];
    try {
      take = await takeBatch(q);
    } catch (e) {
      fail(e);
      return;
    }
    const inbound = take.map((t) => t.inbound);
    const poison: FailedRecord[] = [];
    const messages: TableMessage[] = [];
    for (const t of take) {
      if (t.message) messages.push(t.message);
      else poison.push(rawMessageFailure(t.inbound, `poison message: ${t.poison ?? 'unreadable'}`));
    }
    let failed: FailedRecord[];
    let counts = { events: 0, replicaRows: 0, changelogRows: 0 };
    const applying = q.sink.apply(messages);
    const stopAhead = { stop: false };
    // Awaited before work() returns (so the table's next batch starts decoded, and nothing is decoded once
    // a retry dropped the decoded form), but after this batch's ack is queued: the ack does not wait for it.
    const ahead = takeBatch(q, take.length, stopAhead).then(() => undefined, fail);
    try {
      const r = await applying;
      failed = [...poison, ...r.failed];
      counts = r;
      q.retries = 0;
    } catch (e) {
      stopAhead.stop = true;
      await ahead;
      if (e instanceof SchemaPropagatingError) {
        // Kept in hand (leases renewed), retried later; other tables go on meanwhile. Their decoded form is
        // dropped (the batch decoded ahead too), so a table waiting for BigQuery holds only the compressed
        // payloads.
        q.pending.forEach(forget);
        q.sink.dropConnections();
        const delay = PROPAGATION_BACKOFF_MS[Math.min(q.retries, PROPAGATION_BACKOFF_MS.length - 1)];
        if (q.retries === 0) log(`${q.name}: BigQuery's Write API does not see the new schema yet; retrying`);
        q.retries += 1;
        q.notBefore = Date.now() + delay;
        return;
      }
      if (!(e instanceof BigQueryApiError && e.status === 400)) {
        fail(e);
        return;
      }
      q.sink.dropConnections();
      // Poison messages keep their own reason; the others are recorded raw, to be republished.
      const refused = `BigQuery refused the tables of ${q.name}: ${e.message}`;
      failed = [
        ...poison,
        ...take.filter((t) => t.message).map((t) => rawMessageFailure(t.inbound, refused)),
      ];
    }
    q.pending.splice(0, take.length);
    take.forEach(forget);
    const acked = q.acked.then(async () => {
      if (fatal) return;
      await writeFailed(failed);
      await reader.ack(inbound);
      summary.events += counts.events;
      summary.replicaRows += counts.replicaRows;
      summary.changelogRows += counts.changelogRows;
      summary.messages += take.length;
      release(inbound);
    });
    const settled = acked.catch(fail);
    q.acked = settled;
    acking.add(settled);
    void settled.finally(() => {
      acking.delete(settled);
      changed();
    });
    await ahead;
  };

  const route = async (batch: Inbound[]): Promise<void> => {
    const poison: Inbound[] = [];
    const touched = new Set<TableQueue>();
    for (const m of batch) {
      inHand.add(m);
      inHandBytes += m.data.length;
      largestMessage = Math.max(largestMessage, m.data.length);
    }
    let sliceStart = Date.now();
    for (const m of batch) {
      // The listener names the table in the attributes (contract/events.ts BatchAttributes): the message
      // waits undecoded in its table's queue. Without them the payload is decoded here to find its table.
      const { schema, table } = m.attributes;
      let queued: Queued;
      let qs: string;
      let qt: string;
      if (schema && table) {
        [qs, qt] = [schema, table];
        queued = { inbound: m, chars: 0 };
      } else {
        if (Date.now() - sliceStart >= ROUTE_SLICE_MS) {
          await new Promise((r) => setImmediate(r));
          sliceStart = Date.now();
        }
        let decoded;
        try {
          decoded = decodeSizedBatch(m.data, m.attributes);
        } catch (e) {
          if (!(e instanceof ContractError)) throw e;
          poison.push(m);
          continue;
        }
        const b = decoded.batch;
        [qs, qt] = [b.schema, b.table];
        tablesSeen.add(qualifiedName(qs, qt));
        // Queued undecoded like the others (decoded again when its batch takes it): what is decoded at any
        // time stays the batches being written.
        queued = { inbound: m, chars: 0 };
      }
      // Keyed by schema and table apart: `a.b`.`c` and `a`.`b.c` are two tables.
      const key = `${qs}\u0000${qt}`;
      let q = queues.get(key);
      if (!q) {
        q = {
          name: qualifiedName(qs, qt),
          sink: new TableSink(ctx, qs, qt),
          pending: [],
          running: false,
          notBefore: 0,
          retries: 0,
          acked: Promise.resolve(),
        };
        queues.set(key, q);
      }
      q.pending.push(queued);
      touched.add(q);
    }
    touched.forEach(kick);
    if (poison.length > 0) {
      await writeFailed(poison.map((m) => rawMessageFailure(m, `poison message: ${whyPoison(m)}`)));
      await reader.ack(poison);
      summary.messages += poison.length;
      release(poison);
    }
  };

  const aborted = new Promise<void>((resolve) => {
    if (opts.signal?.aborted) resolve();
    opts.signal?.addEventListener('abort', () => resolve(), { once: true });
  });

  try {
    try {
      await rest.ensureDataset();
      await failedTable.open();
    } catch (e) {
      throw classify(e);
    }
    let drained = false;
    while (!fatal && !opts.signal?.aborted) {
      if (cfg.mode === 'once' && Date.now() >= deadline) break;
      if (inHand.size >= maxInHand || inHandBytes >= MAX_IN_HAND_BYTES) {
        await Promise.race([nextChange(), aborted]);
        continue;
      }
      const idleBefore = inHand.size === 0;
      // A pull brings at most what still fits MAX_IN_HAND_BYTES at the largest message size seen so far
      // (1 MiB, the listener's default, until one is seen); Pub/Sub documents no byte limit of its own.
      const room = Math.floor((MAX_IN_HAND_BYTES - inHandBytes) / Math.max(largestMessage, 1024 * 1024));
      const pulling = reader.pull(
        Math.max(1, Math.min(cfg.batchMessages, maxInHand - inHand.size, room)),
        waitMs,
      );
      const pulled = await Promise.race([pulling, aborted.then(() => null), fatalHappened.then(() => null)]);
      if (pulled === null) {
        // Whatever the pull still brings is given back at once, not left leased.
        void pulling.then((late) => reader.nack(late.messages)).catch(() => undefined);
        break;
      }
      const batch = pulled.messages;
      if (fatal || (cfg.mode === 'once' && Date.now() >= deadline && batch.length > 0)) {
        await reader.nack(batch);
        summary.givenBack += batch.length;
        break;
      }
      if (batch.length === 0) {
        if (!pulled.complete) {
          log('a pull ended by its deadline before the answer was read: not counted as empty');
          continue;
        }
        if (idleBefore && inHand.size === 0) {
          if (cfg.mode === 'once') {
            drained = true;
            break;
          }
          // Continuous mode never reaches the end of the run: record dead letters whenever it is idle.
          if (cfg.deadLetterSubscription)
            summary.deadLetters += await recordDeadLetters(cfg, writeFailed, log);
        }
        continue;
      }
      await route(batch);
    }
    // Let the batches being written finish (and be acked); start no new ones.
    stopping = true;
    while (running > 0 || acking.size > 0) await nextChange();
    if (fatal) throw fatal;
    if (cfg.mode === 'once' && drained && cfg.deadLetterSubscription) {
      summary.deadLetters += await recordDeadLetters(cfg, writeFailed, log);
    }
  } catch (e) {
    throw classify(e);
  } finally {
    stopping = true;
    lease.stop();
    for (const q of queues.values()) if (q.timer) clearTimeout(q.timer);
    await Promise.allSettled([...acking]);
    if (inHand.size > 0) {
      summary.givenBack += inHand.size;
      log(`giving back ${inHand.size} message(s) not written in this run; Pub/Sub redelivers them`);
      await reader.nack([...inHand]);
    }
    pool.close();
    failedTable.close();
    writer.close();
    await reader.close().catch(() => undefined);
  }
  summary.tables = [...tablesSeen].sort();
  summary.seconds = Math.round((Date.now() - started) / 100) / 10;
  return summary;
}

/** The payload's size once decoded, known before decoding it (an estimate: a wrong one only sizes a batch differently). */
function decodedSize(m: Inbound): number {
  const size = m.attributes.encoding === 'json+gzip' ? gzipDecodedSize(m.data) : undefined;
  return size ?? m.data.length;
}

function whyPoison(m: Inbound): string {
  try {
    decodeBatch(m.data, m.attributes);
    return 'unreadable';
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * Messages Pub/Sub forwarded to the dead-letter topic after too many failed deliveries: recorded in `_failed`
 * with the reason and the raw payload (so they can be fixed and republished), then acked — never dropped.
 */
async function recordDeadLetters(
  cfg: SinkConfig,
  writeFailed: (records: FailedRecord[]) => Promise<void>,
  log: (line: string) => void,
): Promise<number> {
  const reader = new SubscriptionReader(subscriberClient(), cfg.deadLetterSubscription!);
  let n = 0;
  let cutShort = 0;
  try {
    for (;;) {
      const { messages: batch, complete } = await reader.pull(cfg.batchMessages, cfg.pullWaitSeconds * 1000);
      // An incomplete pull may have stranded messages; they come back to a later run.
      if (batch.length === 0 && (complete || ++cutShort >= 3)) break;
      if (batch.length === 0) continue;
      await writeFailed(
        batch.map((m) =>
          rawMessageFailure(
            m,
            `dead letter: Pub/Sub stopped redelivering this message after ${m.attempts ?? 'too many'} ` +
              'failed deliveries (the sink failed on it each time; its logs say why)',
          ),
        ),
      );
      await reader.ack(batch);
      n += batch.length;
    }
  } catch (e) {
    throw classify(e);
  } finally {
    await reader.close().catch(() => undefined);
  }
  if (n > 0) log(`recorded ${n} dead-lettered message(s) in _failed`);
  return n;
}

function classify(e: unknown): Error {
  if (e instanceof PubSubError || e instanceof BigQueryError) return e;
  if (e instanceof StorageWriteError || e instanceof BigQueryApiError || e instanceof SchemaPropagatingError)
    return new BigQueryError(e.message);
  return e as Error;
}
