// Everything a command reaches outside itself, injected: tests replace the Automation API, Google Cloud,
// the local stack and the pipeline functions; `defaultDeps()` wires the real ones.

import path from 'node:path';
import readline from 'node:readline';
import type { ClientConfig } from 'pg';
import { validateConfig } from '../infra/config';
import type { LocalEndpoints, LocalStackOptions } from '../local/stack';
import { findOnPath, OnInterrupt, StackSource } from './automation';
import type { CloudClients } from './cloud';
import { Clock, Output, streamOutput, systemClock } from './output';
import type { ValidateConfig } from './stack-config';

// The pipeline's types, imported as types only: the CLI loads the listener and sink modules (and their
// clients) only when a command runs them.
import type { ListenerJobSummary as ListenerSummary } from '../listener/job';
import type { SnapshotSummary } from '../listener/snapshot';
import type { SqlInitOptions, SqlInitReport } from '../listener/sql-init';
import type { SinkSummary } from '../sink/run';
export type { ListenerSummary, SinkSummary, SnapshotSummary, SqlInitReport };

export interface Pipeline {
  runSqlInit(pg: ClientConfig, opts: SqlInitOptions): Promise<SqlInitReport>;
  /** Loads the listener's config from `env` and runs one bounded listen. */
  listenOnce(env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<ListenerSummary>;
  /** Loads the listener's config from `env` and snapshots tables (all not done yet when `tables` is empty). */
  snapshotOnce(
    env: NodeJS.ProcessEnv,
    opts: { tables: string[]; restart: boolean },
    log: (line: string) => void,
  ): Promise<SnapshotSummary>;
  /** Loads the sink's config from `env` and drains the subscription once. */
  sinkOnce(env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<SinkSummary>;
}

export interface LocalStack {
  up(opts: LocalStackOptions): Promise<LocalEndpoints & { alreadyUp: boolean }>;
  down(opts: LocalStackOptions & { purge?: boolean }): Promise<{ stopped: string[] }>;
  read(opts: { dir?: string }): LocalEndpoints;
  env(e: LocalEndpoints): Record<string, string>;
}

export interface CliDeps {
  output: Output;
  clock: Clock;
  /** Directory of Pulumi.yaml and the Pulumi.<env>.yaml files. */
  projectDir: string;
  /** Directory of the local stack (endpoints.json, data, logs). */
  localDir: string;
  stacks: StackSource;
  findPulumi(): string | undefined;
  validateConfig: ValidateConfig<unknown>;
  /** Whether stdin is a terminal: prompts need one as much as a terminal to print on. */
  stdinIsTTY: boolean;
  /**
   * Asks a person at the terminal and returns the line typed, or null when stdin ended without an answer.
   * Only called when output.isTTY and stdinIsTTY.
   */
  ask(question: string): Promise<string | null>;
  /** Registers a Ctrl-C handler for the duration of a Pulumi operation; returns its removal. */
  onInterrupt: OnInterrupt;
  cloud(project: string): Promise<CloudClients>;
  local: LocalStack;
  pipeline: Pipeline;
  /** Poll interval for conditions with a deadline (demo waits for the replica to catch up). */
  pollMs: number;
  /** Looking up a job's summary line after its execution ended: entries reach Cloud Logging seconds later. */
  logRetry: { attempts: number; intervalMs: number };
}

/** The repository root: dist/cli/deps.js → ../.. (also right for dist-<x>/cli). */
export function repoRoot(): string {
  return path.resolve(__dirname, '..', '..');
}

function terminalAsk(question: string): Promise<string | null> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  return new Promise((resolve) => {
    let answered = false;
    // Ctrl-D (end of input) or Ctrl-C at the prompt closes the interface without an answer.
    rl.on('close', () => {
      if (!answered) {
        process.stderr.write('\n');
        resolve(null);
      }
    });
    rl.on('SIGINT', () => rl.close());
    rl.question(`${question} `, (answer) => {
      answered = true;
      rl.close();
      resolve(answer);
    });
  });
}

function processInterrupt(handler: () => void): () => void {
  process.on('SIGINT', handler);
  return () => process.off('SIGINT', handler);
}

// The local stack's module is loaded when a command first reaches it (it loads pg; the Google clients only
// when a client is made).
function localStack(): typeof import('../local/stack') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('../local/stack') as typeof import('../local/stack');
}

export function defaultDeps(overrides: Partial<CliDeps> = {}): CliDeps {
  const root = repoRoot();
  return {
    output: streamOutput(process.stdout, process.stderr),
    clock: systemClock,
    projectDir: root,
    localDir: process.env.PGCDC_LOCAL_DIR ?? path.join(root, '.local'),
    stacks: {
      // Loaded on first use: the Pulumi SDK is heavy and local commands never need it.
      createOrSelectStack: async (args) =>
        (await import('@pulumi/pulumi/automation')).LocalWorkspace.createOrSelectStack(args),
      selectStack: async (args) =>
        (await import('@pulumi/pulumi/automation')).LocalWorkspace.selectStack(args),
    },
    findPulumi: () => findOnPath('pulumi'),
    validateConfig,
    stdinIsTTY: !!process.stdin.isTTY,
    ask: terminalAsk,
    onInterrupt: processInterrupt,
    cloud: async (project) => (await import('./cloud')).googleCloudClients(project),
    local: {
      up: (o) => localStack().localUp(o),
      down: (o) => localStack().localDown(o),
      read: (o) => localStack().readLocalEndpoints(o),
      env: (e) => localStack().localEnv(e),
    },
    pipeline: {
      runSqlInit: async (pg, opts) => (await import('../listener/sql-init')).runSqlInit(pg, opts),
      // The listener job's own sequence: a bounded stream run, then snapshots of tables never snapshotted.
      listenOnce: async (env, log) => {
        const { loadListenerConfig } = await import('../listener/config');
        const { runListenerJob } = await import('../listener/job');
        return runListenerJob(loadListenerConfig(env), { log });
      },
      snapshotOnce: async (env, opts, log) => {
        const { loadListenerConfig } = await import('../listener/config');
        const { runSnapshot } = await import('../listener/snapshot');
        const cfg = loadListenerConfig(env);
        return runSnapshot(cfg, {
          tables: opts.tables.length ? opts.tables : undefined,
          restart: opts.restart,
          chunkRows: cfg.snapshotChunkRows,
          log,
        });
      },
      sinkOnce: async (env, log) => {
        const { loadSinkConfig } = await import('../sink/config');
        const { runSink } = await import('../sink/run');
        return runSink(loadSinkConfig(env), { log });
      },
    },
    pollMs: 250,
    logRetry: { attempts: 12, intervalMs: 5000 },
    ...overrides,
  };
}
