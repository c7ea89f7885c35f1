/**
 * Cell values: validation and conversion between the wire forms (Storage Write API protobuf values,
 * insertAll JSON) and the v2 REST form returned by tabledata.list.
 *
 * Stored form: every scalar is kept as the string tabledata.list returns for it (REST encodes all scalars as
 * strings), except TIMESTAMP, kept as microseconds since the epoch (the `formatOptions.useInt64Timestamp` form,
 * which @google-cloud/bigquery v8 asks for by default). RECORDs are objects, REPEATED columns arrays.
 *
 * Protobuf input types follow "Supported protocol buffer data types"
 * (https://cloud.google.com/bigquery/docs/supported-data-types): INTEGER from integer types; FLOAT from
 * double/float; BOOL from bool or integers; BYTES from bytes or string; DATE from int32/int64 days since the
 * epoch (-719162..2932896) or a string; DATETIME/TIME from literal strings; NUMERIC/BIGNUMERIC from strings or
 * numbers; TIMESTAMP from int64 microseconds; JSON and GEOGRAPHY from strings; RECORD from nested messages.
 */
import type { FieldSchema } from './schema';

export type StoredValue = string | null | StoredValue[] | StoredRecord;
export interface StoredRecord {
  [column: string]: StoredValue;
}

/** A value BigQuery would reject; its message becomes the row error. */
export class ValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValueError';
  }
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
// TIMESTAMP range: 0001-01-01 00:00:00 to 9999-12-31 23:59:59.999999 UTC
// (https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types#timestamp_type).
const TIMESTAMP_MIN_MICROS = -62135596800000000n;
const TIMESTAMP_MAX_MICROS = 253402300799999999n;
// DATE as days since the epoch: -719162 (0001-01-01) to 2932896 (9999-12-31) (supported-data-types page).
const DATE_MIN_DAYS = -719162;
const DATE_MAX_DAYS = 2932896;
const DAY_MS = 86_400_000;

// NUMERIC is precision 38 / scale 9; BIGNUMERIC is 76.76 digits / scale 38 with the bounds below
// (https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types#decimal_types).
const DECIMALS: Record<string, { scale: number; max: bigint }> = {
  NUMERIC: { scale: 9, max: 10n ** 38n - 1n },
  BIGNUMERIC: {
    scale: 38,
    max: 57896044618658097711785492504343953926634992332820282019728792003956564819967n,
  },
};

const describe = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));

export function parseInteger(v: unknown): string {
  let n: bigint;
  if (typeof v === 'number' && Number.isInteger(v)) n = BigInt(v);
  else if (typeof v === 'bigint') n = v;
  else if (typeof v === 'string' && /^[+-]?\d+$/.test(v.trim())) n = BigInt(v.trim());
  else throw new ValueError(`Cannot convert value to integer (bad value): ${describe(v)}`);
  if (n < INT64_MIN || n > INT64_MAX) throw new ValueError(`Value out of range for INT64: ${describe(v)}`);
  return n.toString();
}

export function parseFloat64(v: unknown): string {
  let n: number;
  if (typeof v === 'number') n = v;
  else if (
    typeof v === 'string' &&
    /^(NaN|[+-]?Infinity|[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)$/.test(v.trim())
  ) {
    n = Number(v.trim());
  } else throw new ValueError(`Cannot convert value to floating point (bad value): ${describe(v)}`);
  return String(n);
}

export function parseBool(v: unknown): string {
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'number') return String(v !== 0);
  if (typeof v === 'string' && /^(true|false)$/i.test(v)) return v.toLowerCase();
  if (typeof v === 'string' && /^\d+$/.test(v)) return String(BigInt(v) !== 0n);
  throw new ValueError(`Cannot convert value to boolean: ${describe(v)}`);
}

