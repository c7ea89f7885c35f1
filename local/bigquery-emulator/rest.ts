/**
 * BigQuery v2 REST, for the calls pgcdc makes (https://cloud.google.com/bigquery/docs/reference/rest):
 * datasets and tables CRUD, tabledata.list, tabledata.insertAll, and jobs.query / jobs.insert /
 * jobs.getQueryResults for the trivial queries in query.ts.
 *
 * Paths are served both with the `/bigquery/v2` prefix (what `new BigQuery({apiEndpoint})` produces) and without
 * it (what BIGQUERY_EMULATOR_HOST produces: the client uses that value as its base URL unchanged).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, invalid } from './errors';
import { runQuery, type QueryParameter, type QueryResult } from './query';
import type { Store, TableRef } from './store';
import { fromJsonRecord, toRestRow, ValueError, type StoredRecord, type TimestampOutput } from './values';

type Json = Record<string, unknown>;

interface Request {
  method: string;
  segments: string[];
  query: URLSearchParams;
  body: Json;
  bodyBytes: number;
}

/** Query results kept for jobs.getQueryResults; the oldest are dropped past this count. */
const KEPT_QUERY_RESULTS = 200;
/** Default page size of list calls when the client gives no maxResults. */
const DEFAULT_PAGE_SIZE = 10_000;
/**
 * insertAll limits (https://cloud.google.com/bigquery/quotas#streaming_inserts): "Maximum HTTP request size:
 * 10 MB" and "Maximum rows per request: 50,000 rows".
 */
const MAX_INSERT_ALL_REQUEST_BYTES = 10 * 1024 * 1024;
const MAX_INSERT_ALL_ROWS = 50_000;

