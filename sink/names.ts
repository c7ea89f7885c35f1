// BigQuery names for source tables and columns.

/** Characters BigQuery (and protobuf field names in the Storage Write API) do not take become "_". */
function sanitize(name: string): string {
  const s = name.replace(/[^A-Za-z0-9_]/g, '_');
  return /^[0-9]/.test(s) ? `_${s}` : s;
}

/** `public.customers` → `customers`; `s.t` → `s__t`. */
export function replicaTableName(schema: string, table: string): string {
  return schema === 'public' ? sanitize(table) : `${sanitize(schema)}__${sanitize(table)}`;
}

export function changesTableName(schema: string, table: string): string {
  return `${replicaTableName(schema, table)}_changes`;
}

export const FAILED_TABLE = '_failed';

/** BigQuery column name of a source column. */
export function fieldName(column: string): string {
  return sanitize(column);
}

/** The column that holds a source column's values after its type changed to one BigQuery cannot convert to. */
export function retypedFieldName(column: string, bqType: string, repeated: boolean): string {
  return `${fieldName(column)}__${bqType.toLowerCase()}${repeated ? '_array' : ''}`;
}

/** Canonical text of a key (its column values in column order): the history's `_key`, the caches' map key. */
export function keyText(keyColumns: string[], row: Record<string, string | null>): string {
  return JSON.stringify(keyColumns.map((c) => row[c] ?? null));
}

/** A change sequence as a label value (labels take lower-case letters, digits, "-" and "_"). */
export function seqToLabel(seq: string): string {
  return seq.toLowerCase().replace(/\//g, '-');
}

export function labelToSeq(label: string): string {
  return label.toUpperCase().replace(/-/g, '/');
}
