// Reading `_failed` back and republishing its records (`pgcdc failed list|replay`). Every record carries
// what the listener would have published (payload and contract attributes; an event record is a one-event
// batch), so replay sends it as is, with the table's ordering key; parts of a large payload are joined.
//
// The delete window: BigQuery remembers a deleted key for CDC ordering only so long ("BigQuery keeps a
// delete record for two days", the delete retention window, https://cloud.google.com/bigquery/docs/change-data-capture).
// An UPSERT older than a DELETE of its key that BigQuery has forgotten would bring the row back. Replay
// therefore refuses a record whose events committed more than REPLAY_WINDOW_HOURS ago unless forced: a later
// delete of such a key may already be outside the window.

import { gunzipSync } from 'node:zlib';
import { ContractError, decodeBatch } from '../contract/codec';
import type { BigQueryRest } from './bigquery-rest';
import { FAILED_TABLE } from './names';
import { parseTimestamptz } from './pg-text';

// Two days, less a margin for clock skew and for the time the replayed message takes to be written.
export const REPLAY_WINDOW_HOURS = 44;

export interface FailedEntry {
  failedAt: Date;
  severity: 'error' | 'warning' | 'unknown';
  reason: string;
  messageId: string | null;
  attempts: number | null;
  table: string | null;
  /** Attributes to publish with (our `pgcdc_*` annotations removed). */
  attributes: Record<string, string>;
  payload: Buffer;
  /** Number of `_failed` rows it was stored in. */
  parts: number;
}

function micros(v: unknown): Date {
  const s = String(v);
  return new Date(/^-?\d+$/.test(s) ? Number(BigInt(s) / 1000n) : Number(s) * 1000);
}

/** Every record of `_failed` (parts joined), newest first. tabledata.list: no query is billed. */
export async function readFailed(rest: BigQueryRest): Promise<FailedEntry[]> {
  if ((await rest.getTable(FAILED_TABLE)) === null) return [];
  const rows = await rest.listRows(FAILED_TABLE);
  const groups = new Map<
    string,
    { part: number; row: Record<string, unknown>; attrs: Record<string, string> }[]
  >();
  for (const row of rows) {
    const attrs = row.attributes ? (JSON.parse(String(row.attributes)) as Record<string, string>) : {};
    const [part] = (attrs.pgcdc_part ?? '1/1').split('/').map(Number);
    const id = `${String(row.message_id)} ${String(row.failed_at)} ${String(row.reason)}`;
    const list = groups.get(id) ?? [];
    list.push({ part, row, attrs });
    groups.set(id, list);
  }
  const out: FailedEntry[] = [];
  for (const list of groups.values()) {
    list.sort((a, b) => a.part - b.part);
    const { row, attrs } = list[0];
    const attributes = Object.fromEntries(Object.entries(attrs).filter(([k]) => !k.startsWith('pgcdc_')));
    const severity =
      attrs.pgcdc_severity === 'warning' || attrs.pgcdc_severity === 'error'
        ? attrs.pgcdc_severity
        : 'unknown';
    out.push({
      failedAt: micros(row.failed_at),
      severity,
      reason: String(row.reason).replace(/^(error|warning): /, ''),
      messageId: row.message_id === null ? null : String(row.message_id),
      attempts: row.attempts === null ? null : Number(row.attempts),
      table: row.table_name === null ? null : String(row.table_name),
      attributes,
      payload: Buffer.concat(list.map((p) => Buffer.from(String(p.row.payload ?? ''), 'base64'))),
      parts: list.length,
    });
  }
  return out.sort((a, b) => b.failedAt.getTime() - a.failedAt.getTime());
}

/** Why a record must not be replayed without --force, or null when it may. */
export function replayRefusal(entry: FailedEntry, now: Date): string | null {
  let batch;
  try {
    batch = decodeBatch(entry.payload, entry.attributes);
  } catch (e) {
    if (!(e instanceof ContractError)) throw e;
    return `it is not a readable pgcdc message (${e.message}); fix the payload and republish it yourself`;
  }
  const limit = now.getTime() - REPLAY_WINDOW_HOURS * 3600_000;
  for (const ev of batch.events) {
    let at: number;
    try {
      at = Number(BigInt(parseTimestamptz(ev.commitTs)) / 1000n);
    } catch {
      continue;
    }
    if (at < limit) {
      return (
        `event ${ev.seq} committed at ${ev.commitTs}, more than ${REPLAY_WINDOW_HOURS} h ago: BigQuery may have ` +
        'forgotten a later delete of its key (two-day delete window) and the replay could bring a deleted ' +
        'row back; check the source and use --force if it is still right'
      );
    }
  }
  return null;
}

/** The ordering key the listener publishes this record's table with (`schema.table`). */
export function orderingKeyOf(entry: FailedEntry): string {
  const { schema, table } = entry.attributes;
  if (schema && table) return `${schema}.${table}`;
  return entry.table ?? '';
}

export function gunzipIfNeeded(entry: FailedEntry): Buffer {
  return entry.attributes.encoding === 'json+gzip' ? gunzipSync(entry.payload) : entry.payload;
}
