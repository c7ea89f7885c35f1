// Typed errors the commands throw, each with its own exit code, and the one handler that prints them.
//
// A user (or a script) can tell from the exit code alone what went wrong; the message says what to do.

import { CommanderError } from 'commander';
import type { Output } from './output';

/** Exit codes, stable: scripts depend on them. */
export const EXIT = {
  ok: 0,
  /** Anything not classified below. */
  failure: 1,
  /** Wrong command line (unknown option, missing --env...). */
  usage: 2,
  /** Pulumi.<env>.yaml missing or invalid. */
  config: 3,
  /** The `pulumi` binary is not on PATH. */
  pulumiMissing: 4,
  /** No Google Cloud application-default credentials. */
  noCredentials: 5,
  /** The stack does not exist. */
  unknownStack: 6,
  /** Another update holds the stack's lock. */
  stackLocked: 7,
  /** A Cloud Run job execution (or a local listener/sink run) failed. */
  jobFailed: 8,
  /** `pgcdc local up` has not been run, or its processes are gone. */
  localStackNotUp: 9,
  /** The replica did not match the source at the end of `pgcdc demo`. */
  mismatch: 10,
  /** A confirmation was declined, left unanswered, or interrupted (Ctrl-C): nothing more was done. */
  cancelled: 11,
  /** `pgcdc local down` refused: stopping now would lose messages waiting in the Pub/Sub emulator. */
  wouldLoseMessages: 12,
  /** `pgcdc status`: the pipeline is behind (changes or messages waiting longer than they should). */
  lagging: 13,
  /** `pgcdc status`: the newest listener report is older than two schedule intervals. */
  stale: 14,
  /** `pgcdc status`: something is broken (failed run, lost or missing slot, unreadable service). */
  failing: 15,
  /** `pgcdc verify` found rows that differ between the source and the replica. */
  verifyDifferences: 16,
} as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    /** A line telling the user what to do next. */
    readonly hint?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class UsageError extends CliError {
  constructor(message: string, hint?: string) {
    super(message, EXIT.usage, hint);
  }
}

export class ConfigInvalidError extends CliError {
  constructor(message: string, hint?: string) {
    super(message, EXIT.config, hint);
  }
}

export const PULUMI_INSTALL_URL = 'https://www.pulumi.com/docs/install/';

export class PulumiMissingError extends CliError {
  constructor() {
    super(
      'the Pulumi CLI (`pulumi`) is not on PATH; the Automation API drives it',
      EXIT.pulumiMissing,
      `Install it: curl -fsSL https://get.pulumi.com | sh (then add ~/.pulumi/bin to PATH), or see ${PULUMI_INSTALL_URL}`,
    );
  }
}

export class NoCredentialsError extends CliError {
  constructor(detail?: string) {
    super(
      `no Google Cloud credentials${detail ? `: ${detail}` : ''}`,
      EXIT.noCredentials,
      'Run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file.',
    );
  }
}

export class UnknownStackError extends CliError {
  constructor(stack: string) {
    super(
      `stack "${stack}" does not exist`,
      EXIT.unknownStack,
      `Create it with \`pgcdc deploy --env ${stack}\` (needs Pulumi.${stack}.yaml), or list stacks with \`pulumi stack ls\`.`,
    );
  }
}

export class StackLockedError extends CliError {
  constructor(stack: string) {
    super(
      `stack "${stack}" is locked by another update`,
      EXIT.stackLocked,
      `Wait for it to finish. If no update is running (a crashed one left the lock), run \`pulumi cancel --stack ${stack}\`.`,
    );
  }
}

export class JobFailedError extends CliError {
  constructor(
    readonly job: string,
    readonly detail: string,
    readonly logUri?: string,
    hint?: string,
  ) {
    super(`${job} failed: ${detail}`, EXIT.jobFailed, logUri ? `Logs of the execution: ${logUri}` : hint);
  }
}

export class PulumiCommandError extends CliError {
  constructor(message: string, hint?: string) {
    super(message, EXIT.failure, hint);
  }
}

export class CancelledError extends CliError {
  constructor(message = 'cancelled: nothing was changed', hint?: string) {
    super(message, EXIT.cancelled, hint);
  }
}

// google-auth-library's wording when Application Default Credentials are missing; also what the Pulumi
// gcp provider prints for the same cause.
const NO_CREDENTIALS =
  /could not load the default credentials|could not find default credentials|application default credentials/i;

/** Whether an error from a Google client (or Pulumi's stderr) means: no credentials. */
export function isNoCredentials(err: unknown): boolean {
  return err instanceof Error && NO_CREDENTIALS.test(err.message);
}

/** Converts any error to a CliError (known kinds keep their exit code). */
export function classify(err: unknown): CliError {
  if (err instanceof CliError) return err;
  // By name: importing local/stack here would load the Google clients for every command (even --help).
  if (err instanceof Error && err.name === 'LocalStackNotUpError') {
    return new CliError(err.message, EXIT.localStackNotUp, (err as Error & { hint?: string }).hint);
  }
  if (isNoCredentials(err)) return new NoCredentialsError();
  const message = err instanceof Error ? err.message : String(err);
  return new CliError(message, EXIT.failure);
}

/**
 * The one error handler: prints the error (and the hint) and returns the exit code. Commander's own
 * errors (bad option, --help) have already printed their text.
 */
export function handleError(err: unknown, output: Output): number {
  if (err instanceof CommanderError) {
    if (
      err.code === 'commander.helpDisplayed' ||
      err.code === 'commander.help' ||
      err.code === 'commander.version'
    ) {
      return EXIT.ok;
    }
    return EXIT.usage;
  }
  const e = classify(err);
  // An empty message: the command already said everything (status prints its verdict, then exits with it).
  if (e.message) output.error(`error: ${e.message}`);
  if (e.hint) output.error(e.hint);
  if (e.exitCode === EXIT.failure && process.env.PGCDC_DEBUG && err instanceof Error && err.stack) {
    output.error(err.stack);
  }
  return e.exitCode;
}
