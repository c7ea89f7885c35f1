// Everything the sink does for one source table, per batch of its messages (in delivery order):
//   1. schemas (schema-evolution.ts): both BigQuery tables hold the batch's columns (and companions);
//   2. history rows (history-rows.ts), plain appends: every replica row has its history row first;
//   3. truncates (truncate.ts): CDC deletes of the keys the history knows before the truncate;
//   4. replica rows (replica-rows.ts): UPSERT/DELETE with _CHANGE_SEQUENCE_NUMBER = the event's seq.
// The caller acks the batch's messages only after this resolved and its `_failed` records were written.
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
    for (const msg of messages) {
      if (msg.batch.events.length === 0) continue;
      plan = await this.schemas.prepare(msg.batch.columns, firstSeq(msg.batch.events));
      for (const ev of msg.batch.events) {
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
    const need = new Set(work.flatMap((w) => [...w.needCompanion]));
    if (need.size > 0 && this.schemas.requestCompanions(need)) ({ work, plan } = await this.decode(messages));
    result.events = work.length;
    if (!plan) return result;
    work.sort((a, b) => compareSeq(a.ev.seq, b.ev.seq));

    // 2. history
    const changes = await this.ctx.pool.get(
      this.tablePath(this.changesName),
      this.schemas.changesFields,
      false,
    );
    result.changelogRows = await appendItems(changes, work, (w) => [historyRow(w)]);

    const hasReplicaTable = this.schemas.replicaFields.length > 0 && work.some((w) => w.hasReplica);
    if (hasReplicaTable) {
      const replica = await this.ctx.pool.get(
        this.tablePath(this.replicaName),
        this.schemas.replicaFields,
        true,
      );
      const after = (w: EventWork) =>
        !this.schemas.truncateSeq || compareSeq(w.ev.seq, this.schemas.truncateSeq) > 0;
      // 3. truncates
      for (const w of work) {
        if (w.ev.op !== 't' || w.failed || !w.hasReplica || !after(w)) continue;
        const n = await truncateReplica(this.ctx.rest, this.changesName, replica, w);
        await this.schemas.setTruncateSeq(w.ev.seq, seqToLabel(w.ev.seq));
        this.ctx.log(`${this.source}: truncate at ${w.ev.seq} deleted ${n} keys from ${this.replicaName}`);
        result.replicaRows += n;
      }
      // 4. replica
      const replicaWork = work.filter((w) => !w.failed && w.hasReplica && w.ev.op !== 't' && after(w));
      result.replicaRows += await appendItems(replica, replicaWork, forReplica);
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
