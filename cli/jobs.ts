// Running a Cloud Run job now and waiting for its execution: what `sql init` and `run-once` do in the cloud.

import { Execution, ExecutionsApi, executionState, JobsApi, shortName, timestampMillis } from './cloud';
import { JobFailedError } from './errors';

export interface ExecutionReport {
  job: string;
  execution: string;
  state: 'succeeded';
  succeededTasks: number;
  seconds: number | null;
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
 * for it. Resolves with what it did; rejects with JobFailedError carrying the execution's log URL.
 */
export async function runJobAndWait(
  clients: { jobs: JobsApi; executions: ExecutionsApi },
  job: string,
  opts: { args?: string[] } = {},
): Promise<ExecutionReport> {
  const label = `job ${shortName(job)}`;
  const [operation] = await clients.jobs.runJob({
    name: job,
    ...(opts.args ? { overrides: { containerOverrides: [{ args: opts.args }] } } : {}),
  });
  let execution: Execution;
  try {
    [execution] = await operation.promise();
  } catch (e) {
    // The operation fails when the execution fails; its metadata is the Execution (with the log URL).
    const known = asExecution(operation.metadata) ?? (await latestExecution(clients.executions, job));
    const where = known?.name ? ` (execution ${shortName(known.name)})` : '';
    throw new JobFailedError(label, `${(e as Error).message}${where}`, known?.logUri || undefined);
  }
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
