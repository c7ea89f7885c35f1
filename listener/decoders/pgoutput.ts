// pgoutput, PostgreSQL's built-in logical replication protocol (proto_version 1), decoded with a cursor-style
// binary reader and a tag switch. Relation messages describe a table before its first change in a
// session; we cache them by relation OID.
// Protocol: https://www.postgresql.org/docs/15/protocol-logicalrep-message-formats.html
//
// Hot path: an insert, update or delete of a relation whose tuples carry every value is not turned into
// objects: its event JSON is written straight from the tuple bytes (pgoutput-json.ts). Updates with an
// unchanged TOAST value (they need toast-fill.ts), truncates, messages, changes outside a transaction and
// relations with unusual column names take the object path below, which remains the definition of what an
// event holds (test/listener/pgoutput-fast.test.ts checks the two give the same JSON, byte for byte, on real
// pgoutput output).

import { ColumnInfo, Row, setColumn } from '../../contract/events';
import { tableKey } from '../../contract/table-name';
import { Lsn, formatLsn } from '../../contract/lsn';
import { Catalog } from '../catalog';
import { XLogData } from '../replication-stream';
import { formatPgMicros } from '../time';
import { formatType } from './format-type';
import {
  JsonLayout,
  JsonWriter,
  TupleSpans,
  asciiBytes,
  jsonLayoutOf,
  readTupleSpans,
} from './pgoutput-json';
import {
  Decoded,
  Decoder,
  EncodedEvent,
  TableRegistry,
  TableState,
  TransactionContext,
  keyOf,
} from './types';

