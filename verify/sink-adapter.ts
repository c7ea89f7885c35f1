// The only place verify depends on how the sink names and converts things: replica table names, where each
// source column lands in the replica (including retyped "<name>__<type>" columns), and the canonical value
// the sink writes for a Postgres text (and reads back from BigQuery's REST rows). Every rule here is a call
// into sink/, never a copy, so a change of the sink's naming or type map changes verify with it.

import type { ColumnInfo } from '../contract/events';
import type { TableField } from '../sink/bigquery-rest';
import { changesTableName, FAILED_TABLE, keyText, replicaTableName } from '../sink/names';
import { planColumns, REPLICA_META_FIELDS } from '../sink/table-schema';
import { ValueError } from '../sink/pg-text';
import { type BqType, type ProtoValue, restToProto } from '../sink/type-map';

export { changesTableName, keyText, replicaTableName };

/** Whether a table of the dataset is a replica (not a history table, not `_failed`), by the sink's names. */
export function isReplicaTableId(id: string): boolean {
  const suffix = changesTableName('public', 'x').slice(replicaTableName('public', 'x').length);
  return id !== FAILED_TABLE && !id.endsWith(suffix);
}

/** The replica's metadata columns (not source columns). */
export const REPLICA_META = new Set(REPLICA_META_FIELDS.map((f) => f.name));
/** The replica column holding the change sequence of the event that wrote the row. */
export const REPLICA_SEQ_FIELD = '_event_id';

export interface ColumnPlan {
  column: ColumnInfo;
  /** The replica field holding this column's values (as the sink would write it now). */
  field: string;
  bqType: BqType;
  repeated: boolean;
  /** Postgres text → the sink's proto value; throws ValueError when BigQuery cannot hold it. */
  convert(text: string): ProtoValue;
  /**
   * The replica's companion STRING field holding the Postgres text of values `field` cannot hold (the typed
   * field is NULL then), when the replica has one: the sink adds it the first time such a value arrives.
   */
  companion?: string;
}

/** Where each source column lives in a replica with fields `replicaFields`, by the sink's own planning. */
export function planReplicaColumns(replicaFields: TableField[], columns: ColumnInfo[]): ColumnPlan[] {
  // markDropped=false: verify only reads the plan, and the sequence only shows up in descriptions.
  const { mapping } = planColumns(replicaFields, REPLICA_META_FIELDS, columns, 'verify', false);
  return mapping.map((m) => ({
    column: m.column,
    field: m.field,
    bqType: m.mapping.bqType,
    repeated: m.mapping.repeated,
    convert: (text) => m.mapping.convert(text),
    companion: m.companion,
  }));
}

/**
 * Whether `convert` failed because BigQuery's type cannot hold the value: the sink then writes the value's
 * Postgres text to the companion instead (sink/event-work.ts); any other error fails the sink's event.
 */
export function cannotHold(e: unknown): boolean {
  return e instanceof ValueError;
}

/** A REST value (tabledata / query rows, int64 timestamps) → the proto value the sink wrote. */
export function replicaValue(plan: ColumnPlan, v: unknown): ProtoValue {
  return restToProto(plan.bqType, plan.repeated, v);
}
