// Google Cloud as the CLI sees it: the few calls it makes on Cloud Run, Cloud Monitoring, Cloud Logging and
// BigQuery, each behind a small interface so tests can inject fakes and assert what was asked.

import type { protos } from '@google-cloud/run';
import type { BigQuery } from '@google-cloud/bigquery';
import { NoCredentialsError } from './errors';

export type Execution = protos.google.cloud.run.v2.IExecution;
export type RunJobRequest = protos.google.cloud.run.v2.IRunJobRequest;

/** The long-running operation `runJob` returns; it completes when the execution does. */
export interface RunJobOperation {
  /** The execution as last polled (the operation's metadata is the Execution). */
  metadata?: unknown;
  promise(): Promise<readonly [Execution, ...unknown[]]>;
}

/** The part of @google-cloud/run's JobsClient the CLI uses. */
export interface JobsApi {
  runJob(request: RunJobRequest): Promise<readonly [RunJobOperation, ...unknown[]]>;
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
    opts: { field: string; executionName?: string },
  ): Promise<{ at: string; summary: Record<string, unknown> } | null>;
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

// --- real implementations (not testable here: no GCP) ---

/** Minimal REST access through the Run client's own GoogleAuth (cloud-platform scope). */
interface AuthRequester {
  request<T>(opts: {
    url: string;
    method?: 'GET' | 'POST';
    params?: Record<string, string>;
    data?: unknown;
  }): Promise<{ data: T }>;
}

export class MonitoringMetrics implements SubscriptionMetrics {
  constructor(private readonly auth: AuthRequester) {}

  private async latest(project: string, subscriptionId: string, metric: string): Promise<number | null> {
    const end = new Date();
    // Pub/Sub metrics are sampled every 60 s and appear with a delay: look back ten minutes.
    const start = new Date(end.getTime() - 10 * 60_000);
    const { data } = await this.auth.request<{
      timeSeries?: Array<{ points?: Array<{ value?: { int64Value?: string; doubleValue?: number } }> }>;
    }>({
      url: `https://monitoring.googleapis.com/v3/projects/${project}/timeSeries`,
      params: {
        filter: `metric.type="pubsub.googleapis.com/subscription/${metric}" AND resource.labels.subscription_id="${subscriptionId}"`,
        'interval.startTime': start.toISOString(),
        'interval.endTime': end.toISOString(),
      },
    });
    const point = data.timeSeries?.[0]?.points?.[0]?.value;
    if (!point) return null;
    return Number(point.int64Value ?? point.doubleValue ?? 0);
  }

  async backlog(project: string, subscriptionId: string): Promise<Backlog | null> {
    const [messages, oldest] = await Promise.all([
      this.latest(project, subscriptionId, 'num_undelivered_messages'),
      this.latest(project, subscriptionId, 'oldest_unacked_message_age'),
    ]);
    if (messages === null) return null;
    return { messages, oldestUnackedSeconds: oldest };
  }
}

export class LoggingJobLogs implements JobLogs {
  constructor(private readonly auth: AuthRequester) {}

  async lastSummary(project: string, jobName: string, opts: { field: string; executionName?: string }) {
    const filter = [
      'resource.type="cloud_run_job"',
      `resource.labels.job_name="${jobName}"`,
      `jsonPayload.${opts.field}:*`,
      ...(opts.executionName
        ? [`labels."run.googleapis.com/execution_name"="${shortName(opts.executionName)}"`]
        : []),
    ].join(' AND ');
    const { data } = await this.auth.request<{
      entries?: Array<{ timestamp?: string; jsonPayload?: Record<string, unknown> }>;
    }>({
      url: 'https://logging.googleapis.com/v2/entries:list',
      method: 'POST',
      data: { resourceNames: [`projects/${project}`], filter, orderBy: 'timestamp desc', pageSize: 1 },
    });
    const entry = data.entries?.[0];
    if (!entry?.jsonPayload) return null;
    return { at: entry.timestamp ?? '', summary: entry.jsonPayload };
  }
}

/**
 * The real clients, with Application Default Credentials. Credentials are checked first: without them the
 * Run client leaves a rejected promise behind (google-gax) and BigQuery tries an anonymous request that only
 * fails after a network timeout — neither tells the user what to do.
 */
export async function googleCloudClients(project: string): Promise<CloudClients> {
  const { JobsClient, ExecutionsClient } = await import('@google-cloud/run');
  const { BigQuery: BigQueryClient } = await import('@google-cloud/bigquery');
  const jobs = new JobsClient();
  try {
    await jobs.auth.getClient();
  } catch (e) {
    throw new NoCredentialsError((e as Error).message.split('.')[0]);
  }
  const auth: AuthRequester = jobs.auth;
  return {
    jobs,
    executions: new ExecutionsClient(),
    metrics: new MonitoringMetrics(auth),
    logs: new LoggingJobLogs(auth),
    bigquery: new BigQueryClient({ projectId: project }),
  };
}
