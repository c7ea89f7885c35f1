// pgcdc refresh --env <stack>: bring the stack's state in line with what really exists in the cloud.

import { Command } from 'commander';
import type { CliDeps } from '../deps';
import { confirmChange, prepare, summarizeChanges } from './pulumi-flow';
import { envOption } from './shared';

export function refreshCommand(deps: CliDeps): Command {
  return new Command('refresh')
    .description("update the stack's state from the real cloud resources (pulumi refresh)")
    .addOption(envOption())
    .option('-y, --yes', 'do not ask for confirmation (needed when not at a terminal)')
    .action(async (opts: { env: string; yes?: boolean }) => {
      const { driver, stream } = prepare(deps, opts.env, 'refresh', { runsProgram: false });
      // refresh only rewrites Pulumi's state, never cloud resources: no preview needed before asking.
      const go = await confirmChange(deps, opts.env, {
        yes: opts.yes,
        verb: 'refresh',
        preview: async () => undefined,
      });
      if (!go) return;
      const changes = await driver.refresh(opts.env, stream);
      deps.output.log(`Refreshed stack ${opts.env}: ${summarizeChanges(changes)}`);
    });
}
