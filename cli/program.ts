// Builds the `pgcdc` commander program from injected dependencies, and runs it with the one error handler.

import { Command } from 'commander';
import { checkCommand } from './commands/check';
import { demoCommand } from './commands/demo';
import { deployCommand } from './commands/deploy';
import { destroyCommand } from './commands/destroy';
import { failedCommand } from './commands/failed';
import { localCommand } from './commands/local';
import { outputsCommand } from './commands/outputs';
import { previewCommand } from './commands/preview';
import { refreshCommand } from './commands/refresh';
import { runOnceCommand } from './commands/run-once';
import { snapshotCommand } from './commands/snapshot';
import { sqlCommand } from './commands/sql';
import { statusCommand } from './commands/status';
import { verifyCommand } from './commands/verify';
import type { CliDeps } from './deps';
import { handleError } from './errors';

function version(): string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('../../package.json') as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

/** Applies `fn` to a command and every sub-command (commander copies settings only at .command() time). */
function everyCommand(cmd: Command, fn: (c: Command) => void): void {
  fn(cmd);
  for (const sub of cmd.commands) everyCommand(sub, fn);
}

export function buildProgram(deps: CliDeps): Command {
  const program = new Command('pgcdc')
    .description(
      'Stream PostgreSQL changes into BigQuery: deploy, initialise, run and inspect a pgcdc stack.',
    )
    .version(version())
    .showHelpAfterError('(run with --help for usage)')
    .addCommand(demoCommand(deps))
    .addCommand(localCommand(deps))
    .addCommand(sqlCommand(deps))
    .addCommand(checkCommand(deps))
    .addCommand(runOnceCommand(deps))
    .addCommand(snapshotCommand(deps))
    .addCommand(statusCommand(deps))
    .addCommand(failedCommand(deps))
    .addCommand(verifyCommand(deps))
    .addCommand(deployCommand(deps))
    .addCommand(previewCommand(deps))
    .addCommand(refreshCommand(deps))
    .addCommand(destroyCommand(deps))
    .addCommand(outputsCommand(deps));
  everyCommand(program, (c) =>
    c
      .exitOverride()
      // One width whatever the terminal: the README's CLI reference is this text, compared by a test.
      .configureHelp({ helpWidth: HELP_WIDTH })
      .configureOutput({
        writeOut: (text) => deps.output.write(text),
        writeErr: (text) => deps.output.error(text.replace(/\n$/, '')),
      }),
  );
  return program;
}

export const HELP_WIDTH = 100;

/**
 * The help of every command, as `pgcdc … --help` prints it: the README's CLI reference block (written by
 * `npm run docs:cli`, checked by test/cli/readme.test.ts).
 */
export function cliReference(deps: CliDeps): string {
  const parts: string[] = [];
  const visit = (cmd: Command, name: string) => {
    parts.push(`$ ${name} --help\n${cmd.helpInformation()}`);
    for (const sub of cmd.commands) visit(sub, `${name} ${sub.name()}`);
  };
  visit(buildProgram(deps), 'pgcdc');
  return parts.join('\n');
}

/** Runs the program on `argv` (user arguments, without node and the script) and returns the exit code. */
export async function runCli(argv: string[], deps: CliDeps): Promise<number> {
  const program = buildProgram(deps);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    return handleError(e, deps.output);
  }
}
