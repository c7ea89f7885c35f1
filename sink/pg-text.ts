// Parsers for the text Postgres prints for values (its output functions, DateStyle ISO), producing what
// the BigQuery Storage Write API expects. Every failure is a ValueError whose message is the reason a
// user reads in `_failed`.

export class ValueError extends Error {
  override name = 'ValueError';
}

/** Days from 1970-01-01 to the proleptic Gregorian date y-m-d (Howard Hinnant's days_from_civil). */
export function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

// BigQuery's DATE/DATETIME/TIMESTAMP range is 0001-01-01 .. 9999-12-31 23:59:59.999999.
export const BQ_MIN_DAYS = daysFromCivil(1, 1, 1);
export const BQ_MAX_DAYS = daysFromCivil(9999, 12, 31);
const MICROS_PER_DAY = 86_400_000_000n;
export const BQ_MIN_MICROS = BigInt(BQ_MIN_DAYS) * MICROS_PER_DAY;
export const BQ_MAX_MICROS = BigInt(BQ_MAX_DAYS + 1) * MICROS_PER_DAY - 1n;

const DATE_RE = /^(\d{4,})-(\d{2})-(\d{2})( BC)?$/;

function checkYear(year: number, bc: boolean, text: string): void {
  if (bc || year < 1 || year > 9999) {
    throw new ValueError(`${JSON.stringify(text)} is outside BigQuery's range (years 0001 to 9999)`);
  }
}

/** Postgres date text → days since epoch; ±infinity are clamped to BigQuery's last/first day. */
export function parseDate(text: string): number {
  if (text === 'infinity') return BQ_MAX_DAYS;
  if (text === '-infinity') return BQ_MIN_DAYS;
  const m = DATE_RE.exec(text);
  if (!m)
    throw new ValueError(`${JSON.stringify(text)} is not an ISO date (the listener's DateStyle must be ISO)`);
  const y = Number(m[1]);
  checkYear(y, !!m[4], text);
  return daysFromCivil(y, Number(m[2]), Number(m[3]));
}

