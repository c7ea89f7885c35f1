// The hot path of the pgoutput decoder (pgoutput.ts): a change's event JSON written byte by byte from the
// binary tuple data, into one reused buffer, and turned into a string once per event. That skips the row
// objects, keyOf and JSON.stringify's walk over them, which bounded the listener on large transactions.
//
// The text it writes is exactly what JSON.stringify gives on the event object the object path builds
// (test/listener/pgoutput-fast.test.ts compares the two byte for byte on real pgoutput output):
//  - fields in the order TransactionContext.event creates them (types.ts);
//  - a row's columns in tuple order, which is the order JSON.stringify lists an object's keys in as long as
//    no name is an array index ("0", "17": listed first, in numeric order) — relations with such a column
//    take the object path (`jsonLayoutOf` returns null). A column named "__proto__" is an own property of
//    the object path's rows (contract/events.ts setColumn), listed in its place like any other, so its text
//    here is the same; JSON.parse on the sink's side makes such a member an own property again, not a call of
//    the prototype setter (pgoutput-fast.test.ts checks both);
//  - column names escaped once per relation with JSON.stringify;
//  - values as JSON.stringify escapes a string (ECMA-262 QuoteJSONString: `"` and `\` get a backslash,
//    \b \t \n \f \r their short forms, the other code points below U+0020 \u00xx in lower-case hex, and
//    nothing else). A value is copied as UTF-8 bytes; the whole event is decoded once at the end, which is
//    the same text as decoding each value on its own, because every byte the escaping writes or reacts to is
//    ASCII and so never part of a multi-byte sequence.

import { ColumnInfo } from '../../contract/events';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const HEX = '0123456789abcdef';

/** What the hot path precomputes for one relation. */
export interface JsonLayout {
  /** `"name":` per column, UTF-8. */
  names: Buffer[];
  /** Whether a name holds a byte ≥ 0x80 (then the event text is decoded as UTF-8, else as Latin-1). */
  nonAsciiName: boolean[];
  /** Positions of the key columns (ColumnInfo.key), in column order: keyOf's order. */
  keyIndexes: number[];
  /** Per column: part of the replica identity, i.e. present in an old-key ('K') tuple. */
  identity: boolean[];
}

function isArrayIndex(name: string): boolean {
  // ECMA-262 array index: the canonical decimal form of an integer below 2^32 - 1.
  return /^(?:0|[1-9][0-9]{0,9})$/.test(name) && Number(name) < 4294967295;
}

/** The hot path's layout of a relation, or null when its events must take the object path. */
export function jsonLayoutOf(columns: ColumnInfo[], identity: boolean[]): JsonLayout | null {
  if (columns.some((c) => isArrayIndex(c.name))) return null;
  const names = columns.map((c) => Buffer.from(`${JSON.stringify(c.name)}:`));
  return {
    names,
    nonAsciiName: names.map((b) => b.some((x) => x >= 0x80)),
    keyIndexes: columns.flatMap((c, i) => (c.key ? [i] : [])),
    identity,
  };
}

/**
 * Where one tuple's values lie in the message: per column, the start and end of its text bytes, or
 * start -1 for NULL and -2 for a value the tuple does not carry (unchanged TOAST, or a non-identity column
 * of an old key).
 */
export class TupleSpans {
  starts: number[] = [];
  ends: number[] = [];
  /** A new tuple with an unchanged TOAST value: its event needs the object path (toast-fill.ts). */
  unchanged = false;
}

export const NULL_VALUE = -1;
export const ABSENT = -2;

/**
 * Reads a TupleData at `pos` into `into` (pgoutput's TupleData: Int16 column count, then per column 'n',
 * 'u', or 't' with Int32 length and the text). Returns the position after it. `keyOnly`: an old key, whose
 * non-identity columns are sent as 'n' and are not part of the row.
 */
export function readTupleSpans(
  buf: Buffer,
  pos: number,
  layout: JsonLayout,
  keyOnly: boolean,
  into: TupleSpans,
): number {
  const n = buf.readInt16BE(pos);
  pos += 2;
  const starts = into.starts;
  const ends = into.ends;
  starts.length = n;
  ends.length = n;
  into.unchanged = false;
  for (let i = 0; i < n; i++) {
    const kind = buf[pos++];
    if (keyOnly && !layout.identity[i]) {
      starts[i] = ABSENT;
      continue;
    }
    if (kind === 0x74 /* t */) {
      const len = buf.readInt32BE(pos);
      starts[i] = pos + 4;
      pos += 4 + len;
      ends[i] = pos;
    } else if (kind === 0x6e /* n */) {
      starts[i] = NULL_VALUE;
    } else if (kind === 0x75 /* u */) {
      starts[i] = ABSENT;
      into.unchanged = true;
    } else {
      throw new Error(`pgoutput: unsupported tuple value kind ${kind} (binary mode is not requested)`);
    }
  }
  return pos;
}