/** Parses a decimal literal, rounds half away from zero to the scale, checks the range, prints it canonically. */
export function parseDecimal(type: 'NUMERIC' | 'BIGNUMERIC', v: unknown, field?: FieldSchema): string {
  const text = typeof v === 'number' || typeof v === 'bigint' ? v.toString() : v;
  const m =
    typeof text === 'string' ? /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text.trim()) : null;
  if (!m || (m[2] === '' && (m[3] ?? '') === ''))
    throw new ValueError(`Invalid ${type} value: ${describe(v)}`);
  const [, sign, intDigits, fracDigits = '', exp = '0'] = m;
  const scale = field?.scale !== undefined ? Number(field.scale) : DECIMALS[type].scale;
  // value = digits * 10^(exponent - fracDigits.length); rescale to `scale` fractional digits.
  let digits = BigInt((intDigits || '0') + fracDigits);
  const shift = Number(exp) - fracDigits.length + scale;
  if (shift >= 0) digits *= 10n ** BigInt(shift);
  else {
    const divisor = 10n ** BigInt(-shift);
    const remainder = digits % divisor;
    digits = digits / divisor + (remainder * 2n >= divisor ? 1n : 0n);
  }
  let max = DECIMALS[type].max;
  if (field?.precision !== undefined) max = 10n ** BigInt(Number(field.precision)) - 1n;
  if (digits > max) throw new ValueError(`Invalid ${type} value: ${describe(v)}`);
  if (digits === 0n) return '0';
  const padded = digits.toString().padStart(scale + 1, '0');
  const whole = padded.slice(0, padded.length - scale);
  const fraction = padded.slice(padded.length - scale).replace(/0+$/, '');
  return `${sign === '-' ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`;
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

function checkCivilDate(year: number, month: number, day: number, original: unknown): number {
  // setUTCFullYear, unlike Date.UTC, does not map years 0..99 to 1900..1999.
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  if (
    year < 1 ||
    year > 9999 ||
    d.getUTCFullYear() !== year ||
    d.getUTCMonth() !== month - 1 ||
    d.getUTCDate() !== day
  ) {
    throw new ValueError(`Invalid date: ${describe(original)}`);
  }
  return d.getTime();
}

export function parseDate(v: unknown): string {
  if (typeof v === 'number' || (typeof v === 'string' && /^[+-]?\d+$/.test(v))) {
    const days = Number(v);
    if (!Number.isInteger(days) || days < DATE_MIN_DAYS || days > DATE_MAX_DAYS) {
      throw new ValueError(`Invalid date: ${describe(v)}`);
    }
    return formatDate(days * DAY_MS);
  }
  const m = typeof v === 'string' ? /^(\d{4})-(\d{1,2})-(\d{1,2})$/.exec(v.trim()) : null;
  if (!m) throw new ValueError(`Invalid date: ${describe(v)}`);
  return formatDate(checkCivilDate(+m[1], +m[2], +m[3], v));
}

function formatDate(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

/** Seconds fraction printed with six digits when not zero, as BigQuery prints TIME/DATETIME values. */
const fractionOf = (digits: string | undefined): string =>
  digits && /[1-9]/.test(digits) ? `.${digits.padEnd(6, '0')}` : '';

function parseTimeParts(
  h: string,
  mi: string,
  s: string | undefined,
  frac: string | undefined,
  v: unknown,
): string {
  if (+h > 23 || +mi > 59 || +(s ?? 0) > 59) throw new ValueError(`Invalid time: ${describe(v)}`);
  return `${pad(+h)}:${pad(+mi)}:${pad(+(s ?? 0))}${fractionOf(frac)}`;
}

export function parseTime(v: unknown): string {
  const m =
    typeof v === 'string' ? /^(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,6}))?)?$/.exec(v.trim()) : null;
  if (!m) throw new ValueError(`Invalid time: ${describe(v)}`);
  return parseTimeParts(m[1], m[2], m[3], m[4], v);
}

export function parseDatetime(v: unknown): string {
  const m =
    typeof v === 'string'
      ? /^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,6}))?)?)?$/.exec(
          v.trim(),
        )
      : null;
  if (!m) throw new ValueError(`Invalid datetime: ${describe(v)}`);
  const date = formatDate(checkCivilDate(+m[1], +m[2], +m[3], v));
  return `${date}T${parseTimeParts(m[4] ?? '0', m[5] ?? '0', m[6], m[7], v)}`;
}

function checkTimestampRange(micros: bigint, v: unknown): string {
  if (micros < TIMESTAMP_MIN_MICROS || micros > TIMESTAMP_MAX_MICROS) {
    throw new ValueError(`Timestamp field value is out of range: ${describe(v)}`);
  }
  return micros.toString();
}

/** TIMESTAMP from the Storage Write API: int64 microseconds since the epoch. */
export function timestampFromMicros(v: unknown): string {
  return checkTimestampRange(BigInt(parseInteger(v)), v);
}

/**
 * TIMESTAMP from insertAll JSON: a number of seconds since the epoch, or a string such as
 * `2024-01-02 03:04:05.123456 UTC`, `2024-01-02T03:04:05Z`, `2024-01-02T03:04:05+02:00`.
 */