export function createRestHandler(store: Store): (req: IncomingMessage, res: ServerResponse) => void {
  const queryResults = new Map<string, QueryResult>();
  const remember = (result: QueryResult): void => {
    queryResults.set(result.jobId, result);
    if (queryResults.size > KEPT_QUERY_RESULTS)
      queryResults.delete(queryResults.keys().next().value as string);
  };

  const route = (r: Request): { status: number; body?: Json } => {
    const [root, projectId, collection, id, sub, subId, action] = r.segments;
    // Emulator-only admin calls (no BigQuery equivalent): read or move forward the emulator clock, so tests can
    // pass BigQuery's time windows (the two-day delete retention, the schema propagation delay) without waiting.
    if (root === 'emulator' && projectId === 'v1' && collection === 'clock') {
      if (r.method === 'GET') return { status: 200, body: { now: store.now() } };
    }
    if (root === 'emulator' && projectId === 'v1' && collection === 'clock:advance' && r.method === 'POST') {
      return { status: 200, body: { now: store.advanceClock(Number(r.body.ms)) } };
    }
    if (root !== 'projects' || !projectId)
      throw new ApiError('notFound', `Not found: URL /${r.segments.join('/')}`);
    const ok = (body: Json): { status: number; body: Json } => ({ status: 200, body });

    if (collection === 'datasets' && id === undefined) {
      if (r.method === 'GET') {
        const page = paginate(store.listDatasets(projectId), r.query);
        return ok({ kind: 'bigquery#datasetList', datasets: page.items, ...page.token });
      }
      if (r.method === 'POST') return ok(store.createDataset(projectId, r.body));
    }
    if (collection === 'datasets' && id !== undefined && sub === undefined) {
      if (r.method === 'GET') return ok(store.datasetResource(projectId, id));
      if (r.method === 'PATCH' || r.method === 'PUT') return ok(store.patchDataset(projectId, id, r.body));
      if (r.method === 'DELETE') {
        store.deleteDataset(projectId, id, r.query.get('deleteContents') === 'true');
        return { status: 204 };
      }
    }
    if (collection === 'datasets' && sub === 'tables' && subId === undefined) {
      if (r.method === 'GET') {
        const tables = store.listTables(projectId, id);
        const page = paginate(tables, r.query);
        return ok({
          kind: 'bigquery#tableList',
          tables: page.items,
          totalItems: tables.length,
          ...page.token,
        });
      }
      if (r.method === 'POST') return ok(store.createTable(projectId, id, r.body));
    }
    if (collection === 'datasets' && sub === 'tables' && subId !== undefined) {
      const ref: TableRef = { projectId, datasetId: id, tableId: subId };
      if (action === undefined) {
        if (r.method === 'GET') return ok(store.tableResource(ref));
        if (r.method === 'PATCH') return ok(store.updateTable(ref, r.body, false));
        if (r.method === 'PUT') return ok(store.updateTable(ref, r.body, true));
        if (r.method === 'DELETE') {
          store.deleteTable(ref);
          return { status: 204 };
        }
      }
      if (action === 'data' && r.method === 'GET') return ok(listTableData(store, ref, r.query));
      if (action === 'insertAll' && r.method === 'POST') {
        if (r.bodyBytes > MAX_INSERT_ALL_REQUEST_BYTES) {
          throw invalid(
            `Request payload size exceeds the limit: ${MAX_INSERT_ALL_REQUEST_BYTES} bytes (got ${r.bodyBytes}).`,
          );
        }
        return ok(insertAll(store, ref, r.body));
      }
    }
    if (collection === 'queries' && r.method === 'POST' && id === undefined) {
      const result = runQuery(
        store,
        projectId,
        String(r.body.query ?? ''),
        timestampOutput(r.body.formatOptions),
        (r.body.queryParameters ?? []) as QueryParameter[],
      );
      remember(result);
      return ok({ kind: 'bigquery#queryResponse', ...queryResponse(projectId, result, r.query) });
    }
    if ((collection === 'queries' || collection === 'jobs') && r.method === 'GET' && id !== undefined) {
      const result = queryResults.get(id);
      if (!result) throw new ApiError('notFound', `Not found: Job ${projectId}:US.${id}`);
      if (collection === 'jobs') return ok(jobResource(projectId, result));
      return ok({ kind: 'bigquery#getQueryResultsResponse', ...queryResponse(projectId, result, r.query) });
    }
    if (collection === 'jobs' && r.method === 'POST' && id === undefined) {
      const configuration = (r.body.configuration ?? {}) as {
        query?: { query?: string; queryParameters?: QueryParameter[] };
      };
      if (!configuration.query?.query)
        throw new ApiError('notImplemented', 'The BigQuery emulator only runs query jobs.');
      const jobId = (r.body.jobReference as { jobId?: string } | undefined)?.jobId;
      const result = runQuery(
        store,
        projectId,
        configuration.query.query,
        'INT64',
        configuration.query.queryParameters ?? [],
      );
      if (jobId) result.jobId = jobId;
      remember(result);
      return ok(jobResource(projectId, result, configuration));
    }
    throw new ApiError('notFound', `Not found: ${r.method} /${r.segments.join('/')}`);
  };

  return (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      let status: number;
      let body: Json | undefined;
      try {
        const url = new URL(req.url ?? '/', 'http://emulator');
        const path = url.pathname.replace(/^\/bigquery\/v2(?=\/)/, '');
        const raw = Buffer.concat(chunks);
        const text = raw.toString('utf8');
        const parsed: unknown = text.trim() ? JSON.parse(text) : {};
        const result = route({
          method: req.method ?? 'GET',
          segments: path.split('/').filter(Boolean).map(decodeURIComponent),
          query: url.searchParams,
          body: (parsed ?? {}) as Json,
          bodyBytes: raw.length,
        });
        status = result.status;
        body = result.body;
      } catch (err) {
        const apiError =
          err instanceof ApiError
            ? err
            : err instanceof SyntaxError
              ? invalid(`Invalid JSON payload received. ${err.message}`)
              : new ApiError('badRequest', `Internal emulator error: ${(err as Error).message}`);
        status = apiError.httpCode;
        body = apiError.toBody() as Json;
      }
      if (body === undefined) {
        res.writeHead(status).end();
        return;
      }
      const payload = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' }).end(payload);
    });
  };
}

function paginate<T>(items: T[], query: URLSearchParams): { items: T[]; token: { nextPageToken?: string } } {
  const start = Number(query.get('pageToken') ?? 0) || 0;
  const size = Number(query.get('maxResults') ?? DEFAULT_PAGE_SIZE) || DEFAULT_PAGE_SIZE;
  const end = start + size;
  return { items: items.slice(start, end), token: end < items.length ? { nextPageToken: String(end) } : {} };
}

/**
 * TIMESTAMP encoding of tabledata.list / getQueryResults: `formatOptions.useInt64Timestamp=true` or
 * `timestampOutputFormat=INT64` gives microseconds, `ISO8601_STRING` an ISO string, otherwise float seconds
 * (BigQuery's historical default).
 */
function timestampOutputFromQuery(query: URLSearchParams): TimestampOutput {
  return timestampOutput({
    useInt64Timestamp: query.get('formatOptions.useInt64Timestamp') === 'true',
    timestampOutputFormat: query.get('formatOptions.timestampOutputFormat') ?? undefined,
  });
}

