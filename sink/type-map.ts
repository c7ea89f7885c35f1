// Postgres column types → BigQuery column types, and Postgres value text → the value the Storage Write
// API's protobuf rows carry. The table in sink/README.md documents the same decisions for users.

import type { ColumnInfo } from '../contract/events';
import {
  lastValueCache,
  parseArray,
  parseBytea,
  parseDate,
  parseTime,
  parseTimestamp,
  parseTimestamptz,
  ValueError,
} from './pg-text';

export type BqType =
  | 'INT64'
  | 'NUMERIC'
  | 'BIGNUMERIC'
  | 'FLOAT64'
  | 'BOOL'
  | 'STRING'
  | 'BYTES'
  | 'DATE'
  | 'TIME'
  | 'DATETIME'
  | 'TIMESTAMP'
  | 'JSON';

/** A value as protobufjs `fromObject` takes it for the field's proto type. */
export type ProtoValue = string | number | boolean | Buffer | ProtoValue[] | null;

export interface ColumnMapping {
  bqType: BqType;
  repeated: boolean;
  /** Postgres text → proto value; throws ValueError with the reason the value cannot be written. */
  convert(text: string): ProtoValue;
}

// BigQuery NUMERIC holds 29 integer and 9 fractional digits; BIGNUMERIC 38 and 38 (the full 76.76 digits
// of BIGNUMERIC's integer part are not all usable, 38 always are).
const NUMERIC_LIMITS = { NUMERIC: { int: 29, frac: 9 }, BIGNUMERIC: { int: 38, frac: 38 } };

function numericConverter(bqType: 'NUMERIC' | 'BIGNUMERIC'): (text: string) => string {
  const limit = NUMERIC_LIMITS[bqType];
  return (text) => {
    const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text);
    if (!m) {
      // Postgres numeric also has NaN and (since 14) ±Infinity; BigQuery's decimal types have neither.
      throw new ValueError(`numeric value ${JSON.stringify(text)} cannot be held by BigQuery ${bqType}`);
    }
    const intDigits = m[2].replace(/^0+/, '');
    const frac = (m[3] ?? '').replace(/0+$/, '');
    if (intDigits.length > limit.int || frac.length > limit.frac) {
      throw new ValueError(
        `numeric value ${text.length > 60 ? text.slice(0, 60) + '…' : text} exceeds BigQuery ${bqType} ` +
          `(${limit.int} integer and ${limit.frac} fractional digits)`,
      );
    }
    return `${m[1]}${intDigits || '0'}${frac ? '.' + frac : ''}`;
  };
}

function floatValue(text: string): number {
  const n = Number(text);
  if (Number.isNaN(n) && text !== 'NaN')
    throw new ValueError(`${JSON.stringify(text)} is not a floating-point number`);
  return n;
}

function boolValue(text: string): boolean {
  if (text === 't' || text === 'true') return true;
  if (text === 'f' || text === 'false') return false;
  throw new ValueError(`${JSON.stringify(text)} is not a boolean`);
}

// Up to 15 digits a JS number is exact (2^53 has 16), and protobufjs writes a number to an int64 field
// without parsing text into a Long; longer values stay decimal text, which it converts exactly.
const MAX_EXACT_DIGITS = 15;

function intValue(text: string): string | number {
  if (!/^-?\d+$/.test(text)) throw new ValueError(`${JSON.stringify(text)} is not an integer`);
  return text.length <= MAX_EXACT_DIGITS ? Number(text) : text;
}

const identity = (text: string): string => text;

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

/** A decimal literal as (digits without leading/trailing zeros, power of ten of the last digit), signed. */
function decimalValue(lit: string): string {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(lit);
  if (!m) return lit;
  let digits = m[2] + (m[3] ?? '');
  let exp = Number(m[4] ?? 0) - (m[3]?.length ?? 0);
  digits = digits.replace(/^0+/, '');
  if (digits === '') return '0';
  const trailing = /0*$/.exec(digits)![0].length;
  digits = digits.slice(0, digits.length - trailing);
  exp += trailing;
  return `${m[1]}${digits}e${exp}`;
}

