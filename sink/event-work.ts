// One change event decoded against its table's column plan: the BigQuery values of its row image, its key,
// and what it lacks. Shared by the history and replica row builders.
//
// A value the mapped BigQuery type cannot hold (an array with a NULL element, a multi-dimensional array,
// numeric NaN, a BC date, 24:00:00, a JSON number BigQuery cannot store exactly, …) never costs the row: the
// typed column is NULL and the column's companion `<field>__pg` (STRING, created on first need) holds the
// Postgres text; the event is recorded in `_failed` as a warning.

import type { ChangeEvent, EventBatch, Row } from '../contract/events';
import { keyText } from './names';
import { lastValueCache, ValueError, parseTimestamptz } from './pg-text';
import type { ProtoRow } from './storage-writer';
import type { ColumnField } from './table-schema';

/** One decoded Pub/Sub message of a table. */
export interface TableMessage {
  messageId: string;
  attributes: Record<string, string>;
  attempts?: number;
  batch: EventBatch;
}

export interface ValueProblem {
  column: string;
  type: string;
  key: boolean;
  field: string;
  reason: string;
}

export interface EventWork {
  ev: ChangeEvent;
  msg: TableMessage;
  mapping: ColumnField[];
  /** Values by history field name (the replica's names may differ: `replicaRename`). */
  values: ProtoRow;
  /** The commit time as TIMESTAMP micros (null when unparsable). */
  commitMicros: string | number | null;
  /** Key text of the row after the event (or of the deleted row). */
  key: string | null;
  /** Key text of the row before a primary-key change. */
  oldKey: string | null;
  /**
   * Columns whose value the event does not carry: `unchanged` (not resolved by the listener), plus any
   * column an update left out of its new row (absent means not sent, never NULL).
   */
  unresolved: string[];
  /** Values kept in a companion column instead of their typed column. */
  problems: ValueProblem[];
  /** Fields that need a companion column which does not exist yet. */
  needCompanion: Set<string>;
  /** Whether this event's message was planned with a replica (its columns had a key). */
  hasReplica: boolean;
  replicaRename: Map<string, string>;
  /** Set when a row of this event could not be written (the reason, for `_failed`). */
  failed?: string;
  /** The replica row cannot be written (a key value BigQuery cannot hold); the history row still is. */
  replicaFailed?: string;
}

// Most events have no unresolved column, no problem value and need no companion: they share these empty,
// frozen values (a push onto one would throw) instead of allocating three per event.
const NONE_UNRESOLVED: string[] = Object.freeze([] as string[]) as string[];
const NO_PROBLEMS: ValueProblem[] = Object.freeze([] as ValueProblem[]) as ValueProblem[];
const NO_COMPANIONS: Set<string> = Object.freeze(new Set<string>()) as Set<string>;

export function decodeEvent(
  ev: ChangeEvent,
  msg: TableMessage,
  mapping: ColumnField[],
  keyColumns: string[],
  hasReplica: boolean,
  replicaRename: Map<string, string>,
): EventWork {
  const w: EventWork = {
    ev,
    msg,
    mapping,
    values: {},
    commitMicros: commitMicros(ev),
    key: null,
    oldKey: null,
    unresolved: ev.unchanged.length > 0 ? [...ev.unchanged] : NONE_UNRESOLVED,
    problems: NO_PROBLEMS,
    needCompanion: NO_COMPANIONS,
    hasReplica,
    replicaRename,
  };
  if (ev.op === 't') return w;
  const image: Row | null = ev.op === 'd' ? (ev.before ?? ev.key) : ev.after;
  const keySource = ev.op === 'd' ? (ev.key ?? ev.before) : (ev.after ?? ev.key);
  if (keyColumns.length > 0 && keySource) {
    w.key = keyText(keyColumns, keySource);
    if (ev.op === 'u' && ev.before && keyColumns.every((c) => Object.hasOwn(ev.before as Row, c))) {
      const old = keyText(keyColumns, ev.before);
      if (old !== w.key) w.oldKey = old;
    }
  }
  const unchanged = ev.unchanged;
  for (const m of mapping) {
    if (!image || (unchanged.length > 0 && unchanged.includes(m.column.name))) continue;
    // Own properties only: `in` would find a column named `constructor` or `toString` on every row object
    // (Object.prototype's), and write a function where the event carries no value.
    if (!Object.hasOwn(image, m.column.name)) {
      // Absent from an update's new row: not sent, so unchanged; never NULL. Absent from a delete's old
      // image (only the key logged): unset.
      if (ev.op === 'u') {
        if (w.unresolved === NONE_UNRESOLVED) w.unresolved = [];
        w.unresolved.push(m.column.name);
      } else if (ev.op !== 'd') w.values[m.field] = m.mapping.repeated ? [] : null;
      continue;
    }
    const text = image[m.column.name];
    if (text === null) {
      // A BigQuery REPEATED column has no NULL: a NULL array is an empty one.
      w.values[m.field] = m.mapping.repeated ? [] : null;
      continue;
    }
    try {
      w.values[m.field] = m.mapping.convert(text);
    } catch (e) {
      if (!(e instanceof ValueError)) throw e;
      w.values[m.field] = m.mapping.repeated ? [] : null;
      if (m.companion) w.values[m.companion] = text;
      else {
        if (w.needCompanion === NO_COMPANIONS) w.needCompanion = new Set();
        w.needCompanion.add(m.field);
      }
      if (w.problems === NO_PROBLEMS) w.problems = [];
      w.problems.push({
        column: m.column.name,
        type: m.column.type,
        key: m.column.key,
        field: m.field,
        reason: e.message,
      });
      if (m.column.key) {
        w.replicaFailed = `key column ${m.column.name} (${m.column.type}): ${e.message}; the row cannot have a replica row`;
      }
    }
  }
  return w;
}

// Every event of a transaction has the same commit time.
const commitTimestamp = lastValueCache(parseTimestamptz);

/** Commit time as TIMESTAMP micros; an unparsable commit time is left empty rather than failing the event. */
function commitMicros(ev: ChangeEvent): string | number | null {
  try {
    return commitTimestamp(ev.commitTs);
  } catch {
    return null;
  }
}
