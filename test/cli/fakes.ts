// Test doubles for the CLI's injected dependencies: a recording Automation API stack source, recording Cloud
// Run clients, and a temporary project directory with Pulumi.yaml and stack config files.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BigQuery } from '@google-cloud/bigquery';
import { validateConfig } from '../../infra/config';
import type {
  LocalProgram,
  OutputMap,
  PlanOptions,
  StackHandle,
  StackSource,
  StreamOptions,
} from '../../cli/automation';
import type {
  Backlog,
  CloudClients,
  Execution,
  ExecutionsApi,
  JobLogs,
  JobsApi,
  RunJobRequest,
  SubscriptionMetrics,
} from '../../cli/cloud';
import type { CliDeps } from '../../cli/deps';
import { BufferedOutput, bufferOutput } from '../../cli/output';
import { runCli } from '../../cli/program';
import { readLocalEndpoints } from '../../local/stack';

export const PROJECT = 'acme-data-123';
export const REGION = 'europe-west4';

export const STACK_OUTPUTS: OutputMap = {
  project: { value: PROJECT, secret: false },
  region: { value: REGION, secret: false },
  listenerJobName: { value: 'pgcdc-listener', secret: false },
  sinkJobName: { value: 'pgcdc-sink', secret: false },
  topic: { value: 'pgcdc-changes', secret: false },
  subscription: { value: `projects/${PROJECT}/subscriptions/pgcdc-sink`, secret: false },
  deadLetterSubscription: { value: `projects/${PROJECT}/subscriptions/pgcdc-dead-letter`, secret: false },
  dataset: { value: 'pgcdc_dev', secret: false },
  failedTable: { value: '_failed', secret: false },
  slotName: { value: 'pgcdc_slot', secret: false },
  passwordSecretId: { value: 'projects/acme/secrets/pgcdc-db-password', secret: true },
};

/** A project directory like the repository's: Pulumi.yaml plus one config file per stack. */
export function tempProject(stacks: Record<string, string>): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgcdc-cli-project-'));
  writeFileSync(path.join(dir, 'Pulumi.yaml'), 'name: pgcdc\nruntime:\n  name: nodejs\n');
  for (const [name, body] of Object.entries(stacks))
    writeFileSync(path.join(dir, `Pulumi.${name}.yaml`), body);
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export const GOOD_STACK = `config:\n  gcp:project: ${PROJECT}\n  pgcdc:region: ${REGION}\n  pgcdc:tables:\n    - public.customers\n`;

export interface Call {
  method: string;
  args?: unknown;
}

type Method = 'up' | 'preview' | 'previewRefresh' | 'previewDestroy' | 'refresh' | 'destroy';

/** A stack that records what was asked of it and plays back Pulumi-like output. */
export class FakeStack implements StackHandle {
  calls: Call[] = [];
  fail: Partial<Record<Method | 'outputs', Error>> = {};
  /**
   * Operations that run until stopped, like a long `pulumi up`: they call `started` once running, then end
   * (with `stoppedError`) when their abort signal fires or cancel() is called.
   */
  hang: Partial<Record<Method, { started: () => void }>> = {};
  stoppedError: Error = new Error('update canceled');
  cancels = 0;
  private cancelled: Array<() => void> = [];
  constructor(
    readonly name: string,
    private readonly outputMap: OutputMap = STACK_OUTPUTS,
  ) {}

  private async run(method: Method, opts?: StreamOptions): Promise<void> {
    this.calls.push({ method, args: opts });
    opts?.onOutput?.(
      `${method === 'up' ? 'Updating' : method[0].toUpperCase() + method.slice(1) + 'ing'} (${this.name})\n`,
    );
    opts?.onOutput?.(' +  gcp:sql:DatabaseInstance pgcdc-db creating\n');
    const err = this.fail[method];
    if (err) throw err;
    const hang = this.hang[method];
    if (hang) {
      await new Promise<void>((resolve) => {
        opts?.signal?.addEventListener('abort', () => resolve());
        this.cancelled.push(resolve);
        hang.started();
      });
      throw this.stoppedError;
    }
  }

  async cancel() {
    this.cancels++;
    for (const stop of this.cancelled.splice(0)) stop();
  }
  async previewRefresh(opts?: StreamOptions) {
    await this.run('previewRefresh', opts);
    return { changeSummary: { update: 1, same: 14 } };
  }
  async previewDestroy(opts?: StreamOptions) {
    await this.run('previewDestroy', opts);
    return { changeSummary: { delete: 15 } };
  }

