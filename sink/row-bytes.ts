// Protobuf rows written straight into shared byte slabs, for the field types the sink's tables use.
//
// Every event is two rows (history and replica), and protobufjs spends about 2 µs a row on this project's
// tables (generated code calling a Writer per field, a Buffer per row; measured in a micro-benchmark on the
// bench:e2e table shape). This writer does the same encoding with one loop over the message's fields into a
// 1 MiB slab, and hands out views of it. It writes exactly the bytes protobufjs writes for the same values
// (test/sink/row-encoder.test.ts compares them byte for byte), because it follows the same rules:
//   - fields in field-number order ("Type#encode" sorts them by id), each optional field only when its value
//     is not null/undefined and is the object's own property, repeated fields once per element when the
//     array is not empty, required fields always;
//   - wire format per https://protobuf.dev/programming-guides/encoding/: tag = (field_number << 3) | wire_type;
//     int64/int32/bool are varints (a negative int32 is sign-extended to 10 bytes, "If you use int32 or int64
//     as the type for a negative number, the resulting varint is always ten bytes long"); double is 8 bytes
//     little-endian (wire type 1); string and bytes are length-delimited (wire type 2); repeated string/bytes
//     fields are never packed.
// Anything outside that (a message, float, unsigned or zigzag field, packed numbers, a value whose JavaScript
// type is not the one listed for its field, a missing required field) makes the writer decline: the caller
// encodes that row with protobufjs, as before. A declined row leaves nothing behind in the slab.

import type { ProtoRow } from './storage-writer';

/** The writer cannot encode this row (or this message type): encode it with protobufjs. */
export class Declined extends Error {
  override name = 'Declined';
}
const DECLINED = new Declined('row not handled by the fast writer');

const enum Kind {
  String,
  Bytes,
  Int64,
  Int32,
  Double,
  Bool,
}

interface FastField {
  name: string;
  tag: number;
  kind: Kind;
  repeated: boolean;
  required: boolean;
  /** Also the name of something every object inherits ("constructor", "toString", "__proto__"…). */
  inherited: boolean;
}

/** The part of a protobufjs Field this writer reads. */
export interface ProtobufField {
  name: string;
  id: number;
  type: string;
  repeated: boolean;
  required: boolean;
  /** proto2 optional fields track presence; proto3's implicit presence skips default values instead. */
  hasPresence: boolean;
  map?: boolean;
}

const KINDS: Record<string, Kind> = {
  string: Kind.String,
  bytes: Kind.Bytes,
  int64: Kind.Int64,
  int32: Kind.Int32,
  double: Kind.Double,
  bool: Kind.Bool,
};

const SLAB_BYTES = 1024 * 1024;
const TWO_32 = 4294967296;
const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const DECIMAL = /^-?\d{1,19}$/;

/** Rows being written: the current slab, where the row in progress starts and where writing is. */
export class RowBytes {
  private buf = Buffer.allocUnsafe(SLAB_BYTES);
  private start = 0;
  private pos = 0;

