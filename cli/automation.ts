// The thin Automation API driver: up / preview / refresh / destroy / outputs on the project's own
// Pulumi.yaml (a local program), each streaming Pulumi's output to a callback, with Pulumi's typed errors
// mapped to ours. The Automation API shells out to the `pulumi` binary, so that is checked first.
//
// The SDK itself (thousands of modules, seconds to load) is imported only when a stack is touched: `pgcdc
// --help` and the local commands never load it.

import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import {
  CancelledError,
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
  /**
   * Aborting sends SIGINT to the `pulumi` process, which stops gracefully: "A signal to abort an ongoing
   * operation" (@pulumi/pulumi automation UpOptions.signal; cmd.js kills the child with SIGINT).
   */
  signal?: AbortSignal;
}

export interface PlanOptions extends StreamOptions {
  /**
   * Update plan file: preview writes it (`pulumi preview --save-plan`), up applies only what it recorded
   * (`pulumi up --plan`). https://www.pulumi.com/docs/iac/operations/stack-management/update-plans/ — "An
   * update plan constrains the pulumi up operation to allow only the changes described in the plan."
   */
  plan?: string;
}

type Summary = { summary: { result?: string; resourceChanges?: Record<string, number> } };

/** The subset of the Automation API's Stack that the CLI uses (tests implement exactly this). */
export interface StackHandle {
  readonly name: string;
  up(opts?: PlanOptions): Promise<{ outputs: OutputMap } & Summary>;
  preview(opts?: PlanOptions): Promise<{ changeSummary: Record<string, number> }>;
  previewRefresh(opts?: StreamOptions): Promise<{ changeSummary: Record<string, number> }>;
  previewDestroy(opts?: StreamOptions): Promise<{ changeSummary: Record<string, number> }>;
  refresh(opts?: StreamOptions): Promise<Summary>;
  destroy(opts?: StreamOptions): Promise<Summary>;
  outputs(): Promise<OutputMap>;
  /**
   * `pulumi cancel`: "Stops a stack's currently running update ... this operation is _very dangerous_, and
   * may leave the stack in an inconsistent state if a resource operation was pending" (Stack.cancel).
   */
  cancel(): Promise<void>;
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

/** Registers a Ctrl-C handler for the duration of an operation; returns its removal. */
export type OnInterrupt = (handler: () => void) => () => void;

export interface DriverOptions {
  source: StackSource;
  workDir: string;
  /** Path of the pulumi binary, or undefined when it is not installed. */
  findPulumi: () => string | undefined;
  onInterrupt?: OnInterrupt;
  /**
   * True when a Ctrl-C reaches the `pulumi` process on its own: a terminal sends SIGINT to the whole
   * foreground process group, and a second SIGINT would make Pulumi quit at once instead of stopping cleanly.
   */
  interruptReachesPulumi?: boolean;
  /** Where the driver says what a Ctrl-C does. */
  notice?: (line: string) => void;
}

export type ChangeCounts = Record<string, number>;

// Pulumi's wording (pkg/backend/httpstate) when the service backend has no token in a non-interactive
// session, and the CLI's own "not logged in" wording.
const NOT_LOGGED_IN = /PULUMI_ACCESS_TOKEN must be set|not logged in|pulumi login/i;

/**
 * Pulumi's own `error:` lines, each once. The Automation API's CommandError message carries the whole
 * command output (stdout and stderr, where the same error is often printed twice); those lines are what
 * says what went wrong.
 */
export function pulumiErrorLines(text: string): string[] {
  const seen = new Set<string>();
  for (const raw of text.split('\n')) {
    const m = /^\s*(?:stderr:\s*|stdout:\s*)?error:\s*(.+?)\s*$/.exec(raw);
    if (m && m[1]) seen.add(m[1]);
  }
  return [...seen];
}

function duck(err: unknown, name: string): boolean {
  return err instanceof Error && err.name === name;
}

/** Maps the Automation API's typed errors (recognised by name: the SDK is loaded lazily) to the CLI's. */
export function mapPulumiError(err: unknown, stackName: string): unknown {
  // Order matters: both are CommandErrors.
  if (duck(err, 'ConcurrentUpdateError')) return new StackLockedError(stackName);
  if (duck(err, 'StackNotFoundError')) return new UnknownStackError(stackName);
  if (duck(err, 'CommandError') || duck(err, 'CompilationError') || duck(err, 'StackAlreadyExistsError')) {
    const message = (err as Error).message;
    if (isNoCredentials(err)) return new NoCredentialsError('the Pulumi gcp provider found none');
    const lines = pulumiErrorLines(message);
    const body = lines.length ? lines.map((l) => `  ${l}`).join('\n') : `  ${tail(message)}`;
    const hint = NOT_LOGGED_IN.test(message)
      ? 'Log in to a Pulumi backend first: `pulumi login` (Pulumi Cloud), or `pulumi login --local` to keep state in files on this machine.'
      : undefined;
    return new PulumiCommandError(`pulumi failed on stack "${stackName}":\n${body}`, hint);
  }
  return err;
}

// Without any `error:` line, the end of the output is what says what went wrong.
function tail(text: string, lines = 15): string {
  const all = text.trim().split('\n');
  return (all.length <= lines ? all : ['…', ...all.slice(-lines)]).join('\n  ');
}

export class AutomationDriver {
  constructor(private readonly opts: DriverOptions) {}

