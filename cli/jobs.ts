// Running a Cloud Run job now and waiting for its execution: what `run-once`, `snapshot`, and (on the admin
// job) `sql init` / `sql teardown` / `check` do in the cloud. The execution's name and log URL are printed as
// soon as it exists, its end is noticed within seconds, and the summary line it logged is fetched after.

import {
  Execution,
  ExecutionsApi,
  executionState,
  jobPath,
  JobsApi,
  RUN_JOB_POLLING,
  shortName,
  StackOutputs,
  timestampMillis,
} from './cloud';
import type { CliDeps } from './deps';
import { CliError, EXIT, JobFailedError } from './errors';
import type { CloudContext } from './commands/shared';

export interface ExecutionReport {
  job: string;
  execution: string;
  state: 'succeeded';
  succeededTasks: number;
  seconds: number | null;
  logUri: string | null;
}

export interface ExecutionStart {
  execution: string;
  logUri: string | null;
}

function asExecution(v: unknown): Execution | undefined {
  return v && typeof v === 'object' ? (v as Execution) : undefined;
}

/** The newest execution of a job, for when an operation failed without saying which execution it was. */
async function latestExecution(executions: ExecutionsApi, job: string): Promise<Execution | undefined> {
  try {
    const [list] = await executions.listExecutions({ parent: job, pageSize: 1 }, { autoPaginate: false });
    return list[0];
  } catch {
    return undefined;
  }
}

/**
 * Starts an execution of `job` (full resource name), with container args overridden when given, and waits
 * for it. `onStart` is called once with the execution's name and log URL, as soon as the operation names
 * them. Resolves with what it did; rejects with JobFailedError carrying the execution's log URL.
 */
export async function runJobAndWait(
  clients: { jobs: JobsApi; executions: ExecutionsApi },
  job: string,
  opts: { args?: string[]; onStart?: (start: ExecutionStart) => void } = {},
): Promise<ExecutionReport> {
  const label = `job ${shortName(job)}`;
  const [operation] = await clients.jobs.runJob(
    {
      name: job,
      ...(opts.args ? { overrides: { containerOverrides: [{ args: opts.args }] } } : {}),
    },
    { longrunning: RUN_JOB_POLLING },
  );
  let announced = false;
  const announce = (metadata: unknown) => {
    const e = asExecution(metadata);
    if (announced || !e?.name) return;
    announced = true;
    opts.onStart?.({ execution: shortName(e.name), logUri: e.logUri || null });
  };
  announce(operation.metadata);
  operation.on?.('progress', announce);
  let execution: Execution;
  try {
    [execution] = await operation.promise();
  } catch (e) {
    // The operation fails when the execution fails; its metadata is the Execution (with the log URL).
    const known = asExecution(operation.metadata) ?? (await latestExecution(clients.executions, job));
    const where = known?.name ? ` (execution ${shortName(known.name)})` : '';
    throw new JobFailedError(label, `${(e as Error).message}${where}`, known?.logUri || undefined);
  }
  announce(execution);
  const state = executionState(execution);
  if (state !== 'succeeded') {
    const failed = execution.failedCount ?? 0;
    const detail =
      `execution ${shortName(execution.name ?? '?')} ${state}` +
      (failed ? ` (${failed} task(s) failed)` : '');
    throw new JobFailedError(label, detail, execution.logUri || undefined);
  }
  const start = timestampMillis(execution.startTime) ?? timestampMillis(execution.createTime);
  const end = timestampMillis(execution.completionTime);
  return {
    job: shortName(job),
    execution: shortName(execution.name ?? ''),
    state,
    succeededTasks: execution.succeededCount ?? 0,
    seconds: start !== null && end !== null ? (end - start) / 1000 : null,
    logUri: execution.logUri || null,
  };
}

export type JobRole = 'listener' | 'sink' | 'admin';

/** The stack's job for a role; the admin job is missing on stacks deployed before it existed. */
export function jobNameFor(outputs: StackOutputs, role: JobRole, env: string): string {
  if (role === 'listener') return outputs.listenerJobName;
  if (role === 'sink') return outputs.sinkJobName;
  if (!outputs.adminJobName) {
    throw new CliError(
      `stack "${env}" has no output "adminJobName" (it was deployed before the admin job existed)`,
      EXIT.failure,
      `Deploy it again: pgcdc deploy --env ${env}`,
    );
  }
  return outputs.adminJobName;
}

export interface JobRun<S> {
  execution: ExecutionReport;
  /** The JSON line the execution logged (null: not in Cloud Logging within the retry window). */
  summary: S | null;
}

/**
 * One execution of a stack job, as every cloud command runs it: progress line, the execution's name and
 * log URL printed when it starts (stderr, so --json stays clean), then the summary line it logged, looked
 * up with a few retries (log entries arrive seconds after the execution ends).
 *
 * `summaryField`: a top-level field only that job's summary line has (e.g. "statements" for sql-init).
 */
export async function runStackJob<S = Record<string, unknown>>(
  deps: CliDeps,
  ctx: CloudContext,
  env: string,
  opts: { role: JobRole; args?: string[]; title: string; summaryField?: string },
): Promise<JobRun<S>> {
  const jobName = jobNameFor(ctx.outputs, opts.role, env);
  const startedAt = deps.clock.now();
  const execution = await deps.output.task(opts.title, () =>
    runJobAndWait(ctx.clients, jobPath(ctx.outputs, jobName), {
      args: opts.args,
      onStart: (s) =>
        deps.output.error(`  execution ${s.execution} started${s.logUri ? `; logs: ${s.logUri}` : ''}`),
    }),
  );
  if (!opts.summaryField) return { execution, summary: null };
  const summary = await lastSummaryWithRetry(deps, ctx, jobName, {
    field: opts.summaryField,
    executionName: execution.execution,
    // A little before the start: the clocks of this machine and of Cloud Logging differ.
    sinceMs: startedAt - 10 * 60_000,
  });
  return { execution, summary: (summary as S | null) ?? null };
}

/** The job's newest summary line, retried briefly when it is not in Cloud Logging yet (null if never). */
export async function lastSummaryWithRetry(
  deps: CliDeps,
  ctx: CloudContext,
  jobName: string,
  opts: { field: string; executionName?: string; sinceMs?: number },
): Promise<Record<string, unknown> | null> {
  for (let attempt = 1; ; attempt++) {
    // Best effort: the execution's outcome is known already; its summary only adds detail.
    const found = await ctx.clients.logs.lastSummary(ctx.outputs.project, jobName, opts).catch(() => null);
    if (found) return found.summary;
    if (attempt >= deps.logRetry.attempts) return null;
    await new Promise((r) => setTimeout(r, deps.logRetry.intervalMs));
  }
}
