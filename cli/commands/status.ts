// pgcdc status --env <stack>: what a user checks first when something looks wrong — slot position and lag,
// the last runs, the subscription backlog, failed rows, and how fresh the replica is. Each part is fetched
// on its own: one unreachable service shows as such instead of hiding the rest.

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import type { BigQuery } from '@google-cloud/bigquery';
import type { ClientConfig } from 'pg';
import { Backlog, Execution, executionState, jobPath, shortName, timestampMillis } from '../cloud';
import { cronIntervalSeconds } from '../cron';
import type { CliDeps, ListenerSummary, SinkSummary } from '../deps';
import { emulatorBacklog, EmulatorBacklog } from '../emulator-backlog';
import { CliError, isNoCredentials, NoCredentialsError } from '../errors';
import { localSlotStatus, SlotStatus } from '../local-inspect';
import { describeLockSession } from '../../listener/lock-session';
import { listenerHealth, ListenerHealth, SUMMARIES_READ } from '../listener-health';
import { lastRuns } from '../runs';
import { assess, Verdict, VERDICT_EXIT } from '../verdict';
import { listTables, restTables, TableInfo, TablesReader } from '../warehouse';
import { describeListener, describeSink } from './run-once';
import {
  cloudContext,
  envOption,
  formatBytes,
  formatDuration,
  LOCAL_ENV,
  roundNumbers,
  table,
  validateStackConfig,
} from './shared';

export type Section<T> = { ok: true; value: T } | { ok: false; error: string; noCredentials?: boolean };

export interface RunInfo {
  job: string;
  execution: string | null;
  state: string;
  at: string | null;
  seconds: number | null;
  logUri: string | null;
  /** Cloud: the execution's task counts. */
  tasks?: { succeeded: number; failed: number };
  /** Local: what each part did (their summaries), or why the run failed. */
  listener?: ListenerSummary | null;
  sink?: SinkSummary | null;
  error?: string;
}

type BacklogInfo = (Backlog & { subscription: string; countedSince?: string }) | null;

export interface ReplicaTable {
  table: string;
  rows: number | null;
  lastModified: string | null;
  ageSeconds: number | null;
}

export interface StatusReport {
  env: string;
  /** healthy / lagging / stale / failing, with the reasons (exit code: README "Exit codes"). */
  verdict: Verdict;
  /** Cloud: the schedules' longest intervals (seconds), against which staleness and lag are judged. */
  schedule?: { listenerSeconds: number; sinkSeconds: number };
  slot: Section<SlotStatus | null>;
  /**
   * What the newest listener runs reported about capture: a TOAST lookup refused a lock (how many runs in a
   * row, since when, the sessions in the way) and captured tables not captured (with the fix). Null: no run.
   */
  listener: Section<ListenerHealth | null>;
  runs: Section<RunInfo[]>;
  backlog: Section<BacklogInfo>;
  deadLetters: Section<BacklogInfo>;
  failedRows: Section<{ table: string; rows: number | null }>;
  replica: Section<ReplicaTable[]>;
  /** Initial snapshots: rows sent per table of the estimated total; null when none was ever started. */
  snapshots: Section<SnapshotProgress[] | null>;
  /** The newest `pgcdc verify` result; null when verify never ran. */
  lastVerify: Section<LastVerify | null>;
}

export interface LastVerify {
  at: string;
  equal: boolean;
  rowsCompared: number;
  tables: number;
  /** Tables whose replica did not equal the source. */
  differing: string[];
}

/** The summary of a verify report (verify/verify.ts VerifyReport), whatever else it holds. */
function lastVerifyOf(report: unknown): LastVerify | null {
  if (!report || typeof report !== 'object') return null;
  const r = report as { startedAt?: unknown; equal?: unknown; rowsCompared?: unknown; tables?: unknown };
  if (typeof r.equal !== 'boolean') return null;
  const tables = Array.isArray(r.tables) ? (r.tables as Array<{ table?: unknown; equal?: unknown }>) : [];
  return {
    at: typeof r.startedAt === 'string' ? r.startedAt : '?',
    equal: r.equal,
    rowsCompared: typeof r.rowsCompared === 'number' ? r.rowsCompared : 0,
    tables: tables.length,
    differing: tables.filter((t) => t.equal === false).map((t) => String(t.table)),
  };
}