const TIME_RE = /^(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/;

/** Postgres time text → BigQuery TIME text; 24:00:00 (valid in Postgres) is not a BigQuery TIME. */
export function parseTime(text: string): string {
  const m = TIME_RE.exec(text);
  if (!m) throw new ValueError(`${JSON.stringify(text)} is not a time of day`);
  if (Number(m[1]) > 23)
    throw new ValueError(`${JSON.stringify(text)} is past BigQuery's last TIME 23:59:59.999999`);
  return m[4] ? `${m[1]}:${m[2]}:${m[3]}.${m[4]}` : `${m[1]}:${m[2]}:${m[3]}`;
}

const TS_RE =
  /^(\d{4,})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?([+-]\d{2}(?::?\d{2}){0,2})?( BC)?$/;

interface TsParts {
  days: number;
  micros: bigint; // within the day
  offsetSeconds: number | null;
  fraction: string;
  text: string;
}

function parseTsParts(text: string): TsParts {
  const m = TS_RE.exec(text);
  if (!m)
    throw new ValueError(
      `${JSON.stringify(text)} is not an ISO timestamp (the listener's DateStyle must be ISO)`,
    );
  const y = Number(m[1]);
  checkYear(y, !!m[9], text);
  const fraction = (m[7] ?? '').padEnd(6, '0');
  const micros = (BigInt(Number(m[4]) * 3600 + Number(m[5]) * 60 + Number(m[6])) * 1_000_000n) as bigint;
  let offsetSeconds: number | null = null;
  if (m[8]) {
    const sign = m[8].startsWith('-') ? -1 : 1;
    const digits = m[8].slice(1).replace(/:/g, '');
    const h = Number(digits.slice(0, 2));
    const mi = Number(digits.slice(2, 4) || '0');
    const s = Number(digits.slice(4, 6) || '0');
    offsetSeconds = sign * (h * 3600 + mi * 60 + s);
  }
  return {
    days: daysFromCivil(y, Number(m[2]), Number(m[3])),
    micros: micros + BigInt(fraction),
    offsetSeconds,
    fraction: m[7] ?? '',
    text,
  };
}

// Fast path for the shape Postgres prints (DateStyle ISO): "YYYY-MM-DD HH:MM:SS[.f{1,6}]" and, for
// timestamptz, "±HH[:MM[:SS]]". Anything else (T separator, BC, 5-digit years) takes the regex path.
// Within ±MAX_SAFE_DAYS of 1970 the microseconds stay below 2^53, so plain numbers are exact.
const MAX_SAFE_DAYS = 104_000;

/** Two decimal digits at i, or -1. */
function digits2(t: string, i: number): number {
  const a = t.charCodeAt(i) - 48;
  const b = t.charCodeAt(i + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

interface FastTs {
  days: number;
  /** Microseconds within the day. */
  micros: number;
  /** Index after the fraction: where an offset starts, if any. */
  end: number;
}

function fastTsParts(t: string): FastTs | null {
  if (t.length < 19 || t.charCodeAt(4) !== 45 || t.charCodeAt(7) !== 45 || t.charCodeAt(10) !== 32)
    return null;
  if (t.charCodeAt(13) !== 58 || t.charCodeAt(16) !== 58) return null;
  const y1 = digits2(t, 0);
  const y2 = digits2(t, 2);
  const mo = digits2(t, 5);
  const d = digits2(t, 8);
  const h = digits2(t, 11);
  const mi = digits2(t, 14);
  const s = digits2(t, 17);
  if (y1 < 0 || y2 < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || s < 0) return null;
  const y = y1 * 100 + y2;
  if (y < 1) return null;
  let i = 19;
  let frac = 0;
  if (t.charCodeAt(i) === 46) {
    i += 1;
    let k = 0;
    for (; k < 6; k++, i++) {
      const c = t.charCodeAt(i) - 48;
      if (!(c >= 0 && c <= 9)) break;
      frac = frac * 10 + c;
    }
    if (k === 0) return null;
    for (; k < 6; k++) frac *= 10;
  }
  const days = daysFromCivil(y, mo, d);
  if (days > MAX_SAFE_DAYS || days < -MAX_SAFE_DAYS) return null;
  return { days, micros: (h * 3600 + mi * 60 + s) * 1_000_000 + frac, end: i };
}

/** "±HH[[:]MM[[:]SS]]" from i to the end, in seconds; null when it is not exactly that. */
function fastOffset(t: string, i: number): number | null {
  const sign = t.charCodeAt(i);
  if (sign !== 43 && sign !== 45) return null;
  const parts = [0, 0, 0];
  i += 1;
  for (let p = 0; p < 3 && i < t.length; p++) {
    if (p > 0 && t.charCodeAt(i) === 58) i += 1;
    const v = digits2(t, i);
    if (v < 0) return null;
    parts[p] = v;
    i += 2;
  }
  if (i !== t.length) return null;
  const seconds = parts[0] * 3600 + parts[1] * 60 + parts[2];
  return sign === 45 ? -seconds : seconds;
}

/**
 * timestamptz text → microseconds since the epoch, for a protobuf int64: a number when it is exact (within
 * about 280 years of 1970), else the decimal string.
 */
export function parseTimestamptz(text: string): number | string {
  const f = fastTsParts(text);
  if (f) {
    const offset = fastOffset(text, f.end);
    if (offset !== null) return f.days * 86_400_000_000 + f.micros - offset * 1_000_000;
  }
  if (text === 'infinity') return BQ_MAX_MICROS.toString();
  if (text === '-infinity') return BQ_MIN_MICROS.toString();
  const p = parseTsParts(text);
  if (p.offsetSeconds === null) throw new ValueError(`${JSON.stringify(text)} has no UTC offset`);
  const utc = BigInt(p.days) * MICROS_PER_DAY + p.micros - BigInt(p.offsetSeconds) * 1_000_000n;
  if (utc < BQ_MIN_MICROS || utc > BQ_MAX_MICROS) {
    throw new ValueError(`${JSON.stringify(text)} is outside BigQuery's TIMESTAMP range`);
  }
  return utc.toString();
}

/** timestamp (without time zone) text → BigQuery DATETIME text. */
export function parseTimestamp(text: string): string {
  // Postgres's own form is already BigQuery's DATETIME text.
  const f = fastTsParts(text);
  if (f && f.end === text.length) return text;
  if (text === 'infinity') return '9999-12-31 23:59:59.999999';
  if (text === '-infinity') return '0001-01-01 00:00:00';
  const p = parseTsParts(text);
  const base = text.slice(0, 19).replace('T', ' ');
  return p.fraction ? `${base}.${p.fraction}` : base;
}

/**
 * `convert` remembering its last input: a table's rows often repeat a value (a transaction's `now()`, its
 * commit time). Only successes are remembered; a refused value throws again.
 */
export function lastValueCache<T>(convert: (text: string) => T): (text: string) => T {
  let lastText: string | undefined;
  let lastValue: T;
  return (text) => {
    if (text === lastText) return lastValue;
    const v = convert(text);
    lastText = text;
    lastValue = v;
    return v;
  };
}

/** bytea text output: hex format ("\x0a0b") or the older escape format. */
export function parseBytea(text: string): Buffer {
  if (text.startsWith('\\x')) {
    const hex = text.slice(2);
    if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex))
      throw new ValueError('bytea hex text is malformed');
    return Buffer.from(hex, 'hex');
  }
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x5c) {
      out.push(...Buffer.from(text[i], 'latin1'));
      continue;
    }
    if (text[i + 1] === '\\') {
      out.push(0x5c);
      i += 1;
    } else if (/^[0-7]{3}$/.test(text.slice(i + 1, i + 4))) {
      out.push(parseInt(text.slice(i + 1, i + 4), 8));
      i += 3;
    } else {
      throw new ValueError('bytea escape text is malformed');
    }
  }
  return Buffer.from(out);
}

