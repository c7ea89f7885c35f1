// Rows of `<table>_changes`, the append-only history: every event, as the WAL had it. Columns the listener
// read from the source are flagged (`_from_source`), columns nobody resolved are NULL and listed in
// `_unchanged`, and an event whose row was gone at lookup time is flagged `_superseded`: the history keeps
// the WAL truth and says where each value came from.

import type { EventWork } from './event-work';
import { MetaFields, SplitRow } from './storage-writer';

const HISTORY_META = new MetaFields([
  '_event_id',
  '_op',
  '_lsn',
  '_commit_lsn',
  '_xid',
  '_commit_ts',
  '_key',
  '_unchanged',
  '_from_source',
  '_superseded',
  '_before',
]);

export function historyRow(w: EventWork): SplitRow {
  const ev = w.ev;
  return new SplitRow(
    w.values,
    {
      _event_id: ev.seq,
      _op: ev.op,
      _lsn: ev.lsn,
      _commit_lsn: ev.commitLsn,
      _xid: Number.isSafeInteger(ev.xid) ? ev.xid : String(ev.xid),
      _commit_ts: w.commitMicros,
      _key: w.key,
      _unchanged: w.unresolved,
      _from_source: ev.fromSource ?? [],
      _superseded: ev.superseded === true ? true : null,
      _before: ev.before ? JSON.stringify(ev.before) : null,
    },
    HISTORY_META,
  );
}