  /** Room for n more bytes; a row that does not fit moves, with what it has written, to a new slab. */
  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const used = this.pos - this.start;
    const next = Buffer.allocUnsafe(Math.max(SLAB_BYTES, 2 * (used + n)));
    this.buf.copy(next, 0, this.start, this.pos);
    this.buf = next;
    this.start = 0;
    this.pos = used;
  }

  private varint32(v: number): void {
    const b = this.buf;
    let p = this.pos;
    while (v > 127) {
      b[p++] = (v & 127) | 128;
      v >>>= 7;
    }
    b[p++] = v;
    this.pos = p;
  }

  private varint64(lo: number, hi: number): void {
    const b = this.buf;
    let p = this.pos;
    while (hi) {
      b[p++] = (lo & 127) | 128;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    while (lo > 127) {
      b[p++] = (lo & 127) | 128;
      lo >>>= 7;
    }
    b[p++] = lo;
    this.pos = p;
  }

  /** int64 from a safe integer or a decimal string in range (two's complement, as protobufjs's LongBits). */
  private int64(v: unknown): void {
    if (typeof v === 'number') {
      if (v >= 0 && v <= 0x7fffffff && (v | 0) === v) return this.varint32(v);
      if (!Number.isSafeInteger(v)) throw DECLINED;
      const negative = v < 0;
      const abs = negative ? -v : v;
      let lo = abs >>> 0;
      let hi = ((abs - lo) / TWO_32) >>> 0;
      if (negative) {
        hi = ~hi >>> 0;
        lo = ~lo >>> 0;
        if (++lo > 0xffffffff) {
          lo = 0;
          if (++hi > 0xffffffff) hi = 0;
        }
      }
      return this.varint64(lo, hi);
    }
    if (typeof v !== 'string' || !DECIMAL.test(v)) throw DECLINED;
    const big = BigInt(v);
    if (big < INT64_MIN || big > INT64_MAX) throw DECLINED;
    const u = BigInt.asUintN(64, big);
    this.varint64(Number(u & 0xffffffffn), Number(u >> 32n));
  }

  private string(s: string): void {
    const n = s.length;
    if (n < 128) {
      // ASCII, the common case: one length byte, one byte a character.
      this.ensure(n + 1);
      const b = this.buf;
      let p = this.pos + 1;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 128) break;
        b[p++] = c;
      }
      if (i === n) {
        b[this.pos] = n;
        this.pos = p;
        return;
      }
    }
    const len = Buffer.byteLength(s, 'utf8');
    this.ensure(len + 5);
    this.varint32(len);
    this.pos += this.buf.write(s, this.pos, len, 'utf8');
  }

  private value(kind: Kind, v: unknown): void {
    switch (kind) {
      case Kind.String:
        if (typeof v !== 'string') throw DECLINED;
        return this.string(v);
      case Kind.Int64:
        return this.int64(v);
      case Kind.Int32:
        if (typeof v !== 'number' || (v | 0) !== v) throw DECLINED;
        return v >= 0 ? this.varint32(v) : this.int64(v);
      case Kind.Double:
        if (typeof v !== 'number') throw DECLINED;
        this.buf.writeDoubleLE(v, this.pos);
        this.pos += 8;
        return;
      case Kind.Bool:
        if (typeof v !== 'boolean') throw DECLINED;
        this.buf[this.pos++] = v ? 1 : 0;
        return;
      case Kind.Bytes:
        if (!(v instanceof Uint8Array)) throw DECLINED;
        this.ensure(v.length + 5);
        this.varint32(v.length);
        this.buf.set(v, this.pos);
        this.pos += v.length;
        return;
    }
  }

  /** Appends one message's fields of `m` to the row in progress. */
  write(fields: readonly FastField[], m: ProtoRow): void {
    // A plain object: a field name is found through the prototype only if it is one of Object.prototype's
    // (checked with hasOwn below, as protobufjs does for every field).
    if (Object.getPrototypeOf(m) !== Object.prototype) throw DECLINED;
    for (const f of fields) {
      const v = m[f.name];
      if (v === null || v === undefined || (f.inherited && !Object.hasOwn(m, f.name))) {
        if (f.required) throw DECLINED;
        continue;
      }
      if (f.repeated) {
        if (!Array.isArray(v)) throw DECLINED;
        for (const x of v) {
          // Tag (at most 5 bytes) and a fixed-size value (at most 10); strings and bytes ensure their own.
          this.ensure(15);
          this.varint32(f.tag);
          this.value(f.kind, x);
        }
      } else {
        this.ensure(15);
        this.varint32(f.tag);
        this.value(f.kind, v);
      }
    }
  }

  /** The row written since the last finish or abandon, as a view of the slab. */
  finish(): Uint8Array {
    const row = this.buf.subarray(this.start, this.pos);
    this.start = this.pos;
    return row;
  }

  /** Forgets the row in progress (it was declined). */
  abandon(): void {
    this.pos = this.start;
  }
}

/** The shared slab writer: encoding is synchronous, so one row is in progress at a time in the process. */
export const rowBytes = new RowBytes();

/** The fields of a message type in the order protobufjs writes them, or null if this writer cannot. */
export function fastFields(fields: readonly ProtobufField[]): FastField[] | null {
  const out: FastField[] = [];
  for (const f of [...fields].sort((a, b) => a.id - b.id)) {
    // A message or enum field's type is its type's name: not one of KINDS.
    const kind = KINDS[f.type];
    if (kind === undefined || f.map) return null;
    // Written when set, whatever the value, as proto2 does (the descriptors adapt builds are proto2);
    // implicit presence (proto3: a zero or empty value is not written) is left to protobufjs.
    if (!f.repeated && !f.required && !f.hasPresence) return null;
    const lengthDelimited = kind === Kind.String || kind === Kind.Bytes;
    // Packed repeated numbers are one length-delimited run: not written here.
    if (f.repeated && !lengthDelimited) return null;
    const wire = lengthDelimited ? 2 : kind === Kind.Double ? 1 : 0;
    out.push({
      name: f.name,
      tag: f.id * 8 + wire,
      kind,
      repeated: f.repeated,
      required: f.required,
      inherited: f.name in Object.prototype,
    });
  }
  return out;
}
