// Everything the sink does for one source table, per batch of its messages (in delivery order):
//   1. schemas (schema-evolution.ts): both BigQuery tables hold the batch's columns (and companions);
//   2. history rows (history-rows.ts), plain appends: every replica row has its history row first;
//   3. truncates (truncate.ts): CDC deletes of the keys the history knows before the truncate;
//   4. replica rows (replica-rows.ts): UPSERT/DELETE with _CHANGE_SEQUENCE_NUMBER = the event's seq.
// The caller acks the batch's messages only after this resolved and its `_failed` records were written.
//
// Pipelining: a batch without a truncate is written in chunks of CHUNK_EVENTS events, up to
// CHUNKS_IN_FLIGHT at once on the table's two connections: a chunk's replica rows are sent as soon as BigQuery
// accepted its history rows (so every replica row still has its history row first, and an event whose history
// row BigQuery rejected gets no replica row), while the next chunks are being encoded and sent. The Write
// API answers a connection's requests in order ("Responses are received in the same order in which requests
// are sent", and on the default stream "data is visible immediately upon successful append", storage.proto's
// AppendRows, https://cloud.google.com/java/docs/reference/google-cloud-bigquerystorage/2.28.1/com.google.cloud.bigquery.storage.v1.BigQueryWriteGrpc.BigQueryWriteImplBase),
// so several requests in flight on one connection are safe; rows of different requests need no order among
// themselves (history: deduplicated by _event_id; replica: ordered by _CHANGE_SEQUENCE_NUMBER). A batch
// with a truncate keeps the strict order of steps 2-4 for the whole batch: the truncate's deletes come from
// a history query, which must see every history row before it.
// No query runs here except one per TRUNCATE event: the listener resolves unchanged TOAST values (events
// arrive whole, or flagged), so the sink never reads the history to complete a row.

import type { ChangeEvent } from '../contract/events';
import { compareSeq } from '../contract/lsn';
import { appendItems } from './append';
import type { BigQueryRest } from './bigquery-rest';
import { decodeEvent, EventWork, TableMessage } from './event-work';
import { failedEvent, FailedRecord } from './failed';
import { historyRow } from './history-rows';
import { changesTableName, replicaTableName, seqToLabel } from './names';
import { forReplica, replicaSkipReason } from './replica-rows';
import { TableSchemas } from './schema-evolution';
import { truncateReplica } from './truncate';
import type { WriterPool } from './writer-pool';

export type { TableMessage };

/** Events per chunk of a pipelined batch (one history and one replica AppendRows request each, normally). */
export const CHUNK_EVENTS = 2000;
/** Chunks of one table written at the same time. */
export const CHUNKS_IN_FLIGHT = 4;
// Decoding is synchronous: let pulls, lease renewals, acks and other tables run between slices of it.
const DECODE_YIELD_EVERY = 1000;

export interface SinkContext {
  rest: BigQueryRest;
  pool: WriterPool;
  maxStalenessMinutes: number;
  log: (line: string) => void;
}

export interface TableApplyResult {
  /** `_failed` records (errors and warnings) of this batch, to be written before the ack. */
  failed: FailedRecord[];
  events: number;
  replicaRows: number;
  changelogRows: number;
}

export class TableSink {
  readonly replicaName: string;
  readonly changesName: string;
  readonly source: string;
  private readonly schemas: TableSchemas;

  constructor(
    private readonly ctx: SinkContext,
    readonly schema: string,
    readonly table: string,
  ) {
    this.source = `${schema}.${table}`;
    this.replicaName = replicaTableName(schema, table);
    this.changesName = changesTableName(schema, table);
    this.schemas = new TableSchemas(
      ctx.rest,
      this.source,
      this.replicaName,
      this.changesName,
      ctx.maxStalenessMinutes,
      ctx.log,
    );
  }

  private tablePath(name: string): string {
    return `projects/${this.ctx.rest.project}/datasets/${this.ctx.rest.dataset}/tables/${name}`;
  }

  /** Forgets this table's connections (after a failure, so a retry starts clean). */
  dropConnections(): void {
    this.ctx.pool.drop(this.tablePath(this.changesName));
    this.ctx.pool.drop(this.tablePath(this.replicaName));
  }

  private async decode(messages: TableMessage[]) {
    const work: EventWork[] = [];
    let plan;
    let sinceYield = 0;
    for (const msg of messages) {
      if (msg.batch.events.length === 0) continue;
      plan = await this.schemas.prepare(msg.batch.columns, firstSeq(msg.batch.events));
      for (const ev of msg.batch.events) {
        if (++sinceYield >= DECODE_YIELD_EVERY) {
          sinceYield = 0;
          await new Promise((r) => setImmediate(r));
        }
        work.push(
          decodeEvent(ev, msg, plan.changes, plan.keyColumns, plan.replica !== null, plan.replicaRename),
        );
      }
    }
    return { work, plan };
  }