/**
 * A one-dimensional Postgres array literal ("{1,2,NULL}", '{"a b","c\"d"}', "[0:1]={1,2}") → element texts,
 * null for NULL elements. Multi-dimensional arrays throw: BigQuery has no arrays of arrays.
 */
export function parseArray(text: string, delimiter = ','): (string | null)[] {
  let s = text;
  if (s.startsWith('[')) {
    const eq = s.indexOf('=');
    if (eq < 0) throw new ValueError('array literal has bounds but no "="');
    s = s.slice(eq + 1);
  }
  if (!s.startsWith('{') || !s.endsWith('}'))
    throw new ValueError(`${JSON.stringify(text.slice(0, 40))} is not an array literal`);
  const body = s.slice(1, -1);
  const out: (string | null)[] = [];
  if (body.length === 0) return out;
  let i = 0;
  while (i <= body.length) {
    if (body[i] === '{')
      throw new ValueError('multi-dimensional arrays cannot be held by BigQuery (no arrays of arrays)');
    if (body[i] === '"') {
      let v = '';
      i += 1;
      while (i < body.length && body[i] !== '"') {
        if (body[i] === '\\') i += 1;
        v += body[i];
        i += 1;
      }
      if (body[i] !== '"') throw new ValueError('array literal has an unterminated quoted element');
      i += 1;
      out.push(v);
    } else {
      let j = i;
      while (j < body.length && body[j] !== delimiter) j += 1;
      const raw = body.slice(i, j).trim();
      out.push(raw === 'NULL' ? null : raw);
      i = j;
    }
    if (i >= body.length) break;
    if (body[i] !== delimiter) throw new ValueError('array literal is malformed');
    i += 1;
  }
  return out;
}