/** Local: `pgcdc verify --env local` keeps its last report in the local directory. */
function localLastVerify(localDir: string): LastVerify | null {
  const file = path.join(localDir, 'verify-last.json');
  if (!existsSync(file)) return null;
  return lastVerifyOf(JSON.parse(readFileSync(file, 'utf8')));
}

export interface SnapshotProgress {
  table: string;
  rowsDone: number;
  rowsEstimate: number | null;
  done: boolean;
}

/** The local database's snapshot progress table (sql/0-init.sql); null before the SQL init. */
async function localSnapshots(pg: ClientConfig): Promise<SnapshotProgress[] | null> {
  const { Client } = await import('pg');
  const client = new Client(pg);
  await client.connect();
  try {
    const exists = await client.query("SELECT to_regclass('pgcdc.snapshot_progress') IS NOT NULL AS ok");
    if (!exists.rows[0].ok) return null;
    const r = await client.query<{
      table_name: string;
      rows_done: string;
      rows_estimate: string | null;
      done: boolean;
    }>(
      'SELECT table_name, rows_done::text, rows_estimate::text, done FROM pgcdc.snapshot_progress ORDER BY table_name',
    );
    return r.rows.map((x) => ({
      table: x.table_name,
      rowsDone: Number(x.rows_done),
      rowsEstimate: x.rows_estimate === null ? null : Number(x.rows_estimate),
      done: x.done,
    }));
  } finally {
    await client.end();
  }
}

function snapshotTables(v: unknown): SnapshotProgress[] | null {
  return Array.isArray(v) ? (v as SnapshotProgress[]) : null;
}

async function section<T>(fn: () => Promise<T>): Promise<Section<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    return { ok: false, error: (e as Error).message, noCredentials: isNoCredentials(e) || undefined };
  }
}

async function warehouseSections(
  bq: TablesReader | BigQuery,
  dataset: string,
  failedTable: string,
  nowMs: number,
) {
  const tables = section(() => listTables(bq, dataset));
  const all = await tables;
  const failedRows: Section<{ table: string; rows: number | null }> = all.ok
    ? {
        ok: true,
        value: { table: failedTable, rows: all.value.find((t) => t.id === failedTable)?.rows ?? 0 },
      }
    : all;
  const replica: Section<ReplicaTable[]> = all.ok
    ? {
        ok: true,
        value: all.value
          .filter((t: TableInfo) => !t.id.startsWith('_') && !t.id.endsWith('_changes'))
          .map((t) => ({
            table: t.id,
            rows: t.rows,
            lastModified: t.lastModified?.toISOString() ?? null,
            ageSeconds: t.lastModified
              ? Math.max(0, Math.round((nowMs - t.lastModified.getTime()) / 1000))
              : null,
          })),
      }
    : all;
  return { failedRows, replica };
}

type Gathered = Omit<StatusReport, 'verdict'>;

