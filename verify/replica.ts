// The BigQuery side of verify: the replica table's schema and its rows by ranges of the first key column
// (or by key values), as raw REST values; and the bytes a full read would scan (a dry run).
//
// Queries go through jobs.query with typed named parameters: INT64 for an integer key, STRING otherwise
// (https://cloud.google.com/bigquery/docs/parameterized-queries: "To specify a named parameter, use the @
// character followed by an identifier, such as @param_name"), and `formatOptions.useInt64Timestamp` so
// TIMESTAMP values come back as exact microseconds
// (https://cloud.google.com/bigquery/docs/reference/rest/v2/DataFormatOptions: "Output timestamp as usec
// int64"). A dry run estimates the bytes a query would read without running it
// (https://cloud.google.com/bigquery/docs/samples/bigquery-query-dry-run: "a dry run query to validate query
// structure and provide an estimate of the bytes scanned").

import type { BigQuery } from '@google-cloud/bigquery';
import type { TableField, TableResource } from '../sink/bigquery-rest';
import type { KeyOrder } from './source';

export type RestRow = Record<string, unknown>;

interface QueryResponse {
  jobComplete?: boolean;
  jobReference?: { jobId: string; location?: string };
  schema?: { fields?: TableField[] };
  rows?: { f: { v: unknown }[] }[];
  pageToken?: string;
  totalBytesProcessed?: string;
}

interface Param {
  name: string;
  type: 'INT64' | 'STRING';
  value?: string;
  values?: string[];
}

export class ReplicaReader {
  constructor(
    private readonly bq: BigQuery,
    readonly project: string,
    readonly dataset: string,
    readonly location?: string,
  ) {}

  private call<T>(method: string, uri: string, body?: unknown, qs?: Record<string, unknown>): Promise<T> {
    return new Promise((resolve, reject) => {
      this.bq.request({ method, uri, json: body, qs, projectId: this.project }, (err, res) =>
        err
          ? reject(
              Object.assign(new Error(`BigQuery ${method} ${uri}: ${err.message}`), {
                status: (err as { code?: number }).code,
              }),
            )
          : resolve(res as T),
      );
    });
  }

  async table(name: string): Promise<TableResource | null> {
    try {
      return await this.call<TableResource>('GET', `/datasets/${this.dataset}/tables/${name}`);
    } catch (e) {
      if ((e as { status?: number }).status === 404) return null;
      throw e;
    }
  }

  private ref(table: string): string {
    return `\`${this.project}.${this.dataset}.${table}\``;
  }

  private body(sql: string, params: Param[], dryRun = false) {
    return {
      query: sql,
      useLegacySql: false,
      parameterMode: 'NAMED',
      dryRun,
      location: this.location,
      timeoutMs: 60_000,
      formatOptions: { useInt64Timestamp: true },
      queryParameters: params.map((p) =>
        p.values
          ? {
              name: p.name,
              parameterType: { type: 'ARRAY', arrayType: { type: p.type } },
              parameterValue: { arrayValues: p.values.map((value) => ({ value })) },
            }
          : { name: p.name, parameterType: { type: p.type }, parameterValue: { value: p.value } },
      ),
    };
  }

  private async query(sql: string, params: Param[]): Promise<RestRow[]> {
    let res = await this.call<QueryResponse>('POST', '/queries', this.body(sql, params));
    const out: RestRow[] = [];
    for (;;) {
      const fields = res.schema?.fields ?? [];
      if (res.jobComplete !== false) {
        for (const r of res.rows ?? []) {
          const o: RestRow = {};
          fields.forEach((f, i) => (o[f.name] = r.f[i]?.v ?? null));
          out.push(o);
        }
        if (!res.pageToken) return out;
      }
      const job = res.jobReference;
      if (!job) throw new Error('BigQuery query returned no job reference to page through');
      res = await this.call<QueryResponse>('GET', `/queries/${job.jobId}`, undefined, {
        location: job.location,
        pageToken: res.jobComplete === false ? undefined : res.pageToken,
        timeoutMs: 60_000,
        'formatOptions.useInt64Timestamp': true,
      });
    }
  }

  /** Rows whose first key column `field` is in (lo, hi] (null: unbounded; order "whole": every row). */
  rows(
    table: string,
    field: string,
    order: KeyOrder,
    lo: string | null,
    hi: string | null,
  ): Promise<RestRow[]> {
    const type = order === 'integer' ? 'INT64' : 'STRING';
    const conds: string[] = [];
    const params: Param[] = [];
    if (order !== 'whole' && lo !== null) {
      conds.push(`${field} > @lo`);
      params.push({ name: 'lo', type, value: lo });
    }
    if (order !== 'whole' && hi !== null) {
      conds.push(`${field} <= @hi`);
      params.push({ name: 'hi', type, value: hi });
    }
    return this.query(
      `SELECT * FROM ${this.ref(table)}${conds.length ? ` WHERE ${conds.join(' AND ')}` : ''}`,
      params,
    );
  }

  /** Rows whose first key column is one of `values` (every row when the key cannot be filtered so). */
  rowsWithFirstKey(table: string, field: string, order: KeyOrder, values: string[]): Promise<RestRow[]> {
    if (order === 'whole') return this.rows(table, field, order, null, null);
    return this.query(`SELECT * FROM ${this.ref(table)} WHERE ${field} IN UNNEST(@keys)`, [
      { name: 'keys', type: order === 'integer' ? 'INT64' : 'STRING', values },
    ]);
  }

  async count(table: string): Promise<number> {
    const [row] = await this.query(`SELECT COUNT(*) AS n FROM ${this.ref(table)}`, []);
    return Number(row?.n ?? 0);
  }

  /** Bytes a read of every row of `table` would scan, from a dry run (nothing runs, nothing is billed). */
  async fullReadBytes(table: string): Promise<number> {
    const res = await this.call<QueryResponse>(
      'POST',
      '/queries',
      this.body(`SELECT * FROM ${this.ref(table)}`, [], true),
    );
    return Number(res.totalBytesProcessed ?? 0);
  }
}
