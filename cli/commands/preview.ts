// pgcdc preview --env <stack>: what deploy would change, changing nothing.

import { Command } from 'commander';
import type { CliDeps } from '../deps';
import { prepare, summarizeChanges } from './pulumi-flow';
import { envOption } from './shared';

export function previewCommand(deps: CliDeps): Command {
  return new Command('preview')
    .description('show what deploy would change (pulumi preview)')
    .addOption(envOption())
    .option('--json', "print the change counts as JSON (Pulumi's progress goes to stderr)")
    .action(async (opts: { env: string; json?: boolean }) => {
      const { driver, stream } = prepare(deps, opts.env, 'preview', { runsProgram: true, json: opts.json });
      // A first deploy starts with a preview, so a stack that does not exist yet is created (empty).
      const changes = await driver.preview(opts.env, stream, { create: true });
      if (opts.json) deps.output.log(JSON.stringify({ env: opts.env, changes }));
      else deps.output.log(`Preview of stack ${opts.env}: ${summarizeChanges(changes)}`);
    });
}