  async up(opts?: PlanOptions) {
    await this.run('up', opts);
    return {
      outputs: this.outputMap,
      summary: { result: 'succeeded', resourceChanges: { create: 12, same: 3 } },
    };
  }
  async preview(opts?: PlanOptions) {
    await this.run('preview', opts);
    return { changeSummary: { create: 12, same: 3 } };
  }
  async refresh(opts?: StreamOptions) {
    await this.run('refresh', opts);
    return { summary: { result: 'succeeded', resourceChanges: { same: 15 } } };
  }
  async destroy(opts?: StreamOptions) {
    await this.run('destroy', opts);
    return { summary: { result: 'succeeded', resourceChanges: { delete: 15 } } };
  }
  async outputs() {
    this.calls.push({ method: 'outputs' });
    if (this.fail.outputs) throw this.fail.outputs;
    return this.outputMap;
  }
}

/** The Automation API's LocalWorkspace as far as the CLI uses it, recording every stack request. */
export class FakeStackSource implements StackSource {
  requests: Array<{ method: 'createOrSelectStack' | 'selectStack' } & LocalProgram> = [];
  stacks = new Map<string, FakeStack>();
  /** Error thrown by selectStack (e.g. StackNotFoundError). */
  selectError?: Error;
  constructor(private readonly outputMap: OutputMap = STACK_OUTPUTS) {}

  stack(name: string): FakeStack {
    let s = this.stacks.get(name);
    if (!s) this.stacks.set(name, (s = new FakeStack(name, this.outputMap)));
    return s;
  }
  async createOrSelectStack(args: LocalProgram) {
    this.requests.push({ method: 'createOrSelectStack', ...args });
    return this.stack(args.stackName);
  }
  async selectStack(args: LocalProgram) {
    this.requests.push({ method: 'selectStack', ...args });
    if (this.selectError) throw this.selectError;
    return this.stack(args.stackName);
  }
}