async function localStatus(deps: CliDeps): Promise<Gathered> {
  const e = deps.local.read({ dir: deps.localDir });
  const now = deps.clock.now();
  const bq = restTables(e.bigQueryEmulatorHost, e.project);
  const backlogOf = async (subscription: string): Promise<BacklogInfo> => {
    const b: EmulatorBacklog = await emulatorBacklog(e.pubsubEmulatorHost, e.project, subscription, now);
    return { subscription, ...b };
  };
  const [slot, backlog, deadLetters, snapshots, lastVerify, warehouse] = await Promise.all([
    section(() => localSlotStatus(e.pg, e.slot, now)),
    section(() => backlogOf(e.subscription)),
    section(() => backlogOf(e.deadLetterSubscription)),
    section(() => localSnapshots(e.pg)),
    section(async () => localLastVerify(deps.localDir)),
    warehouseSections(bq, e.dataset, '_failed', now),
  ]);
  const history = lastRuns(deps.localDir, SUMMARIES_READ);
  // Runs whose listener failed have no summary: they neither count nor break a run of blocked lookups.
  const listener: Section<ListenerHealth | null> = {
    ok: true,
    value: listenerHealth(
      history.filter((r) => r.listener).map((r) => ({ at: r.at, summary: r.listener })),
      LOCAL_ENV,
    ),
  };
  const runs = history.slice(0, 5).map((r): RunInfo => ({
    job: 'listener+sink',
    execution: null,
    state: r.ok ? 'succeeded' : 'failed',
    at: r.at,
    seconds: (r.listener?.seconds ?? 0) + (r.sink?.seconds ?? 0),
    logUri: null,
    listener: r.listener,
    sink: r.sink,
    ...(r.error ? { error: r.error } : {}),
  }));
  return {
    env: LOCAL_ENV,
    slot,
    listener,
    runs: { ok: true, value: runs },
    backlog,
    deadLetters,
    snapshots,
    lastVerify,
    ...warehouse,
  };
}

function runInfo(job: string, e: Execution): RunInfo {
  const start = timestampMillis(e.startTime) ?? timestampMillis(e.createTime);
  const end = timestampMillis(e.completionTime);
  return {
    job,
    execution: e.name ? shortName(e.name) : null,
    state: executionState(e),
    at: start !== null ? new Date(start).toISOString() : null,
    seconds: start !== null && end !== null ? (end - start) / 1000 : null,
    logUri: e.logUri || null,
    tasks: { succeeded: e.succeededCount ?? 0, failed: e.failedCount ?? 0 },
  };
}

/** The schedules from the stack's validated config (infra/config.ts Config), defaults when absent. */
function schedules(config: unknown): { listenerSeconds: number; sinkSeconds: number } {
  const cron = (job: 'listener' | 'sink') => {
    const c = config as Record<string, { schedule?: unknown } | undefined> | null;
    const s = c?.[job]?.schedule;
    return typeof s === 'string' ? s : '*/12 * * * *';
  };
  const interval = (expr: string) => {
    try {
      return cronIntervalSeconds(expr);
    } catch {
      return 12 * 60;
    }
  };
  return { listenerSeconds: interval(cron('listener')), sinkSeconds: interval(cron('sink')) };
}

function stuck(v: unknown): SlotStatus['stuckTransaction'] {
  if (!v || typeof v !== 'object') return null;
  const t = v as Record<string, unknown>;
  return {
    xid: typeof t.xid === 'number' || typeof t.xid === 'string' ? t.xid : '?',
    startLsn: typeof t.startLsn === 'string' ? t.startLsn : '?',
    changesRead: typeof t.changesRead === 'number' ? t.changesRead : 0,
    ...(typeof t.runs === 'number' ? { runs: t.runs } : {}),
  };
}

