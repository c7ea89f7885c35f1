// Google Cloud as the CLI sees it: the few calls it makes on Cloud Run, Cloud Monitoring, Cloud Logging and
// BigQuery, each behind a small interface so tests can inject fakes and assert what was asked. The official
// clients are loaded only by the commands that reach the cloud.

import type { protos } from '@google-cloud/run';
import type { BigQuery } from '@google-cloud/bigquery';
import { NoCredentialsError } from './errors';

export type Execution = protos.google.cloud.run.v2.IExecution;
export type RunJobRequest = protos.google.cloud.run.v2.IRunJobRequest;

/** The long-running operation `runJob` returns; it completes when the execution does. */
export interface RunJobOperation {
  /**
   * The execution as last polled: "The metadata for the operation ... Execution"
   * (https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.jobs/run). google-gax decodes it
   * from the first response, and emits 'progress' with it whenever a poll finds it changed.
   */
  metadata?: unknown;
  on?(event: 'progress', listener: (metadata: unknown) => void): unknown;
  promise(): Promise<readonly [Execution, ...unknown[]]>;
}

/**
 * google-gax BackoffSettings for polling a long-running operation (CallOptions.longrunning). Its defaults
 * grow the poll interval towards a minute; the CLI polls every few seconds so the end is seen at once.
 */
export interface PollSettings {
  initialRetryDelayMillis: number;
  retryDelayMultiplier: number;
  maxRetryDelayMillis: number;
  initialRpcTimeoutMillis: number;
  rpcTimeoutMultiplier: number;
  maxRpcTimeoutMillis: number;
  totalTimeoutMillis: number;
}

export const RUN_JOB_POLLING: PollSettings = {
  initialRetryDelayMillis: 1000,
  retryDelayMultiplier: 1.5,
  maxRetryDelayMillis: 3000,
  initialRpcTimeoutMillis: 30_000,
  rpcTimeoutMultiplier: 1,
  maxRpcTimeoutMillis: 30_000,
  // 0: no overall deadline (the job's own task timeout bounds the execution).
  totalTimeoutMillis: 0,
};

/** The part of @google-cloud/run's JobsClient the CLI uses. */
export interface JobsApi {
  runJob(
    request: RunJobRequest,
    options?: { longrunning?: PollSettings },
  ): Promise<readonly [RunJobOperation, ...unknown[]]>;
}

/** The part of @google-cloud/run's ExecutionsClient the CLI uses. */
export interface ExecutionsApi {
  listExecutions(
    request: { parent: string; pageSize?: number },
    options?: { autoPaginate?: boolean },
  ): Promise<readonly [Execution[], ...unknown[]]>;
}

export interface Backlog {
  /** Messages published and not yet acknowledged. */
  messages: number;
  /** Age of the oldest unacknowledged message, seconds (null when unknown). */
  oldestUnackedSeconds: number | null;
}

/** Subscription backlog (Cloud Monitoring's pubsub.googleapis.com/subscription/* metrics). */
export interface SubscriptionMetrics {
  backlog(project: string, subscriptionId: string): Promise<Backlog | null>;
}

/** The JSON summary line a job printed on its last run (Cloud Logging, jsonPayload). */
export interface JobLogs {
  lastSummary(
    project: string,
    jobName: string,
    /** `sinceMs`: only entries from then on (default: the last 30 days). */
    opts: { field: string; executionName?: string; sinceMs?: number },
  ): Promise<{ at: string; summary: Record<string, unknown> } | null>;
  /**
   * The newest `limit` summary lines of the job, newest first (fewer when there are not that many): what
   * runs in a row reported (`pgcdc status`: a TOAST lookup blocked run after run).
   */
  recentSummaries(
    project: string,
    jobName: string,
    opts: { field: string; limit: number; sinceMs?: number },
  ): Promise<Array<{ at: string; summary: Record<string, unknown> }>>;
}

export interface CloudClients {
  jobs: JobsApi;
  executions: ExecutionsApi;
  metrics: SubscriptionMetrics;
  logs: JobLogs;
  bigquery: BigQuery;
}

/** What `pgcdc` needs from the stack outputs (names in interfaces.md). */
export interface StackOutputs {
  project: string;
  region: string;
  listenerJobName: string;
  sinkJobName: string;
  /** The job that runs sql init / teardown / check as the admin login (stacks deployed before it: absent). */
  adminJobName?: string;
  topic: string;
  subscription: string;
  dataset: string;
  failedTable: string;
  deadLetterSubscription?: string;
  slotName?: string;
}

