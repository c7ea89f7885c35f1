// Reading the BigQuery side (replica tables, _failed) for `status` and `demo`, with any BigQuery client:
// the real service or the local emulator.

import type { BigQuery } from '@google-cloud/bigquery';

export interface TableInfo {
  id: string;
  /** Rows BigQuery reports (stored plus the streaming buffer's estimate); null when it does not say. */
  rows: number | null;
  lastModified: Date | null;
}

interface TableMetadata {
  numRows?: string | number;
  lastModifiedTime?: string | number;
  streamingBuffer?: { estimatedRows?: string | number };
}

function num(v: string | number | undefined): number | null {
  if (v === undefined || v === null || v === '') return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

export async function tableInfo(bq: BigQuery, dataset: string, table: string): Promise<TableInfo> {
  const [meta] = (await bq.dataset(dataset).table(table).getMetadata()) as [TableMetadata, ...unknown[]];
  const stored = num(meta.numRows);
  const buffered = num(meta.streamingBuffer?.estimatedRows) ?? 0;
  const modified = num(meta.lastModifiedTime);
  return {
    id: table,
    rows: stored === null ? null : stored + buffered,
    lastModified: modified === null ? null : new Date(modified),
  };
}

export async function listTables(bq: BigQuery, dataset: string): Promise<TableInfo[]> {
  const [tables] = await bq.dataset(dataset).getTables();
  const ids = tables
    .map((t) => t.id ?? '')
    .filter(Boolean)
    .sort();
  return Promise.all(ids.map((id) => tableInfo(bq, dataset, id)));
}

/** Every row of a table (tabledata.list), values as the client decodes them. */
export async function readRows(
  bq: BigQuery,
  dataset: string,
  table: string,
): Promise<Record<string, unknown>[]> {
  const [rows] = await bq.dataset(dataset).table(table).getRows({ autoPaginate: true });
  return rows as Record<string, unknown>[];
}

/** A BigQuery value as comparable text: DATE/TIMESTAMP wrappers unwrapped, numbers and booleans printed. */
export function valueText(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'object' && 'value' in (v as Record<string, unknown>))
    return valueText((v as { value: unknown }).value);
  if (v instanceof Date) return v.toISOString();
  return String(v);
}