async function cloudStatus(deps: CliDeps, env: string): Promise<Gathered> {
  const schedule = schedules(validateStackConfig(deps, env));
  const { outputs, clients } = await cloudContext(deps, env);
  const now = deps.clock.now();
  const executionsOf = async (job: string) => {
    const [list] = await clients.executions.listExecutions(
      { parent: jobPath(outputs, job), pageSize: 3 },
      { autoPaginate: false },
    );
    return list.slice(0, 3).map((e) => runInfo(job, e));
  };
  const [slot, listener, runs, backlog, deadLetters, snapshots, lastVerify, warehouse] = await Promise.all([
    // The database is private: the slot as the listener last saw it (its summary line in Cloud Logging).
    section(async (): Promise<SlotStatus | null> => {
      const last = await clients.logs.lastSummary(outputs.project, outputs.listenerJobName, {
        field: 'confirmedLsn',
      });
      if (!last) return null;
      const s = last.summary;
      const at = Date.parse(last.at);
      return {
        slot: outputs.slotName ?? '(slot)',
        plugin: typeof s.decoder === 'string' ? s.decoder : null,
        active: null,
        confirmedLsn: typeof s.confirmedLsn === 'string' ? s.confirmedLsn : null,
        lagBytes: typeof s.lagBytes === 'number' ? s.lagBytes : null,
        // Older summaries have neither field (listener before issue 10/11): unknown, not "fine".
        walStatus: typeof s.slotWalStatus === 'string' ? s.slotWalStatus : null,
        stuckTransaction: stuck(s.stuckTransaction),
        lagSeconds: null,
        source: 'last listener run',
        at: last.at,
        ...(Number.isFinite(at) ? { ageSeconds: Math.max(0, Math.round((now - at) / 1000)) } : {}),
      };
    }),
    // The newest listener summaries (a listen run's line has confirmedLsn; snapshot and verify lines do not).
    section(async () =>
      listenerHealth(
        await clients.logs.recentSummaries(outputs.project, outputs.listenerJobName, {
          field: 'confirmedLsn',
          limit: SUMMARIES_READ,
        }),
        env,
      ),
    ),
    section(async () => [
      ...(await executionsOf(outputs.listenerJobName)),
      ...(await executionsOf(outputs.sinkJobName)),
    ]),
    section(async () => {
      const b = await clients.metrics.backlog(outputs.project, shortName(outputs.subscription));
      return b && { subscription: shortName(outputs.subscription), ...b };
    }),
    section(async () => {
      if (!outputs.deadLetterSubscription) return null;
      const b = await clients.metrics.backlog(outputs.project, shortName(outputs.deadLetterSubscription));
      return b && { subscription: shortName(outputs.deadLetterSubscription), ...b };
    }),
    // As the listener last reported it: `pgcdc snapshot` prints `tables` at the top, a listen run under `snapshot`.
    section(async () => {
      const [own, auto] = await Promise.all([
        clients.logs.lastSummary(outputs.project, outputs.listenerJobName, { field: 'chunks' }),
        clients.logs.lastSummary(outputs.project, outputs.listenerJobName, { field: 'snapshot.chunks' }),
      ]);
      const latest = [own, auto].filter((x) => x !== null).sort((a, b) => (a!.at < b!.at ? 1 : -1))[0];
      if (!latest) return null;
      const s = latest.summary;
      return snapshotTables(s.tables) ?? snapshotTables((s.snapshot as { tables?: unknown } | null)?.tables);
    }),
    // `pgcdc verify` runs as a listener execution whose report line has a `verify` field.
    section(async () => {
      const last = await clients.logs.lastSummary(outputs.project, outputs.listenerJobName, {
        field: 'verify',
      });
      return last ? lastVerifyOf(last.summary.verify) : null;
    }),
    warehouseSections(clients.bigquery, outputs.dataset, outputs.failedTable, now),
  ]);
  return { env, schedule, slot, listener, runs, backlog, deadLetters, snapshots, lastVerify, ...warehouse };
}

