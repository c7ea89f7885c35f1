// pgcdc refresh --env <stack>: bring the stack's state in line with what really exists in the cloud. At a
// terminal it first shows what the refresh would change in the state (`pulumi refresh --preview-only`).

import { Command } from 'commander';
import type { CliDeps } from '../deps';
import { confirmChange, prepare, summarizeChanges } from './pulumi-flow';
import { envOption } from './shared';

export function refreshCommand(deps: CliDeps): Command {
  return new Command('refresh')
    .description("update the stack's state from the real cloud resources (pulumi refresh)")
    .addOption(envOption())
    .option('-y, --yes', 'do not ask for confirmation (needed when not at a terminal)')
    .option('--json', "print the changes as JSON (Pulumi's progress goes to stderr)")
    .action(async (opts: { env: string; yes?: boolean; json?: boolean }) => {
      const { driver, stream } = prepare(deps, opts.env, 'refresh', { runsProgram: false, json: opts.json });
      await confirmChange(deps, opts.env, {
        yes: opts.yes,
        verb: 'refresh',
        preview: async () => {
          const changes = await driver.previewRefresh(opts.env, stream);
          deps.output.log(`Preview: ${summarizeChanges(changes)}`);
        },
      });
      const changes = await driver.refresh(opts.env, stream);
      if (opts.json) deps.output.log(JSON.stringify({ env: opts.env, changes }));
      else deps.output.log(`Refreshed stack ${opts.env}: ${summarizeChanges(changes)}`);
    });
}
