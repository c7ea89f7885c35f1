// The change-event contract between the listener and the sink: one definition, used by both.
//
// Values travel as the text Postgres prints for them (its type output function), or null. That form is
// the same whichever decoder produced the event (pgoutput sends text; wal2json's bare JSON numbers are
// kept as their exact digits and its booleans turned into "t"/"f"), and it is lossless: int8, numeric and
// money never pass through a JavaScript number. The sink maps text to BigQuery types using `columns`.

import { tableKey } from './table-name';

/** c insert, u update, d delete, r snapshot read, t truncate. */
export type Op = 'c' | 'u' | 'd' | 'r' | 't';

export const OPS: readonly Op[] = ['c', 'u', 'd', 'r', 't'];

/** A row (or a key): column name to the Postgres text of its value, null for SQL NULL. */
export type Row = Record<string, string | null>;

/**
 * `row[name] = value`, also for a column named "__proto__": a plain assignment of that name calls
 * Object.prototype's setter, which sets no own property (and JSON.stringify then leaves the column out).
 */
export function setColumn(row: Row, name: string, value: string | null): void {
  if (name === '__proto__')
    Object.defineProperty(row, name, { value, enumerable: true, writable: true, configurable: true });
  else row[name] = value;
}

export interface ColumnInfo {
  name: string;
  /** As SQL `format_type(oid, typmod)` prints it: "integer", "numeric(38,9)", "text[]", "mood". */
  type: string;
  /** The type's OID; user types (enums, domains) have OIDs above 16383. */
  oid: number;
  /** Part of the primary key (or, without one, of the replica identity). */
  key: boolean;
}

export interface ChangeEvent {
  op: Op;
  /** Key column values: after the change for c/u/r, before it for d; null for t. */
  key: Row | null;
  /** The old row or old key when the decoder knows it (updates and deletes), else null. */
  before: Row | null;
  /** The new row (c, u, r), else null. Columns listed in `unchanged` are absent from it. */
  after: Row | null;
  /**
   * Columns whose value is not in the WAL record (an unchanged TOASTed value the decoder did not send) and
   * that the listener could not resolve: absent from `after`.
   */
  unchanged: string[];
  /**
   * Columns whose value in `after` the listener read from the source table at publish time, because the WAL
   * record did not carry it (unchanged TOAST). That value is the row's value at the lookup, which is this
   * event's value unless a later change of the row followed, and any later change is itself an event with a
   * higher `seq` (see listener/toast-fill.ts). The history keeps them flagged; the replica may use them.
   */
  fromSource: string[];
  /**
   * Set when the listener looked the row up to resolve `unchanged` columns and the row no longer existed at
   * the source (deleted, key changed, truncated): a later change of the same table then follows, so the sink
   * writes this event to the history only, never to the replica. Its columns stay in `unchanged`.
   */
  superseded?: true;
  /** LSN of the change record itself. */
  lsn: string;
  /** LSN of the transaction's commit record (for snapshot reads: the snapshot's consistent point). */
  commitLsn: string;
  xid: number;
  /** Commit time as Postgres prints timestamptz, microseconds kept. */
  commitTs: string;
  /** Total order; also the event's unique id (see contract/lsn.ts changeSeq). */
  seq: string;
}

/** What one Pub/Sub message carries: events of one table, with that table's columns at the time. */
export interface EventBatch {
  v: 1;
  schema: string;
  table: string;
  columns: ColumnInfo[];
  events: ChangeEvent[];
}

export const CONTRACT_VERSION = '1';

export type Encoding = 'json' | 'json+gzip';

/** Pub/Sub message attributes: what a reader can know without opening the payload. */
export interface BatchAttributes {
  v: string;
  schema: string;
  table: string;
  count: string;
  firstSeq: string;
  lastSeq: string;
  encoding: Encoding;
  [extra: string]: string;
}

/**
 * A table's name as pgcdc prints and keys it: `schema.table`, a part that is not plain lower case
 * double-quoted (contract/table-name.ts), so that two tables never share one.
 */
export function qualifiedName(schema: string, table: string): string {
  return tableKey(schema, table);
}