function timestampOutput(formatOptions: unknown): TimestampOutput {
  const f = (formatOptions ?? {}) as { useInt64Timestamp?: boolean; timestampOutputFormat?: string };
  if (f.timestampOutputFormat === 'ISO8601_STRING') return 'ISO8601_STRING';
  if (f.useInt64Timestamp === true || f.timestampOutputFormat === 'INT64') return 'INT64';
  return 'FLOAT';
}

function pageOfRows(rows: unknown[], query: URLSearchParams): { rows: unknown[]; pageToken?: string } {
  const start = Number(query.get('pageToken') ?? query.get('startIndex') ?? 0) || 0;
  const size = Number(query.get('maxResults') ?? DEFAULT_PAGE_SIZE) || DEFAULT_PAGE_SIZE;
  const end = start + size;
  return { rows: rows.slice(start, end), ...(end < rows.length ? { pageToken: String(end) } : {}) };
}

function listTableData(store: Store, ref: TableRef, query: URLSearchParams): Json {
  const { schema } = store.schemaOf(ref);
  const all = store.rows(ref);
  const ts = timestampOutputFromQuery(query);
  const page = pageOfRows(all, query);
  const rows = (page.rows as StoredRecord[]).map((row) => toRestRow(schema.fields, row, ts));
  return {
    kind: 'bigquery#tableDataList',
    totalRows: String(all.length),
    ...(rows.length > 0 ? { rows } : {}),
    ...(page.pageToken ? { pageToken: page.pageToken } : {}),
  };
}

/**
 * tabledata.insertAll: a bad row fails the whole request unless skipInvalidRows; the other rows are then
 * reported with reason "stopped", as BigQuery does. insertId de-duplicates retried rows.
 */
function insertAll(store: Store, ref: TableRef, body: Json): Json {
  const { schema } = store.schemaOf(ref);
  const rows = (body.rows ?? []) as Array<{ insertId?: string; json?: Record<string, unknown> }>;
  if (rows.length > MAX_INSERT_ALL_ROWS) {
    throw invalid(`Too many rows in the request: ${rows.length}; the maximum is ${MAX_INSERT_ALL_ROWS}.`);
  }
  const converted: Array<{ insertId?: string; row: StoredRecord }> = [];
  const insertErrors: Json[] = [];
  rows.forEach((r, index) => {
    try {
      const row = fromJsonRecord(schema.fields, r.json ?? {}, body.ignoreUnknownValues === true);
      converted.push({ insertId: r.insertId, row });
    } catch (err) {
      if (!(err instanceof ValueError)) throw err;
      insertErrors.push({
        index,
        errors: [{ reason: 'invalid', location: '', debugInfo: '', message: err.message }],
      });
    }
  });
  if (insertErrors.length > 0 && body.skipInvalidRows !== true) {
    const failed = new Set(insertErrors.map((e) => e.index));
    rows.forEach((_r, index) => {
      if (!failed.has(index)) {
        insertErrors.push({
          index,
          errors: [{ reason: 'stopped', location: '', debugInfo: '', message: '' }],
        });
      }
    });
    insertErrors.sort((a, b) => Number(a.index) - Number(b.index));
    return { kind: 'bigquery#tableDataInsertAllResponse', insertErrors };
  }
  store.insertAll(ref, converted);
  return {
    kind: 'bigquery#tableDataInsertAllResponse',
    ...(insertErrors.length > 0 ? { insertErrors } : {}),
  };
}

function queryResponse(
  projectId: string,
  result: QueryResult,
  query: URLSearchParams,
  ts?: TimestampOutput,
): Json {
  const page = pageOfRows(result.rows, query);
  void ts; // rows were encoded when the query ran; the client asks the same format for every page
  return {
    schema: result.schema,
    jobReference: { projectId, jobId: result.jobId, location: 'US' },
    totalRows: String(result.rows.length),
    ...(page.rows.length > 0 ? { rows: page.rows } : {}),
    ...(page.pageToken ? { pageToken: page.pageToken } : {}),
    totalBytesProcessed: '0',
    jobComplete: true,
    cacheHit: false,
  };
}

function jobResource(projectId: string, result: QueryResult, configuration?: unknown): Json {
  const now = String(Date.now());
  return {
    kind: 'bigquery#job',
    id: `${projectId}:US.${result.jobId}`,
    jobReference: { projectId, jobId: result.jobId, location: 'US' },
    configuration: configuration ?? { jobType: 'QUERY' },
    status: { state: 'DONE' },
    statistics: { creationTime: now, startTime: now, endTime: now, query: { totalBytesProcessed: '0' } },
  };
}