/** Reads big-endian integers and C strings from a buffer, advancing a cursor. */
export class BinaryReader {
  pos = 0;
  constructor(private readonly buf: Buffer) {}
  u8(): number {
    return this.buf[this.pos++];
  }
  i16(): number {
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  i32(): number {
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u32(): number {
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  i64(): bigint {
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  cstring(): string {
    const end = this.buf.indexOf(0, this.pos);
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }
  bytes(n: number): Buffer {
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
}

interface Relation {
  state: TableState;
  /** Column names in the order tuples carry them. */
  names: string[];
  /** Replica identity columns: an old-key ('K') tuple carries only these (the others arrive as nulls). */
  identity: string[];
  /** The hot path's precomputed text, or null when this relation's events take the object path. */
  layout: JsonLayout | null;
}

interface Tuple {
  row: Row;
  unchanged: string[];
}

// The fixed parts of a hot-path event, in the order JSON.stringify gives a ChangeEvent (types.ts).
const INSERT_HEAD = asciiBytes('{"op":"c","key":');
const UPDATE_HEAD = asciiBytes('{"op":"u","key":');
const DELETE_HEAD = asciiBytes('{"op":"d","key":');
const NULL_TEXT = asciiBytes('null');
const BEFORE = asciiBytes(',"before":');
const AFTER = asciiBytes(',"after":');
const AFTER_NULL = asciiBytes(',"after":null');
const LSN_KEY = asciiBytes(',"unchanged":[],"fromSource":[],"lsn":"');
const EVENT_END = asciiBytes('"}');
/** A seq: two sections of 16 hex digits and the `/` between (contract/lsn.ts changeSeq). */
const SEQ_LENGTH = 33;
const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);

export class PgOutputDecoder implements Decoder {
  readonly plugin = 'pgoutput';
  readonly pluginOptions: Record<string, string>;
  private readonly txn = new TransactionContext();
  private readonly tables: TableRegistry;
  private readonly relations = new Map<number, Relation>();
  private readonly wanted: Set<string> | undefined;
  /** When false, every change takes the object path (the tests compare both). */
  fastPath = true;
  private readonly json = new JsonWriter();
  private readonly oldSpans = new TupleSpans();
  private readonly newSpans = new TupleSpans();
  /** The current transaction's jsonTail, the seq's opening quote and first section, as UTF-8 (per transaction). */
  private tailText = '';
  private tailBytes = Buffer.alloc(0);
  private tailNonAscii = false;

  constructor(
    private readonly catalog: Catalog,
    publication: string,
    tables: string[],
  ) {
    this.tables = new TableRegistry(catalog);
    this.wanted = tables.length ? new Set(tables) : undefined;
    this.pluginOptions = { proto_version: '1', publication_names: publication, messages: 'true' };
  }

  decode(msg: XLogData, emit: (item: Decoded) => void): void {
    const r = new BinaryReader(msg.data);
    const tag = String.fromCharCode(r.u8());
    switch (tag) {
      case 'B': {
        const commitLsn: Lsn = r.u64();
        const commitTs = formatPgMicros(r.i64());
        const xid = r.u32();
        this.txn.begin(xid, commitLsn, commitTs);
        // pgoutput's Begin has no end LSN; the Commit message brings it.
        emit({ kind: 'begin', xid, commitLsn, endLsn: 0n, commitTs });
        return;
      }
      case 'C': {
        r.u8(); // flags, unused
        r.u64(); // commit LSN, known from Begin
        const endLsn = r.u64();
        this.txn.commit();
        emit({ kind: 'commit', endLsn });
        return;
      }
      case 'R':
        this.relation(r);
        return;
      case 'Y': // type description: we read type names from the catalog instead
      case 'O': // origin
        return;
      case 'I': {
        const rel = this.rel(r.u32());
        if (this.fastPath && this.encode(msg, rel, emit)) return;
        r.u8(); // 'N'
        const t = this.tuple(r, rel);
        if (!this.isWanted(rel)) return;
        emit(this.change(rel, 'c', msg.walStart, null, t));
        return;
      }
      case 'U': {
        const rel = this.rel(r.u32());
        if (this.fastPath && this.encode(msg, rel, emit)) return;
        const kind = String.fromCharCode(r.u8());
        let old: Tuple | null = null;
        if (kind === 'K' || kind === 'O') {
          old = this.tuple(r, rel, kind === 'K');
          r.u8(); // 'N': the new tuple follows
        }
        const t = this.tuple(r, rel);
        if (!this.isWanted(rel)) return;
        emit(this.change(rel, 'u', msg.walStart, old, t));
        return;
      }
      case 'D': {
        const rel = this.rel(r.u32());
        if (this.fastPath && this.encode(msg, rel, emit)) return;
        const old = this.tuple(r, rel, r.u8() === 0x4b /* K */);
        if (!this.isWanted(rel)) return;
        const key = keyOf(rel.state.columns, old.row) ?? old.row;
        emit({
          kind: 'change',
          table: rel.state,
          event: this.txn.event('d', msg.walStart, key, old.row, null, []),
        });
        return;
      }
      case 'T': {
        const n = r.u32();
        r.u8(); // options: CASCADE / RESTART IDENTITY
        for (let i = 0; i < n; i++) {
          const rel = this.rel(r.u32());
          if (!this.isWanted(rel)) continue;
          emit({
            kind: 'change',
            table: rel.state,
            event: this.txn.event('t', msg.walStart, null, null, null, []),
          });
        }
        return;
      }
      case 'M': {
        const transactional = (r.u8() & 1) === 1;
        const lsn = r.u64();
        const prefix = r.cstring();
        const content = r.bytes(r.u32()).toString('utf8');
        emit({ kind: 'message', prefix, content, lsn, transactional });
        return;
      }
      default:
        throw new Error(`pgoutput: unknown message tag ${JSON.stringify(tag)}`);
    }
  }

  /**
   * The hot path for an I, U or D message (tag at byte 0, relation OID after it): emits the event as its
   * JSON text and returns true, or returns false having emitted and consumed nothing (the object path then
   * decodes the message). Reads the same bytes, in the same order, as the object path.
   */
  private encode(msg: XLogData, rel: Relation, emit: (item: Decoded) => void): boolean {
    const layout = rel.layout;
    // Outside a transaction the object path raises the error.
    if (!layout || !this.txn.open) return false;
    if (!this.isWanted(rel)) return true;
    const buf = msg.data;
    const tag = buf[0];
    const width = layout.names.length;
    let pos = 5;
    let old: TupleSpans | null = null;
    let neu: TupleSpans | null = null;
    if (tag === 0x49 /* I */) {
      neu = this.newSpans;
      readTupleSpans(buf, pos + 1, layout, false, neu); // after 'N'
    } else {
      const kind = buf[pos];
      if (kind === 0x4b /* K */ || kind === 0x4f /* O */) {
        old = this.oldSpans;
        pos = readTupleSpans(buf, pos + 1, layout, kind === 0x4b, old);
        if (old.starts.length !== width) return false;
      }
      if (tag === 0x55 /* U */) {
        neu = this.newSpans;
        // pos is at 'N' (with or without an old tuple before it)
        readTupleSpans(buf, pos + 1, layout, false, neu);
      } else if (!old) {
        return false;
      }
    }
    if (neu && (neu.unchanged || neu.starts.length !== width)) return false;

    const w = this.json;
    w.reset();
    let op: 'c' | 'u' | 'd';
    if (tag === 0x49) {
      op = 'c';
      w.bytes(INSERT_HEAD);
    } else if (tag === 0x55) {
      op = 'u';
      w.bytes(UPDATE_HEAD);
    } else {
      op = 'd';
      w.bytes(DELETE_HEAD);
    }
    if (neu) {
      if (!w.key(buf, layout, neu)) w.bytes(NULL_TEXT);
      w.bytes(BEFORE);
      if (old) w.row(buf, layout, old);
      else w.bytes(NULL_TEXT);
      w.bytes(AFTER);
      w.row(buf, layout, neu);
    } else {
      // A delete: keyOf(old) ?? old, as the object path.
      if (!w.key(buf, layout, old!)) w.row(buf, layout, old!);
      w.bytes(BEFORE);
      w.row(buf, layout, old!);
      w.bytes(AFTER_NULL);
    }
    // The LSN as formatLsn prints it, and the seq as nextSeq makes it, written as bytes; the event's strings
    // are then slices of its JSON (both are ASCII, so their offsets from the end are the same in characters).
    w.bytes(LSN_KEY);
    const lsnStart = w.n;
    const at = msg.walStart;
    if (at <= MAX_EXACT) {
      const v = Number(at);
      const lo = v >>> 0;
      w.hex((v - lo) / 4294967296);
      w.byte(0x2f); // '/'
      w.hex(lo);
    } else {
      w.bytes(Buffer.from(formatLsn(at), 'latin1'));
    }
    const lsnLength = w.n - lsnStart;
    w.byte(0x22);
    const tail = this.txn.jsonTail;
    if (tail !== this.tailText) {
      this.tailText = tail;
      this.tailBytes = Buffer.from(`${tail}"${this.txn.seqSection}`);
      this.tailNonAscii = this.tailBytes.length !== tail.length + 1 + this.txn.seqSection.length;
    }
    w.bytes(this.tailBytes, this.tailNonAscii);
    w.hex16(this.txn.nextOrdinal());
    w.bytes(EVENT_END);
    const json = w.toString();
    const end = json.length;
    // From the end: `"}` (2), the seq (33), its opening quote, the tail, the LSN's closing quote.
    const lsnEnd = end - 2 - SEQ_LENGTH - 1 - tail.length - 1;
    const event: EncodedEvent = {
      op,
      lsn: json.slice(lsnEnd - lsnLength, lsnEnd),
      seq: json.slice(end - 2 - SEQ_LENGTH, end - 2),
      json,
    };
    emit({ kind: 'change', table: rel.state, event });
    return true;
  }

  private change(rel: Relation, op: 'c' | 'u', lsn: Lsn, old: Tuple | null, t: Tuple): Decoded {
    return {
      kind: 'change',
      table: rel.state,
      event: this.txn.event(op, lsn, keyOf(rel.state.columns, t.row), old?.row ?? null, t.row, t.unchanged),
    };
  }

  private relation(r: BinaryReader): void {
    const oid = r.u32();
    const schema = r.cstring();
    const table = r.cstring();
    r.u8(); // replica identity setting
    const n = r.i16();
    const cols: { name: string; typeOid: number; type: string; identity: boolean }[] = [];
    for (let i = 0; i < n; i++) {
      const flags = r.u8();
      const name = r.cstring();
      const typeOid = r.u32();
      // The typmod makes "numeric(10,2)" rather than "numeric": the type as format_type prints it, the same
      // as the catalog and wal2json give, so a table's column types never alternate between the two paths.
      const type = formatType(this.catalog, typeOid, r.i32());
      cols.push({ name, typeOid, type, identity: (flags & 1) === 1 });
    }
    const known = this.tables.get(schema, table);
    const sameShape =
      known &&
      known.columns.length === cols.length &&
      known.columns.every(
        (c, i) => c.name === cols[i].name && c.oid === cols[i].typeOid && c.type === cols[i].type,
      );
    let state: TableState;
    if (known && sameShape) {
      state = known;
    } else {
      // Columns the catalog knows keep their key flags; new ones take the relation's.
      const byName = new Map((known?.columns ?? []).map((c) => [c.name, c]));
      const hasKey = cols.some((c) => byName.get(c.name)?.key);
      const columns: ColumnInfo[] = cols.map((c) => {
        const k = byName.get(c.name);
        if (k && k.oid === c.typeOid && k.type === c.type) return k;
        return {
          name: c.name,
          type: c.type,
          oid: c.typeOid,
          // A known column keeps its key flag when only its type changed (ALTER COLUMN ... TYPE).
          key: k ? k.key : hasKey ? false : c.identity,
        };
      });
      state = this.tables.set(schema, table, columns);
    }
    this.relations.set(oid, {
      state,
      names: cols.map((c) => c.name),
      identity: cols.filter((c) => c.identity).map((c) => c.name),
      layout: jsonLayoutOf(
        state.columns,
        cols.map((c) => c.identity),
      ),
    });
  }

  private rel(oid: number): Relation {
    const rel = this.relations.get(oid);
    if (!rel) throw new Error(`pgoutput: change for relation ${oid} before its Relation message`);
    return rel;
  }

  private isWanted(rel: Relation): boolean {
    if (!this.wanted) return true;
    const name = tableKey(rel.state.schema, rel.state.table);
    // A relation the run-start catalog did not know can only reach us through the publications, which
    // `sql init` builds from the captured tables: it is a partition created during the run of a captured
    // partitioned table ("all of its existing and future partitions are implicitly considered to be part of
    // the publication", https://www.postgresql.org/docs/15/sql-createpublication.html). Dropping it would
    // confirm the slot past its changes.
    return this.wanted.has(name) || !this.catalog.tables.has(name);
  }

  private tuple(r: BinaryReader, rel: Relation, keyOnly = false): Tuple {
    const n = r.i16();
    const row: Row = {};
    const unchanged: string[] = [];
    const keep = keyOnly ? new Set(rel.identity) : undefined;
    for (let i = 0; i < n; i++) {
      const name = rel.names[i];
      if (keep && !keep.has(name)) {
        r.u8(); // 'n': a non-identity column of an old key
        continue;
      }
      const kind = r.u8();
      if (kind === 0x6e /* n */) setColumn(row, name, null);
      else if (kind === 0x75 /* u: unchanged TOAST, not sent */) unchanged.push(name);
      else if (kind === 0x74 /* t */) setColumn(row, name, r.bytes(r.i32()).toString('utf8'));
      else throw new Error(`pgoutput: unsupported tuple value kind ${kind} (binary mode is not requested)`);
    }
    return { row, unchanged };
  }
}
