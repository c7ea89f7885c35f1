// BigQuery schemas of a source table's replica and history, and how they follow the source's columns:
// new columns are added, a column whose type changed to one BigQuery cannot convert continues in a new
// column "<name>__<type>", a dropped column stays (so history keeps its values) and its description says so.

import type { ColumnInfo } from '../contract/events';
import type { TableField } from './bigquery-rest';
import { companionFieldName, fieldName, retypedFieldName } from './names';
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
      'columns whose unchanged TOAST value the decoder did not send and the listener did not resolve (NULL here)',
  },
  {
    name: '_from_source',
    type: 'STRING',
    mode: 'REPEATED',
    description:
      'unchanged TOAST columns whose value the listener read from the source table at publish time',
  },
  {
    name: '_superseded',
    type: 'BOOL',
    mode: 'NULLABLE',
    description:
      'the row was gone at the source when the listener looked it up: history only, no replica row',
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
  /** The STRING column holding the Postgres text of values `field` cannot hold, once it exists. */
  companion?: string;
}

// BigQuery: "The maximum length of a column description is 1,024 characters"
// (https://cloud.google.com/bigquery/docs/schemas#column_descriptions).
const MAX_DESCRIPTION = 1024;

function fit(description: string): string {
  return description.length <= MAX_DESCRIPTION
    ? description
    : description.slice(0, MAX_DESCRIPTION - 1) + '…';
}

/** Description of a column created for a source column: its Postgres type and exact source name. */
function sourceDescription(column: ColumnInfo): string {
  return fit(`${SOURCE_PREFIX}${column.type}; source column ${JSON.stringify(column.name)}`);
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
  meta: TableField[],
  columns: ColumnInfo[],
  seq: string,
  markDropped: boolean,
  /** Fields that need their companion column (a value they cannot hold arrived). */
  needCompanion: ReadonlySet<string> = new Set(),
): { mapping: ColumnField[]; fields: TableField[]; changed: boolean } {
  const fields = existing.map((f) => ({ ...f }));
  const byName = new Map(fields.map((f) => [f.name.toLowerCase(), f]));
  let changed = false;
  // Meta columns a newer sink added (e.g. _from_source) join older tables too.
  for (const m of meta) {
    if (byName.has(m.name.toLowerCase())) continue;
    const f = { ...m, mode: m.mode === 'REQUIRED' ? ('NULLABLE' as const) : m.mode };
    fields.push(f);
    byName.set(f.name.toLowerCase(), f);
    changed = true;
  }
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
        current.description = fit(`${current.description ?? ''}; ${note}`.replace(/^; /, ''));
        changed = true;
      }
    }
    let f = byName.get(name.toLowerCase());
    if (!f) {
      f = { name, type: m.bqType, mode: fieldMode(m), description: sourceDescription(column) };
      fields.push(f);
      byName.set(name.toLowerCase(), f);
      changed = true;
    } else if (f.description?.startsWith(DROPPED_PREFIX)) {
      f.description = sourceDescription(column);
      changed = true;
    }
    used.add(f.name.toLowerCase());
    if (name !== primary) used.add(primary.toLowerCase());
    const companionName = companionFieldName(f.name);
    let companion = byName.get(companionName.toLowerCase());
    if (!companion && needCompanion.has(f.name)) {
      companion = {
        name: companionName,
        type: 'STRING',
        mode: 'NULLABLE',
        description: fit(
          `Postgres text of values of ${f.name} that BigQuery ${m.bqType} cannot hold (${f.name} is NULL ` +
            `then); source column ${JSON.stringify(column.name)}`,
        ),
      };
      fields.push(companion);
      byName.set(companionName.toLowerCase(), companion);
      changed = true;
    }
    if (companion) used.add(companion.name.toLowerCase());
    mapping.push({ column, field: f.name, mapping: m, companion: companion?.name });
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