function ts(ms: number) {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

export function execution(job: string, n: number, opts: Partial<Execution> = {}): Execution {
  const start = Date.UTC(2026, 0, 1, 12, 0, n);
  return {
    name: `projects/${PROJECT}/locations/${REGION}/jobs/${job}/executions/${job}-exec-${n}`,
    startTime: ts(start),
    completionTime: ts(start + 42_000),
    succeededCount: 1,
    failedCount: 0,
    logUri: `https://console.cloud.google.com/logs/viewer?project=${PROJECT}&exec=${job}-exec-${n}`,
    ...opts,
  };
}

/** Cloud Run jobs: every runJob request recorded; each job's outcome scripted. */
export class FakeJobs implements JobsApi {
  requests: RunJobRequest[] = [];
  /** The call options of each runJob (the LRO polling settings). */
  options: unknown[] = [];
  outcome = new Map<string, { execution: Execution; error?: Error }>();
  private n = 0;

  async runJob(request: RunJobRequest, options?: unknown) {
    this.requests.push(request);
    this.options.push(options);
    const job = String(request.name).split('/').pop()!;
    const scripted = this.outcome.get(job) ?? { execution: execution(job, ++this.n) };
    return [
      {
        metadata: scripted.execution,
        promise: async () => {
          if (scripted.error) throw scripted.error;
          return [scripted.execution] as const;
        },
      },
    ] as const;
  }
}

export class FakeExecutions implements ExecutionsApi {
  requests: Array<{ parent: string; pageSize?: number }> = [];
  byJob = new Map<string, Execution[]>();
  async listExecutions(request: { parent: string; pageSize?: number }) {
    this.requests.push(request);
    return [this.byJob.get(request.parent.split('/').pop()!) ?? []] as const;
  }
}

export class FakeMetrics implements SubscriptionMetrics {
  requests: Array<{ project: string; subscription: string }> = [];
  backlogs = new Map<string, Backlog>();
  async backlog(project: string, subscription: string) {
    this.requests.push({ project, subscription });
    return this.backlogs.get(subscription) ?? null;
  }
}

export class FakeLogs implements JobLogs {
  requests: Array<{ project: string; job: string; field: string; executionName?: string; sinceMs?: number }> =
    [];
  summaries = new Map<string, Record<string, unknown>>();
  /** When each job's summary was logged (default 2026-01-01T12:01:00Z). */
  at = new Map<string, string>();
  /** Lookups that find nothing before the entry "arrives" (log ingestion delay). */
  missesBeforeFound = 0;
  async lastSummary(
    project: string,
    job: string,
    opts: { field: string; executionName?: string; sinceMs?: number },
  ) {
    this.requests.push({ project, job, ...opts });
    if (this.missesBeforeFound > 0) {
      this.missesBeforeFound--;
      return null;
    }
    const s = this.summaries.get(job);
    return s ? { at: this.at.get(job) ?? '2026-01-01T12:01:00Z', summary: s } : null;
  }
  /** Each job's summary lines, newest first, for recentSummaries (default: its one summary, if any). */
  history = new Map<string, Array<{ at: string; summary: Record<string, unknown> }>>();
  recentRequests: Array<{ project: string; job: string; field: string; limit: number }> = [];
  async recentSummaries(project: string, job: string, opts: { field: string; limit: number }) {
    this.recentRequests.push({ project, job, field: opts.field, limit: opts.limit });
    const h = this.history.get(job);
    if (h) return h.slice(0, opts.limit);
    const s = this.summaries.get(job);
    return s ? [{ at: this.at.get(job) ?? '2026-01-01T12:01:00Z', summary: s }] : [];
  }
}

/** Enough of @google-cloud/bigquery for `status`: dataset(d).getTables(), table(t).getMetadata(). */
export function fakeBigQuery(
  tables: Record<string, { numRows: string; lastModifiedTime: string }>,
  asked: string[],
): BigQuery {
  const fake = {
    dataset: (dataset: string) => ({
      getTables: async () => {
        asked.push(`getTables ${dataset}`);
        return [Object.keys(tables).map((id) => ({ id }))];
      },
      table: (id: string) => ({
        getMetadata: async () => {
          asked.push(`getMetadata ${dataset}.${id}`);
          return [tables[id]];
        },
      }),
    }),
  };
  return fake as unknown as BigQuery;
}

export interface Harness {
  deps: CliDeps;
  out: BufferedOutput;
  source: FakeStackSource;
  jobs: FakeJobs;
  executions: FakeExecutions;
  metrics: FakeMetrics;
  logs: FakeLogs;
  bigqueryAsked: string[];
  cloudProjects: string[];
  /** Questions asked at the (fake) terminal. */
  confirmations: string[];
  /** Simulates Ctrl-C: calls the registered interrupt handlers. */
  interrupt(): void;
  /** How many interrupt handlers are registered right now. */
  interruptHandlers(): number;
  run(...argv: string[]): Promise<number>;
  cleanup(): void;
}

export function harness(
  opts: {
    stacks?: Record<string, string>;
    tty?: boolean;
    /** stdin a terminal too (default: as tty). */
    stdinTTY?: boolean;
    /** The line typed at each prompt (null: input ended). Default: "n". */
    answer?: string | null;
    pulumi?: boolean;
    deps?: Partial<CliDeps>;
    /** The stack's outputs (default STACK_OUTPUTS). */
    outputs?: OutputMap;
  } = {},
): Harness {
  const project = tempProject(opts.stacks ?? { dev: GOOD_STACK });
  const out = bufferOutput({ isTTY: opts.tty ?? false, clock: { now: () => 0 } });
  const source = new FakeStackSource(opts.outputs);
  const jobs = new FakeJobs();
  const executions = new FakeExecutions();
  const metrics = new FakeMetrics();
  const logs = new FakeLogs();
  const bigqueryAsked: string[] = [];
  const cloudProjects: string[] = [];
  const confirmations: string[] = [];
  const interruptHandlers = new Set<() => void>();
  const clients: CloudClients = {
    jobs,
    executions,
    metrics,
    logs,
    bigquery: fakeBigQuery(
      {
        customers: { numRows: '31', lastModifiedTime: String(Date.UTC(2026, 0, 1, 12, 1, 0)) },
        customers_changes: { numRows: '40', lastModifiedTime: String(Date.UTC(2026, 0, 1, 12, 1, 0)) },
        _failed: { numRows: '2', lastModifiedTime: String(Date.UTC(2026, 0, 1, 11, 0, 0)) },
      },
      bigqueryAsked,
    ),
  };
  const deps: CliDeps = {
    output: out,
    clock: { now: () => Date.UTC(2026, 0, 1, 12, 5, 0) },
    projectDir: project.dir,
    localDir: path.join(project.dir, '.local'),
    stacks: source,
    findPulumi: () => (opts.pulumi === false ? undefined : '/usr/local/bin/pulumi'),
    validateConfig,
    stdinIsTTY: opts.stdinTTY ?? opts.tty ?? false,
    ask: async (q: string) => {
      confirmations.push(q);
      return opts.answer === undefined ? 'n' : opts.answer;
    },
    onInterrupt: (handler: () => void) => {
      interruptHandlers.add(handler);
      return () => interruptHandlers.delete(handler);
    },
    cloud: async (p) => {
      cloudProjects.push(p);
      return clients;
    },
    local: {
      up: async () => {
        throw new Error('local stack not used in this test');
      },
      down: async () => ({ stopped: [] }),
      read: readLocalEndpoints,
      env: () => ({}),
    },
    pipeline: {
      runSqlInit: async () => ({ statements: 0, notices: [] }),
      listenOnce: async () => {
        throw new Error('not used');
      },
      snapshotOnce: async () => {
        throw new Error('not used');
      },
      sinkOnce: async () => {
        throw new Error('not used');
      },
    },
    pollMs: 10,
    logRetry: { attempts: 3, intervalMs: 1 },
    ...opts.deps,
  };
  return {
    deps,
    out,
    source,
    jobs,
    executions,
    metrics,
    logs,
    bigqueryAsked,
    cloudProjects,
    confirmations,
    interrupt: () => [...interruptHandlers].forEach((h) => h()),
    interruptHandlers: () => interruptHandlers.size,
    run: (...argv) => runCli(argv, deps),
    cleanup: project.cleanup,
  };
}
