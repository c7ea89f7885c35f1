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

/** What `status` reads of a warehouse: BigQuery's client satisfies it, and so does restTables below. */
export interface TablesReader {
  dataset(id: string): {
    getTables(): Promise<readonly [Array<{ id?: string }>, ...unknown[]]>;
    table(id: string): { getMetadata(): Promise<readonly [unknown, ...unknown[]]> };
  };
}

/**
 * tables.list / tables.get over plain REST (https://cloud.google.com/bigquery/docs/reference/rest/v2/tables),
 * for the local BigQuery emulator: `status --env local` must start fast, and loading @google-cloud/bigquery
 * alone takes most of a second.
 */
export function restTables(endpoint: string, project: string): TablesReader {
  const get = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${endpoint}/bigquery/v2/projects/${project}/${path}`, {
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`BigQuery emulator: GET ${path}: ${res.status} ${text.slice(0, 200)}`);
    return JSON.parse(text) as T;
  };
  return {
    dataset: (dataset) => ({
      async getTables() {
        const ids: Array<{ id?: string }> = [];
        let pageToken: string | undefined;
        do {
          const page = await get<{
            tables?: Array<{ tableReference?: { tableId?: string } }>;
            nextPageToken?: string;
          }>(`datasets/${dataset}/tables${pageToken ? `?pageToken=${encodeURIComponent(pageToken)}` : ''}`);
          for (const t of page.tables ?? []) ids.push({ id: t.tableReference?.tableId });
          pageToken = page.nextPageToken;
        } while (pageToken);
        return [ids] as const;
      },
      table: (table) => ({
        getMetadata: async () => [await get<unknown>(`datasets/${dataset}/tables/${table}`)] as const,
      }),
    }),
  };
}

export async function tableInfo(bq: TablesReader, dataset: string, table: string): Promise<TableInfo> {
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

export async function listTables(bq: TablesReader, dataset: string): Promise<TableInfo[]> {
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