/**
 * JSON text, checked the way BigQuery parses JSON by default: "exact", where a number that cannot be stored
 * as INT64, UINT64 or FLOAT64 without loss is an error ("wide_number_mode ... exact (default): only accept
 * numbers that can be stored without loss of precision", https://cloud.google.com/bigquery/docs/reference/standard-sql/json_functions#parse_json).
 * Such a value goes to the column's Postgres-text companion instead of being refused or rounded.
 */
function exactJson(text: string): string {
  // Numbers outside string literals: skip strings, then test each number token.
  const re = /"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const tok = m[0];
    if (tok.startsWith('"')) continue;
    if (/^-?\d+$/.test(tok)) {
      const n = BigInt(tok);
      if (n >= INT64_MIN && n <= UINT64_MAX) continue;
    }
    const f = Number(tok);
    if (Number.isFinite(f) && decimalValue(String(f)) === decimalValue(tok)) continue;
    throw new ValueError(
      `JSON number ${tok.length > 40 ? tok.slice(0, 40) + '…' : tok} cannot be held exactly by BigQuery JSON ` +
        '(INT64, UINT64 or FLOAT64)',
    );
  }
  return text;
}

/** The format_type base name without typmod and array brackets, lower case. */
function baseName(type: string): { name: string; typmod: string | null; array: boolean } {
  let t = type.trim();
  let array = false;
  while (t.endsWith('[]')) {
    array = true;
    t = t.slice(0, -2).trim();
  }
  const m = /^(.*?)\(([^)]*)\)(.*)$/.exec(t);
  const name = (m ? `${m[1]}${m[3]}` : t).replace(/\s+/g, ' ').trim().toLowerCase();
  return { name, typmod: m ? m[2] : null, array };
}

// Built-in type OIDs (pg_type.h) for when a decoder sends a name we do not know; arrays map to their element.
const OID_NAMES: Record<number, string> = {
  16: 'boolean',
  17: 'bytea',
  20: 'bigint',
  21: 'smallint',
  23: 'integer',
  26: 'oid',
  114: 'json',
  700: 'real',
  701: 'double precision',
  1082: 'date',
  1083: 'time without time zone',
  1114: 'timestamp without time zone',
  1184: 'timestamp with time zone',
  1700: 'numeric',
  3802: 'jsonb',
  1000: 'boolean',
  1001: 'bytea',
  1016: 'bigint',
  1005: 'smallint',
  1007: 'integer',
  1028: 'oid',
  199: 'json',
  1021: 'real',
  1022: 'double precision',
  1182: 'date',
  1183: 'time without time zone',
  1115: 'timestamp without time zone',
  1185: 'timestamp with time zone',
  1231: 'numeric',
  3807: 'jsonb',
};
const ARRAY_OIDS = new Set([
  1000, 1001, 1016, 1005, 1007, 1028, 199, 1021, 1022, 1182, 1183, 1115, 1185, 1231, 3807,
]);

interface Scalar {
  bqType: BqType;
  convert(text: string): ProtoValue;
}

function scalarFor(name: string, typmod: string | null): Scalar | null {
  switch (name) {
    case 'smallint':
    case 'integer':
    case 'bigint':
    case 'int2':
    case 'int4':
    case 'int8':
    case 'int':
    case 'oid':
    case 'smallserial':
    case 'serial':
    case 'bigserial':
      return { bqType: 'INT64', convert: intValue };
    case 'numeric':
    case 'decimal': {
      let bqType: 'NUMERIC' | 'BIGNUMERIC' = 'BIGNUMERIC';
      if (typmod) {
        const [p, s = '0'] = typmod.split(',').map((x) => Number(x.trim()));
        const scale = Number(s);
        if (p - scale <= NUMERIC_LIMITS.NUMERIC.int && scale <= NUMERIC_LIMITS.NUMERIC.frac)
          bqType = 'NUMERIC';
      }
      return { bqType, convert: numericConverter(bqType) };
    }
    case 'real':
    case 'double precision':
    case 'float4':
    case 'float8':
      return { bqType: 'FLOAT64', convert: floatValue };
    case 'boolean':
    case 'bool':
      return { bqType: 'BOOL', convert: boolValue };
    case 'bytea':
      return { bqType: 'BYTES', convert: parseBytea };
    case 'date':
      return { bqType: 'DATE', convert: lastValueCache(parseDate) };
    case 'time without time zone':
    case 'time':
      return { bqType: 'TIME', convert: parseTime };
    case 'timestamp without time zone':
    case 'timestamp':
      return { bqType: 'DATETIME', convert: lastValueCache(parseTimestamp) };
    case 'timestamp with time zone':
    case 'timestamptz':
      return { bqType: 'TIMESTAMP', convert: lastValueCache(parseTimestamptz) };
    case 'json':
    case 'jsonb':
      return { bqType: 'JSON', convert: exactJson };
    default:
      return null;
  }
}