/** ASCII text as bytes, for the fixed parts of an event. */
export function asciiBytes(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

const OPEN = 0x7b; // {
const CLOSE = 0x7d; // }
const COMMA = 0x2c;
const NULL_TEXT = asciiBytes('null');
const EMPTY_OBJECT = asciiBytes('{}');
const UPPER_HEX = '0123456789ABCDEF';

const INITIAL_BYTES = 64 * 1024;
const MAX_KEPT_BYTES = 1024 * 1024;

/**
 * Writes an event's JSON into a growing buffer; `toString()` decodes it once. Reused from event to event.
 * Short byte runs are copied in a loop: Buffer#copy's native call costs more than it saves below ~100 bytes.
 */
export class JsonWriter {
  private out = Buffer.allocUnsafe(INITIAL_BYTES);
  n = 0;
  private nonAscii = false;

  reset(): void {
    this.n = 0;
    this.nonAscii = false;
    // After an event with a huge value, do not keep its buffer for the rest of the run (memory bound).
    if (this.out.length > MAX_KEPT_BYTES) this.out = Buffer.allocUnsafe(INITIAL_BYTES);
  }

  private reserve(bytes: number): void {
    if (this.n + bytes <= this.out.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.out.length * 2, this.n + bytes));
    this.out.copy(bigger, 0, 0, this.n);
    this.out = bigger;
  }

  byte(c: number): void {
    this.reserve(1);
    this.out[this.n++] = c;
  }

  bytes(b: Buffer, nonAscii = false): void {
    const len = b.length;
    this.reserve(len);
    if (len > 96) {
      b.copy(this.out, this.n);
      this.n += len;
    } else {
      const out = this.out;
      let n = this.n;
      for (let i = 0; i < len; i++) out[n++] = b[i];
      this.n = n;
    }
    if (nonAscii) this.nonAscii = true;
  }

  /** An unsigned integer below 2^32 in upper-case hex without leading zeros (an LSN half as Postgres prints it). */
  hex(v: number): void {
    this.reserve(8);
    let digits = 1;
    while (digits < 8 && v >>> (4 * digits) !== 0) digits++;
    const out = this.out;
    for (let d = digits - 1; d >= 0; d--) out[this.n++] = UPPER_HEX.charCodeAt((v >>> (4 * d)) & 15);
  }

  /** An integer below 2^53 as 16 upper-case hex digits (a seq section). */
  hex16(v: number): void {
    this.reserve(16);
    const lo = v >>> 0;
    const hi = (v - lo) / 4294967296;
    const out = this.out;
    let n = this.n;
    for (let d = 7; d >= 0; d--) out[n++] = UPPER_HEX.charCodeAt((hi >>> (4 * d)) & 15);
    for (let d = 7; d >= 0; d--) out[n++] = UPPER_HEX.charCodeAt((lo >>> (4 * d)) & 15);
    this.n = n;
  }

  /** The bytes `src[start, end)` as a JSON string, escaped as JSON.stringify escapes the decoded text. */
  stringValue(src: Buffer, start: number, end: number): void {
    this.reserve(2 + end - start);
    let out = this.out;
    let n = this.n;
    out[n++] = QUOTE;
    for (let i = start; i < end; i++) {
      const c = src[i];
      if (c >= 0x20 && c !== QUOTE && c !== BACKSLASH) {
        if (c >= 0x80) this.nonAscii = true;
        out[n++] = c;
        continue;
      }
      // An escape takes up to 6 bytes where the byte took 1: make room for it and the rest.
      if (n + 6 + (end - i) > out.length) {
        this.n = n;
        this.reserve(6 + (end - i));
        out = this.out;
      }
      out[n++] = BACKSLASH;
      switch (c) {
        case QUOTE:
        case BACKSLASH:
          out[n++] = c;
          break;
        case 0x08:
          out[n++] = 0x62; // b
          break;
        case 0x09:
          out[n++] = 0x74; // t
          break;
        case 0x0a:
          out[n++] = 0x6e; // n
          break;
        case 0x0c:
          out[n++] = 0x66; // f
          break;
        case 0x0d:
          out[n++] = 0x72; // r
          break;
        default:
          out[n++] = 0x75; // u
          out[n++] = 0x30;
          out[n++] = 0x30;
          out[n++] = HEX.charCodeAt(c >> 4);
          out[n++] = HEX.charCodeAt(c & 15);
      }
    }
    out[n++] = QUOTE;
    this.n = n;
  }

  private column(src: Buffer, layout: JsonLayout, t: TupleSpans, i: number, first: boolean): void {
    this.byte(first ? OPEN : COMMA);
    this.bytes(layout.names[i], layout.nonAsciiName[i]);
    const start = t.starts[i];
    if (start === NULL_VALUE) this.bytes(NULL_TEXT);
    else this.stringValue(src, start, t.ends[i]);
  }

  /** A row object: every column the tuple carries, in order (JSON.stringify of the object path's row). */
  row(src: Buffer, layout: JsonLayout, t: TupleSpans): void {
    let first = true;
    for (let i = 0; i < t.starts.length; i++) {
      if (t.starts[i] === ABSENT) continue;
      this.column(src, layout, t, i, first);
      first = false;
    }
    if (first) this.bytes(EMPTY_OBJECT);
    else this.byte(CLOSE);
  }

  /** keyOf on the row: its key columns that the tuple carries, or false when there are none. */
  key(src: Buffer, layout: JsonLayout, t: TupleSpans): boolean {
    let first = true;
    const keys = layout.keyIndexes;
    for (let k = 0; k < keys.length; k++) {
      const i = keys[k];
      if (i >= t.starts.length || t.starts[i] === ABSENT) continue;
      this.column(src, layout, t, i, first);
      first = false;
    }
    if (!first) this.byte(CLOSE);
    return !first;
  }

  toString(): string {
    return this.nonAscii ? this.out.toString('utf8', 0, this.n) : this.out.toString('latin1', 0, this.n);
  }
}
