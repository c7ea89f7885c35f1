// pgcdc run-once --env <stack>: one listener run, then one sink run, and what each did.
// Cloud: executions of the two Cloud Run jobs. Local: the same code in this process, against the local stack.

import { Command } from 'commander';
import type { CliDeps, ListenerSummary, SinkSummary } from '../deps';
import { JobFailedError } from '../errors';
import { ExecutionReport, runStackJob } from '../jobs';
import { recordRun } from '../runs';
import { describeSnapshot } from './snapshot';
import { cloudContext, envOption, formatBytes, LOCAL_ENV, roundNumbers, withEnv } from './shared';

export interface RunOnceResult {
  env: string;
  listener: { execution: ExecutionReport | null; summary: ListenerSummary | null };
  sink: { execution: ExecutionReport | null; summary: SinkSummary | null };
}

export function describeListener(s: ListenerSummary): string {
  return (
    `${s.changes} changes in ${s.transactions} transactions → ${s.messages} messages (${formatBytes(s.bytes)}); ` +
    `slot confirmed at ${s.confirmedLsn}, ${formatBytes(s.lagBytes)} behind; stopped by ${s.stoppedBy} after ${s.seconds.toFixed(1)}s` +
    // Older summaries (and the fakes of some tests) lack these two fields.
    (s.blockedLookup
      ? `; the TOAST lookup of ${s.blockedLookup.table} ${s.blockedLookup.reason === 'statement-timeout' ? 'ran past statement_timeout' : 'was refused a lock'}: the next run retries, \`pgcdc status\` names the sessions in the way`
      : '') +
    (s.skippedTables?.length
      ? `; not captured: ${s.skippedTables.map((t) => `${t.table} (${t.reason})`).join(', ')}`
      : '') +
    (s.snapshot ? `; snapshot: ${describeSnapshot(s.snapshot)}` : '')
  );
}

export function describeSink(s: SinkSummary): string {
  return (
    `${s.messages} messages, ${s.events} events → ${s.replicaRows} replica rows, ${s.changelogRows} changelog rows, ` +
    `${s.failed} failed${s.deadLetters ? `, ${s.deadLetters} dead letters recorded` : ''}; tables: ${s.tables.length ? s.tables.join(', ') : 'none'}; ${s.seconds.toFixed(1)}s`
  );
}

const LOCAL_HINT =
  'Rerun with --verbose to see its log lines; `pgcdc status --env local` shows the slot, the backlog and the last runs.';

/** One local listener + sink run, recorded in the run history. Shared with `demo`. */
export async function runOnceLocal(deps: CliDeps, opts: { verbose?: boolean } = {}): Promise<RunOnceResult> {
  const e = deps.local.read({ dir: deps.localDir });
  const env = deps.local.env(e);
  const log = opts.verbose ? (line: string) => deps.output.error(`  ${line}`) : () => undefined;
  const result: RunOnceResult = {
    env: LOCAL_ENV,
    listener: { execution: null, summary: null },
    sink: { execution: null, summary: null },
  };
  const at = new Date(deps.clock.now()).toISOString();
  try {
    await withEnv(env, async () => {
      try {
        result.listener.summary = await deps.output.task('Listener: slot → Pub/Sub', () =>
          deps.pipeline.listenOnce(env, log),
        );
      } catch (err) {
        throw new JobFailedError('listener', (err as Error).message, undefined, LOCAL_HINT);
      }
      try {
        result.sink.summary = await deps.output.task('Sink: Pub/Sub → BigQuery', () =>
          deps.pipeline.sinkOnce(env, log),
        );
      } catch (err) {
        throw new JobFailedError('sink', (err as Error).message, undefined, LOCAL_HINT);
      }
    });
  } catch (err) {
    recordRun(deps.localDir, {
      at,
      ok: false,
      listener: result.listener.summary,
      sink: result.sink.summary,
      error: (err as Error).message,
    });
    throw err;
  }
  recordRun(deps.localDir, { at, ok: true, listener: result.listener.summary, sink: result.sink.summary });
  return result;
}

async function runOnceCloud(deps: CliDeps, env: string): Promise<RunOnceResult> {
  const ctx = await cloudContext(deps, env);
  const { outputs } = ctx;
  const listener = await runStackJob<ListenerSummary>(deps, ctx, env, {
    role: 'listener',
    title: `Listener: execution of job ${outputs.listenerJobName}`,
    summaryField: 'confirmedLsn',
  });
  const sink = await runStackJob<SinkSummary>(deps, ctx, env, {
    role: 'sink',
    title: `Sink: execution of job ${outputs.sinkJobName}`,
    summaryField: 'replicaRows',
  });
  return {
    env,
    listener: { execution: listener.execution, summary: listener.summary },
    sink: { execution: sink.execution, summary: sink.summary },
  };
}

function print(deps: CliDeps, r: RunOnceResult): void {
  const part = (name: string, execution: ExecutionReport | null, text: string | null) => {
    const head = execution
      ? `${name}: execution ${execution.execution} succeeded` +
        (execution.seconds !== null ? ` in ${execution.seconds.toFixed(1)}s` : '')
      : `${name}:`;
    deps.output.log(head);
    deps.output.log(`  ${text ?? '(no summary line in Cloud Logging yet: see the logs)'}`);
    if (execution?.logUri) deps.output.log(`  logs: ${execution.logUri}`);
  };
  part('listener', r.listener.execution, r.listener.summary ? describeListener(r.listener.summary) : null);
  part('sink', r.sink.execution, r.sink.summary ? describeSink(r.sink.summary) : null);
}

export function runOnceCommand(deps: CliDeps): Command {
  return new Command('run-once')
    .description('run the listener, then the sink, once, and show what each did')
    .addOption(envOption())
    .option('--json', 'print a machine-readable summary on stdout')
    .option('-v, --verbose', "show the listener's and sink's own log lines (local)")
    .action(async (opts: { env: string; json?: boolean; verbose?: boolean }) => {
      const result =
        opts.env === LOCAL_ENV ? await runOnceLocal(deps, opts) : await runOnceCloud(deps, opts.env);
      if (opts.json) deps.output.log(JSON.stringify(roundNumbers(result)));
      else print(deps, result);
    });
}
