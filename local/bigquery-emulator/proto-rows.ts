/**
 * Storage Write API rows → stored records, compiled once per (writer schema, table schema) pair instead of
 * being worked out again for every value of every row.
 *
 * The row is still decoded by protobufjs (its generated decoder defines what the wire bytes mean: wire-type
 * checks, closed enums, merging of repeated nested messages, missing required fields). What this module saves is
 * everything after it: `toObject` (a second copy of every row with int64 values turned into decimal strings by
 * `Long#toString`, a division loop), looking each field's column up by name, and re-validating values whose proto
 * type already guarantees their shape (a proto int64 is always an integer in the INT64 range). The values it
 * produces are exactly those of `fromProtoScalar` on the `toObject` form (`convertObjectRow`, kept for writer
 * schemas with map fields and as the reference the tests compare against).
 */
import * as protobuf from 'protobufjs';
import type { FieldSchema } from './schema';
import {
  completeRecord,
  fromProtoScalar,
  parseDecimal,
  timestampFromMicros,
  ValueError,
  type StoredRecord,
  type StoredValue,
} from './values';

/** The table column a writer-schema field writes (its `column_name` option, else its own name). */
export type ColumnOf = (field: protobuf.Field) => string;

/** A decoded protobufjs message: fields present are own properties. */
type Message = Record<string, unknown>;
type Long = { low: number; high: number; unsigned: boolean };

const hasOwn = Object.prototype.hasOwnProperty;
const LONG_TYPES: ReadonlySet<string> = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const TWO_32 = 4294967296;
/** |high| below this: high * 2^32 + low is below 2^53, so a double holds it exactly. */
const SAFE_HIGH = 0x200000;

/** Decimal text of a protobufjs Long, as `Long#toString()` prints it (signed or unsigned per the Long). */
export function longToString(v: Long): string {
  const low = v.low >>> 0;
  if (v.unsigned) {
    const high = v.high >>> 0;
    if (high < SAFE_HIGH) return String(high * TWO_32 + low);
    return ((BigInt(high) << 32n) + BigInt(low)).toString();
  }
  const high = v.high | 0;
  if (high >= -SAFE_HIGH && high < SAFE_HIGH) return String(high * TWO_32 + low);
  return ((BigInt(high) << 32n) + BigInt(low)).toString();
}

/** A 64-bit proto value as decimal text: from RowReader (already text), a number, or a protobufjs Long. */
const longText = (v: unknown): string =>
  typeof v === 'string' ? v : typeof v === 'number' ? String(v) : longToString(v as Long);

/** The `toObject({longs: String})` form of a scalar as decoded. */
function objectForm(protoType: string, v: unknown): unknown {
  if (LONG_TYPES.has(protoType)) return longText(v);
  return v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v) : v;
}

interface ReaderState {
  buf: Buffer;
  pos: number;
  len: number;
}
type ReadLong = (this: ReaderState) => Long;
const base = protobuf.BufferReader.prototype as unknown as Record<
  'int64' | 'uint64' | 'sint64' | 'fixed64' | 'sfixed64',
  ReadLong
>;

/**
 * A varint whose value is below 2^53 (so exact as a double: every partial sum is an exact integer below the final
 * one) as decimal text, advancing the reader; undefined (reader untouched) for larger values, 10-byte varints
 * (negative int64) and anything running past the end, which protobufjs' own method then reads.
 */
function shortVarintText(r: ReaderState, zigzag: boolean): string | undefined {
  const { buf, len } = r;
  let pos = r.pos;
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 9 && pos < len; i++) {
    const b = buf[pos++];
    value += (b & 127) * scale;
    if (b < 128) {
      if (value > Number.MAX_SAFE_INTEGER) return undefined;
      r.pos = pos;
      // zig-zag: 0, -1, 1, -2, ... (protobufjs LongBits#zzDecode)
      if (zigzag) value = value % 2 === 0 ? value / 2 : -(value + 1) / 2;
      return String(value);
    }
    scale *= 128;
  }
  return undefined;
}

