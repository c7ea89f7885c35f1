// The thin Automation API driver: up / preview / refresh / destroy / outputs on the project's own
// Pulumi.yaml (a local program), each streaming Pulumi's output to a callback, with Pulumi's typed errors
// mapped to ours. The Automation API shells out to the `pulumi` binary, so that is checked first.

import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { CommandError, ConcurrentUpdateError, StackNotFoundError } from '@pulumi/pulumi/automation';
import {
  PulumiCommandError,
  PulumiMissingError,
  StackLockedError,
  UnknownStackError,
  isNoCredentials,
  NoCredentialsError,
} from './errors';

/** A stack output as the Automation API returns it. */
export interface OutputValue {
  value: unknown;
  secret: boolean;
}
export type OutputMap = Record<string, OutputValue>;

export interface StreamOptions {
  onOutput?: (out: string) => void;
  color?: 'always' | 'never' | 'raw' | 'auto';
}

/** The subset of the Automation API's Stack that the CLI uses (tests implement exactly this). */
export interface StackHandle {
  readonly name: string;
  up(
    opts?: StreamOptions,
  ): Promise<{ outputs: OutputMap; summary: { result?: string; resourceChanges?: Record<string, number> } }>;
  preview(opts?: StreamOptions): Promise<{ changeSummary: Record<string, number> }>;
  refresh(
    opts?: StreamOptions,
  ): Promise<{ summary: { result?: string; resourceChanges?: Record<string, number> } }>;
  destroy(
    opts?: StreamOptions,
  ): Promise<{ summary: { result?: string; resourceChanges?: Record<string, number> } }>;
  outputs(): Promise<OutputMap>;
}

export interface LocalProgram {
  stackName: string;
  /** Directory of the project's Pulumi.yaml. */
  workDir: string;
}

/** Where stacks come from: `LocalWorkspace` itself in the real CLI, a fake in tests. */
export interface StackSource {
  createOrSelectStack(args: LocalProgram): Promise<StackHandle>;
  selectStack(args: LocalProgram): Promise<StackHandle>;
}

/** Finds an executable on PATH (what the Automation API will run), or undefined. */
export function findOnPath(name: string, envPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of envPath.split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

export interface DriverOptions {
  source: StackSource;
  workDir: string;
  /** Path of the pulumi binary, or undefined when it is not installed. */
  findPulumi: () => string | undefined;
}

export type ChangeCounts = Record<string, number>;

// Pulumi's messages carry the whole command output; the tail is what says what went wrong.
function tail(text: string, lines = 25): string {
  const all = text.trim().split('\n');
  return all.length <= lines ? all.join('\n') : ['…', ...all.slice(-lines)].join('\n');
}

/** Maps the Automation API's typed errors to the CLI's. */
export function mapPulumiError(err: unknown, stackName: string): unknown {
  // Order matters: both are CommandErrors.
  if (err instanceof ConcurrentUpdateError) return new StackLockedError(stackName);
  if (err instanceof StackNotFoundError) return new UnknownStackError(stackName);
  if (err instanceof CommandError) {
    if (isNoCredentials(err)) return new NoCredentialsError('the Pulumi gcp provider found none');
    return new PulumiCommandError(`pulumi failed on stack "${stackName}":\n${tail(err.message)}`);
  }
  return err;
}

export class AutomationDriver {
  constructor(private readonly opts: DriverOptions) {}

  private async withStack<T>(
    stackName: string,
    create: boolean,
    fn: (stack: StackHandle) => Promise<T>,
  ): Promise<T> {
    if (!this.opts.findPulumi()) throw new PulumiMissingError();
    const program = { stackName, workDir: this.opts.workDir };
    try {
      const stack = create
        ? await this.opts.source.createOrSelectStack(program)
        : await this.opts.source.selectStack(program);
      return await fn(stack);
    } catch (e) {
      throw mapPulumiError(e, stackName);
    }
  }

  /** `pulumi up` (creates the stack when it does not exist yet). */
  up(
    stackName: string,
    onOutput: (out: string) => void,
  ): Promise<{ outputs: OutputMap; changes: ChangeCounts }> {
    return this.withStack(stackName, true, async (stack) => {
      const result = await stack.up({ onOutput, color: 'auto' });
      return { outputs: result.outputs, changes: result.summary.resourceChanges ?? {} };
    });
  }

  /** `pulumi preview` (creates the stack when it does not exist yet: a preview is how a first deploy starts). */
  preview(
    stackName: string,
    onOutput: (out: string) => void,
    opts: { create?: boolean } = {},
  ): Promise<ChangeCounts> {
    return this.withStack(stackName, opts.create ?? false, async (stack) => {
      const result = await stack.preview({ onOutput, color: 'auto' });
      return result.changeSummary;
    });
  }

  refresh(stackName: string, onOutput: (out: string) => void): Promise<ChangeCounts> {
    return this.withStack(stackName, false, async (stack) => {
      const result = await stack.refresh({ onOutput, color: 'auto' });
      return result.summary.resourceChanges ?? {};
    });
  }

  destroy(stackName: string, onOutput: (out: string) => void): Promise<ChangeCounts> {
    return this.withStack(stackName, false, async (stack) => {
      const result = await stack.destroy({ onOutput, color: 'auto' });
      return result.summary.resourceChanges ?? {};
    });
  }

  outputs(stackName: string): Promise<OutputMap> {
    return this.withStack(stackName, false, (stack) => stack.outputs());
  }
}
