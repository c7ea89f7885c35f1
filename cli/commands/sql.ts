// pgcdc sql init / sql teardown --env <stack>: set up (or remove) what pgcdc needs in the database.
// In the cloud the database is private, so the admin job runs them (container args ["sql-init"] /
// ["sql-teardown"], BRIEF decision 2); locally they run right here, as the Cloud-SQL-like admin role.

import { Command } from 'commander';
import type { ClientConfig } from 'pg';
import type { LocalEndpoints } from '../../local/stack';
import type { CliDeps } from '../deps';
import { CliError, EXIT } from '../errors';
import { runStackJob } from '../jobs';
import { confirmChange } from './pulumi-flow';
import { cloudContext, envOption, LOCAL_ENV } from './shared';

/** The admin container's sub-commands (listener/main.ts). */
export const SQL_INIT_ARGS = ['sql-init'];
export const SQL_TEARDOWN_ARGS = ['sql-teardown'];

/** The local stack's admin, owner and bootstrap-superuser connections (older stacks: the superuser only). */
export function localRoles(e: LocalEndpoints): {
  admin: ClientConfig;
  owner: ClientConfig;
  replicator?: string;
  superuser?: ClientConfig;
} {
  if (!e.roles) return { admin: e.pg, owner: e.pg };
  return {
    admin: { ...e.pg, user: e.roles.admin },
    owner: { ...e.pg, user: e.roles.owner },
    replicator: e.roles.replicator,
    superuser: e.pg,
  };
}

export async function localSqlInit(deps: CliDeps, opts: { sample?: boolean } = {}): Promise<void> {
  const e = deps.local.read({ dir: deps.localDir });
  const roles = localRoles(e);
  const report = await deps.output.task(`Running sql/ on ${e.pg.host}:${e.pg.port}/${e.pg.database}`, () =>
    deps.pipeline.runSqlInit(roles.admin, {
      slot: e.slot,
      publication: e.publication,
      decoder: e.decoder,
      replicationUser: roles.replicator,
      bootstrapSuperuser: roles.superuser,
      // The sample table is the local stack's and the demo's, owned by the application role.
      sample: opts.sample === false ? false : roles.owner,
    }),
  );
  for (const f of report.preflight ?? [])
    if (f.severity !== 'info') deps.output.log(`  ${f.severity.toUpperCase()} ${f.check}: ${f.message}`);
  for (const notice of report.notices) deps.output.log(`  ${notice}`);
  deps.output.log(`sql init: ${report.statements} statements run on the local database.`);
}

/**
 * Runs the admin job (the only identity that can read the admin password) with `args` and returns the
 * report it logged (its summary line, found by `field`). A stack deployed before the admin job existed is
 * told to deploy again: the listener job has no admin credentials to run these with.
 */
export async function runAdminJob(
  deps: CliDeps,
  env: string,
  args: string[],
  field: string,
  label: string,
): Promise<Record<string, unknown> | undefined> {
  const ctx = await cloudContext(deps, env);
  const run = await runStackJob(deps, ctx, env, {
    role: 'admin',
    args,
    title: `Running the admin job (args: ${args.join(' ')})`,
    summaryField: field,
  });
  deps.output.log(`${label}: execution ${run.execution.execution} succeeded.`);
  if (run.execution.logUri) deps.output.log(`Logs: ${run.execution.logUri}`);
  return run.summary ?? undefined;
}

async function cloudSqlInit(deps: CliDeps, env: string): Promise<void> {
  const summary = await runAdminJob(deps, env, SQL_INIT_ARGS, 'statements', 'sql init');
  const notices = summary?.notices;
  if (Array.isArray(notices)) for (const n of notices) deps.output.log(`  ${String(n)}`);
}

interface TeardownFlags {
  env: string;
  yes?: boolean;
  dropRole?: boolean;
  dropSchema?: boolean;
}

function teardownQuestion(flags: TeardownFlags): string {
  const what = ['the replication slot', 'the publications'];
  if (flags.dropSchema) what.push('schema pgcdc (snapshot progress)');
  if (flags.dropRole) what.push('the replicator role');
  return `Drop ${what.join(', ')} of ${flags.env}? Changes made while the slot is gone are not captured.`;
}

/** Asks at a terminal (stdin and stdout), like deploy and destroy do; no answer or "no" exits 11, cancelled. */
async function confirmTeardown(deps: CliDeps, flags: TeardownFlags): Promise<void> {
  await confirmChange(deps, flags.env, {
    yes: flags.yes,
    verb: 'tear down',
    preview: async () => deps.output.log(teardownQuestion(flags)),
  });
}

function printTeardown(deps: CliDeps, report: { removed?: unknown; kept?: unknown }): void {
  const removed = Array.isArray(report.removed) ? report.removed : [];
  const kept = Array.isArray(report.kept) ? report.kept : [];
  deps.output.log(removed.length ? 'Removed:' : 'Removed nothing.');
  for (const r of removed) deps.output.log(`  ${String(r)}`);
  if (kept.length) deps.output.log('Kept:');
  for (const k of kept) deps.output.log(`  ${String(k)}`);
}

async function localSqlTeardown(deps: CliDeps, flags: TeardownFlags): Promise<void> {
  const e = deps.local.read({ dir: deps.localDir });
  const roles = localRoles(e);
  const { runSqlTeardown } = await import('../../listener/sql-teardown');
  const report = await deps.output.task('Tearing down pgcdc in the local database', () =>
    runSqlTeardown(roles.admin, {
      slot: e.slot,
      publication: e.publication,
      replicationUser: roles.replicator,
      dropRole: flags.dropRole,
      dropSchema: flags.dropSchema,
    }),
  );
  printTeardown(deps, report);
}

async function cloudSqlTeardown(deps: CliDeps, flags: TeardownFlags): Promise<void> {
  const args = [
    ...SQL_TEARDOWN_ARGS,
    ...(flags.dropRole ? ['--drop-role'] : []),
    ...(flags.dropSchema ? ['--drop-schema'] : []),
  ];
  const summary = await runAdminJob(deps, flags.env, args, 'removed', 'sql teardown');
  if (!summary)
    throw new CliError(
      'the teardown ran, but its report was not found in the logs',
      EXIT.failure,
      'Look at the execution logs for what was removed.',
    );
  printTeardown(deps, summary);
}

export function sqlCommand(deps: CliDeps): Command {
  const sql = new Command('sql').description('database setup');
  sql
    .command('init')
    .description(
      'check the database, then create the replicator role, its grants, the publications and the slot (idempotent)',
    )
    .addOption(envOption())
    .option('--no-sample', 'local stack only: do not create the sample table public.customers')
    .action(async (opts: { env: string; sample: boolean }) => {
      if (opts.env === LOCAL_ENV) await localSqlInit(deps, { sample: opts.sample });
      else await cloudSqlInit(deps, opts.env);
    });
  sql
    .command('teardown')
    .description(
      'drop the replication slot and the publications (asks first); optionally the role and schema',
    )
    .addOption(envOption())
    .option('-y, --yes', 'do not ask for confirmation (needed when not at a terminal)')
    .option('--drop-role', 'also drop the replicator role (and its grants)')
    .option('--drop-schema', 'also drop schema pgcdc (snapshot progress)')
    .action(async (flags: TeardownFlags) => {
      await confirmTeardown(deps, flags);
      if (flags.env === LOCAL_ENV) await localSqlTeardown(deps, flags);
      else await cloudSqlTeardown(deps, flags);
    });
  return sql;
}
