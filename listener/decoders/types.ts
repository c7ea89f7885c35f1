// What both decoders produce from the slot's stream, and the bookkeeping they share: the current
// transaction (for sequence numbers) and each table's column list.

import { ChangeEvent, ColumnInfo, Op, Row, setColumn } from '../../contract/events';
import { tableKey } from '../../contract/table-name';
import { Lsn, changeSeq, formatLsn } from '../../contract/lsn';
import { Catalog } from '../catalog';
import { XLogData } from '../replication-stream';

export interface TableState {
  schema: string;
  table: string;
  /** Replaced (never mutated) when the column set changes, so identity comparison detects a change. */
  columns: ColumnInfo[];
}

/**
 * A change event a decoder serialised itself, straight from the plugin's output (the hot path of
 * wal2json.ts): its JSON text and the fields the listener reads. `JSON.parse(json)` is the ChangeEvent, with
 * no `unchanged` columns (an event that has some is always a ChangeEvent: toast-fill.ts resolves them).
 */
export interface EncodedEvent {
  op: Op;
  lsn: string;
  seq: string;
  json: string;
}

export function isEncoded(e: ChangeEvent | EncodedEvent): e is EncodedEvent {
  return (e as Partial<EncodedEvent>).json !== undefined;
}

/** The event as an object, whichever form the decoder gave it in. */
export function changeEventOf(e: ChangeEvent | EncodedEvent): ChangeEvent {
  return isEncoded(e) ? (JSON.parse(e.json) as ChangeEvent) : e;
}

export type Decoded =
  | { kind: 'begin'; xid: number; commitLsn: Lsn; endLsn: Lsn; commitTs: string }
  | { kind: 'change'; table: TableState; event: ChangeEvent | EncodedEvent }
  | { kind: 'commit'; endLsn: Lsn }
  | { kind: 'message'; prefix: string; content: string; lsn: Lsn; transactional: boolean };

export interface Decoder {
  /** The output plugin's name and the options START_REPLICATION passes to it. */
  readonly plugin: string;
  readonly pluginOptions: Record<string, string>;
  decode(msg: XLogData, emit: (item: Decoded) => void): void;
}

/** Two upper-case hex digits for each byte value, as changeSeq prints them. */
const HEX2 = Array.from({ length: 256 }, (_, b) => b.toString(16).toUpperCase().padStart(2, '0'));

/** The transaction being decoded: sequence numbers are its commit LSN and a running ordinal. */
export class TransactionContext {
  private xid = 0;
  private commitLsnText = '';
  /** The seq's first section, computed once per transaction (hot path: one event per row). */
  private seqPrefix = '';
  private commitTs = '';
  private ordinal = 0;
  /**
   * What an event of this transaction serialised by a decoder (EncodedEvent) holds after its `lsn`, up to its
   * seq's value: `,"commitLsn":…,"xid":…,"commitTs":…,"seq":`, the fields in the order JSON.stringify gives
   * a ChangeEvent.
   */
  jsonTail = '';
  open = false;

  begin(xid: number, commitLsn: Lsn, commitTs: string): void {
    this.xid = xid;
    this.commitLsnText = formatLsn(commitLsn);
    this.seqPrefix = changeSeq(commitLsn, 0).slice(0, 17);
    this.commitTs = commitTs;
    this.ordinal = 0;
    this.seqHeadBase = -1;
    this.open = true;
    this.jsonTail =
      `,"commitLsn":${JSON.stringify(this.commitLsnText)},"xid":${JSON.stringify(xid)}` +
      `,"commitTs":${JSON.stringify(commitTs)},"seq":`;
  }

  /**
   * The seq's text up to the ordinal's last four hex digits, for ordinals from `seqHeadBase` to 65,535 past
   * it: nextSeq then only appends four digits (one event per row: this is the hot path).
   */
  private seqHead = '';
  private seqHeadBase = -1;

  /** The next event's seq (every event takes one, in order): changeSeq(commitLsn, ordinal). */
  nextSeq(): string {
    const o = this.ordinal++;
    const low = o % 0x10000;
    if (o - low !== this.seqHeadBase) {
      this.seqHeadBase = o - low;
      this.seqHead =
        this.seqPrefix + (this.seqHeadBase / 0x10000).toString(16).toUpperCase().padStart(12, '0');
    }
    return this.seqHead + HEX2[low >>> 8] + HEX2[low & 0xff];
  }

  /**
   * The next event's seq as its two parts, for a decoder that writes it itself (pgoutput-json.ts): the
   * transaction's section with its `/` (17 characters), and the ordinal, taken like nextSeq takes it.
   */
  get seqSection(): string {
    return this.seqPrefix;
  }

  nextOrdinal(): number {
    return this.ordinal++;
  }

  commit(): void {
    this.open = false;
  }

  /** `lsn` as a bigint or as Postgres' text (wal2json sends text: no need to parse and print it again). */
  event(
    op: Op,
    lsn: Lsn | string,
    key: Row | null,
    before: Row | null,
    after: Row | null,
    unchanged: string[],
  ): ChangeEvent {
    const lsnText = typeof lsn === 'string' ? lsn : formatLsn(lsn);
    if (!this.open) throw new Error(`change at ${lsnText} outside a transaction`);
    return {
      op,
      key,
      before,
      after,
      unchanged,
      fromSource: [],
      lsn: lsnText,
      commitLsn: this.commitLsnText,
      xid: this.xid,
      commitTs: this.commitTs,
      seq: this.nextSeq(),
    };
  }
}

/** Table states by table key (contract/table-name.ts tableKey), seeded from the catalog. */
export class TableRegistry {
  private readonly states = new Map<string, TableState>();

  constructor(private readonly catalog: Catalog) {}

  get(schema: string, table: string): TableState | undefined {
    const qn = tableKey(schema, table);
    let s = this.states.get(qn);
    if (!s) {
      const cols = this.catalog.tables.get(qn);
      if (!cols) return undefined;
      s = { schema, table, columns: cols };
      this.states.set(qn, s);
    }
    return s;
  }

  /** Record a new column list for a table (a table created or altered during the run). */
  set(schema: string, table: string, columns: ColumnInfo[]): TableState {
    const s = { schema, table, columns };
    this.states.set(tableKey(schema, table), s);
    return s;
  }
}

export function keyOf(columns: ColumnInfo[], row: Row | null): Row | null {
  if (!row) return null;
  const key: Row = {};
  let any = false;
  for (const c of columns) {
    if (c.key && Object.hasOwn(row, c.name)) {
      setColumn(key, c.name, row[c.name]);
      any = true;
    }
  }
  return any ? key : null;
}