export function timestampFromJson(v: unknown): string {
  if (typeof v === 'number' || (typeof v === 'string' && /^[+-]?\d+(\.\d+)?$/.test(v.trim()))) {
    const [whole, frac = ''] = String(v).trim().split('.');
    const micros =
      BigInt(whole) * 1_000_000n + BigInt((frac + '000000').slice(0, 6)) * (whole.startsWith('-') ? -1n : 1n);
    return checkTimestampRange(micros, v);
  }
  const m =
    typeof v === 'string'
      ? /^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,9}))?)?)?\s*(Z|UTC|[+-]\d{1,2}(?::?\d{2})?)?$/i.exec(
          v.trim(),
        )
      : null;
  if (!m) throw new ValueError(`Invalid timestamp: ${describe(v)}`);
  const dayMs = checkCivilDate(+m[1], +m[2], +m[3], v);
  if (+(m[4] ?? 0) > 23 || +(m[5] ?? 0) > 59 || +(m[6] ?? 0) > 59)
    throw new ValueError(`Invalid timestamp: ${describe(v)}`);
  let offsetMinutes = 0;
  const zone = m[8];
  if (zone && !/^(Z|UTC)$/i.test(zone)) {
    const z = /^([+-])(\d{1,2}):?(\d{2})?$/.exec(zone);
    if (!z) throw new ValueError(`Invalid timestamp: ${describe(v)}`);
    offsetMinutes = (z[1] === '-' ? -1 : 1) * (+z[2] * 60 + +(z[3] ?? 0));
  }
  const seconds = dayMs / 1000 + +(m[4] ?? 0) * 3600 + +(m[5] ?? 0) * 60 + +(m[6] ?? 0) - offsetMinutes * 60;
  const micros = BigInt(seconds) * 1_000_000n + BigInt(((m[7] ?? '') + '000000').slice(0, 6));
  return checkTimestampRange(micros, v);
}

/** ISO-8601 form of a microsecond timestamp, as `formatOptions.timestampOutputFormat=ISO8601_STRING` returns. */
export function timestampToIso(micros: string): string {
  const n = BigInt(micros);
  const ms = n / 1000n - (n % 1000n < 0n ? 1n : 0n);
  const sub = ((n % 1_000_000n) + 1_000_000n) % 1_000_000n;
  const iso = new Date(Number(ms)).toISOString();
  return `${iso.slice(0, 19)}.${String(sub).padStart(6, '0')}Z`;
}

function checkString(field: FieldSchema, s: string): string {
  if (field.maxLength !== undefined && [...s].length > Number(field.maxLength)) {
    throw new ValueError(
      `Field ${field.name}: STRING(${field.maxLength}) has maximum length ${field.maxLength} but got a value with length ${[...s].length}`,
    );
  }
  return s;
}

/**
 * JSON values. The Write API takes a JSON column "encoded as a string" (https://cloud.google.com/bigquery/docs/json-data,
 * "Use the Storage Write API"), which BigQuery turns into its JSON type, whose rules are
 * (https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types#json_type): "A JSON value can store
 * integers in the range of -9,223,372,036,854,775,808 (minimum signed 64-bit integer) to
 * 18,446,744,073,709,551,615 (maximum unsigned 64-bit integer) and floating point numbers within a domain of
 * FLOAT64", "Up to 500 levels can be nested". Parsing is exact by default: PARSE_JSON's `wide_number_mode`
 * "If wide_number_mode is not used, the function implicitly includes wide_number_mode=>'exact'" and with
 * 'exact' "If a number that cannot be stored without loss of precision is encountered, the function throws an
 * error" (https://cloud.google.com/bigquery/docs/reference/standard-sql/json_functions#parse_json). We model the
 * ingestion paths the same way: a number that is neither such an integer nor a double that prints back as the
 * same decimal value (ZetaSQL's CheckNumberRoundtrip) makes the row invalid.
 */
const JSON_MAX_NESTING = 500;
const UINT64_MAX = 2n ** 64n - 1n;
const JSON_NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** Sign, significant digits (no leading/trailing zeros) and decimal exponent of a decimal literal. */
function decimalParts(text: string): { negative: boolean; digits: string; exponent: number } {
  const m = /^(-?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text)!;
  const all = `${m[2]}${m[3] ?? ''}`;
  let exponent = Number(m[4] ?? 0) - (m[3] ?? '').length;
  const stripped = all.replace(/^0+/, '');
  const digits = stripped.replace(/0+$/, '');
  exponent += stripped.length - digits.length;
  return { negative: m[1] === '-' && digits !== '', digits, exponent };
}