function printReport(deps: CliDeps, r: StatusReport): void {
  const log = (line: string) => deps.output.log(line);
  const show = <T>(title: string, s: Section<T>, body: (v: T) => string[]) => {
    log(title);
    const lines = s.ok ? body(s.value) : [`unavailable: ${s.error}`];
    for (const line of lines) log(`  ${line}`);
  };
  const v = r.verdict;
  log(`${r.env}: ${v.state}${v.reasons.length ? ` — ${v.reasons[0]}` : ''}`);
  for (const reason of v.reasons.slice(1)) log(`  also: ${reason}`);
  if (v.fix) log(`  fix: ${v.fix}`);
  show('Replication slot', r.slot, (s) => {
    if (!s)
      return r.env === LOCAL_ENV
        ? [`no slot: run \`pgcdc sql init --env ${r.env}\` first`]
        : [`no listener run logged yet: \`pgcdc run-once --env ${r.env}\``];
    const lag = s.lagBytes === null ? 'lag unknown' : `${formatBytes(s.lagBytes)} not yet confirmed`;
    const age =
      s.lagSeconds === null
        ? ''
        : s.lagSeconds === 0
          ? ', no change waiting'
          : `, oldest waiting change ${formatDuration(s.lagSeconds)} old`;
    const lines = [
      `${s.slot}${s.plugin ? ` (${s.plugin}${s.active ? ', in use' : ''})` : ''}: confirmed ${s.confirmedLsn ?? '?'}, WAL status ${s.walStatus ?? 'unknown'}`,
      `${lag}${age}`,
    ];
    if (s.source !== 'database')
      lines.push(
        `as reported by the last listener run${s.ageSeconds !== undefined ? `, ${formatDuration(s.ageSeconds)} ago` : ''}${s.at ? ` (${s.at})` : ''}`,
      );
    if (s.stuckTransaction)
      lines.push(
        `stuck in transaction ${s.stuckTransaction.xid} (from ${s.stuckTransaction.startLsn}, ${s.stuckTransaction.changesRead} changes read${s.stuckTransaction.runs ? `, ${s.stuckTransaction.runs} runs` : ''})`,
      );
    return lines;
  });
  show('Listener capture', r.listener, (h) => {
    if (!h) return ['no listener run reported yet'];
    const lines: string[] = [];
    const b = h.blockedLookup;
    if (b) {
      lines.push(
        `${b.step === 'snapshot' ? 'Snapshot' : 'TOAST lookup'} of ${b.table} ${b.reason === 'statement-timeout' ? 'ran past statement_timeout' : 'was refused a lock'} in the last ${b.atLeast ? `${b.runs}+` : b.runs} run(s)` +
          `${b.since ? `, since ${b.since}` : ''} (${b.reason}, ${b.attempts} attempt(s) a run): ` +
          'the run stops before that change and the next one retries; nothing is lost, changes from there on wait',
      );
      if (b.sessions.length === 0) lines.push('  in the way: no session any more (the lock had just gone)');
      for (const s of b.sessions) lines.push(`  in the way: ${describeLockSession(s)}`);
    }
    for (const t of h.skippedTables)
      lines.push(
        `not captured: ${t.table} (${t.reason === 'not-granted' ? 'the replicator may not read it: created after the last sql init' : t.reason}); fix: ${t.fix}`,
      );
    if (lines.length === 0) lines.push('every captured table read, no lookup blocked (newest run)');
    return lines;
  });
  show('Last runs', r.runs, (runs) =>
    runs.length === 0
      ? [`none yet: \`pgcdc run-once --env ${r.env}\``]
      : runs.flatMap((x) => [
          `${x.at ?? '?'}  ${x.job}${x.execution ? ` ${x.execution}` : ''}  ${x.state}${x.seconds !== null ? ` in ${x.seconds.toFixed(1)}s` : ''}`,
          ...(x.tasks ? [`    ${x.tasks.succeeded} task(s) succeeded, ${x.tasks.failed} failed`] : []),
          ...(x.listener ? [`    listener: ${describeListener(x.listener)}`] : []),
          ...(x.sink ? [`    sink: ${describeSink(x.sink)}`] : []),
          ...(x.error ? [`    ${x.error}`] : []),
          ...(x.logUri && x.state !== 'succeeded' ? [`    logs: ${x.logUri}`] : []),
        ]),
  );
  const backlog = (b: BacklogInfo) =>
    b === null
      ? ['no data (metrics appear a few minutes after the first message)']
      : [
          `${b.subscription}: ${b.messages} message(s) waiting or unacknowledged` +
            (b.oldestUnackedSeconds !== null && b.messages > 0
              ? `, oldest ${formatDuration(b.oldestUnackedSeconds)} old`
              : '') +
            (b.countedSince ? ` (counting messages published since ${b.countedSince} only)` : ''),
        ];
  show('Subscription backlog', r.backlog, backlog);
  show('Dead letters', r.deadLetters, backlog);
  show('Failed rows', r.failedRows, (f) => [`${f.table}: ${f.rows ?? '?'} row(s)`]);
  show('Initial snapshots', r.snapshots, (tables) =>
    !tables || tables.length === 0
      ? [`none started (they start with the first listener run after \`pgcdc sql init --env ${r.env}\`)`]
      : tables.map(
          (t) =>
            `${t.table}: ${t.rowsDone} of ~${t.rowsEstimate ?? '?'} rows` +
            (t.done
              ? ', done'
              : t.rowsEstimate
                ? ` (${Math.min(99, Math.floor((100 * t.rowsDone) / t.rowsEstimate))}%)`
                : ''),
        ),
  );
  show('Last verify', r.lastVerify, (v) =>
    v === null
      ? [`never run (\`pgcdc verify --env ${r.env}\` compares the replica with the source)`]
      : [
          `${v.at}: ${v.equal ? 'equal' : `NOT equal (${v.differing.join(', ') || 'see the report'})`}, ` +
            `${v.rowsCompared} rows in ${v.tables} table(s)`,
        ],
  );
  show('Replica freshness', r.replica, (tables) =>
    tables.length === 0
      ? ['no replica tables yet']
      : table([
          ['table', 'rows', 'last modified', 'age'],
          ...tables.map((t) => [
            t.table,
            t.rows === null ? '?' : String(t.rows),
            t.lastModified ?? '?',
            t.ageSeconds === null ? '?' : formatDuration(t.ageSeconds),
          ]),
        ]),
  );
}

