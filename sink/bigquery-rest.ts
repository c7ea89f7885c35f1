// The few BigQuery REST calls the sink makes (datasets, tables, queries), through @google-cloud/bigquery's
// authenticated request path so retries, auth and BIGQUERY_EMULATOR_HOST behave as the library documents.

import { BigQuery } from '@google-cloud/bigquery';

export interface TableField {
  name: string;
  type: string;
  mode?: 'NULLABLE' | 'REQUIRED' | 'REPEATED';
  description?: string;
}

export interface TableResource {
  tableReference?: { projectId: string; datasetId: string; tableId: string };
  schema?: { fields?: TableField[] };
  labels?: Record<string, string>;
  description?: string;
  tableConstraints?: { primaryKey?: { columns: string[] } };
  clustering?: { fields: string[] };
  timePartitioning?: { type: string; field?: string };
  maxStaleness?: string;
}

export type QueryParam = { name: string; value: string } | { name: string; values: string[] };

/** An HTTP error from BigQuery with its status, so callers can tell "not found" from "down". */
export class BigQueryApiError extends Error {
  override name = 'BigQueryApiError';
  constructor(
    message: string,
    readonly status: number | undefined,
    /** BigQuery's error reason ("notFound", "invalidQuery", …) when it gave one. */
    readonly reason?: string,
  ) {
    super(message);
  }
}

interface RawQueryResponse {
  jobComplete?: boolean;
  jobReference?: { jobId: string; location?: string };
  schema?: { fields?: TableField[] };
  rows?: { f: { v: unknown }[] }[];
  pageToken?: string;
}

export class BigQueryRest {
  constructor(
    private readonly bq: BigQuery,
    readonly project: string,
    readonly dataset: string,
    readonly location?: string,
  ) {}

  private call<T>(method: string, uri: string, body?: unknown, qs?: Record<string, unknown>): Promise<T> {
    return new Promise((resolve, reject) => {
      this.bq.request(
        // The library prefixes "projects/<projectId>" itself.
        { method, uri, json: body, qs, projectId: this.project },
        (err, res) => {
          if (err) {
            const e = err as Error & { code?: number; errors?: { reason?: string }[] };
            reject(
              new BigQueryApiError(`BigQuery ${method} ${uri}: ${e.message}`, e.code, e.errors?.[0]?.reason),
            );
          } else resolve(res as T);
        },
      );
    });
  }

  async ensureDataset(): Promise<void> {
    try {
      await this.call('GET', `/datasets/${this.dataset}`);
    } catch (e) {
      if (!(e instanceof BigQueryApiError) || e.status !== 404) throw e;
      try {
        await this.call('POST', '/datasets', {
          datasetReference: { projectId: this.project, datasetId: this.dataset },
          location: this.location,
        });
      } catch (e2) {
        if (!(e2 instanceof BigQueryApiError) || e2.status !== 409) throw e2;
      }
    }
  }

  async getTable(table: string): Promise<TableResource | null> {
    try {
      return await this.call<TableResource>('GET', `/datasets/${this.dataset}/tables/${table}`);
    } catch (e) {
      if (e instanceof BigQueryApiError && e.status === 404) return null;
      throw e;
    }
  }

  /** Creates the table; if someone created it meanwhile (409), returns theirs. */
  async createTable(table: string, resource: TableResource): Promise<TableResource> {
    try {
      return await this.call<TableResource>('POST', `/datasets/${this.dataset}/tables`, {
        ...resource,
        tableReference: { projectId: this.project, datasetId: this.dataset, tableId: table },
      });
    } catch (e) {
      if (!(e instanceof BigQueryApiError) || e.status !== 409) throw e;
      const existing = await this.getTable(table);
      if (!existing) throw e;
      return existing;
    }
  }

  patchTable(table: string, patch: TableResource): Promise<TableResource> {
    return this.call<TableResource>('PATCH', `/datasets/${this.dataset}/tables/${table}`, patch);
  }

  /** Every row of a table as objects of raw REST values (tests and small reads). */
  async listRows(table: string): Promise<Record<string, unknown>[]> {
    const meta = await this.getTable(table);
    const fields = meta?.schema?.fields ?? [];
    const out: Record<string, unknown>[] = [];
    let pageToken: string | undefined;
    do {
      const res = await this.call<{ rows?: { f: { v: unknown }[] }[]; pageToken?: string }>(
        'GET',
        `/datasets/${this.dataset}/tables/${table}/data`,
        undefined,
        { pageToken, 'formatOptions.useInt64Timestamp': true },
      );
      for (const r of res.rows ?? []) out.push(rowObject(fields, r));
      pageToken = res.pageToken;
    } while (pageToken);
    return out;
  }

  /** A GoogleSQL query with named STRING / ARRAY<STRING> parameters; rows as objects of raw REST values. */
  async query(sql: string, params: QueryParam[] = []): Promise<Record<string, unknown>[]> {
    const queryParameters = params.map((p) =>
      'values' in p
        ? {
            name: p.name,
            parameterType: { type: 'ARRAY', arrayType: { type: 'STRING' } },
            parameterValue: { arrayValues: p.values.map((value) => ({ value })) },
          }
        : { name: p.name, parameterType: { type: 'STRING' }, parameterValue: { value: p.value } },
    );
    let res = await this.call<RawQueryResponse>('POST', '/queries', {
      query: sql,
      useLegacySql: false,
      parameterMode: 'NAMED',
      queryParameters,
      location: this.location,
      timeoutMs: 60_000,
      formatOptions: { useInt64Timestamp: true },
    });
    const out: Record<string, unknown>[] = [];
    for (;;) {
      const fields = res.schema?.fields ?? [];
      if (res.jobComplete !== false) for (const r of res.rows ?? []) out.push(rowObject(fields, r));
      if (res.jobComplete !== false && !res.pageToken) return out;
      const job = res.jobReference;
      if (!job)
        throw new BigQueryApiError('BigQuery query returned no job reference to page through', undefined);
      res = await this.call<RawQueryResponse>('GET', `/queries/${job.jobId}`, undefined, {
        location: job.location,
        pageToken: res.jobComplete === false ? undefined : res.pageToken,
        timeoutMs: 60_000,
        'formatOptions.useInt64Timestamp': true,
      });
    }
  }
}

/** `SELECT <select> FROM <table> WHERE <where>` with named parameters; rows as objects of raw REST values. */
export async function queryFiltered(
  rest: BigQueryRest,
  select: string,
  table: string,
  where: string,
  params: QueryParam[],
): Promise<Record<string, unknown>[]> {
  return rest.query(
    `SELECT ${select} FROM \`${rest.project}.${rest.dataset}.${table}\` WHERE ${where}`,
    params,
  );
}

function rowObject(fields: TableField[], row: { f: { v: unknown }[] }): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  fields.forEach((f, i) => (o[f.name] = row.f[i]?.v ?? null));
  return o;
}
