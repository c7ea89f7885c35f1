// pgcdc sql init --env <stack>: run sql/ (publication, slot, grants, sample table) against the database.
// In the cloud the database is private, so the listener job runs it (container args ["sql-init"]);
// locally it runs right here.

import { Command } from 'commander';
import { jobPath } from '../cloud';
import type { CliDeps } from '../deps';
import { runJobAndWait } from '../jobs';
import { cloudContext, envOption, LOCAL_ENV } from './shared';

/** The listener container's sub-command that runs sql/ instead of listening (listener/main.ts). */
export const SQL_INIT_ARGS = ['sql-init'];

export async function localSqlInit(deps: CliDeps): Promise<void> {
  const e = deps.local.read({ dir: deps.localDir });
  const report = await deps.output.task(`Running sql/ on ${e.pg.host}:${e.pg.port}/${e.pg.database}`, () =>
    deps.pipeline.runSqlInit(e.pg, { slot: e.slot, publication: e.publication, decoder: e.decoder }),
  );
  for (const notice of report.notices) deps.output.log(`  ${notice}`);
  deps.output.log(`sql init: ${report.statements} statements run on the local database.`);
}

async function cloudSqlInit(deps: CliDeps, env: string): Promise<void> {
  const { outputs, clients } = await cloudContext(deps, env);
  const job = jobPath(outputs, outputs.listenerJobName);
  const report = await deps.output.task(
    `Running sql/ through job ${outputs.listenerJobName} (args: ${SQL_INIT_ARGS.join(' ')})`,
    () => runJobAndWait(clients, job, { args: SQL_INIT_ARGS }),
  );
  const logged = await clients.logs
    .lastSummary(outputs.project, outputs.listenerJobName, {
      field: 'statements',
      executionName: report.execution,
    })
    .catch(() => null);
  const notices = logged?.summary.notices;
  if (Array.isArray(notices)) for (const n of notices) deps.output.log(`  ${String(n)}`);
  deps.output.log(`sql init: execution ${report.execution} succeeded.`);
  if (report.logUri) deps.output.log(`Logs: ${report.logUri}`);
}

export function sqlCommand(deps: CliDeps): Command {
  const sql = new Command('sql').description('database setup');
  sql
    .command('init')
    .description('create the publication, the replication slot and the sample table (idempotent)')
    .addOption(envOption())
    .action(async (opts: { env: string }) => {
      if (opts.env === LOCAL_ENV) await localSqlInit(deps);
      else await cloudSqlInit(deps, opts.env);
    });
  return sql;
}
