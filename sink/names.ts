// BigQuery names for source tables and columns: every source name maps to a distinct legal BigQuery name,
// deterministically (a function of the source name alone, so stable across runs and schema changes).
//
// BigQuery's rules (https://cloud.google.com/bigquery/docs/schemas#column_names): "A column name can
// contain letters (a-z, A-Z), numbers (0-9), or underscores (_), and it must start with a letter or
// underscore"; "The maximum column name length is 300 characters"; "Column names can't use any of the
// following prefixes: _TABLE_, _FILE_, _PARTITION, _ROW_TIMESTAMP, __ROOT__, _COLIDENTIFIER,
// _CHANGE_SEQUENCE_NUMBER, _CHANGE_TYPE, _CHANGE_TIMESTAMP"; "Duplicate column names are not allowed even if
// the case differs". Postgres names are case-sensitive when quoted and may hold any character.
//
// The mapping (documented in sink/README.md, "Names"):
//   - a *plain* source name — lower-case letters, digits and single underscores, starting with a letter,
//     no "__" anywhere, at most 200 characters — is used as is;
//   - any other name becomes `<stem>__h<10 hex>`: the stem is the name lower-cased with every other
//     character turned into "_" (leading underscores and digits dropped, runs of "_" collapsed), and the
//     hex digits are the start of the SHA-256 of the exact source name.
// Why distinct: plain names are lower-case and contain no "__", so two plain names differ even ignoring case;
// every generated name contains "__", so it never equals a plain name; two hashed names differ in their hash
// (40 bits: a collision among a table's columns is not a practical concern). Our own columns start with "_"
// (meta columns) or end in "__<bigquery type>" (a retyped column) or "__pg" (a value's Postgres text), and
// no plain or hashed name has those forms. Reserved prefixes all start with "_", which a plain name never
// does and a hashed stem never keeps.
// Tables: `public.t` → t, `s.t` → s__t (both parts plain), else the hashed form of "s.t". A plain table name
// ending in "_changes" or shaped like a hash suffix is hashed too, so no replica name is another table's
// history name (`<replica>_changes`).

import { createHash } from 'node:crypto';

const PLAIN = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/;
const MAX_PLAIN = 200;
const HASH_SUFFIX = /^h[0-9a-f]{10}$/;

function isPlain(name: string): boolean {
  return name.length <= MAX_PLAIN && PLAIN.test(name) && !name.includes('__') && !HASH_SUFFIX.test(name);
}

function hashed(source: string): string {
  const stem =
    source
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '_')
      .replace(/^[_0-9]+/, '')
      .replace(/_+$/, '')
      .slice(0, 100)
      .replace(/_+$/, '') || 'c';
  const h = createHash('sha256').update(source, 'utf8').digest('hex').slice(0, 10);
  return `${stem}__h${h}`;
}

/** `public.customers` → `customers`; `s.t` → `s__t`; anything else (case, odd characters, …) hashed. */
export function replicaTableName(schema: string, table: string): string {
  const tableOk = isPlain(table) && !table.endsWith('_changes');
  if (schema === 'public' && tableOk) return table;
  if (schema !== 'public' && tableOk && isPlain(schema)) return `${schema}__${table}`;
  return hashed(`${schema}.${table}`);
}

export function changesTableName(schema: string, table: string): string {
  return `${replicaTableName(schema, table)}_changes`;
}

export const FAILED_TABLE = '_failed';

/** BigQuery column name of a source column (see the mapping above). */
export function fieldName(column: string): string {
  return isPlain(column) ? column : hashed(column);
}

/** The column that holds a source column's values after its type changed to one BigQuery cannot convert to. */
export function retypedFieldName(column: string, bqType: string, repeated: boolean): string {
  return `${fieldName(column)}__${bqType.toLowerCase()}${repeated ? '_array' : ''}`;
}

/** The companion STRING column holding the Postgres text of values the typed column `field` cannot hold. */
export function companionFieldName(field: string): string {
  return `${field}__pg`;
}

/** Canonical text of a key (its column values in column order): the history's `_key`. */
export function keyText(keyColumns: string[], row: Record<string, string | null>): string {
  // hasOwn: a key column named "__proto__" or "constructor" that the row lacks reads as null, not inherited.
  return JSON.stringify(keyColumns.map((c) => (Object.hasOwn(row, c) ? row[c] : null)));
}

/** A change sequence as a label value (labels take lower-case letters, digits, "-" and "_"). */
export function seqToLabel(seq: string): string {
  return seq.toLowerCase().replace(/\//g, '-');
}

export function labelToSeq(label: string): string {
  return label.toUpperCase().replace(/-/g, '/');
}