/** Full resource name of a Cloud Run job. */
export function jobPath(o: Pick<StackOutputs, 'project' | 'region'>, job: string): string {
  return job.startsWith('projects/') ? job : `projects/${o.project}/locations/${o.region}/jobs/${job}`;
}

/** Last path segment ("projects/p/subscriptions/s" → "s"). */
export function shortName(name: string): string {
  return name.split('/').pop() ?? name;
}

type Timestamp = protos.google.protobuf.ITimestamp | null | undefined;

export function timestampMillis(t: Timestamp): number | null {
  if (!t || t.seconds === null || t.seconds === undefined) return null;
  return Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1e6);
}

export type ExecutionState = 'succeeded' | 'failed' | 'cancelled' | 'running';

export function executionState(e: Execution): ExecutionState {
  if ((e.failedCount ?? 0) > 0) return 'failed';
  if ((e.cancelledCount ?? 0) > 0) return 'cancelled';
  const completed = (e.conditions ?? []).find((c) => c.type === 'Completed');
  const state = String(completed?.state ?? '');
  if (state === 'CONDITION_FAILED' || state === '3') return 'failed';
  if (!e.completionTime) return 'running';
  return 'succeeded';
}

// --- real implementations (their Google calls cannot run here: no GCP; the paging, bounds and parsing are
// tested through fakes of the two client methods) ---

/** The one call of @google-cloud/monitoring's MetricServiceClient used (autoPaginate: every page). */
export interface TimeSeriesApi {
  listTimeSeries(request: {
    name: string;
    filter: string;
    interval: { startTime: { seconds: number }; endTime: { seconds: number } };
    view: 'FULL';
  }): Promise<
    readonly [
      Array<{
        points?: Array<{
          interval?: { endTime?: { seconds?: number | string | null } | null } | null;
          value?: { int64Value?: number | string | null; doubleValue?: number | null } | null;
        }> | null;
      }>,
      ...unknown[],
    ]
  >;
}

export class MonitoringMetrics implements SubscriptionMetrics {
  constructor(
    private readonly api: TimeSeriesApi,
    private readonly now: () => number = Date.now,
  ) {}

  /** The newest point of a subscription metric in the last ten minutes, or null when there is none. */
  private async latest(project: string, subscriptionId: string, metric: string): Promise<number | null> {
    const end = Math.floor(this.now() / 1000);
    // "Sampled every 60 seconds. After sampling, data is not visible for up to 120 seconds"
    // (https://cloud.google.com/monitoring/api/metrics_gcp_p_z#gcp-pubsub): ten minutes always hold a point
    // while the subscription exists.
    const [series] = await this.api.listTimeSeries({
      name: `projects/${project}`,
      filter: `metric.type="pubsub.googleapis.com/subscription/${metric}" AND resource.labels.subscription_id="${subscriptionId}"`,
      interval: { startTime: { seconds: end - 600 }, endTime: { seconds: end } },
      view: 'FULL',
    });
    let best: { at: number; value: number } | null = null;
    for (const ts of series) {
      for (const p of ts.points ?? []) {
        const at = Number(p.interval?.endTime?.seconds ?? 0);
        const v = p.value?.int64Value ?? p.value?.doubleValue;
        if (v === null || v === undefined) continue;
        if (!best || at > best.at) best = { at, value: Number(v) };
      }
    }
    return best ? best.value : null;
  }

  async backlog(project: string, subscriptionId: string): Promise<Backlog | null> {
    const [messages, oldest] = await Promise.all([
      this.latest(project, subscriptionId, 'num_undelivered_messages'),
      this.latest(project, subscriptionId, 'oldest_unacked_message_age'),
    ]);
    if (messages === null) return null;
    return { messages, oldestUnackedSeconds: oldest === null ? null : Math.round(oldest) };
  }
}

/** A log entry as @google-cloud/logging's Logging.getEntries returns it (Entry: metadata + data). */
export interface LogEntry {
  metadata: {
    timestamp?: string | Date | { seconds?: number | string | null; nanos?: number | null } | null;
  };
  data?: unknown;
}