/** Fixed 64 bits (little endian) as decimal text when the value is below 2^53, else undefined. */
function fixed64Text(r: ReaderState, signed: boolean): string | undefined {
  if (r.pos + 8 > r.len) return undefined;
  const low = r.buf.readUInt32LE(r.pos);
  const high = signed ? r.buf.readInt32LE(r.pos + 4) : r.buf.readUInt32LE(r.pos + 4);
  if (high < -SAFE_HIGH || high >= SAFE_HIGH) return undefined;
  r.pos += 8;
  return String(high * TWO_32 + low);
}

/**
 * protobufjs' BufferReader, except that 64-bit integers come out as decimal text (the `toObject({longs: String})`
 * form) instead of Long objects: no Long, no LongBits, no `Long#toString` per value. protobufjs' generated decoders
 * accept any Reader subclass. Values that are not short (or that protobufjs would refuse) go through protobufjs'
 * own methods, so errors and edge cases are its own.
 */
class RowReader extends protobuf.BufferReader {}
Object.assign(RowReader.prototype, {
  int64(this: ReaderState): string {
    return shortVarintText(this, false) ?? longToString(base.int64.call(this));
  },
  uint64(this: ReaderState): string {
    return shortVarintText(this, false) ?? longToString(base.uint64.call(this));
  },
  sint64(this: ReaderState): string {
    return shortVarintText(this, true) ?? longToString(base.sint64.call(this));
  },
  fixed64(this: ReaderState): string {
    return fixed64Text(this, false) ?? longToString(base.fixed64.call(this));
  },
  sfixed64(this: ReaderState): string {
    return fixed64Text(this, true) ?? longToString(base.sfixed64.call(this));
  },
});

/**
 * Decodes a row with `type`'s generated decoder, 64-bit integers as decimal text. Only for RowPlan converters,
 * which take that form; the general path (toObject) needs protobufjs' Longs.
 */
export function decodeWithTextLongs(type: protobuf.Type, bytes: Buffer): protobuf.Message {
  return type.decode(new RowReader(bytes));
}

export const protoTypeOf = (field: protobuf.Field): string =>
  field.resolvedType instanceof protobuf.Type
    ? 'message'
    : field.resolvedType instanceof protobuf.Enum
      ? 'enum'
      : field.type;

const SIMPLE_DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

/**
 * NUMERIC/BIGNUMERIC from a plain decimal string that needs no rounding and is clearly inside the range: the
 * canonical text `parseDecimal` prints, without BigInt arithmetic. Anything else goes to `parseDecimal`.
 */
function decimalConverter(column: FieldSchema): (v: unknown) => string {
  const type = column.type as 'NUMERIC' | 'BIGNUMERIC';
  const scale = column.scale !== undefined ? Number(column.scale) : type === 'NUMERIC' ? 9 : 38;
  // NUMERIC's maximum is 10^38 - 1 (38 digits); BIGNUMERIC's is about 5.79e38 (2^255 / 10^38).
  const maxDigits = column.precision !== undefined ? Number(column.precision) : type === 'NUMERIC' ? 38 : 76;
  const slow = (v: unknown): string => parseDecimal(type, v, column);
  if (!Number.isInteger(scale) || scale < 0 || !Number.isInteger(maxDigits) || maxDigits < 1) return slow;
  return (v) => {
    const m = typeof v === 'string' ? SIMPLE_DECIMAL.exec(v) : null;
    if (!m) return slow(v);
    const frac = m[3] ?? '';
    if (frac.length > scale) return slow(v);
    let i = 0;
    const intDigits = m[2];
    while (i < intDigits.length && intDigits.charCodeAt(i) === 48) i++;
    const whole = i === 0 ? intDigits : intDigits.slice(i);
    if ((whole.length === 0 ? scale : whole.length + scale) > maxDigits) return slow(v);
    let j = frac.length;
    while (j > 0 && frac.charCodeAt(j - 1) === 48) j--;
    const fraction = j === frac.length ? frac : frac.slice(0, j);
    if (whole.length === 0 && fraction.length === 0) return '0';
    return `${m[1]}${whole || '0'}${fraction ? `.${fraction}` : ''}`;
  };
}

/**
 * The converter of one scalar: `fromProtoScalar` on the object form, with fast paths where the proto type makes
 * the general parsing redundant. Each fast path returns what `fromProtoScalar` returns for the same value.
 */
