/**
 * The two query shapes pgcdc needs, nothing more: `SELECT * FROM \`project.dataset.table\`` and
 * `SELECT COUNT(*) [AS name] FROM ...` (an optional `dataset.table` form uses the request's project).
 * Anything else is answered with BigQuery's `invalidQuery` error saying the emulator does not support it.
 */
import { randomUUID } from 'node:crypto';
import { ApiError } from './errors';
import type { TableSchema } from './schema';
import type { Store, TableRef } from './store';
import { toRestRow, type TimestampOutput } from './values';

const SELECT =
  /^\s*SELECT\s+(\*|COUNT\s*\(\s*\*\s*\)(?:\s+AS\s+([A-Za-z_]\w*))?)\s+FROM\s+`?(?:([\w-]+)\.)?(\w+)\.([\w-]+)`?\s*;?\s*$/i;

export interface QueryResult {
  schema: TableSchema;
  rows: Array<{ f: unknown[] }>;
  jobId: string;
}

export function runQuery(store: Store, projectId: string, sql: string, ts: TimestampOutput): QueryResult {
  const m = SELECT.exec(sql);
  if (!m) {
    throw new ApiError(
      'invalidQuery',
      `The BigQuery emulator only runs "SELECT * FROM \`p.d.t\`" and "SELECT COUNT(*) FROM \`p.d.t\`"; got: ${sql}`,
    );
  }
  const ref: TableRef = { projectId: m[3] ?? projectId, datasetId: m[4], tableId: m[5] };
  const rows = store.rows(ref);
  const jobId = `job_${randomUUID().replace(/-/g, '_')}`;
  if (m[1] !== '*') {
    const schema = { fields: [{ name: m[2] ?? 'f0_', type: 'INTEGER', mode: 'NULLABLE' }] };
    return { schema, rows: [{ f: [{ v: String(rows.length) }] }], jobId };
  }
  const { schema } = store.schemaOf(ref);
  return { schema, rows: rows.map((row) => toRestRow(schema.fields, row, ts)), jobId };
}