  async apply(messages: TableMessage[]): Promise<TableApplyResult> {
    const result: TableApplyResult = { failed: [], events: 0, replicaRows: 0, changelogRows: 0 };
    let { work, plan } = await this.decode(messages);
    // A value a typed column cannot hold goes to the column's companion, created on first need.
    const need = new Set<string>();
    for (const w of work) if (w.needCompanion.size > 0) w.needCompanion.forEach((f) => need.add(f));
    if (need.size > 0 && this.schemas.requestCompanions(need)) ({ work, plan } = await this.decode(messages));
    result.events = work.length;
    if (!plan) return result;
    if (!isSorted(work)) work.sort((a, b) => compareSeq(a.ev.seq, b.ev.seq));

    const changes = await this.ctx.pool.get(
      this.tablePath(this.changesName),
      this.schemas.changesFields,
      false,
    );
    const hasReplicaTable = this.schemas.replicaFields.length > 0 && work.some((w) => w.hasReplica);
    const replica = hasReplicaTable
      ? await this.ctx.pool.get(this.tablePath(this.replicaName), this.schemas.replicaFields, true)
      : null;
    const after = (w: EventWork) =>
      !this.schemas.truncateSeq || compareSeq(w.ev.seq, this.schemas.truncateSeq) > 0;
    const truncates = (w: EventWork) => w.ev.op === 't' && !w.failed && w.hasReplica && after(w);
    const forReplicaTable = (w: EventWork) => !w.failed && w.hasReplica && w.ev.op !== 't' && after(w);

    if (!replica || !work.some(truncates)) {
      // 2 and 4, chunk by chunk (no truncate to order them around).
      await inChunks(work, CHUNK_EVENTS, CHUNKS_IN_FLIGHT, async (chunk) => {
        // (`x += await …` would read x before the await and lose the other chunks' counts.)
        const historyRows = await appendItems(changes, chunk, (w) => [historyRow(w)]);
        result.changelogRows += historyRows;
        if (!replica) return;
        const replicaRows = await appendItems(replica, chunk.filter(forReplicaTable), forReplica);
        result.replicaRows += replicaRows;
      });
    } else {
      // 2. history, all of it: the truncates below query it.
      await inChunks(work, CHUNK_EVENTS, CHUNKS_IN_FLIGHT, async (chunk) => {
        const historyRows = await appendItems(changes, chunk, (w) => [historyRow(w)]);
        result.changelogRows += historyRows;
      });
      // 3. truncates
      for (const w of work) {
        if (!truncates(w)) continue;
        const n = await truncateReplica(this.ctx.rest, this.changesName, replica, w);
        await this.schemas.setTruncateSeq(w.ev.seq, seqToLabel(w.ev.seq));
        this.ctx.log(`${this.source}: truncate at ${w.ev.seq} deleted ${n} keys from ${this.replicaName}`);
        result.replicaRows += n;
      }
      // 4. replica (filtered after the truncates: `after` now sees the newest truncate)
      const replicaWork = work.filter(forReplicaTable);
      await inChunks(replicaWork, CHUNK_EVENTS, CHUNKS_IN_FLIGHT, async (chunk) => {
        const replicaRows = await appendItems(replica, chunk, forReplica);
        result.replicaRows += replicaRows;
      });
    }

    for (const w of work) {
      if (w.failed) {
        result.failed.push(failedEvent(w, w.failed, 'error'));
        continue;
      }
      const notes = w.problems
        .filter((p) => !w.replicaFailed || !p.key)
        .map(
          (p) =>
            `column ${p.column} (${p.type}): ${p.reason}; kept as Postgres text in ${p.field}__pg, ${p.field} is NULL`,
        );
      const skip = replicaSkipReason(w);
      if (skip) notes.push(skip);
      if (w.replicaFailed && w.hasReplica) {
        result.failed.push(failedEvent(w, [w.replicaFailed, ...notes].join('; '), 'error'));
      } else if (notes.length > 0) {
        result.failed.push(failedEvent(w, notes.join('; '), 'warning'));
      }
    }
    return result;
  }
}

function firstSeq(events: ChangeEvent[]): string {
  return events[0]?.seq ?? '0000000000000000/0000000000000000';
}

/** Events normally arrive in seq order (one ordering key per table): then the sort is skipped. */
function isSorted(work: EventWork[]): boolean {
  for (let i = 1; i < work.length; i++) if (compareSeq(work[i - 1].ev.seq, work[i].ev.seq) > 0) return false;
  return true;
}

/**
 * Runs `write` on consecutive chunks of `items`, at most `parallel` at once, in chunk order. After a failure
 * no further chunk starts, and the call rejects with the first error once every started chunk settled (so
 * nothing of this batch is still being written when the caller gives it back or retries it).
 */
export async function inChunks<T>(
  items: T[],
  size: number,
  parallel: number,
  write: (chunk: T[]) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | null = null;
  const lane = async (): Promise<void> => {
    while (!failure && next < items.length) {
      const chunk = items.slice(next, next + size);
      next += size;
      try {
        await write(chunk);
      } catch (e) {
        failure ??= { error: e };
      }
    }
  };
  const lanes: Promise<void>[] = [];
  for (let i = 0; i < parallel && i * size < items.length; i++) lanes.push(lane());
  await Promise.all(lanes);
  if (failure) throw (failure as { error: unknown }).error;
}