export function scalarConverter(column: FieldSchema, protoType: string): (v: unknown) => StoredValue {
  const general = (v: unknown): StoredValue => fromProtoScalar(column, protoType, objectForm(protoType, v));
  const isLong = LONG_TYPES.has(protoType);
  switch (column.type) {
    case 'INTEGER':
      // The accepted proto types (int32, sint32, sfixed32, fixed32, uint32, enum, int64, sint64, sfixed64) all
      // hold integers within INT64: parseInteger would print the same digits.
      if (isLong && protoType !== 'uint64' && protoType !== 'fixed64') return longText;
      if (['int32', 'sint32', 'sfixed32', 'fixed32', 'uint32', 'enum'].includes(protoType))
        return (v) => (typeof v === 'number' && Number.isInteger(v) ? String(v) : general(v));
      return general;
    case 'TIMESTAMP':
      if (protoType === 'int64' || protoType === 'sint64' || protoType === 'sfixed64')
        return (v) => {
          // Canonical text (what the readers print) of at most 17 characters is below 10^17 when positive and
          // above -10^16 when negative: inside the range (-62135596800000000 to 253402300799999999 µs).
          if (typeof v === 'string') return v.length <= 17 ? v : timestampFromMicros(v);
          if (typeof v !== 'number') {
            const long = v as Long;
            const high = long.high | 0;
            if (high < -SAFE_HIGH || high >= SAFE_HIGH) return timestampFromMicros(longToString(long));
            v = high * TWO_32 + (long.low >>> 0);
          }
          // |n| < 2^53 is well inside TIMESTAMP's range (-62135596800000000 to 253402300799999999 µs).
          const n = v as number;
          return Number.isSafeInteger(n) ? String(n) : timestampFromMicros(String(n));
        };
      return general;
    case 'STRING': {
      if (protoType !== 'string') return general;
      const max = column.maxLength !== undefined ? Number(column.maxLength) : undefined;
      // A string of n UTF-16 units has at most n characters: only longer ones need counting.
      return (v) => (typeof v === 'string' && (max === undefined || v.length <= max) ? v : general(v));
    }
    case 'FLOAT':
      return (v) => (typeof v === 'number' ? String(v) : general(v));
    case 'BOOLEAN':
      if (protoType !== 'bool') return general;
      return (v) => (v === true ? 'true' : v === false ? 'false' : general(v));
    case 'NUMERIC':
    case 'BIGNUMERIC': {
      if (protoType !== 'string') return general;
      return decimalConverter(column);
    }
    default:
      return general;
  }
}

interface FieldPlan {
  name: string;
  repeated: boolean;
  /** Index of the column in the table schema. */
  slot: number;
  convert: (v: unknown) => StoredValue;
}

/** How to turn one decoded message into a stored record of `columns`. */
export interface RowPlan {
  /** Converts a decoded message; `requireAll` false (CDC DELETE) skips the REQUIRED checks. */
  convert(message: Message, requireAll: boolean): StoredRecord;
}

/**
 * A column named `__proto__` would be the prototype, not a key, in an object literal (and the general path's
 * assignments treat it that way too): such schemas keep the general path, whose behaviour is the reference.
 */
function hasProtoColumn(columns: FieldSchema[]): boolean {
  return columns.some((c) => c.name === '__proto__' || hasProtoColumn(c.fields ?? []));
}

/** Whether the fast plan handles this type (map fields keep the general path). */
function planable(type: protobuf.Type, seen = new Set<protobuf.Type>()): boolean {
  if (seen.has(type)) return true;
  seen.add(type);
  for (const field of type.fieldsArray) {
    if (field.map) return false;
    if (field.resolvedType instanceof protobuf.Type && !planable(field.resolvedType, seen)) return false;
  }
  return true;
}

/**
 * Compiles the conversion of `type`'s messages into records of `columns` (a writer schema already accepted by
 * checkWriterSchema for them). Returns null when the general path must be used.
 */
export function compileRowPlan(
  type: protobuf.Type,
  columns: FieldSchema[],
  columnOf: ColumnOf,
): RowPlan | null {
  if (!planable(type) || hasProtoColumn(columns)) return null;
  return buildPlan(type, columns, columnOf);
}

