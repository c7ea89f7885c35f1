// BigQuery schemas of a source table's replica and history, and how they follow the source's columns:
// new columns are added, a column whose type changed to one BigQuery cannot convert continues in a new
// column "<name>__<type>", a dropped column stays (so history keeps its values) and its description says so.

import type { ColumnInfo } from '../contract/events';
import type { TableField } from './bigquery-rest';
import { fieldName, retypedFieldName } from './names';
import { BqType, ColumnMapping, mapColumn } from './type-map';

/** Metadata columns of `<table>_changes`; they start with "_" to stay clear of source column names. */
export const CHANGES_META_FIELDS: TableField[] = [
  {
    name: '_event_id',
    type: 'STRING',
    mode: 'REQUIRED',
    description: 'the change sequence: unique per event, dedup key',
  },
  {
    name: '_op',
    type: 'STRING',
    mode: 'REQUIRED',
    description: 'c insert, u update, d delete, r snapshot read, t truncate',
  },
  { name: '_lsn', type: 'STRING', mode: 'REQUIRED', description: 'LSN of the change' },
  {
    name: '_commit_lsn',
    type: 'STRING',
    mode: 'REQUIRED',
    description: 'LSN of the commit of its transaction',
  },
  { name: '_xid', type: 'INT64', mode: 'REQUIRED', description: 'transaction id' },
  { name: '_commit_ts', type: 'TIMESTAMP', mode: 'NULLABLE', description: 'commit time' },
  {
    name: '_key',
    type: 'STRING',
    mode: 'NULLABLE',
    description: 'JSON array of the key values (Postgres text)',
  },
  {
    name: '_unchanged',
    type: 'STRING',
    mode: 'REPEATED',
    description:
      'columns whose unchanged TOAST value the decoder did not send (filled from the previous row)',
  },
  {
    name: '_before',
    type: 'JSON',
    mode: 'NULLABLE',
    description: 'old row or old key (Postgres text) when known',
  },
];

/** Metadata columns of the replica `<table>`. */
export const REPLICA_META_FIELDS: TableField[] = [
  {
    name: '_event_id',
    type: 'STRING',
    mode: 'NULLABLE',
    description: 'change sequence of the event that wrote this row',
  },
  { name: '_commit_ts', type: 'TIMESTAMP', mode: 'NULLABLE', description: 'commit time of that event' },
];

const META_NAMES = new Set([...CHANGES_META_FIELDS, ...REPLICA_META_FIELDS].map((f) => f.name));
const SOURCE_PREFIX = 'postgres: ';
const DROPPED_PREFIX = 'dropped from the source; ';

export interface ColumnField {
  column: ColumnInfo;
  field: string;
  mapping: ColumnMapping;
}

function fieldMode(m: { repeated: boolean }): 'REPEATED' | 'NULLABLE' {
  return m.repeated ? 'REPEATED' : 'NULLABLE';
}

function sameType(f: TableField, bqType: BqType, repeated: boolean): boolean {
  const t =
    f.type === 'INTEGER' ? 'INT64' : f.type === 'FLOAT' ? 'FLOAT64' : f.type === 'BOOLEAN' ? 'BOOL' : f.type;
  return t === bqType && (f.mode === 'REPEATED') === repeated;
}

/**
 * Where each source column goes in a table with fields `existing`, and the fields to add or re-describe.
 * `seq` (the first event using these columns) is written into descriptions so a user sees when.
 */
export function planColumns(
  existing: TableField[],
  columns: ColumnInfo[],
  seq: string,
  markDropped: boolean,
): { mapping: ColumnField[]; fields: TableField[]; changed: boolean } {
  const fields = existing.map((f) => ({ ...f }));
  const byName = new Map(fields.map((f) => [f.name.toLowerCase(), f]));
  let changed = false;
  const mapping: ColumnField[] = [];
  const used = new Set<string>();
  for (const column of columns) {
    const m = mapColumn(column);
    const primary = fieldName(column.name);
    let name = primary;
    const current = byName.get(primary.toLowerCase());
    if (current && !sameType(current, m.bqType, m.repeated)) {
      name = retypedFieldName(column.name, m.bqType, m.repeated);
      const note = `source type changed to ${column.type} at ${seq}: newer values are in ${name}`;
      if (!current.description?.includes(`changed to ${column.type}`)) {
        current.description = `${current.description ?? ''}; ${note}`.replace(/^; /, '');
        changed = true;
      }
    }
    let f = byName.get(name.toLowerCase());
    if (!f) {
      f = { name, type: m.bqType, mode: fieldMode(m), description: `${SOURCE_PREFIX}${column.type}` };
      fields.push(f);
      byName.set(name.toLowerCase(), f);
      changed = true;
    } else if (f.description?.startsWith(DROPPED_PREFIX)) {
      f.description = `${SOURCE_PREFIX}${column.type}`;
      changed = true;
    }
    used.add(f.name.toLowerCase());
    if (name !== primary) used.add(primary.toLowerCase());
    mapping.push({ column, field: f.name, mapping: m });
  }
  if (markDropped) {
    for (const f of fields) {
      if (META_NAMES.has(f.name) || used.has(f.name.toLowerCase())) continue;
      if (f.description?.startsWith(DROPPED_PREFIX) || !f.description?.startsWith(SOURCE_PREFIX)) continue;
      f.description = `${DROPPED_PREFIX}not in the source's columns at ${seq}; was ${f.description}`;
      changed = true;
    }
  }
  return { mapping, fields, changed };
}

/** "0-0 0 H:M:0": BigQuery's INTERVAL text, the form tables.insert takes for maxStaleness. */
export function stalenessInterval(minutes: number): string {
  return `0-0 0 ${Math.floor(minutes / 60)}:${minutes % 60}:0`;
}
