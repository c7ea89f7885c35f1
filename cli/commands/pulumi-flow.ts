// What deploy / preview / refresh / destroy share: config validated first, Pulumi's output streamed,
// a confirmation for a person at a terminal (or --yes), a one-line summary of the changes.

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { OutputMap } from '../automation';
import type { CliDeps } from '../deps';
import { CliError, EXIT, UsageError } from '../errors';
import { automationDriver, cloudOnly, validateStackConfig } from './shared';

export function summarizeChanges(changes: Record<string, number>): string {
  const parts = Object.entries(changes)
    .filter(([op, n]) => n > 0 && op !== 'same')
    .map(([op, n]) => `${n} to ${op}`);
  const same = changes.same ?? 0;
  return (parts.length ? parts.join(', ') : 'no changes') + (same ? ` (${same} unchanged)` : '');
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

/**
 * Before a change to cloud resources: --yes goes ahead; a person at a terminal sees the preview and is
 * asked; a script without --yes is stopped (as `pulumi up` does in non-interactive mode).
 */
export async function confirmChange(
  deps: CliDeps,
  env: string,
  opts: { yes?: boolean; verb: string; preview: () => Promise<void> },
): Promise<boolean> {
  if (opts.yes) return true;
  if (!deps.output.isTTY) {
    throw new UsageError(
      `refusing to ${opts.verb} stack "${env}" without confirmation`,
      'Pass --yes when not running at a terminal.',
    );
  }
  await opts.preview();
  const ok = await deps.confirm(`${opts.verb[0].toUpperCase()}${opts.verb.slice(1)} stack "${env}"?`);
  if (!ok) deps.output.log('Cancelled: nothing was changed.');
  return ok;
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

export function prepare(deps: CliDeps, env: string, command: string, opts: { runsProgram: boolean }) {
  cloudOnly(env, command);
  validateStackConfig(deps, env);
  if (opts.runsProgram) requireBuiltProgram(deps.projectDir);
  const stream = (text: string) => deps.output.write(text);
  return { driver: automationDriver(deps), stream };
}