/** Why BigQuery's exact JSON parsing refuses this number, or null when it can store it. */
export function jsonNumberProblem(text: string): string | null {
  if (/^-?(?:0|[1-9]\d*)$/.test(text)) {
    const n = BigInt(text);
    if (n >= INT64_MIN && n <= UINT64_MAX) return null;
  }
  const d = Number(text);
  if (!Number.isFinite(d)) return `the number ${text} is outside the range of FLOAT64`;
  const a = decimalParts(text);
  const b = decimalParts(String(d).replace('e+', 'e'));
  const same =
    a.digits === b.digits && (a.digits === '' || (a.exponent === b.exponent && a.negative === b.negative));
  return same ? null : `the number ${text} cannot be stored without loss of precision`;
}

function checkJson(v: string): string {
  try {
    JSON.parse(v);
  } catch {
    throw new ValueError(`Invalid JSON value: ${v}`);
  }
  // The text is valid JSON: scan it once for numbers (outside strings) and nesting depth.
  let depth = 0;
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (c === '"') {
      for (i++; i < v.length && v[i] !== '"'; i++) if (v[i] === '\\') i++;
    } else if (c === '[' || c === '{') {
      if (++depth > JSON_MAX_NESTING) {
        throw new ValueError(`Invalid JSON value: nesting is deeper than ${JSON_MAX_NESTING} levels`);
      }
    } else if (c === ']' || c === '}') depth--;
    else if (c === '-' || (c >= '0' && c <= '9')) {
      JSON_NUMBER.lastIndex = i;
      const number = JSON_NUMBER.exec(v)![0];
      const problem = jsonNumberProblem(number);
      if (problem) throw new ValueError(`Invalid JSON value: ${problem} (JSON numbers are parsed exactly)`);
      i += number.length - 1;
    }
  }
  return v;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Converts one scalar from a decoded protobuf message. `protoType` is the protobuf field type
 * ('int64', 'string', 'bytes', ...); int64 values arrive as decimal strings, bytes as Buffers.
 */
export function fromProtoScalar(field: FieldSchema, protoType: string, v: unknown): string {
  switch (field.type) {
    case 'INTEGER':
      return parseInteger(v);
    case 'FLOAT':
      return parseFloat64(v);
    case 'BOOLEAN':
      return parseBool(v);
    case 'STRING':
      return checkString(field, String(v));
    case 'BYTES':
      return Buffer.isBuffer(v) ? v.toString('base64') : Buffer.from(String(v), 'utf8').toString('base64');
    case 'NUMERIC':
    case 'BIGNUMERIC':
      return parseDecimal(field.type, v, field);
    case 'DATE':
      return parseDate(protoType === 'string' ? String(v) : Number(v));
    case 'TIME':
      return parseTime(v);
    case 'DATETIME':
      return parseDatetime(v);
    case 'TIMESTAMP':
      return timestampFromMicros(v);
    case 'JSON':
      return checkJson(String(v));
    case 'GEOGRAPHY':
      return String(v);
    default:
      throw new ValueError(`Unsupported type ${field.type} for field ${field.name}`);
  }
}

/** Which protobuf field types the Write API accepts for each column type (supported-data-types page). */
const PROTO_TYPES: Record<string, string[]> = {
  INTEGER: ['int32', 'int64', 'uint32', 'sint32', 'sint64', 'sfixed32', 'sfixed64', 'fixed32', 'enum'],
  FLOAT: ['double', 'float'],
  BOOLEAN: ['bool', 'int32', 'int64', 'uint32', 'uint64'],
  STRING: ['string', 'enum'],
  BYTES: ['bytes', 'string'],
  NUMERIC: ['int32', 'int64', 'uint32', 'uint64', 'double', 'float', 'string'],
  BIGNUMERIC: ['int32', 'int64', 'uint32', 'uint64', 'double', 'float', 'string'],
  DATE: ['int32', 'int64', 'string'],
  TIME: ['string'],
  DATETIME: ['string'],
  TIMESTAMP: ['int64', 'int32', 'uint32'],
  JSON: ['string'],
  GEOGRAPHY: ['string'],
  RECORD: ['message'],
};

export function protoTypeAccepted(columnType: string, protoType: string): boolean {
  return (PROTO_TYPES[columnType] ?? []).includes(protoType);
}

