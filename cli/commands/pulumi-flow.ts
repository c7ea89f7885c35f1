// What deploy / preview / refresh / destroy share: config validated first, Pulumi's output streamed,
// a confirmation for a person at a terminal (or --yes), a one-line summary of the changes.

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { OutputMap } from '../automation';
import type { CliDeps } from '../deps';
import { CancelledError, CliError, EXIT, UsageError } from '../errors';
import { automationDriver, cloudOnly, validateStackConfig } from './shared';

export function summarizeChanges(changes: Record<string, number>): string {
  const parts = Object.entries(changes)
    .filter(([op, n]) => n > 0 && op !== 'same')
    .map(([op, n]) => `${n} to ${op}`);
  const same = changes.same ?? 0;
  return (parts.length ? parts.join(', ') : 'no changes') + (same ? ` (${same} unchanged)` : '');
}

/** Outputs as one plain JSON object, secrets masked unless asked for. */
export function outputsJson(outputs: OutputMap, showSecrets = false): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(outputs).map(([k, o]) => [k, o.secret && !showSecrets ? '[secret]' : o.value]),
  );
}

export function printOutputs(deps: CliDeps, outputs: OutputMap, showSecrets = false): void {
  const keys = Object.keys(outputs).sort();
  if (keys.length === 0) {
    deps.output.log('(no outputs)');
    return;
  }
  const width = Math.max(...keys.map((k) => k.length));
  for (const key of keys) {
    const { value, secret } = outputs[key];
    const text =
      secret && !showSecrets ? '[secret]' : typeof value === 'string' ? value : JSON.stringify(value);
    deps.output.log(`  ${key.padEnd(width)}  ${text}`);
  }
}

/** Whether a person can be asked: a terminal to print the question on and a terminal to read the answer from. */
export function canAsk(deps: CliDeps): boolean {
  return deps.output.isTTY && deps.stdinIsTTY;
}

/**
 * Before a change to cloud resources: --yes goes ahead; a person at a terminal sees the preview and is
 * asked; anything else (a script, stdin redirected) is stopped, as `pulumi up` does in non-interactive mode.
 * A declined, unanswered or interrupted question throws CancelledError: nothing was changed, exit non-zero.
 */
export async function confirmChange(
  deps: CliDeps,
  env: string,
  opts: {
    yes?: boolean;
    verb: string;
    preview: () => Promise<void>;
    /** The user must type this (the stack name) instead of answering yes. */
    typeToConfirm?: string;
  },
): Promise<void> {
  if (opts.yes) return;
  if (!canAsk(deps)) {
    throw new UsageError(
      `refusing to ${opts.verb} stack "${env}" without confirmation (${deps.output.isTTY ? 'stdin' : 'the output'} is not a terminal)`,
      `Run it at a terminal to be asked, or pass --yes: pgcdc ${opts.verb} --env ${env} --yes`,
    );
  }
  await opts.preview();
  const question = opts.typeToConfirm
    ? `Type the stack name (${opts.typeToConfirm}) to ${opts.verb} it:`
    : `${opts.verb[0].toUpperCase()}${opts.verb.slice(1)} stack "${env}"? [y/N]`;
  const answer = await deps.ask(question);
  if (answer === null) throw new CancelledError('cancelled: no answer (input ended); nothing was changed');
  const ok = opts.typeToConfirm ? answer.trim() === opts.typeToConfirm : /^y(es)?$/i.test(answer.trim());
  if (!ok) {
    throw new CancelledError(
      opts.typeToConfirm
        ? `cancelled: "${answer.trim()}" is not the stack name; nothing was changed`
        : 'cancelled: nothing was changed',
    );
  }
}

/**
 * Pulumi runs the compiled program (Pulumi.yaml: typescript false; package.json "main"): without a build,
 * `pulumi up` would fail after creating the workspace with a less helpful message.
 */
export function requireBuiltProgram(projectDir: string): void {
  const pkgFile = path.join(projectDir, 'package.json');
  if (!existsSync(pkgFile)) return;
  const main = (JSON.parse(readFileSync(pkgFile, 'utf8')) as { main?: string }).main;
  if (main && !existsSync(path.join(projectDir, main))) {
    throw new CliError(
      `the Pulumi program is not built (no ${main})`,
      EXIT.failure,
      'Run `npm run build` first.',
    );
  }
}

export function prepare(
  deps: CliDeps,
  env: string,
  command: string,
  opts: { runsProgram: boolean; json?: boolean },
) {
  cloudOnly(env, command);
  validateStackConfig(deps, env);
  if (opts.runsProgram) requireBuiltProgram(deps.projectDir);
  // With --json, stdout carries only the result: Pulumi's own output goes to stderr.
  const stream = (text: string) => (opts.json ? deps.output.writeError(text) : deps.output.write(text));
  return { driver: automationDriver(deps), stream };
}
