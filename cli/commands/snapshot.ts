// pgcdc snapshot --env <stack> [--table schema.table ...] [--restart]: send tables' existing rows as `op: r`
// events (listener/snapshot.ts explains why they stay consistent with the stream). Bounded like a run:
// a large table takes several invocations (or scheduled runs), each resuming where the last stopped.
// Cloud: an execution of the listener job with args ["snapshot", ...]; local: in this process.

import { Command } from 'commander';
import type { CliDeps, SnapshotSummary } from '../deps';
import { runStackJob } from '../jobs';
import { cloudContext, envOption, LOCAL_ENV, roundNumbers, tableArg, withEnv } from './shared';

export function snapshotArgs(tables: string[], restart: boolean): string[] {
  return ['snapshot', ...tables.flatMap((t) => ['--table', t]), ...(restart ? ['--restart'] : [])];
}

export function describeSnapshot(s: SnapshotSummary): string {
  const tables = s.tables
    .map((t) => `${t.table} ${t.rowsDone}/${t.rowsEstimate ?? '?'}${t.done ? ' done' : ''}`)
    .join(', ');
  return `${s.rows} rows in ${s.chunks} chunks → ${s.messages} messages; ${tables || 'no tables'}; stopped: ${s.stoppedBy}`;
}

export function snapshotCommand(deps: CliDeps): Command {
  return new Command('snapshot')
    .description(
      "send tables' existing rows through the pipeline (resumable; tables never snapshotted go automatically)",
    )
    .addOption(envOption())
    .option('--table <schema.table...>', 'tables to snapshot (default: every captured table not done yet)')
    .option('--restart', 'start again from the first row even if a snapshot finished', false)
    .option('--json', 'print the summary as JSON', false)
    .action(async (opts: { env: string; table?: string[]; restart: boolean; json: boolean }) => {
      const tables = (opts.table ?? []).map((t) => tableArg(t).text);
      if (opts.env === LOCAL_ENV) {
        const env = deps.local.env(deps.local.read({ dir: deps.localDir }));
        const summary = await withEnv(env, () =>
          deps.output.task('Snapshot: existing rows → Pub/Sub', () =>
            deps.pipeline.snapshotOnce(env, { tables, restart: opts.restart }, () => undefined),
          ),
        );
        if (opts.json) deps.output.log(JSON.stringify(roundNumbers(summary)));
        else
          deps.output.log(
            `snapshot: ${describeSnapshot(summary)}. Run \`pgcdc run-once --env local\` to write it.`,
          );
        return;
      }
      const ctx = await cloudContext(deps, opts.env);
      const args = snapshotArgs(tables, opts.restart);
      const run = await runStackJob<SnapshotSummary>(deps, ctx, opts.env, {
        role: 'listener',
        args,
        title: `Snapshot through job ${ctx.outputs.listenerJobName} (args: ${args.join(' ')})`,
        summaryField: 'chunks',
      });
      if (opts.json) {
        deps.output.log(JSON.stringify(roundNumbers({ execution: run.execution, summary: run.summary })));
        return;
      }
      deps.output.log(
        `snapshot: execution ${run.execution.execution} succeeded` +
          (run.summary ? `: ${describeSnapshot(run.summary)}.` : '.'),
      );
      if (run.execution.logUri) deps.output.log(`Logs: ${run.execution.logUri}`);
    });
}
