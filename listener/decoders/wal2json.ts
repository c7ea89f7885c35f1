// wal2json format-version 2: one JSON object per change (B, C, I, U, D, T, M).
//
// wal2json prints numeric-type values as bare JSON numbers ("value":9223372036854775807), which JSON.parse
// would round. Before parsing we turn every bare number after a "value" key into a string with the same
// digits. That rewrite is exact: inside a JSON string a quote is always escaped, so the text `value":`
// followed by a digit can only be a key named value outside any string.
// Known wal2json 2.5 behaviour we cannot undo: NaN and ±Infinity in float/numeric columns arrive as null.
//
// Hot path: a B, C, I, U or D record of a table whose columns we know, every column present, is not parsed
// at all. The scanner (wal2json-scan.ts) finds the value tokens and the event's JSON text is built from them
// directly: a string token is already JSON (wal2json escapes it), a bare number becomes a string of the same
// digits, true/false become "t"/"f", bytea gains its \x. Anything else — a new or changed column list, an
// update that left TOAST columns out, generated columns, T and M records, any text the scanner does not
// expect — takes the JSON.parse path below, which remains the definition of what an event holds
// (test/listener/wal2json-fast.test.ts checks both paths give the same events on real wal2json output).

import { ColumnInfo, Row, setColumn } from '../../contract/events';
import { Lsn, parseLsn } from '../../contract/lsn';
import { parseTableKey, tableKey } from '../../contract/table-name';
import { Catalog } from '../catalog';
import { XLogData } from '../replication-stream';
import { normalizeTimestamptz } from '../time';
import {
  Decoded,
  Decoder,
  EncodedEvent,
  TableRegistry,
  TableState,
  TransactionContext,
  keyOf,
} from './types';
import { COLUMN_STRIDE, ColumnTokens, Wal2JsonTokens, unquote } from './wal2json-scan';

const BARE_NUMBER_VALUE = /"value":(-?[0-9][^,}\]]*)/g;

interface W2jColumn {
  name: string;
  type: string;
  typeoid?: number;
  value?: string | boolean | null;
}

interface W2jRecord {
  action: 'B' | 'C' | 'I' | 'U' | 'D' | 'T' | 'M';
  xid?: number | null;
  timestamp?: string | null;
  lsn?: string;
  nextlsn?: string;
  schema?: string;
  table?: string;
  columns?: W2jColumn[];
  identity?: W2jColumn[];
  pk?: { name: string }[];
  transactional?: boolean;
  prefix?: string;
  content?: string;
}

function textOf(v: string | boolean | null | undefined): string | null {
  if (v === null || v === undefined) return null;
  if (v === true) return 't';
  if (v === false) return 'f';
  return v;
}

function toRow(cols: W2jColumn[] | undefined): Row | null {
  if (!cols) return null;
  const row: Row = {};
  for (const c of cols) {
    const v = textOf(c.value);
    // wal2json prints bytea as bare hex; Postgres' own text form (and pgoutput's) starts with \x.
    setColumn(row, c.name, v !== null && c.type === 'bytea' ? `\\x${v}` : v);
  }
  return row;
}

/**
 * One name in wal2json's add-tables syntax (https://github.com/eulerto/wal2json README, "add-tables: include
 * only rows from the specified tables ... It has the same rules from filter-tables": "Special characters
 * (space, single quote, comma, period, asterisk) must be escaped with backslash. Schema and table are
 * case-sensitive. Table `"public"."Foo bar"` should be specified as `public.Foo\ bar`."). Its parser
 * (wal2json.c string_to_SelectTable, parse_table_identifier) also splits on any white space and drops the
 * backslash before any character, so white space and the backslash itself are escaped too. Each part is
 * escaped on its own, so a period inside a schema or table name never reads as the separator.
 */
