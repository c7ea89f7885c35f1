// pgcdc deploy --env <stack>: create or select the stack, `pulumi up`, print the outputs. At a terminal the
// preview is saved as an update plan and `up` applies exactly that plan: what the user approved is what runs.

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import type { CliDeps } from '../deps';
import { CliError, EXIT } from '../errors';
import { confirmChange, outputsJson, prepare, printOutputs, summarizeChanges } from './pulumi-flow';
import { envOption } from './shared';

export function deployCommand(deps: CliDeps): Command {
  return new Command('deploy')
    .description("create or update the stack's cloud resources (pulumi up through the Automation API)")
    .addOption(envOption('Pulumi stack to deploy (created if it does not exist)'))
    .option('-y, --yes', 'do not ask for confirmation (needed when not at a terminal)')
    .option('--show-secrets', 'print secret outputs in clear')
    .option('--json', "print the changes and the outputs as JSON (Pulumi's progress goes to stderr)")
    .action(async (opts: { env: string; yes?: boolean; showSecrets?: boolean; json?: boolean }) => {
      const { driver, stream } = prepare(deps, opts.env, 'deploy', { runsProgram: true, json: opts.json });
      const planDir = mkdtempSync(path.join(os.tmpdir(), 'pgcdc-plan-'));
      const plan = path.join(planDir, 'plan.json');
      let planned = false;
      try {
        await confirmChange(deps, opts.env, {
          yes: opts.yes,
          verb: 'deploy',
          preview: async () => {
            const changes = await driver.preview(opts.env, stream, { create: true, plan });
            planned = true;
            deps.output.log(`Preview: ${summarizeChanges(changes)}`);
          },
        });
        if (!planned) {
          deps.output.error(
            'Deploying without a preview (--yes): the changes are whatever the program and the cloud say now.',
          );
        }
        const { outputs, changes } = await driver
          .up(opts.env, stream, planned ? { plan } : {})
          .catch((e: unknown) => {
            // `pulumi up --plan` stops at the first operation the plan did not record.
            if (planned && /plan/i.test((e as Error).message) && e instanceof CliError) {
              throw new CliError(
                `${e.message}\n  (the update differed from the approved preview and was stopped there)`,
                EXIT.failure,
                `Run \`pgcdc deploy --env ${opts.env}\` again to preview and approve the changes as they are now.`,
              );
            }
            throw e;
          });
        if (opts.json) {
          deps.output.log(
            JSON.stringify({ env: opts.env, changes, outputs: outputsJson(outputs, opts.showSecrets) }),
          );
          return;
        }
        deps.output.log(`Deployed stack ${opts.env}: ${summarizeChanges(changes)}`);
        deps.output.log('Outputs:');
        printOutputs(deps, outputs, opts.showSecrets);
      } finally {
        rmSync(planDir, { recursive: true, force: true });
      }
    });
}
