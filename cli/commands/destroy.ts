// pgcdc destroy --env <stack>: delete every cloud resource of the stack (the stack itself stays).

import { Command } from 'commander';
import type { CliDeps } from '../deps';
import { confirmChange, prepare, summarizeChanges } from './pulumi-flow';
import { envOption } from './shared';

export function destroyCommand(deps: CliDeps): Command {
  return new Command('destroy')
    .description("delete the stack's cloud resources, data included (pulumi destroy)")
    .addOption(envOption())
    .option('-y, --yes', 'do not ask for confirmation (needed when not at a terminal)')
    .action(async (opts: { env: string; yes?: boolean }) => {
      const { driver, stream } = prepare(deps, opts.env, 'destroy', { runsProgram: false });
      const go = await confirmChange(deps, opts.env, {
        yes: opts.yes,
        verb: 'destroy',
        preview: async () =>
          deps.output.log(
            `This deletes the database, the topic and the BigQuery dataset of stack ${opts.env}.`,
          ),
      });
      if (!go) return;
      const changes = await driver.destroy(opts.env, stream);
      deps.output.log(`Destroyed stack ${opts.env}: ${summarizeChanges(changes)}`);
    });
}
