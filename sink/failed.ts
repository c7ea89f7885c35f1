// The `_failed` table: messages and events the sink could not write, with the reason, so nothing is
// dropped silently and the subscription never blocks on them.

import { managedwriter } from '@google-cloud/bigquery-storage';
import type { BigQueryRest, TableField } from './bigquery-rest';
import { FAILED_TABLE } from './names';
import { ProtoRow, StorageWriteError, TableAppender } from './storage-writer';

export const FAILED_FIELDS: TableField[] = [
  { name: 'failed_at', type: 'TIMESTAMP', mode: 'REQUIRED', description: 'when the sink gave up on it' },
  { name: 'reason', type: 'STRING', mode: 'REQUIRED', description: 'why it could not be written' },
  { name: 'subscription', type: 'STRING', mode: 'NULLABLE' },
  { name: 'message_id', type: 'STRING', mode: 'NULLABLE', description: 'Pub/Sub message id' },
  { name: 'attempts', type: 'INT64', mode: 'NULLABLE', description: 'Pub/Sub delivery attempt, when known' },
  { name: 'attributes', type: 'JSON', mode: 'NULLABLE', description: 'Pub/Sub message attributes' },
  {
    name: 'payload',
    type: 'BYTES',
    mode: 'NULLABLE',
    description: 'the raw message, or one event as a contract batch',
  },
  {
    name: 'table_name',
    type: 'STRING',
    mode: 'NULLABLE',
    description: 'source table (schema.table), when known',
  },
];

export interface FailedRecord {
  reason: string;
  messageId?: string;
  attempts?: number;
  attributes?: Record<string, string>;
  payload: Buffer;
  table?: string;
}

export class FailedTable {
  private appender?: TableAppender;

  constructor(
    private readonly rest: BigQueryRest,
    private readonly writer: managedwriter.WriterClient,
    private readonly subscription: string,
  ) {}

  async open(): Promise<void> {
    if (this.appender) return;
    const t = await this.rest.getTable(FAILED_TABLE);
    const fields =
      t?.schema?.fields ??
      (
        await this.rest.createTable(FAILED_TABLE, {
          schema: { fields: FAILED_FIELDS },
          description: 'pgcdc dead letters: messages and events the sink could not write, with the reason',
          timePartitioning: { type: 'DAY', field: 'failed_at' },
        })
      ).schema?.fields ??
      FAILED_FIELDS;
    this.appender = await TableAppender.open(
      this.writer,
      `projects/${this.rest.project}/datasets/${this.rest.dataset}/tables/${FAILED_TABLE}`,
      fields,
      false,
    );
  }

  /** Writes every record or throws: the caller acks the messages only after this resolves. */
  async write(records: FailedRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.open();
    const appender = this.appender as TableAppender;
    const now = (BigInt(Date.now()) * 1000n).toString();
    const rows = records.map((r) => {
      const row: ProtoRow = {
        failed_at: now,
        // BigQuery STRING holds at most 10 MB; reasons are short, but a reason quoting a value may not be.
        reason: r.reason.slice(0, 100_000),
        subscription: this.subscription,
        message_id: r.messageId ?? null,
        attempts: r.attempts ? String(r.attempts) : null,
        attributes: r.attributes ? JSON.stringify(r.attributes) : null,
        payload: r.payload,
        table_name: r.table ?? null,
      };
      return appender.encode(row);
    });
    const errors = await appender.append(rows);
    if (errors.length > 0) {
      throw new StorageWriteError(
        `the ${FAILED_TABLE} table rejected rows: ${errors.map((e) => e.message).join('; ')}`,
      );
    }
  }

  close(): void {
    this.appender?.close();
    this.appender = undefined;
  }
}
