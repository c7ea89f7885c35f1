// pgcdc destroy --env <stack>: delete every cloud resource of the stack (the stack itself stays). At a
// terminal it first shows what would be deleted (`pulumi destroy --preview-only`) and asks for the stack name.

import { Command } from 'commander';
import type { CliDeps } from '../deps';
import { confirmChange, prepare, summarizeChanges } from './pulumi-flow';
import { envOption } from './shared';

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
          deps.output.log(
            `This deletes the database, the topic and the BigQuery dataset of stack ${opts.env}, data included.`,
          );
        },
      });
      const changes = await driver.destroy(opts.env, stream);
      if (opts.json) deps.output.log(JSON.stringify({ env: opts.env, changes }));
      else deps.output.log(`Destroyed stack ${opts.env}: ${summarizeChanges(changes)}`);
    });
}
