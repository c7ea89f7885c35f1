// Helpers every command uses: the --env option, the cloud context (validated config → stack outputs →
// clients), temporary environments for in-process runs, and plain text tables.

import { InvalidArgumentError, Option } from 'commander';
import { AutomationDriver, OutputMap } from '../automation';
import { CloudClients, StackOutputs } from '../cloud';
import type { CliDeps } from '../deps';
import { CliError, EXIT, UsageError } from '../errors';
import { TableEntry, TableNameError, parseTableEntry } from '../../contract/table-name';

/** `--env local` means the local stack; anything else is a Pulumi stack name. */
export const LOCAL_ENV = 'local';

function parseEnvName(value: string): string {
  if (!/^[A-Za-z0-9_.\-/]+$/.test(value)) {
    throw new InvalidArgumentError('a stack name has letters, digits, "-", "_", "." (and "/" for org/stack)');
  }
  return value;
}

export function envOption(description = 'Pulumi stack name, or "local" for the local stack'): Option {
  return new Option('--env <stack>', description).argParser(parseEnvName).makeOptionMandatory();
}

export function cloudOnly(env: string, command: string): void {
  if (env === LOCAL_ENV) {
    throw new UsageError(
      `\`pgcdc ${command}\` manages a Pulumi stack; "local" is the local stack`,
      'Use `pgcdc local up` / `pgcdc local down` for the local stack.',
    );
  }
}

export function automationDriver(deps: CliDeps): AutomationDriver {
  return new AutomationDriver({
    source: deps.stacks,
    workDir: deps.projectDir,
    findPulumi: () => deps.findPulumi(),
    onInterrupt: deps.onInterrupt,
    interruptReachesPulumi: deps.stdinIsTTY,
    notice: (line) => deps.output.error(line),
  });
}

/** Validates Pulumi.<env>.yaml from disk: the first thing every cloud command does. */
export function validateStackConfig(deps: CliDeps, env: string): unknown {
  // Loaded here, not at start-up: its YAML parser alone takes a noticeable part of `pgcdc --help`.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { loadStackConfig } = require('../stack-config') as typeof import('../stack-config');
  return loadStackConfig(deps.projectDir, env, deps.validateConfig);
}

const REQUIRED_OUTPUTS = [
  'project',
  'region',
  'listenerJobName',
  'sinkJobName',
  'topic',
  'subscription',
  'dataset',
] as const;

/** The outputs the CLI needs, or an error naming the missing one. */
export function parseStackOutputs(map: OutputMap, env: string): StackOutputs {
  const value = (key: string): unknown => map[key]?.value;
  for (const key of REQUIRED_OUTPUTS) {
    if (typeof value(key) !== 'string' || !value(key)) {
      throw new CliError(
        `stack "${env}" has no output "${key}"`,
        EXIT.failure,
        `Deploy it first: pgcdc deploy --env ${env}`,
      );
    }
  }
  const str = (key: string) => (typeof value(key) === 'string' ? (value(key) as string) : undefined);
  return {
    project: str('project')!,
    region: str('region')!,
    listenerJobName: str('listenerJobName')!,
    sinkJobName: str('sinkJobName')!,
    topic: str('topic')!,
    subscription: str('subscription')!,
    dataset: str('dataset')!,
    failedTable: str('failedTable') ?? '_failed',
    deadLetterSubscription: str('deadLetterSubscription'),
    slotName: str('slotName'),
    adminJobName: str('adminJobName'),
  };
}

export interface CloudContext {
  outputs: StackOutputs;
  clients: CloudClients;
}

/** Config validated, stack outputs read through the Automation API, Google clients for the stack's project. */
export async function cloudContext(deps: CliDeps, env: string): Promise<CloudContext> {
  validateStackConfig(deps, env);
  const map = await deps.output.task(`Reading the outputs of stack ${env}`, () =>
    automationDriver(deps).outputs(env),
  );
  const outputs = parseStackOutputs(map, env);
  return { outputs, clients: await deps.cloud(outputs.project) };
}

/**
 * Runs `fn` with `vars` set in process.env, restoring it afterwards. The Google client libraries read
 * PUBSUB_EMULATOR_HOST / BIGQUERY_EMULATOR_HOST from process.env when they are constructed, so an in-process
 * local run must set them exactly as a job's container would have them.
 */
export async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = new Map<string, string | undefined>();
  for (const [k, v] of Object.entries(vars)) {
    saved.set(k, process.env[k]);
    process.env[k] = v;
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** Rows of cells as aligned text lines (first row is the header). */
/**
 * A --table value in PostgreSQL's identifier syntax (contract/table-name.ts: `schema.table`, either part
 * double-quoted, e.g. --table '"My.Schema"."Order lines"'); a malformed one is a usage error saying what to write.
 */
export function tableArg(text: string, flag = '--table'): TableEntry {
  try {
    return parseTableEntry(text, flag);
  } catch (e) {
    if (e instanceof TableNameError) throw new UsageError(e.message);
    throw e;
  }
}

export function table(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  const line = (row: string[]) =>
    row
      .map((cell, i) => cell.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  if (rows.length === 0) return [];
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)];
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)}s`;
  if (seconds < 3600)
    return `${Math.floor(seconds / 60)}m${String(Math.round(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * A copy of a JSON-able value with every fractional number rounded to one decimal (seconds, ratios): JSON
 * output for scripts and people, not float noise. Integers (bytes, counts) stay exact.
 */
export function roundNumbers<T>(value: T): T {
  if (typeof value === 'number') return (Number.isInteger(value) ? value : Math.round(value * 10) / 10) as T;
  if (Array.isArray(value)) return value.map((v) => roundNumbers(v)) as T;
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, roundNumbers(v)])) as T;
  }
  return value;
}
