// pgcdc outputs --env <stack>: the stack outputs (job names, topic, dataset...).

import { Command } from 'commander';
import type { CliDeps } from '../deps';
import { outputsJson, printOutputs } from './pulumi-flow';
import { automationDriver, cloudOnly, envOption, validateStackConfig } from './shared';

export function outputsCommand(deps: CliDeps): Command {
  return new Command('outputs')
    .description('print the stack outputs')
    .addOption(envOption())
    .option('--json', 'print them as one JSON object')
    .option('--show-secrets', 'print secret outputs in clear')
    .action(async (opts: { env: string; json?: boolean; showSecrets?: boolean }) => {
      cloudOnly(opts.env, 'outputs');
      validateStackConfig(deps, opts.env);
      const outputs = await automationDriver(deps).outputs(opts.env);
      if (opts.json) {
        deps.output.log(JSON.stringify(outputsJson(outputs, opts.showSecrets), null, 2));
        return;
      }
      printOutputs(deps, outputs, opts.showSecrets);
    });
}
