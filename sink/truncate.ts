// TRUNCATE on a replica. BigQuery forbids DML on CDC tables ("you can't use DML ... on a table with
// change data capture", https://cloud.google.com/bigquery/docs/change-data-capture#limitations), and
// dropping/recreating the table races with rows of later events. So a truncate at sequence T is written as
// CDC: a DELETE at T for every key the history knows from before T (every replica row has its history row,
// written first), then T goes into the replica's label `pgcdc_truncate_seq` so replica rows of older events
// that arrive later (redelivery) are skipped. A replayed truncate repeats the same deletes.
//
// Cost: one query per TRUNCATE event (not per batch), reading the history's `_key` and `_event_id` columns.

import { queryFiltered } from './bigquery-rest';
import { appendAll } from './append';
import type { EventWork } from './event-work';
import type { ProtoRow } from './storage-writer';
import type { Appender } from './writer-pool';
import type { BigQueryRest } from './bigquery-rest';

export const TRUNCATE_LABEL = 'pgcdc_truncate_seq';

/** Writes the deletes of a truncate; returns how many keys were deleted. */
export async function truncateReplica(
  rest: BigQueryRest,
  changesTable: string,
  replica: Appender,
  w: EventWork,
): Promise<number> {
  const found = await queryFiltered(
    rest,
    'DISTINCT _key',
    changesTable,
    '_key IS NOT NULL AND _event_id < @seq',
    [{ name: 'seq', value: w.ev.seq }],
  );
  const keyMapping = w.mapping.filter((m) => m.column.key);
  const rows: ProtoRow[] = [];
  for (const key of new Set(found.map((r) => String(r._key)))) {
    const texts = JSON.parse(key) as (string | null)[];
    const row: ProtoRow = { _CHANGE_TYPE: 'DELETE', _CHANGE_SEQUENCE_NUMBER: w.ev.seq };
    try {
      keyMapping.forEach(
        (m, i) => (row[m.field] = texts[i] === null ? null : m.mapping.convert(texts[i] as string)),
      );
    } catch {
      continue; // a key that never made it into the replica (its value was unwritable)
    }
    rows.push(row);
  }
  await appendAll(replica, rows, 'truncate deletes');
  return rows.length;
}
