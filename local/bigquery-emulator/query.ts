/**
 * The query shapes pgcdc sends, nothing more:
 *   SELECT * | SELECT DISTINCT col | SELECT COUNT(*) [AS name]   FROM `project.dataset.table`
 *   [WHERE cond AND cond ...]   with cond one of   col IN UNNEST(@param) · col IS [NOT] NULL · col <op> @param
 * (named parameters as the REST API sends them; <op> is = != < <= > >=; an optional `dataset.table` form uses
 * the request's project). Anything else is answered with BigQuery's `invalidQuery` error saying the emulator
 * does not support it. Comparisons follow GoogleSQL for the types involved: INT64 as integers, everything else
 * as strings (byte order for the ASCII the sink compares), NULL never matches a comparison.
 */
import { randomUUID } from 'node:crypto';
import { ApiError } from './errors';
import type { TableSchema } from './schema';
import type { Store, TableRef } from './store';
import { toRestRow, type StoredRecord, type StoredValue, type TimestampOutput } from './values';

const SELECT =
  /^\s*SELECT\s+(\*|DISTINCT\s+(\w+)|COUNT\s*\(\s*\*\s*\)(?:\s+AS\s+([A-Za-z_]\w*))?)\s+FROM\s+`?(?:([\w-]+)\.)?(\w+)\.([\w-]+)`?(?:\s+WHERE\s+([\s\S]+?))?\s*;?\s*$/i;

export interface QueryResult {
  schema: TableSchema;
  rows: Array<{ f: unknown[] }>;
  jobId: string;
}

/** A named query parameter as the REST API carries it (scalar or ARRAY). */
export interface QueryParameter {
  name?: string;
  parameterType?: { type?: string; arrayType?: { type?: string } };
  parameterValue?: { value?: string; arrayValues?: { value?: string }[] };
}

type Param = string | null | string[];
type Predicate = (row: StoredRecord) => boolean;

