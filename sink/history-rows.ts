// Rows of `<table>_changes`, the append-only history: every event, as the WAL had it. Columns the listener
// read from the source are flagged (`_from_source`), columns nobody resolved are NULL and listed in
// `_unchanged`, and an event whose row was gone at lookup time is flagged `_superseded`: the history keeps
// the WAL truth and says where each value came from.

import { commitMicros, EventWork } from './event-work';
import type { ProtoRow } from './storage-writer';

export function historyRow(w: EventWork): ProtoRow {
  const ev = w.ev;
  return {
    ...w.values,
    _event_id: ev.seq,
    _op: ev.op,
    _lsn: ev.lsn,
    _commit_lsn: ev.commitLsn,
    _xid: String(ev.xid),
    _commit_ts: commitMicros(ev),
    _key: w.key,
    _unchanged: w.unresolved,
    _from_source: ev.fromSource ?? [],
    _superseded: ev.superseded === true ? true : null,
    _before: ev.before ? JSON.stringify(ev.before) : null,
  };
}