/** Gathers the report and its verdict (exported for tests and `local down`). */
export async function statusReport(deps: CliDeps, env: string): Promise<StatusReport> {
  const cloud = env !== LOCAL_ENV;
  const g = cloud ? await cloudStatus(deps, env) : await localStatus(deps);
  const verdict = assess({
    env,
    cloud,
    listenerIntervalSeconds: g.schedule?.listenerSeconds,
    sinkIntervalSeconds: g.schedule?.sinkSeconds,
    slot: g.slot,
    listener: g.listener,
    runs: g.runs,
    backlog: g.backlog,
    deadLetters: g.deadLetters,
  });
  return {
    env: g.env,
    verdict,
    ...(g.schedule ? { schedule: g.schedule } : {}),
    slot: g.slot,
    listener: g.listener,
    runs: g.runs,
    backlog: g.backlog,
    deadLetters: g.deadLetters,
    failedRows: g.failedRows,
    snapshots: g.snapshots,
    lastVerify: g.lastVerify,
    replica: g.replica,
  };
}

export function statusCommand(deps: CliDeps): Command {
  return new Command('status')
    .description(
      'a verdict (healthy, lagging, stale, failing; exit code to match), then slot, runs, backlog, failed rows, replica freshness',
    )
    .addOption(envOption())
    .option('--json', 'print the report as JSON')
    .action(async (opts: { env: string; json?: boolean }) => {
      const report = await deps.output.task(`Checking ${opts.env}`, () => statusReport(deps, opts.env));
      const sections = [
        report.slot,
        report.listener,
        report.runs,
        report.backlog,
        report.deadLetters,
        report.failedRows,
        report.replica,
        report.snapshots,
      ];
      // Nothing could be read and the reason is credentials: say so instead of six "unavailable" lines.
      if (sections.every((s) => !s.ok) && sections.some((s) => !s.ok && s.noCredentials))
        throw new NoCredentialsError();
      if (opts.json) deps.output.log(JSON.stringify(roundNumbers(report), null, 2));
      else printReport(deps, report);
      const code = VERDICT_EXIT[report.verdict.state];
      // The report is printed; the exit code carries the verdict (no error line: the verdict line said it).
      if (code !== 0) throw new CliError('', code);
    });
}