const DML = /^\s*(INSERT|UPDATE|DELETE|MERGE)\b[^`.]*?`?(?:([\w-]+)\.)?(\w+)\.([\w-]+)`?/i;

/**
 * DML: "Tables with active CDC don't support the following: Mutating data manipulation language (DML) statements
 * such as DELETE, UPDATE, and MERGE" (https://cloud.google.com/bigquery/docs/change-data-capture#limitations).
 * The emulator runs no DML at all; on a CDC table it answers with that rule, on others with "not supported".
 */
function refuseDml(store: Store, projectId: string, sql: string): void {
  const m = DML.exec(sql);
  if (!m) return;
  const ref: TableRef = { projectId: m[2] ?? projectId, datasetId: m[3], tableId: m[4] };
  if (store.hasTable(ref) && store.schemaOf(ref).cdcActive) {
    throw new ApiError(
      'invalidQuery',
      `${m[1].toUpperCase()} is not supported on table ${ref.datasetId}.${ref.tableId}: mutating DML statements are not supported on tables with active CDC.`,
    );
  }
  throw new ApiError('invalidQuery', `The BigQuery emulator does not run DML statements; got: ${sql}`);
}

function unsupported(sql: string): ApiError {
  return new ApiError(
    'invalidQuery',
    'The BigQuery emulator only runs SELECT * | DISTINCT col | COUNT(*) FROM `p.d.t` [WHERE col IN UNNEST(@p) | ' +
      `col IS [NOT] NULL | col <op> @p joined by AND]; got: ${sql}`,
  );
}

function paramValues(params: QueryParameter[]): Map<string, Param> {
  const out = new Map<string, Param>();
  for (const p of params) {
    if (!p.name) continue;
    const v = p.parameterValue ?? {};
    out.set(
      p.name,
      p.parameterType?.type === 'ARRAY'
        ? (v.arrayValues ?? []).map((x) => String(x.value))
        : (v.value ?? null),
    );
  }
  return out;
}

function compare(type: string, a: string, b: string): number {
  if (type === 'INTEGER' || type === 'INT64') {
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

const COMPARE: Record<string, (c: number) => boolean> = {
  '=': (c) => c === 0,
  '!=': (c) => c !== 0,
  '<': (c) => c < 0,
  '<=': (c) => c <= 0,
  '>': (c) => c > 0,
  '>=': (c) => c >= 0,
};

function predicate(sql: string, cond: string, schema: TableSchema, params: Map<string, Param>): Predicate {
  const typeOf = (col: string): string => {
    const f = schema.fields.find((x) => x.name === col);
    if (!f) throw new ApiError('invalidQuery', `Unrecognized name: ${col}`);
    return f.type;
  };
  const param = (name: string): Param => {
    if (!params.has(name)) throw new ApiError('invalidQuery', `Query parameter '${name}' not found`);
    return params.get(name)!;
  };
  const scalar = (v: StoredValue | undefined): string | null => (typeof v === 'string' ? v : null);
  let m = /^(\w+)\s+IN\s+UNNEST\s*\(\s*@(\w+)\s*\)$/i.exec(cond);
  if (m) {
    const [, col, p] = m;
    const type = typeOf(col);
    const values = param(p);
    if (!Array.isArray(values)) throw new ApiError('invalidQuery', `UNNEST needs an ARRAY parameter: @${p}`);
    return (row) => {
      const v = scalar(row[col]);
      return v !== null && values.some((x) => compare(type, v, x) === 0);
    };
  }
  m = /^(\w+)\s+IS\s+(NOT\s+)?NULL$/i.exec(cond);
  if (m) {
    const [, col, not] = m;
    typeOf(col);
    return (row) => (row[col] === null || row[col] === undefined) !== Boolean(not);
  }
  m = /^(\w+)\s*(<=|>=|!=|<|>|=)\s*@(\w+)$/.exec(cond);
  if (m) {
    const [, col, op, p] = m;
    const type = typeOf(col);
    const value = param(p);
    if (Array.isArray(value)) throw new ApiError('invalidQuery', `@${p} is an ARRAY; compare with IN UNNEST`);
    return (row) => {
      const v = scalar(row[col]);
      return v !== null && value !== null && COMPARE[op](compare(type, v, value));
    };
  }
  throw unsupported(sql);
}

export function runQuery(
  store: Store,
  projectId: string,
  sql: string,
  ts: TimestampOutput,
  parameters: QueryParameter[] = [],
): QueryResult {
  refuseDml(store, projectId, sql);
  const m = SELECT.exec(sql);
  if (!m) throw unsupported(sql);
  const [, what, distinctCol, countAlias, project, datasetId, tableId, where] = m;
  const ref: TableRef = { projectId: project ?? projectId, datasetId, tableId };
  const { schema } = store.schemaOf(ref);
  const params = paramValues(parameters);
  const conds = where ? where.split(/\s+AND\s+/i).map((c) => predicate(sql, c.trim(), schema, params)) : [];
  const keep = (row: StoredRecord): boolean => conds.every((p) => p(row));
  const jobId = `job_${randomUUID().replace(/-/g, '_')}`;
  if (/^COUNT/i.test(what)) {
    // Counted in place: benchmarks and tests poll COUNT(*) of growing tables.
    const count = conds.length === 0 ? store.rowCount(ref) : store.countRows(ref, keep);
    const countSchema = { fields: [{ name: countAlias ?? 'f0_', type: 'INTEGER', mode: 'NULLABLE' }] };
    return { schema: countSchema, rows: [{ f: [{ v: String(count) }] }], jobId };
  }
  const rows = store.rows(ref).filter(keep);
  if (distinctCol) {
    const field = schema.fields.find((f) => f.name === distinctCol);
    if (!field) throw new ApiError('invalidQuery', `Unrecognized name: ${distinctCol}`);
    const seen = new Map<string, StoredRecord>();
    for (const row of rows)
      seen.set(JSON.stringify(row[distinctCol] ?? null), { [distinctCol]: row[distinctCol] ?? null });
    const one = { fields: [field] };
    return { schema: one, rows: [...seen.values()].map((row) => toRestRow(one.fields, row, ts)), jobId };
  }
  return { schema, rows: rows.map((row) => toRestRow(schema.fields, row, ts)), jobId };
}