/** The one call of @google-cloud/logging's Logging used, one page at a time (autoPaginate: false). */
export interface EntriesApi {
  getEntries(request: {
    resourceNames: string[];
    filter: string;
    orderBy: 'timestamp desc';
    pageSize: number;
    pageToken?: string;
    autoPaginate: false;
  }): Promise<readonly [LogEntry[], { pageToken?: string | null } | null, ...unknown[]]>;
}

function entryTime(t: LogEntry['metadata']['timestamp']): string {
  if (!t) return '';
  if (typeof t === 'string') return t;
  if (t instanceof Date) return t.toISOString();
  return new Date(Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6)).toISOString();
}

export class LoggingJobLogs implements JobLogs {
  constructor(
    private readonly api: EntriesApi,
    private readonly now: () => number = Date.now,
    /** Pages read at most per lookup, and the time a lookup may take. */
    private readonly limits = { pages: 20, ms: 30_000 },
  ) {}

  private filter(jobName: string, opts: { field: string; executionName?: string; sinceMs?: number }): string {
    // Bounded by time: Cloud Logging keeps job logs 30 days by default (_Default bucket), and without a
    // bound the client itself would look at the last 24 hours only.
    const since = new Date(opts.sinceMs ?? this.now() - 30 * 24 * 3600_000).toISOString();
    return [
      'resource.type="cloud_run_job"',
      `resource.labels.job_name="${jobName}"`,
      `jsonPayload.${opts.field}:*`,
      `timestamp >= "${since}"`,
      ...(opts.executionName
        ? [`labels."run.googleapis.com/execution_name"="${shortName(opts.executionName)}"`]
        : []),
    ].join(' AND ');
  }

  /** Up to `limit` entries with a JSON payload, newest first, within the page and time limits. */
  private async newest(project: string, filter: string, limit: number) {
    const found: Array<{ at: string; summary: Record<string, unknown> }> = [];
    const deadline = this.now() + this.limits.ms;
    let pageToken: string | undefined;
    // entries.list "may return fewer results than pageSize, even zero, with a nextPageToken" while it searches
    // (https://cloud.google.com/logging/docs/reference/v2/rest/v2/entries/list): follow the pages.
    for (let page = 0; page < this.limits.pages && this.now() < deadline; page++) {
      const [entries, next] = await this.api.getEntries({
        resourceNames: [`projects/${project}`],
        filter,
        orderBy: 'timestamp desc',
        pageSize: limit - found.length,
        ...(pageToken ? { pageToken } : {}),
        autoPaginate: false,
      });
      for (const e of entries) {
        if (found.length < limit && e.data && typeof e.data === 'object')
          found.push({ at: entryTime(e.metadata.timestamp), summary: e.data as Record<string, unknown> });
      }
      pageToken = next?.pageToken || undefined;
      if (found.length >= limit || !pageToken) break;
    }
    return found;
  }

  async lastSummary(
    project: string,
    jobName: string,
    opts: { field: string; executionName?: string; sinceMs?: number },
  ) {
    const [entry] = await this.newest(project, this.filter(jobName, opts), 1);
    return entry ?? null;
  }

  async recentSummaries(
    project: string,
    jobName: string,
    opts: { field: string; limit: number; sinceMs?: number },
  ) {
    return this.newest(project, this.filter(jobName, opts), opts.limit);
  }
}

/**
 * The real clients, with Application Default Credentials. Credentials are checked first: without them the
 * Run client leaves a rejected promise behind (google-gax) and BigQuery tries an anonymous request that only
 * fails after a network timeout — neither tells the user what to do.
 */
export async function googleCloudClients(project: string): Promise<CloudClients> {
  const { JobsClient, ExecutionsClient } = await import('@google-cloud/run');
  const jobs = new JobsClient();
  try {
    await jobs.auth.getClient();
  } catch (e) {
    throw new NoCredentialsError((e as Error).message.split('.')[0]);
  }
  const [{ BigQuery: BigQueryClient }, { Logging }, { MetricServiceClient }] = await Promise.all([
    import('@google-cloud/bigquery'),
    import('@google-cloud/logging'),
    import('@google-cloud/monitoring'),
  ]);
  const logging = new Logging({ projectId: project });
  const monitoring = new MetricServiceClient();
  return {
    jobs,
    executions: new ExecutionsClient(),
    metrics: new MonitoringMetrics(monitoring as unknown as TimeSeriesApi),
    logs: new LoggingJobLogs(logging as unknown as EntriesApi),
    bigquery: new BigQueryClient({ projectId: project }),
  };
}
