// One comparable text per value, the same for a source value (Postgres text through the sink's converter)
// and a replica value (BigQuery REST value through the sink's reader): exact numerics as their decimal
// strings, timestamps as microseconds, dates as days, bytes as base64, JSON with sorted keys, arrays
// element by element. A source value BigQuery cannot hold is its own marker, so it never equals anything.

import { createHash } from 'node:crypto';
import type { ProtoValue } from '../sink/type-map';
import { ColumnPlan, replicaValue } from './sink-adapter';

/** JSON text with object keys sorted, so `{"b":1, "a":2}` and `{"a":2,"b":1}` compare equal. */
function stableJson(text: string): string {
  const sort = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sort)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v as Record<string, unknown>)
              .sort()
              .map((k) => [k, sort((v as Record<string, unknown>)[k])]),
          )
        : v;
  try {
    return JSON.stringify(sort(JSON.parse(text)));
  } catch {
    return `!json:${text}`;
  }
}

/**
 * DATETIME and TIME as civil text with exactly six fractional digits: the sink writes Postgres' text
 * ("…:59.5") and BigQuery returns its own ("…T…:59.500000"); both mean the same microsecond.
 */
function civil(text: string): string {
  const m = /^(?:(\d{4,}-\d\d-\d\d)[ T])?(\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?$/.exec(text);
  if (!m) return text;
  return `${m[1] ? m[1] + ' ' : ''}${m[2]}.${(m[3] ?? '').padEnd(6, '0')}`;
}

function canon(plan: ColumnPlan, v: ProtoValue): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return `[${v.map((e) => canon(plan, e)).join(',')}]`;
  if (Buffer.isBuffer(v)) return `b:${v.toString('base64')}`;
  // The sink hands protobufjs an INT64 or TIMESTAMP as a JS number when it is exact (|n| < 2^53) and as
  // decimal text otherwise (sink/type-map.ts); the REST API gives text. Both are the same integer.
  if (typeof v === 'number' && (plan.bqType === 'INT64' || plan.bqType === 'TIMESTAMP'))
    return JSON.stringify(String(v));
  if (typeof v === 'number') return Object.is(v, -0) ? 'n:0' : `n:${String(v)}`;
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (plan.bqType === 'JSON') return `j:${stableJson(v)}`;
  if (plan.bqType === 'DATETIME' || plan.bqType === 'TIME') return JSON.stringify(civil(v));
  return JSON.stringify(v);
}

/** Canonical text of a source column value (Postgres text, or null), as the sink would write it. */
export function sourceCell(plan: ColumnPlan, text: string | null): string {
  if (text === null) return plan.repeated ? '[]' : 'null';
  try {
    return canon(plan, plan.convert(text));
  } catch (e) {
    return `!unwritable:${(e as Error).message}`;
  }
}

/** Canonical text of a replica value as the REST API returns it. */
export function replicaCell(plan: ColumnPlan, v: unknown): string {
  return canon(plan, replicaValue(plan, v));
}

/** A row as canonical cells, in plan order. */
export type CanonicalRow = string[];

/** Order-independent digest of a chunk: rows sorted by key text, then hashed. */
export function chunkHash(rows: Map<string, CanonicalRow>): string {
  const h = createHash('sha256');
  for (const key of [...rows.keys()].sort()) {
    h.update(key);
    h.update('\u0000');
    for (const cell of rows.get(key)!) {
      h.update(cell);
      h.update('\u0001');
    }
    h.update('\u0002');
  }
  return h.digest('hex');
}
