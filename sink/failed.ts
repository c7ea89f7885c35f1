// The `_failed` table: messages and events the sink could not write, with the reason, so nothing is
// dropped silently and the subscription never blocks on them.

import { gzipSync } from 'node:zlib';
import { managedwriter } from '@google-cloud/bigquery-storage';
import { batchAttributes } from '../contract/codec';
import type { EventBatch } from '../contract/events';
import type { BigQueryRest, TableField } from './bigquery-rest';
import type { EventWork } from './event-work';
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
  /** `error`: something is missing from BigQuery until it is fixed and replayed; `warning`: all landed, see why. */
  severity: 'error' | 'warning';
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
    const rows: Uint8Array[] = [];
    for (const r of records) {
      const parts = Math.max(1, Math.ceil(r.payload.length / FAILED_PART_BYTES));
      for (let i = 0; i < parts; i++) {
        const attributes: Record<string, string> = { ...(r.attributes ?? {}), pgcdc_severity: r.severity };
        if (parts > 1) attributes.pgcdc_part = `${i + 1}/${parts}`;
        const row: ProtoRow = {
          failed_at: now,
          // BigQuery STRING holds at most 10 MB; reasons are short, but a reason quoting a value may not be.
          reason: `${r.severity}: ${r.reason}`.slice(0, 100_000),
          subscription: this.subscription,
          message_id: r.messageId ?? null,
          attempts: r.attempts ? String(r.attempts) : null,
          attributes: JSON.stringify(attributes),
          payload: r.payload.subarray(i * FAILED_PART_BYTES, (i + 1) * FAILED_PART_BYTES),
          table_name: r.table ?? null,
        };
        rows.push(appender.encode(row));
      }
    }
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

// A `_failed` row must fit one AppendRows request ("AppendRows request size: 10 MB",
// https://cloud.google.com/bigquery/quotas#write-api-limits): a payload larger than this is stored in parts
// (attribute `pgcdc_part` "i/n", same message id), so even a message at Pub/Sub's 10 MB limit is kept whole
// and the `_failed` write cannot fail on it every run. `pgcdc failed replay` joins the parts.
export const FAILED_PART_BYTES = 4 * 1024 * 1024;
// Event payloads (JSON) above this are gzipped, the contract's json+gzip encoding.
const FAILED_PAYLOAD_GZIP_ABOVE = 256 * 1024;

/**
 * A failed or warned event as a republishable one-event contract batch: payload and attributes are what the
 * listener would have published for it (`count`, `firstSeq`, `lastSeq`, `encoding` of this batch).
 */
export function failedEvent(w: EventWork, reason: string, severity: FailedRecord['severity']): FailedRecord {
  const b = w.msg.batch;
  const one: EventBatch = { v: 1, schema: b.schema, table: b.table, columns: b.columns, events: [w.ev] };
  const json = Buffer.from(JSON.stringify(one));
  const gzip = json.length > FAILED_PAYLOAD_GZIP_ABOVE;
  return {
    reason: `event ${w.ev.seq}: ${reason}`,
    severity,
    messageId: w.msg.messageId,
    attempts: w.msg.attempts,
    attributes: { ...batchAttributes(one, gzip ? 'json+gzip' : 'json') },
    payload: gzip ? gzipSync(json, { level: 6 }) : json,
    table: `${b.schema}.${b.table}`,
  };
}

/** A whole message for `_failed`: its raw payload and attributes (republishable as is). */
export function rawMessageFailure(
  m: { messageId: string; attempts?: number; attributes: Record<string, string>; data: Buffer },
  reason: string,
): FailedRecord {
  const { schema, table } = m.attributes;
  return {
    reason,
    severity: 'error',
    messageId: m.messageId,
    attempts: m.attempts,
    attributes: m.attributes,
    payload: m.data,
    table: schema && table ? `${schema}.${table}` : undefined,
  };
}
