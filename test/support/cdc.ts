// The replica BigQuery's CDC would hold after applying a set of events, in any arrival order: per key the
// change with the highest _CHANGE_SEQUENCE_NUMBER wins, deletes are remembered (tombstones), a primary-key
// change is a delete of the old key and an upsert of the new one. Used to check the listener and snapshot
// on their own; the sink's tests check the same against the BigQuery emulator.

import { ChangeEvent, Row } from '../../contract/events';
import { compareSeq } from '../../contract/lsn';

export class CdcReplica {
  private readonly rows = new Map<string, { seq: string; row: Row | null }>();

  constructor(private readonly keyColumns: string[]) {}

  private keyText(row: Row): string {
    return JSON.stringify(this.keyColumns.map((k) => row[k]));
  }

  private put(key: string, seq: string, row: Row | null): void {
    const cur = this.rows.get(key);
    if (cur && compareSeq(cur.seq, seq) >= 0) return;
    this.rows.set(key, { seq, row });
  }

  apply(e: ChangeEvent): void {
    if (e.op === 'd') {
      this.put(this.keyText(e.key ?? e.before!), e.seq, null);
      return;
    }
    if (e.op === 'u' && e.before) {
      const oldKey = this.keyText(e.before);
      if (oldKey !== this.keyText(e.after!)) this.put(oldKey, e.seq, null);
    }
    if (e.after) this.put(this.keyText(e.after), e.seq, e.after);
  }

  /** Live rows by key text. */
  live(): Map<string, Row> {
    const out = new Map<string, Row>();
    for (const [k, v] of this.rows) if (v.row) out.set(k, v.row);
    return out;
  }
}
