// pgcdc deploy --env <stack>: create or select the stack, `pulumi up`, print the outputs.

import { Command } from 'commander';
import type { CliDeps } from '../deps';
import { confirmChange, prepare, printOutputs, summarizeChanges } from './pulumi-flow';
import { envOption } from './shared';

export function deployCommand(deps: CliDeps): Command {
  return new Command('deploy')
    .description("create or update the stack's cloud resources (pulumi up through the Automation API)")
    .addOption(envOption('Pulumi stack to deploy (created if it does not exist)'))
    .option('-y, --yes', 'do not ask for confirmation (needed when not at a terminal)')
    .option('--show-secrets', 'print secret outputs in clear')
    .action(async (opts: { env: string; yes?: boolean; showSecrets?: boolean }) => {
      const { driver, stream } = prepare(deps, opts.env, 'deploy', { runsProgram: true });
      const go = await confirmChange(deps, opts.env, {
        yes: opts.yes,
        verb: 'deploy',
        preview: async () => {
          const changes = await driver.preview(opts.env, stream, { create: true });
          deps.output.log(`Preview: ${summarizeChanges(changes)}`);
        },
      });
      if (!go) return;
      const { outputs, changes } = await driver.up(opts.env, stream);
      deps.output.log(`Deployed stack ${opts.env}: ${summarizeChanges(changes)}`);
      deps.output.log('Outputs:');
      printOutputs(deps, outputs, opts.showSecrets);
    });
}