// BigQuery primary key columns may only be of these types ("BIGNUMERIC, BOOL, DATE, DATETIME, INT64,
// NUMERIC, STRING, TIMESTAMP"; https://cloud.google.com/bigquery/docs/primary-foreign-keys); a key column
// of any other type (bytea, real, double precision, time, json, arrays, …) is kept as STRING holding its
// Postgres text, so the table still gets a replica. (Equal values print equal text in Postgres for
// these types, so the text is as good a key as the value.)
const KEY_TYPES: ReadonlySet<BqType> = new Set([
  'BIGNUMERIC',
  'BOOL',
  'DATE',
  'DATETIME',
  'INT64',
  'NUMERIC',
  'STRING',
  'TIMESTAMP',
]);

/**
 * How a source column is stored in BigQuery. Unknown types (enums, domains, inet, money, …) are STRING; a key
 * column whose type BigQuery does not allow in a primary key is STRING too.
 */
export function mapColumn(col: Pick<ColumnInfo, 'type' | 'oid'> & { key?: boolean }): ColumnMapping {
  const m = mapValueColumn(col);
  if (col.key && (m.repeated || !KEY_TYPES.has(m.bqType))) {
    return { bqType: 'STRING', repeated: false, convert: identity };
  }
  return m;
}

function mapValueColumn(col: Pick<ColumnInfo, 'type' | 'oid'>): ColumnMapping {
  const b = baseName(col.type);
  let scalar = scalarFor(b.name, b.typmod);
  let array = b.array;
  if (!scalar && OID_NAMES[col.oid]) {
    scalar = scalarFor(OID_NAMES[col.oid], null);
    array = array || ARRAY_OIDS.has(col.oid);
  }
  scalar ??= { bqType: 'STRING', convert: identity };
  if (!array) return { bqType: scalar.bqType, repeated: false, convert: scalar.convert };
  // box is the one built-in type whose arrays use ';' between elements (its values contain commas):
  // keep such an array as its Postgres text rather than split it wrongly.
  if (b.name === 'box') return { bqType: 'STRING', repeated: false, convert: identity };
  const element = scalar;
  return {
    bqType: element.bqType,
    repeated: true,
    convert(text: string): ProtoValue {
      return parseArray(text).map((e) => {
        if (e === null) throw new ValueError('array has a NULL element, which a BigQuery ARRAY cannot hold');
        return element.convert(e);
      });
    },
  };
}

/**
 * A value read back through the REST API (tabledata.list / jobs.query "f/v" rows, timestamps as int64
 * micros) → the proto value the Storage Write API takes for the same column.
 */
export function restToProto(bqType: BqType, repeated: boolean, v: unknown): ProtoValue {
  if (v === null || v === undefined) return repeated ? [] : null;
  if (repeated) {
    if (!Array.isArray(v)) throw new Error(`expected an array for a REPEATED ${bqType} value`);
    return v.map((e) => restToProto(bqType, false, (e as { v: unknown }).v));
  }
  const s = String(v);
  switch (bqType) {
    case 'FLOAT64':
      return Number(s);
    case 'BOOL':
      return s === 'true';
    case 'BYTES':
      return Buffer.from(s, 'base64');
    case 'DATE':
      return parseDate(s);
    case 'DATETIME':
      return s.replace('T', ' ');
    case 'TIMESTAMP':
      // With formatOptions.useInt64Timestamp the value is already microseconds since the epoch.
      return /^-?\d+$/.test(s) ? s : String(Math.round(Number(s) * 1e6));
    default:
      return s;
  }
}
