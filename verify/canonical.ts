// One comparable text per value, the same for a source value (Postgres text through the sink's converter)
// and a replica value (BigQuery REST value through the sink's reader): exact numerics as their decimal
// strings, timestamps as microseconds, dates as days, bytes as base64, JSON with sorted keys, arrays
// element by element. A value BigQuery's type cannot hold is compared as its Postgres text, which the sink
// keeps in the column's companion `<field>__pg` with the typed field NULL (sink/event-work.ts): the source
// side is the text verify read, the replica side the companion's text when the typed field is empty. A
// companion set beside a typed value, a missing companion and a key value BigQuery cannot hold (the row has
// no replica row then) are markers that never equal a source cell.

import { createHash } from 'node:crypto';
import type { ProtoValue } from '../sink/type-map';
import { cannotHold, ColumnPlan, replicaValue } from './sink-adapter';

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

/** A value kept as Postgres text in a companion column. */
function pgText(text: string): string {
  return `pg:${JSON.stringify(text)}`;
}

/** An empty typed cell: NULL, or `[]` for an array (a BigQuery REPEATED field has no NULL). */
function emptyCell(plan: ColumnPlan): string {
  return plan.repeated ? '[]' : 'null';
}

/** Canonical text of a source column value (Postgres text, or null), as the sink would write it. */
export function sourceCell(plan: ColumnPlan, text: string | null): string {
  if (text === null) return emptyCell(plan);
  try {
    return canon(plan, plan.convert(text));
  } catch (e) {
    if (cannotHold(e) && !plan.column.key) return pgText(text);
    return `!unwritable:${(e as Error).message}`;
  }
}

/**
 * Canonical text of a replica value as the REST API returns it, with its companion's value (`undefined`
 * when the column has no companion): the companion's Postgres text when only it is set.
 */
export function replicaCell(plan: ColumnPlan, v: unknown, companion?: unknown): string {
  const typed = canon(plan, replicaValue(plan, v));
  if (companion === null || companion === undefined) return typed;
  const text = pgText(String(companion));
  // The sink writes a companion only with the typed field empty; both set is no value a source can have.
  return typed === emptyCell(plan) ? text : `!both:${typed} ${text}`;
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
