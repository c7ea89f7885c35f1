// Rows of the replica `<table>`, kept by BigQuery CDC: UPSERT/DELETE with `_CHANGE_SEQUENCE_NUMBER` = the
// event's seq, so a duplicate or an older event of a key has no effect whatever the delivery order
// ("BigQuery ... uses _CHANGE_SEQUENCE_NUMBER to order the changes"; a lower number than the row's has no
// effect, https://cloud.google.com/bigquery/docs/change-data-capture).
//
// Which events give which rows (the reasons are in sink/README.md, "Why the replica equals the source"):
//   c, r            UPSERT of the whole row (every column is in `after`);
//   u               UPSERT, and for a primary-key change a DELETE of the old key first, both at the seq;
//   u superseded    the row was gone at the source when the listener looked up its TOAST values: no UPSERT
//                   (a later delete / key change / truncate of it follows); a key change still DELETEs
//                   the old key, which ended here;
//   u unresolved    `unchanged` columns the listener did not fill (an older listener): no UPSERT (it would
//                   null them), a warning in `_failed`; a key change still DELETEs the old key;
//   d               DELETE of the key;
//   t               nothing here: truncate.ts.

import type { EventWork } from './event-work';
import { MetaFields, ProtoRow, SplitRow } from './storage-writer';

const UPSERT_META = new MetaFields(['_event_id', '_commit_ts', '_CHANGE_SEQUENCE_NUMBER', '_CHANGE_TYPE']);
const DELETE_META = new MetaFields(['_CHANGE_SEQUENCE_NUMBER', '_CHANGE_TYPE']);

/** The replica rows of one event (history field names; `forReplica` renames them). */
export function replicaRows(w: EventWork): SplitRow[] {
  const ev = w.ev;
  if (!w.hasReplica || ev.op === 't') return [];
  if (w.replicaFailed) return w.oldKey && ev.before ? [oldKeyDelete(w)] : [];
  if (ev.op === 'd') return [deleteRow(keyValues(w), ev.seq)];
  const rows: SplitRow[] = [];
  if (ev.op === 'u' && w.oldKey && ev.before) rows.push(oldKeyDelete(w));
  if (ev.superseded || w.unresolved.length > 0) return rows;
  rows.push(
    new SplitRow(
      w.values,
      {
        _event_id: ev.seq,
        _commit_ts: w.commitMicros,
        _CHANGE_SEQUENCE_NUMBER: ev.seq,
        _CHANGE_TYPE: 'UPSERT',
      },
      UPSERT_META,
    ),
  );
  return rows;
}

/** Replica rows in the replica's field names (they differ where a retyped column was renamed). */
export function forReplica(w: EventWork): SplitRow[] {
  const rows = replicaRows(w);
  const rename = w.replicaRename;
  if (rename.size === 0) return rows;
  return rows.map(
    (r) =>
      new SplitRow(
        Object.fromEntries(Object.entries(r.values).map(([k, v]) => [rename.get(k) ?? k, v])),
        r.meta,
        r.metaFields,
      ),
  );
}

/** Why an event wrote no replica row although its table has a replica, for a `_failed` warning. */
export function replicaSkipReason(w: EventWork): string | null {
  if (!w.hasReplica || w.ev.op !== 'u' || w.ev.superseded || w.unresolved.length === 0) return null;
  return (
    `update left column(s) ${w.unresolved.join(', ')} unresolved (unchanged TOAST values the listener did ` +
    'not fill in: a listener older than this sink?); written to the history only, the replica keeps the ' +
    "row's previous version until its next change"
  );
}

function deleteRow(key: ProtoRow, seq: string): SplitRow {
  return new SplitRow(key, { _CHANGE_SEQUENCE_NUMBER: seq, _CHANGE_TYPE: 'DELETE' }, DELETE_META);
}

/** The CDC DELETE of a key-changing update's old key, at the event's sequence. */
function oldKeyDelete(w: EventWork): SplitRow {
  const old: ProtoRow = {};
  for (const m of w.mapping) {
    if (!m.column.key) continue;
    const before = w.ev.before;
    const text = before && Object.hasOwn(before, m.column.name) ? before[m.column.name] : null;
    old[m.field] = text === null || text === undefined ? null : m.mapping.convert(text);
  }
  return deleteRow(old, w.ev.seq);
}

function keyValues(w: EventWork): ProtoRow {
  const out: ProtoRow = {};
  // hasOwn: a field named "constructor" that the values lack is null, not the inherited Object function.
  for (const m of w.mapping)
    if (m.column.key) out[m.field] = Object.hasOwn(w.values, m.field) ? (w.values[m.field] ?? null) : null;
  return out;
}
