// pgcdc destroy --env <stack>: delete every cloud resource of the stack (the stack itself stays). At a
// terminal it first shows what would be deleted (`pulumi destroy --preview-only`) and asks for the stack name.

import { Command } from 'commander';
import type { CliDeps } from '../deps';
import { confirmChange, prepare, summarizeChanges } from './pulumi-flow';
import { envOption, validateStackConfig } from './shared';

/**
 * What destroying deletes, and what it leaves behind. With `sourceMode` cloudsql or host the database is the
 * user's: pgcdc never deletes it, so its replication slot and publications stay — and a slot nobody reads
 * keeps WAL until the disk is full. Only `pgcdc sql teardown` removes them (issue 10.7, 12).
 */
export function whatDestroyLeaves(env: string, mode: string): string[] {
  if (mode === 'new')
    return [
      `This deletes the database (its replication slot with it), the topic and the BigQuery dataset of stack ${env}, data included.`,
    ];
  return [
    `This deletes the topic, the jobs and the BigQuery dataset of stack ${env}, data included; your database (sourceMode ${mode}) is not touched.`,
    `Its replication slot and publications stay in your database and the slot keeps WAL until the disk fills: run \`pgcdc sql teardown --env ${env}\` before destroying.`,
  ];
}

/** The stack's `sourceMode` as its config says (validated by infra/config.ts; "new" when not set). */
function sourceModeOf(deps: CliDeps, env: string): string {
  const cfg = validateStackConfig(deps, env) as { source?: { mode?: unknown } } | undefined;
  return typeof cfg?.source?.mode === 'string' ? cfg.source.mode : 'new';
}

export function destroyCommand(deps: CliDeps): Command {
  return new Command('destroy')
    .description("delete the stack's cloud resources, data included (pulumi destroy)")
    .addOption(envOption())
    .option('-y, --yes', 'do not ask for confirmation (needed when not at a terminal)')
    .option('--json', "print the changes as JSON (Pulumi's progress goes to stderr)")
    .action(async (opts: { env: string; yes?: boolean; json?: boolean }) => {
      const { driver, stream } = prepare(deps, opts.env, 'destroy', { runsProgram: false, json: opts.json });
      await confirmChange(deps, opts.env, {
        yes: opts.yes,
        verb: 'destroy',
        typeToConfirm: opts.env,
        preview: async () => {
          const changes = await driver.previewDestroy(opts.env, stream);
          deps.output.log(`Preview: ${summarizeChanges(changes)}`);
          for (const line of whatDestroyLeaves(opts.env, sourceModeOf(deps, opts.env))) deps.output.log(line);
        },
      });
      const changes = await driver.destroy(opts.env, stream);
      if (opts.json) deps.output.log(JSON.stringify({ env: opts.env, changes }));
      else deps.output.log(`Destroyed stack ${opts.env}: ${summarizeChanges(changes)}`);
    });
}