/** Converts one insertAll JSON value (scalar, array or object) for `field`. */
export function fromJsonValue(field: FieldSchema, v: unknown, ignoreUnknown = false): StoredValue {
  if (field.mode === 'REPEATED') {
    if (v === null || v === undefined) return [];
    if (!Array.isArray(v)) throw new ValueError(`Array specified for non-repeated field: ${field.name}.`);
    return v.map((item) => {
      if (item === null) throw new ValueError(`Null value in repeated field: ${field.name}.`);
      return fromJsonScalarOrRecord(field, item, ignoreUnknown);
    });
  }
  if (v === null || v === undefined) return null;
  if (Array.isArray(v)) throw new ValueError(`Array specified for non-repeated field: ${field.name}.`);
  return fromJsonScalarOrRecord(field, v, ignoreUnknown);
}

function fromJsonScalarOrRecord(field: FieldSchema, v: unknown, ignoreUnknown: boolean): StoredValue {
  switch (field.type) {
    case 'RECORD':
      if (typeof v !== 'object' || v === null)
        throw new ValueError(`This field: ${field.name} is not a record.`);
      return fromJsonRecord(field.fields ?? [], v as Record<string, unknown>, ignoreUnknown);
    case 'TIMESTAMP':
      return timestampFromJson(v);
    case 'BYTES':
      if (typeof v !== 'string' || !BASE64.test(v))
        throw new ValueError(`Could not parse '${describe(v)}' as base64`);
      return Buffer.from(v, 'base64').toString('base64');
    case 'JSON':
      return typeof v === 'string' ? checkJson(v) : JSON.stringify(v);
    case 'STRING':
      if (typeof v === 'object') throw new ValueError(`This field: ${field.name} is not a record.`);
      return checkString(field, String(v));
    case 'DATE':
      return parseDate(String(v));
    default:
      return fromProtoScalar(field, typeof v === 'string' ? 'string' : 'json', v);
  }
}

/** Converts an insertAll `json` object; unknown fields are rejected unless ignoreUnknownValues. */
export function fromJsonRecord(
  fields: FieldSchema[],
  json: Record<string, unknown>,
  ignoreUnknown = false,
): StoredRecord {
  const out: StoredRecord = {};
  const byLowerName = new Map(fields.map((f) => [f.name.toLowerCase(), f]));
  for (const [key, value] of Object.entries(json)) {
    const field = byLowerName.get(key.toLowerCase());
    if (!field) {
      if (ignoreUnknown) continue;
      throw new ValueError(`no such field: ${key}.`);
    }
    out[field.name] = fromJsonValue(field, value, ignoreUnknown);
  }
  return completeRecord(fields, out);
}

/** Fills absent NULLABLE columns with NULL and REPEATED ones with []; a missing REQUIRED column is an error. */
export function completeRecord(fields: FieldSchema[], partial: StoredRecord): StoredRecord {
  const out: StoredRecord = {};
  for (const field of fields) {
    const value = partial[field.name];
    if (field.mode === 'REPEATED') out[field.name] = value ?? [];
    else if (value === null || value === undefined) {
      if (field.mode === 'REQUIRED') throw new ValueError(`Missing required field: ${field.name}.`);
      out[field.name] = null;
    } else out[field.name] = value;
  }
  return out;
}

export type TimestampOutput = 'INT64' | 'FLOAT' | 'ISO8601_STRING';

export interface RestCell {
  v: string | null | RestCell[] | { f: RestCell[] };
}

/** The tabledata.list encoding of one row: `{f: [{v}]}` in schema order, RECORD as `{f}`, REPEATED as `[{v}]`. */
export function toRestRow(fields: FieldSchema[], row: StoredRecord, ts: TimestampOutput): { f: RestCell[] } {
  return { f: fields.map((field) => toRestCell(field, row[field.name] ?? null, ts)) };
}

function toRestCell(field: FieldSchema, value: StoredValue, ts: TimestampOutput): RestCell {
  if (field.mode === 'REPEATED') {
    const items = Array.isArray(value) ? value : [];
    return { v: items.map((item) => toRestCell({ ...field, mode: 'NULLABLE' }, item, ts)) };
  }
  if (value === null || value === undefined) return { v: null };
  if (field.type === 'RECORD') return { v: toRestRow(field.fields ?? [], value as StoredRecord, ts) };
  if (field.type === 'TIMESTAMP') {
    const micros = String(value);
    if (ts === 'ISO8601_STRING') return { v: timestampToIso(micros) };
    // Legacy float-seconds form, e.g. "1.672574400123456E9"; the client parses it with Number().
    if (ts === 'FLOAT') return { v: (Number(micros) / 1e6).toExponential().replace('e+', 'E') };
    return { v: micros };
  }
  return { v: String(value) };
}