function escapeTableName(name: string): string {
  return name.replace(/[\\,.'*\s]/g, '\\$&');
}

/**
 * A filter that matches no table: logical decoding never sends changes of system catalogs, and an empty
 * add-tables would mean every table ("Default is all tables from all schemas").
 */
const NO_TABLE = 'pg_catalog.*';

/**
 * wal2json's add-tables for the tables pgoutput's publications would hold (sql/0-init.sql): the captured
 * tables the replicator was granted. wal2json reads no publication, so without a filter it streams every
 * table, including one created after the last `sql init`, which the replicator may not read (its TOAST
 * lookup would fail every run). So:
 *  - a table list (PGCDC_TABLES): those tables, less the ones the role may not read (skippedTables names them);
 *  - no list, and a role that reads every table present and future (superuser, pg_read_all_data): no filter;
 *  - no list, grants only: the tables readable at run start (pgcdc's own left out). A table granted later is
 *    streamed from the first run that starts after the grant; its rows before that come with the snapshot
 *    (PGCDC_SNAPSHOT=auto snapshots every captured table that never had one, listener/job.ts).
 * Returns undefined for "no filter".
 */
export function addTablesFilter(catalog: Catalog, tables: string[]): string | undefined {
  const unreadable = new Set(catalog.unreadable ?? []);
  let names: [string, string][];
  if (tables.length) {
    // Table keys (contract/table-name.ts): parsed back into their parts, which may hold periods, commas,
    // spaces or quotes; each part is escaped on its own below.
    names = tables
      .filter((t) => !unreadable.has(t))
      .map((t) => {
        const n = parseTableKey(t);
        return [n.schema, n.table];
      });
  } else if (catalog.readsAllTables !== false || !catalog.readable) {
    return undefined;
  } else {
    names = catalog.readable.filter(([schema]) => schema !== 'pgcdc');
  }
  if (names.length === 0) return NO_TABLE;
  return names.map(([schema, table]) => `${escapeTableName(schema)}.${escapeTableName(table)}`).join(',');
}

export class Wal2JsonDecoder implements Decoder {
  readonly plugin = 'wal2json';
  readonly pluginOptions: Record<string, string>;
  private readonly txn = new TransactionContext();
  private readonly tables: TableRegistry;
  /** Generated columns by table key: wal2json sends them, pgoutput does not; we leave them out. */
  private readonly generated: Map<string, Set<string>>;

  constructor(
    private readonly catalog: Catalog,
    tables: string[],
  ) {
    this.tables = new TableRegistry(catalog);
    this.generated = catalog.generated ?? new Map();
    const addTables = addTablesFilter(catalog, tables);
    this.pluginOptions = {
      'format-version': '2',
      'include-xids': '1',
      'include-timestamp': '1',
      'include-lsn': '1',
      'include-pk': '1',
      'include-type-oids': '1',
      'include-types': '1',
      'include-typmod': '1',
      ...(addTables !== undefined ? { 'add-tables': addTables } : {}),
    };
  }

  /** Token positions of the record being decoded (reused). */
  private readonly tokens = new Wal2JsonTokens();
  /** The table of the last hot-path record, by its schema and table tokens: one table's rows come in runs. */
  private lastSchemaToken = '';
  private lastTableToken = '';
  private lastState: TableState | undefined;
  /** Pieces of the event JSON being built (reused). */
  private readonly parts: string[] = [];
  /** When false, every record takes the JSON.parse path (the tests compare both). */
  fastPath = true;

  decode(msg: XLogData, emit: (item: Decoded) => void): void {
    const text = msg.data.toString('utf8');
    if (this.fastPath && this.tokens.scan(text) && this.decodeScanned(text, msg, emit)) return;
    // The JSON.parse path may change table states: the hot path's table cache starts over.
    this.lastState = undefined;
    this.decodeParsed(text, msg, emit);
  }

  /**
   * The hot path, on a record the scanner accepted. Returns false, having changed nothing and emitted
   * nothing, when the record needs the JSON.parse path.
   */
  private decodeScanned(s: string, msg: XLogData, emit: (item: Decoded) => void): boolean {
    const t = this.tokens;
    switch (t.action) {
      case 0x42 /* B */: {
        if (t.xid[0] < 0 || t.timestamp[0] < 0 || t.lsn[0] < 0 || t.nextlsn[0] < 0) return false;
        const xid = Number(s.slice(t.xid[0], t.xid[1]));
        if (!Number.isSafeInteger(xid)) return false;
        const commitTs = normalizeTimestamptz(unquote(s, t.timestamp[0], t.timestamp[1]));
        const commitLsn = parseLsn(unquote(s, t.lsn[0], t.lsn[1]));
        const endLsn = parseLsn(unquote(s, t.nextlsn[0], t.nextlsn[1]));
        this.txn.begin(xid, commitLsn, commitTs);
        emit({ kind: 'begin', xid, commitLsn, endLsn, commitTs });
        return true;
      }
      case 0x43 /* C */: {
        const endLsn = t.nextlsn[0] < 0 ? msg.walStart : parseLsn(unquote(s, t.nextlsn[0], t.nextlsn[1]));
        this.txn.commit();
        emit({ kind: 'commit', endLsn });
        return true;
      }
      default:
        return this.scannedChange(s, t, emit);
    }
  }

  private scannedChange(s: string, t: Wal2JsonTokens, emit: (item: Decoded) => void): boolean {
    // Outside a transaction the JSON.parse path raises the error.
    if (!this.txn.open || t.lsn[0] < 0 || t.schema[0] < 0 || t.table[0] < 0) return false;
    const state = this.knownTable(s, t);
    if (!state) return false;
    if (this.generated.size > 0 && this.generated.has(tableKey(state.schema, state.table))) return false;
    const layout = layoutOf(state.columns);
    const cols = t.columns;
    const isDelete = t.action === 0x44; /* D */
    if (isDelete) {
      if (t.hasColumns || !t.hasIdentity) return false;
    } else {
      // Every column the table has, in order: nothing left out (an unchanged TOAST value), nothing new.
      if (!t.hasColumns || cols.count !== layout.names.length) return false;
      for (let i = 0; i < cols.count; i++) {
        const start = cols.pos[i * COLUMN_STRIDE];
        const name = layout.names[i];
        if (cols.pos[i * COLUMN_STRIDE + 1] - start !== name.length || !s.startsWith(name, start))
          return false;
      }
    }
    if (!valuesHandled(s, cols) || !valuesHandled(s, t.identity)) return false;

    // The event's JSON, fields in the order JSON.stringify gives a ChangeEvent (types.ts TransactionContext).
    const p = this.parts;
    p.length = 0;
    p.push(
      isDelete ? '{"op":"d","key":' : t.action === 0x49 /* I */ ? '{"op":"c","key":' : '{"op":"u","key":',
    );
    if (!isDelete) pushKey(p, s, cols, layout);
    else if (!pushIdentityKey(p, s, t.identity, layout)) pushRow(p, s, t.identity, undefined);
    p.push(',"before":');
    if (t.action !== 0x49 && t.hasIdentity) pushRow(p, s, t.identity, undefined);
    else p.push('null');
    p.push(',"after":');
    if (isDelete) p.push('null');
    else pushRow(p, s, cols, layout.rowPrefixes);
    const seq = this.txn.nextSeq();
    p.push(
      ',"unchanged":[],"fromSource":[],"lsn":',
      s.slice(t.lsn[0], t.lsn[1]),
      this.txn.jsonTail,
      '"',
      seq,
      '"}',
    );
    const op = isDelete ? 'd' : t.action === 0x49 ? 'c' : 'u';
    // One join gives a flat string; chained `+` would build a rope of slices that keeps the whole record
    // alive and that every later reader (the message's join, Buffer.from) walks again.
    const event: EncodedEvent = { op, lsn: unquote(s, t.lsn[0], t.lsn[1]), seq, json: p.join('') };
    emit({ kind: 'change', table: state, event });
    return true;
  }

  /** The known table a record's schema and table tokens name, or undefined (the JSON.parse path learns it). */
  private knownTable(s: string, t: Wal2JsonTokens): TableState | undefined {
    const [ss, se] = t.schema;
    const [ts, te] = t.table;
    const last = this.lastState;
    if (
      last &&
      se - ss === this.lastSchemaToken.length &&
      te - ts === this.lastTableToken.length &&
      s.startsWith(this.lastSchemaToken, ss) &&
      s.startsWith(this.lastTableToken, ts)
    ) {
      return last;
    }
    const state = this.tables.get(unquote(s, ss, se), unquote(s, ts, te));
    if (!state) return undefined;
    this.lastSchemaToken = s.slice(ss, se);
    this.lastTableToken = s.slice(ts, te);
    this.lastState = state;
    return state;
  }

  private decodeParsed(raw: string, msg: XLogData, emit: (item: Decoded) => void): void {
    const text = raw.replace(BARE_NUMBER_VALUE, '"value":"$1"');
    const r = JSON.parse(text) as W2jRecord;
    switch (r.action) {
      case 'B': {
        const commitTs = normalizeTimestamptz(r.timestamp ?? '');
        const commitLsn = parseLsn(r.lsn!);
        this.txn.begin(Number(r.xid), commitLsn, commitTs);
        emit({ kind: 'begin', xid: Number(r.xid), commitLsn, endLsn: parseLsn(r.nextlsn!), commitTs });
        return;
      }
      case 'C':
        this.txn.commit();
        // The XLogData header of a commit carries the transaction's end LSN: the position to confirm.
        emit({ kind: 'commit', endLsn: r.nextlsn ? parseLsn(r.nextlsn) : msg.walStart });
        return;
      case 'I':
      case 'U':
      case 'D':
        emit(this.change(r, msg));
        return;
      case 'T': {
        const state = this.tableState(r, undefined);
        emit({
          kind: 'change',
          table: state,
          event: this.txn.event('t', lsnOf(r, msg), null, null, null, []),
        });
        return;
      }
      case 'M':
        emit({
          kind: 'message',
          prefix: r.prefix ?? '',
          content: r.content ?? '',
          lsn: r.lsn ? parseLsn(r.lsn) : msg.walStart,
          transactional: r.transactional === true,
        });
        return;
      default:
        throw new Error(`wal2json: unknown action in ${text.slice(0, 200)}`);
    }
  }

  private change(r: W2jRecord, msg: XLogData): Decoded {
    const lsn = lsnOf(r, msg);
    if (this.generated.size > 0) {
      // Events carry no generated columns whichever decoder read them (listener/catalog.ts).
      const gen = this.generated.get(tableKey(r.schema ?? '', r.table ?? ''));
      if (gen) r.columns = r.columns?.filter((c) => !gen.has(c.name));
    }
    const state = this.tableState(r, r.action === 'D' ? undefined : r.columns);
    const identity = toRow(r.identity);
    if (r.action === 'D') {
      const key = keyOf(state.columns, identity) ?? identity;
      return { kind: 'change', table: state, event: this.txn.event('d', lsn, key, identity, null, []) };
    }
    const after = toRow(r.columns)!;
    const unchanged =
      r.action === 'U' && r.columns!.length < state.columns.length
        ? this.leftOutToast(state.columns, after, identity)
        : [];
    const op = r.action === 'I' ? 'c' : 'u';
    const before = r.action === 'U' ? identity : null;
    return {
      kind: 'change',
      table: state,
      event: this.txn.event(op, lsn, keyOf(state.columns, after), before, after, unchanged),
    };
  }

  /**
   * The columns an update left out because their value was an unchanged TOAST value. wal2json omits such a
   * column from `columns` and says nothing else, and it describes a change with the catalog as it was at the
   * change, while our column list comes from the catalog at the start of the run (and from the changes seen
   * since): a column added or renamed in between is missing from an older change for another reason. So a
   * missing column counts as unchanged TOAST only when it could be one:
   *  - its type can be TOASTed (variable length, storage not PLAIN): an integer, a timestamp or an enum is
   *    never left out, so missing means it did not exist when the row changed;
   *  - with REPLICA IDENTITY FULL the old row (`identity`) lists every column the table had then: a column
   *    absent from it did not exist either. One it holds is unchanged TOAST and is filled from it.
   * What remains is ambiguous (a text column added after the change looks exactly like an unchanged TOAST
   * one). It is reported unchanged and the listener resolves it from the source table (toast-fill.ts), which
   * gives the row's value now. That is right for the final replica either way: if the column was unchanged
   * TOAST, the value now is this change's value unless a later change of the row followed, and a later change
   * is itself captured with a higher sequence and wins; if the column did not exist yet, the source row holds
   * that value now, and again any later change of the row is captured after this one. The history shows the
   * value flagged in `fromSource`, never as if the WAL had carried it.
   */
  private leftOutToast(columns: ColumnInfo[], after: Row, oldRow: Row | null): string[] {
    const keyCols = columns.filter((c) => c.key).map((c) => c.name);
    const fullOld =
      oldRow !== null && Object.keys(oldRow).some((n) => keyCols.length === 0 || !keyCols.includes(n));
    const out: string[] = [];
    for (const c of columns) {
      if (Object.hasOwn(after, c.name)) continue;
      if (fullOld && !Object.hasOwn(oldRow, c.name)) continue;
      // A type created during the run is not in the catalog: it may be toastable.
      if (this.catalog.typeNames.has(c.oid) && !this.catalog.toastableTypes.has(c.oid)) continue;
      out.push(c.name);
    }
    return out;
  }

  /** The table's columns, updated when an insert or update shows a column the state does not know. */
  private tableState(r: W2jRecord, cols: W2jColumn[] | undefined): TableState {
    const schema = r.schema!;
    const table = r.table!;
    const known = this.tables.get(schema, table);
    if (!cols) return known ?? this.tables.set(schema, table, []);
    // Hot path (one call per row): the change sends exactly the columns we know, in order.
    if (known && sameNames(known.columns, cols)) return known;
    const pk = new Set((r.pk ?? []).map((p) => p.name));
    const knownNames = new Set(known?.columns.map((c) => c.name));
    const unknown = cols.filter((c) => !knownNames.has(c.name));
    // An insert always sends every column: one that lacks a known column tells us the column was dropped.
    const dropped =
      r.action === 'I' && known ? known.columns.filter((c) => !cols.some((x) => x.name === c.name)) : [];
    if (known && unknown.length === 0 && dropped.length === 0) return known;
    const base: ColumnInfo[] = known ? known.columns.filter((c) => !dropped.includes(c)) : [];
    const hasCatalogKey = base.some((c) => c.key);
    const added: ColumnInfo[] = unknown.map((c) => ({
      name: c.name,
      type: c.type,
      oid: c.typeoid ?? 0,
      key: !hasCatalogKey && pk.has(c.name),
    }));
    return this.tables.set(schema, table, [...base, ...added]);
  }
}

function sameNames(known: ColumnInfo[], cols: W2jColumn[]): boolean {
  if (known.length !== cols.length) return false;
  for (let i = 0; i < cols.length; i++) if (known[i].name !== cols[i].name) return false;
  return true;
}

function lsnOf(r: W2jRecord, msg: XLogData): Lsn | string {
  return r.lsn ?? msg.walStart;
}

/** What the hot path precomputes for one column list (cached per list: a changed list is a new array). */
interface Layout {
  /** Each column's name as a JSON string, to compare with the record's name tokens. */
  names: string[];
  /** `{"a":`, `,"b":`, … : the row object's text around the values. */
  rowPrefixes: string[];
  /** Positions of the key columns, and the key object's text around their values. */
  keyIndexes: number[];
  keyPrefixes: string[];
}

const layouts = new WeakMap<ColumnInfo[], Layout>();

function layoutOf(columns: ColumnInfo[]): Layout {
  let l = layouts.get(columns);
  if (!l) {
    const names = columns.map((c) => JSON.stringify(c.name));
    const keyIndexes = columns.flatMap((c, i) => (c.key ? [i] : []));
    l = {
      names,
      rowPrefixes: names.map((n, i) => `${i === 0 ? '{' : ','}${n}:`),
      keyIndexes,
      keyPrefixes: keyIndexes.map((k, j) => `${j === 0 ? '{' : ','}${names[k]}:`),
    };
    layouts.set(columns, l);
  }
  return l;
}

/** Whether every value token is one `pushValue` handles: a string, null, true, false, or a number. */
function valuesHandled(s: string, cols: ColumnTokens): boolean {
  for (let i = 0; i < cols.count; i++) {
    const at = i * COLUMN_STRIDE;
    const start = cols.pos[at + 2];
    const c = s.charCodeAt(start);
    if (c === 0x22 /* " */ || c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) continue;
    const len = cols.pos[at + 3] - start;
    const literal =
      (len === 4 && (s.startsWith('null', start) || s.startsWith('true', start))) ||
      (len === 5 && s.startsWith('false', start));
    if (!literal) return false;
  }
  return true;
}

/**
 * A value token as the event's JSON value — the text Postgres printed, as a JSON string, or null — the same
 * as textOf and toRow give on the parsed record. A string token is JSON already; a bare number becomes a
 * string of its digits (never a JavaScript number); bytea gains the \x of Postgres' own text form (`\\x` in
 * JSON).
 */
function pushValue(p: string[], s: string, at: number, cols: ColumnTokens): void {
  const start = cols.pos[at + 2];
  const end = cols.pos[at + 3];
  const c = s.charCodeAt(start);
  if (c === 0x22 /* " */) {
    if (cols.pos[at + 4] === 1) p.push('"\\\\x', s.slice(start + 1, end));
    else p.push(s.slice(start, end));
  } else if (c === 0x6e /* n */) p.push('null');
  else if (c === 0x74 /* t */) p.push('"t"');
  else if (c === 0x66 /* f */) p.push('"f"');
  else p.push('"', s.slice(start, end), '"');
}

/** A row object; with no prefixes, the record's own name tokens name the columns. */
function pushRow(p: string[], s: string, cols: ColumnTokens, prefixes: string[] | undefined): void {
  if (cols.count === 0) {
    p.push('{}');
    return;
  }
  for (let i = 0; i < cols.count; i++) {
    const at = i * COLUMN_STRIDE;
    if (prefixes) p.push(prefixes[i]);
    else p.push(i === 0 ? '{' : ',', s.slice(cols.pos[at], cols.pos[at + 1]), ':');
    pushValue(p, s, at, cols);
  }
  p.push('}');
}

/** keyOf on a full row (the record's columns match the table's): its key columns, or null without any. */
function pushKey(p: string[], s: string, cols: ColumnTokens, layout: Layout): void {
  if (layout.keyIndexes.length === 0) {
    p.push('null');
    return;
  }
  for (let j = 0; j < layout.keyIndexes.length; j++) {
    p.push(layout.keyPrefixes[j]);
    pushValue(p, s, layout.keyIndexes[j] * COLUMN_STRIDE, cols);
  }
  p.push('}');
}

/** keyOf on an old row (identity): the key columns it holds, in the table's order; false if none. */
function pushIdentityKey(p: string[], s: string, identity: ColumnTokens, layout: Layout): boolean {
  let n = 0;
  for (const k of layout.keyIndexes) {
    const name = layout.names[k];
    for (let i = 0; i < identity.count; i++) {
      const at = i * COLUMN_STRIDE;
      if (identity.pos[at + 1] - identity.pos[at] === name.length && s.startsWith(name, identity.pos[at])) {
        p.push(n++ === 0 ? '{' : ',', name, ':');
        pushValue(p, s, at, identity);
        break;
      }
    }
  }
  if (n > 0) p.push('}');
  return n > 0;
}