function buildPlan(type: protobuf.Type, columns: FieldSchema[], columnOf: ColumnOf): RowPlan {
  const byLowerName = new Map<string, number>();
  columns.forEach((c, i) => {
    const lower = c.name.toLowerCase();
    if (!byLowerName.has(lower)) byLowerName.set(lower, i); // findField returns the first match
  });
  const fields: FieldPlan[] = [];
  for (const field of type.fieldsArray) {
    const slot = byLowerName.get(columnOf(field).toLowerCase());
    if (slot === undefined) continue;
    const column = columns[slot];
    let convert: (v: unknown) => StoredValue;
    if (column.type === 'RECORD') {
      const nested = buildPlan(field.resolvedType as protobuf.Type, column.fields ?? [], columnOf);
      convert = (v) => nested.convert(v as Message, true);
    } else convert = scalarConverter(column, protoTypeOf(field));
    fields.push({ name: field.name, repeated: column.mode === 'REPEATED', slot, convert });
  }
  return { convert: generateConvert(fields, columns) };
}

/**
 * The converter as generated code (as protobufjs generates its decoders): one local per column and one object
 * literal in schema order, so every record of a table gets the same shape at once.
 */
function generateConvert(fields: FieldPlan[], columns: FieldSchema[]): RowPlan['convert'] {
  const lines: string[] = ['var v, a, i;'];
  columns.forEach((_, slot) => lines.push(`var s${slot};`));
  fields.forEach((f, k) => {
    const name = JSON.stringify(f.name);
    // toObject's presence rules: a repeated field only when non-empty, others when set and not null.
    if (f.repeated)
      lines.push(
        `v = m[${name}];`,
        `if (v && v.length) { a = new Array(v.length); for (i = 0; i < v.length; i++) a[i] = c[${k}](v[i]); s${f.slot} = a; }`,
      );
    else
      lines.push(
        `v = m[${name}];`,
        `if (v !== undefined && v !== null && hasOwn.call(m, ${name})) s${f.slot} = c[${k}](v);`,
      );
  });
  // completeRecord's rules, in schema order: the first missing REQUIRED column is the error.
  columns.forEach((column, slot) => {
    if (column.mode === 'REQUIRED')
      lines.push(
        `if (requireAll && (s${slot} === undefined || s${slot} === null)) throw new ValueError(${JSON.stringify(`Missing required field: ${column.name}.`)});`,
      );
  });
  const entries = columns.map((column, slot) =>
    column.mode === 'REPEATED'
      ? `${JSON.stringify(column.name)}: s${slot} === undefined ? [] : s${slot}`
      : `${JSON.stringify(column.name)}: s${slot} === undefined ? null : s${slot}`,
  );
  lines.push(`return {${entries.join(', ')}};`);
  // Generated from the schema; every name in it is JSON-quoted.
  const factory = new Function(
    'c',
    'hasOwn',
    'ValueError',
    `return function convert(m, requireAll) {\n${lines.join('\n')}\n};`,
  );
  return factory(
    fields.map((f) => f.convert),
    hasOwn,
    ValueError,
  ) as RowPlan['convert'];
}

/** The general path: a decoded message in protobufjs `toObject({longs: String})` form → stored record. */
export function convertObjectRow(
  type: protobuf.Type,
  columns: FieldSchema[],
  object: Record<string, unknown>,
  requireAll: boolean,
  findColumn: (columns: FieldSchema[], name: string) => FieldSchema | undefined,
  columnOf: ColumnOf,
): StoredRecord {
  const out: StoredRecord = {};
  for (const field of type.fieldsArray) {
    const column = findColumn(columns, columnOf(field));
    const raw = object[field.name];
    if (!column || raw === undefined || raw === null) continue;
    const convert = (v: unknown): StoredValue => {
      if (column.type === 'RECORD') {
        return convertObjectRow(
          field.resolvedType as protobuf.Type,
          column.fields ?? [],
          v as Record<string, unknown>,
          true,
          findColumn,
          columnOf,
        );
      }
      const scalar = v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v) : v;
      return fromProtoScalar(column, protoTypeOf(field), scalar);
    };
    out[column.name] = column.mode === 'REPEATED' ? (raw as unknown[]).map(convert) : convert(raw);
  }
  if (!requireAll) {
    // DELETE rows only need their key: fill the rest with NULL without REQUIRED checks.
    for (const column of columns)
      if (!(column.name in out)) out[column.name] = column.mode === 'REPEATED' ? [] : null;
    return out;
  }
  return completeRecord(columns, out);
}