  private async withStack<T>(
    stackName: string,
    create: boolean,
    fn: (stack: StackHandle, signal: AbortSignal) => Promise<T>,
    opts: { interruptible?: boolean } = {},
  ): Promise<T> {
    if (!this.opts.findPulumi()) throw new PulumiMissingError();
    const program = { stackName, workDir: this.opts.workDir };
    const abort = new AbortController();
    let interrupts = 0;
    let removeHandler = () => {};
    try {
      const stack = create
        ? await this.opts.source.createOrSelectStack(program)
        : await this.opts.source.selectStack(program);
      if (opts.interruptible && this.opts.onInterrupt) {
        // First Ctrl-C: Pulumi's graceful stop (it finishes the resource operations in flight, saves the
        // state and releases the lock). Second: the Automation API's cancellation of the update.
        removeHandler = this.opts.onInterrupt(() => {
          interrupts++;
          if (interrupts === 1) {
            this.opts.notice?.(
              'Interrupted: asking Pulumi to stop after the operations in flight (Ctrl-C again to cancel the update at once).',
            );
            if (!this.opts.interruptReachesPulumi) abort.abort();
          } else if (interrupts === 2) {
            this.opts.notice?.('Cancelling the update (pulumi cancel).');
            stack.cancel().catch((e: unknown) => {
              this.opts.notice?.(`pulumi cancel failed: ${(e as Error).message.split('\n')[0]}`);
            });
          }
        });
      }
      return await fn(stack, abort.signal);
    } catch (e) {
      if (interrupts > 0) {
        throw new CancelledError(
          `cancelled: the ${interrupts > 1 ? 'update was cancelled' : 'operation was stopped'} on stack "${stackName}"`,
          `Check what was changed with \`pgcdc preview --env ${stackName}\`; if the stack stays locked, run \`pulumi cancel --stack ${stackName}\`.`,
        );
      }
      throw mapPulumiError(e, stackName);
    } finally {
      removeHandler();
    }
  }

  /** `pulumi up` (creates the stack when it does not exist yet); with `plan`, only what the preview saved. */
  up(
    stackName: string,
    onOutput: (out: string) => void,
    opts: { plan?: string } = {},
  ): Promise<{ outputs: OutputMap; changes: ChangeCounts }> {
    return this.withStack(
      stackName,
      true,
      async (stack, signal) => {
        const result = await stack.up({ onOutput, color: 'auto', signal, ...opts });
        return { outputs: result.outputs, changes: result.summary.resourceChanges ?? {} };
      },
      { interruptible: true },
    );
  }

  /** `pulumi preview` (creates the stack when it does not exist yet: a preview is how a first deploy starts). */
  preview(
    stackName: string,
    onOutput: (out: string) => void,
    opts: { create?: boolean; plan?: string } = {},
  ): Promise<ChangeCounts> {
    return this.withStack(stackName, opts.create ?? false, async (stack, signal) => {
      const result = await stack.preview({
        onOutput,
        color: 'auto',
        signal,
        ...(opts.plan ? { plan: opts.plan } : {}),
      });
      return result.changeSummary;
    });
  }

  /** `pulumi refresh --preview-only`. */
  previewRefresh(stackName: string, onOutput: (out: string) => void): Promise<ChangeCounts> {
    return this.withStack(stackName, false, async (stack, signal) => {
      const result = await stack.previewRefresh({ onOutput, color: 'auto', signal });
      return result.changeSummary;
    });
  }

  /** `pulumi destroy --preview-only`. */
  previewDestroy(stackName: string, onOutput: (out: string) => void): Promise<ChangeCounts> {
    return this.withStack(stackName, false, async (stack, signal) => {
      const result = await stack.previewDestroy({ onOutput, color: 'auto', signal });
      return result.changeSummary;
    });
  }

  refresh(stackName: string, onOutput: (out: string) => void): Promise<ChangeCounts> {
    return this.withStack(
      stackName,
      false,
      async (stack, signal) => {
        const result = await stack.refresh({ onOutput, color: 'auto', signal });
        return result.summary.resourceChanges ?? {};
      },
      { interruptible: true },
    );
  }

  destroy(stackName: string, onOutput: (out: string) => void): Promise<ChangeCounts> {
    return this.withStack(
      stackName,
      false,
      async (stack, signal) => {
        const result = await stack.destroy({ onOutput, color: 'auto', signal });
        return result.summary.resourceChanges ?? {};
      },
      { interruptible: true },
    );
  }

  outputs(stackName: string): Promise<OutputMap> {
    return this.withStack(stackName, false, (stack) => stack.outputs());
  }
}
