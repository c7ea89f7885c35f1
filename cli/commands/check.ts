// pgcdc check --env <stack>: the read-only preflight — is the database ready for pgcdc? Every problem at once,
// each with its fix (wal_level / cloudsql.logical_decoding, free slots and WAL senders, server version, the
// admin's rights, the captured tables, which of them will be history only, the output plugin). Locally it
// runs here as the Cloud-SQL-like admin; in the cloud as an execution of the admin job (args ["check"]).

import { Command } from 'commander';
import type { Finding } from '../../listener/preflight';
import type { CliDeps } from '../deps';
import { CliError, EXIT } from '../errors';
import { envOption, LOCAL_ENV } from './shared';
import { localRoles, runAdminJob } from './sql';

export const CHECK_ARGS = ['check'];

function printFindings(deps: CliDeps, findings: Finding[], lines: (f: Finding[]) => string[]): void {
  for (const line of lines(findings)) deps.output.log(`  ${line}`);
}

function verdict(findings: Finding[]): void {
  const errors = findings.filter((f) => f.severity === 'error').length;
  if (errors > 0)
    throw new CliError(
      `the database is not ready for pgcdc: ${errors} problem${errors === 1 ? '' : 's'} (each with its fix above)`,
      EXIT.config,
      'Fix them, then run `pgcdc check` again; `pgcdc sql init` runs the same checks first.',
    );
}

export function checkCommand(deps: CliDeps): Command {
  return new Command('check')
    .description('read-only: check that the database is ready for pgcdc and say how to fix what is not')
    .addOption(envOption())
    .action(async (opts: { env: string }) => {
      const { formatFindings, runPreflight } = await import('../../listener/preflight');
      let findings: Finding[];
      if (opts.env === LOCAL_ENV) {
        const e = deps.local.read({ dir: deps.localDir });
        const roles = localRoles(e);
        const report = await deps.output.task(`Checking ${e.pg.host}:${e.pg.port}/${e.pg.database}`, () =>
          runPreflight(roles.admin, {
            slot: e.slot,
            publication: e.publication,
            decoder: e.decoder,
            replicationUser: roles.replicator,
            bootstrapSuperuser: roles.superuser !== undefined,
            replicatorPg: roles.replicator ? { ...roles.admin, user: roles.replicator } : undefined,
          }),
        );
        findings = report.findings;
      } else {
        const summary = await runAdminJob(deps, opts.env, CHECK_ARGS, 'findings', 'check');
        findings = Array.isArray(summary?.findings) ? (summary.findings as Finding[]) : [];
      }
      printFindings(deps, findings, formatFindings);
      verdict(findings);
      deps.output.log('The database is ready for pgcdc.');
    });
}
