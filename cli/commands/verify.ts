// pgcdc verify --env <stack> [--table s.t ...] [--sample N | --full] [--json]: compare each captured table's
// source rows with its BigQuery replica (verify/verify.ts says how, and how changes in flight are kept out).
// Local: runs here against the local stack. Cloud: the database is private, so it runs as an execution of
// the listener job with args ["verify", ...] and this prints the report the execution logged.
// Exit code 0 when every table is equal, EXIT.verifyDifferences (16) when not.

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { jobPath } from '../cloud';
import type { CliDeps } from '../deps';
import { CancelledError, CliError, EXIT, UsageError } from '../errors';
import { runJobAndWait } from '../jobs';
import { listTables } from '../warehouse';
// Types only at start-up: the verify code (BigQuery client, sink mapping) loads in the action (issue 11.10).
import type { VerifyMode, VerifyReport } from '../../verify/verify';
import { canAsk } from './pulumi-flow';
import { candidateNames } from '../../contract/table-name';
import { cloudContext, envOption, formatBytes, LOCAL_ENV, tableArg } from './shared';

/** Rows a sample reads per table in the cloud when neither --sample nor --full is given. */
const CLOUD_DEFAULT_SAMPLE = 1000;

interface VerifyOpts {
  env: string;
  table?: string[];
  sample?: number;
  full: boolean;
  json: boolean;
  yes: boolean;
  chunkRows?: number;
  recheckSeconds?: number;
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function nonNegative(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number of seconds ≥ 0');
  return n;
}

/** The report as lines for a person. */
export function describeVerify(r: VerifyReport): string[] {
  const lines: string[] = [];
  for (const t of r.tables) {
    lines.push(
      `${t.table} → ${t.replicaTable}: ${t.equal ? 'equal' : 'DIFFERENT'} at source position ${t.position.lsn} ` +
        `(${t.position.at}); ${t.mode}, ${t.sourceRows} source rows, ${t.replicaRows ?? 'no'} replica rows, ` +
        `${t.chunks} chunk(s), ${t.chunksDiffering} differing`,
    );
    const keys = (k: string[], n: number) =>
      `${k.join(' ')}${n > k.length ? ` … (${n - k.length} more)` : ''}`;
    if (t.onlyInSource.count)
      lines.push(
        `  only in the source: ${t.onlyInSource.count}: ${keys(t.onlyInSource.keys, t.onlyInSource.count)}`,
      );
    if (t.onlyInReplica.count)
      lines.push(
        `  only in the replica: ${t.onlyInReplica.count}: ${keys(t.onlyInReplica.keys, t.onlyInReplica.count)}`,
      );
    if (t.differing.count) {
      lines.push(`  rows that differ: ${t.differing.count}`);
      for (const d of t.differing.rows)
        lines.push(
          `    ${d.key}: ` +
            d.columns
              .map(
                (c) =>
                  `${c.column} source ${JSON.stringify(c.source)} replica ${JSON.stringify(c.replica)}` +
                  (c.companion ? ` and ${c.companion.field} ${JSON.stringify(c.companion.text)}` : ''),
              )
              .join('; '),
        );
    }
    const ex = t.excluded;
    if (ex.count)
      lines.push(
        `  excluded as changes in flight: ${ex.count} (replica newer than the snapshot ${ex.newerInReplica}, ` +
          `changed in the source since ${ex.changedInSource}, replica caught up on re-check ${ex.caughtUp})`,
      );
    for (const n of t.notes) lines.push(`  note: ${n}`);
  }
  for (const s of r.skipped ?? []) lines.push(`${s.table}: skipped, ${s.reason}`);
  lines.push(
    `verify: ${r.equal ? 'replica equals source' : 'DIFFERENCES FOUND'} — ${r.tables.length} table(s), ` +
      `${r.rowsCompared} rows in ${r.seconds.toFixed(1)}s`,
  );
  return lines;
}

function finish(deps: CliDeps, report: VerifyReport, json: boolean): void {
  if (json) deps.output.log(JSON.stringify(report));
  else for (const line of describeVerify(report)) deps.output.log(line);
  if (!report.equal) {
    throw new CliError(
      'verify: the replica differs from the source',
      EXIT.verifyDifferences,
      'Rows only on one side or differing are listed above; `pgcdc status` shows whether the pipeline is behind.',
    );
  }
}

async function localVerify(deps: CliDeps, opts: VerifyOpts, mode: VerifyMode): Promise<void> {
  const [{ emulatorBigQuery }, { runVerify }] = await Promise.all([
    import('../../local/stack'),
    import('../../verify/verify'),
  ]);
  const e = deps.local.read({ dir: deps.localDir });
  if (mode.kind === 'full' && !opts.json)
    deps.output.log('cost: 0 bytes billed (the local BigQuery emulator)');
  const report = await runVerify({
    pg: e.pg,
    publication: e.publication,
    tables: opts.table ?? [],
    bigquery: emulatorBigQuery(e),
    project: e.project,
    dataset: e.dataset,
    mode,
    chunkRows: opts.chunkRows,
    recheckDelayMs: opts.recheckSeconds === undefined ? undefined : opts.recheckSeconds * 1000,
    progress: (line) => deps.output.error(line),
  });
  // The last result, for `pgcdc status` and for a person looking later.
  writeFileSync(path.join(deps.localDir, 'verify-last.json'), JSON.stringify(report, null, 2));
  finish(deps, report, opts.json);
}

async function cloudVerify(deps: CliDeps, opts: VerifyOpts, mode: VerifyMode): Promise<void> {
  const [{ fullReadBytes }, { verifyArgs }, { isReplicaTableId, replicaTableName }] = await Promise.all([
    import('../../verify/verify'),
    import('../../verify/job'),
    import('../../verify/sink-adapter'),
  ]);
  const { outputs, clients } = await cloudContext(deps, opts.env);
  if (mode.kind === 'full') {
    // The tables verify will read: the named ones' replicas, else every replica table of the dataset. A
    // named entry is read as the verify job reads it (contract/table-name.ts): its exact-case reading when
    // that table exists, else PostgreSQL's; here "exists" is "has a replica in the dataset".
    const present = (await listTables(clients.bigquery, outputs.dataset))
      .map((t) => t.id)
      .filter(isReplicaTableId);
    const replicas = opts.table?.length
      ? opts.table.flatMap((t) => {
          const names = candidateNames(tableArg(t)).map((n) => replicaTableName(n.schema, n.table));
          const found = names.find((r) => present.includes(r));
          return found ? [found] : [];
        })
      : present;
    const bytes = await fullReadBytes(clients.bigquery, outputs.project, outputs.dataset, replicas);
    deps.output.log(
      `cost: a full verify scans about ${formatBytes(bytes)} of BigQuery (dry run of reading each replica ` +
        "once; it runs one query per chunk, which the replica's clustering on its key keeps near its share)",
    );
    if (!opts.yes) {
      if (!canAsk(deps))
        throw new UsageError(
          'a full verify is billed by BigQuery',
          `Pass --yes when not running at a terminal: pgcdc verify --env ${opts.env} --full --yes`,
        );
      const answer = await deps.ask('Run the full verify? [y/N]');
      if (answer === null || !/^y(es)?$/i.test(answer.trim()))
        throw new CancelledError('cancelled: the full verify did not run');
    }
  }
  const args = verifyArgs({
    project: outputs.project,
    dataset: outputs.dataset,
    tables: opts.table ?? [],
    mode,
    chunkRows: opts.chunkRows,
    recheckSeconds: opts.recheckSeconds,
  });
  const run = await deps.output.task(`Verify through job ${outputs.listenerJobName}`, () =>
    runJobAndWait(clients, jobPath(outputs, outputs.listenerJobName), { args }),
  );
  const logged = await clients.logs.lastSummary(outputs.project, outputs.listenerJobName, {
    field: 'verify',
    executionName: run.execution,
  });
  const report = logged?.summary.verify as VerifyReport | undefined;
  if (!report)
    throw new CliError(
      `verify: execution ${run.execution} succeeded but its report is not in the logs (yet)`,
      EXIT.failure,
      run.logUri ? `Logs: ${run.logUri}` : undefined,
    );
  finish(deps, report, opts.json);
}

export function verifyCommand(deps: CliDeps): Command {
  return new Command('verify')
    .description('check that the BigQuery replica equals the source, row by row (exit 16 when not)')
    .addOption(envOption())
    .option('--table <schema.table...>', 'tables to verify (default: every captured table)')
    .option('--sample <rows>', 'compare about this many random rows per table (plus row counts)', positiveInt)
    .option('--full', 'compare every row (default locally; in the cloud shows the cost and asks)', false)
    .option('--chunk-rows <n>', 'source rows per compared chunk (default 10000)', positiveInt)
    .option('--recheck-seconds <s>', 'pause before differing keys are re-checked (default 3)', nonNegative)
    .option('-y, --yes', 'do not ask before a billed full run', false)
    .option('--json', 'print the report as JSON', false)
    .action(async (opts: VerifyOpts) => {
      if (opts.sample !== undefined && opts.full) throw new UsageError('use either --sample or --full');
      if (opts.table) opts.table = opts.table.map((t) => tableArg(t).text);
      const local = opts.env === LOCAL_ENV;
      const mode: VerifyMode =
        opts.sample !== undefined
          ? { kind: 'sample', rows: opts.sample }
          : opts.full || local
            ? { kind: 'full' }
            : { kind: 'sample', rows: CLOUD_DEFAULT_SAMPLE };
      if (local) await localVerify(deps, opts, mode);
      else await cloudVerify(deps, opts, mode);
    });
}
