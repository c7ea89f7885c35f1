#!/usr/bin/env node
// Container entry point of the listener job and the admin job:
//   `node dist/listener/main.js [listen|snapshot|verify|sql-init|sql-teardown|check]`.
// Prints one JSON line (the run's summary, or the verify / SQL init / teardown / check report) on stdout;
// errors go to stderr as one JSON line too, and the exit code says what kind of failure it was
// (listener/errors.ts). sql-init, sql-teardown and check are the admin job's modes (BRIEF decision 1): they
// log in as the admin (PGCDC_ADMIN_USER) and reach the replicator's session with
// PGCDC_REPLICATION_USER/PGCDC_REPLICATOR_PASSWORD.

import { ENV } from '../contract/env';
import { loadListenerConfig } from './config';
import { EXIT, ListenerError } from './errors';
import { continuousRuns, runContinuous, runListenerJob, stopControl } from './job';
import { runSnapshot } from './snapshot';
import { loadAdminConfig } from './admin-config';
import { formatFindings, PreflightError, runPreflight } from './preflight';
import { runSqlInit } from './sql-init';
import { runSqlTeardown } from './sql-teardown';

async function main(argv: string[]): Promise<number> {
  const command = argv[0] ?? 'listen';
  const log = (line: string) =>
    process.stderr.write(JSON.stringify({ severity: 'INFO', message: line }) + '\n');
  // Cloud Logging reads `severity` from JSON lines; the stack's alerts match WARNING/ERROR entries by their
  // fields (e.g. jsonPayload.stuckTransaction).
  const alert = (severity: 'WARNING' | 'ERROR', message: string, fields: Record<string, unknown> = {}) =>
    process.stderr.write(JSON.stringify({ severity, message, ...fields }) + '\n');
  if (command === 'sql-init' || command === 'check' || command === 'sql-teardown') {
    const a = loadAdminConfig(process.env);
    const connectRetry = { budgetMs: a.connectBudgetMs, log };
    const common = { slot: a.slot, publication: a.publication, replicationUser: a.replicationUser };
    if (command === 'check') {
      // Read-only: reports every problem with its fix; exit 4 (replication setup) when there is one.
      const report = await runPreflight(a.pg, {
        ...common,
        decoder: a.decoder,
        tables: a.tables,
        replicaIdentityFull: a.replicaIdentityFull,
        replicatorPg: { ...a.pg, user: a.replicationUser, password: a.replicatorPassword },
        connectRetry,
      });
      for (const line of formatFindings(report.findings)) log(line);
      process.stdout.write(JSON.stringify({ command, ...report }) + '\n');
      return report.ok ? EXIT.ok : EXIT.replicationSetup;
    }
    if (command === 'sql-teardown') {
      const report = await runSqlTeardown(a.pg, {
        ...common,
        replicatorPassword: a.replicatorPassword,
        dropRole: argv.includes('--drop-role'),
        dropSchema: argv.includes('--drop-schema'),
        replicaIdentityFull: a.replicaIdentityFull,
        connectRetry,
      });
      process.stdout.write(JSON.stringify({ command, ...report }) + '\n');
      return EXIT.ok;
    }
    try {
      const report = await runSqlInit(a.pg, {
        ...common,
        decoder: a.decoder,
        replicatorPassword: a.replicatorPassword,
        tables: a.tables,
        replicaIdentityFull: a.replicaIdentityFull,
        connectRetry,
      });
      process.stdout.write(JSON.stringify({ command, ...report }) + '\n');
      return EXIT.ok;
    } catch (e) {
      if (!(e instanceof PreflightError)) throw e;
      process.stdout.write(JSON.stringify({ command, ...e.report }) + '\n');
      process.stderr.write(JSON.stringify({ severity: 'ERROR', error: e.name, message: e.message }) + '\n');
      return EXIT.replicationSetup;
    }
  }
  if (command === 'snapshot') {
    // snapshot [--table schema.table ...] [--restart]: (re)send existing rows, bounded like a run.
    const tables = argv.flatMap((a, i) => (argv[i - 1] === '--table' ? [a] : []));
    const cfg = loadListenerConfig(process.env);
    const summary = await runSnapshot(cfg, {
      tables: tables.length ? tables : undefined,
      restart: argv.includes('--restart'),
      chunkRows: cfg.snapshotChunkRows,
      log,
      alert,
    });
    process.stdout.write(JSON.stringify({ command, ...summary }) + '\n');
    return EXIT.ok;
  }
  if (command === 'verify') {
    // verify --project P --dataset D [--table s.t ...] [--sample N | --full]: compare the replica with the
    // source (verify/); the report is the JSON line, differences are not a failure of the job. Loaded only
    // here: a listener run does not carry the BigQuery client.
    const { runVerifyJob } = await import('../verify/job');
    const report = await runVerifyJob(argv.slice(1), process.env, log);
    process.stdout.write(JSON.stringify({ command, verify: report }) + '\n');
    return EXIT.ok;
  }
  if (command !== 'listen') {
    process.stderr.write(
      `unknown command "${command}": expected "listen", "snapshot", "verify", "sql-init", "sql-teardown" or "check"\n`,
    );
    return EXIT.config;
  }
  const cfg = loadListenerConfig(process.env);
  if (process.env[ENV.mode] !== 'continuous') {
    const summary = await runListenerJob(cfg, { log, alert });
    process.stdout.write(JSON.stringify({ command, ...summary }) + '\n');
    return EXIT.ok;
  }
  // Continuous: bounded runs back to back until SIGTERM, which lets the current run finish and confirm
  // (listener/job.ts runContinuous: a pause when idle, a backoff while a TOAST lookup is blocked); skipped
  // tables are warned about when their set changes (continuousRuns).
  const control = stopControl();
  process.once('SIGTERM', control.stop);
  process.once('SIGINT', control.stop);
  await runContinuous({
    runJob: continuousRuns(cfg, { log, alert }),
    report: (summary) => process.stdout.write(JSON.stringify({ command, ...summary }) + '\n'),
    stopping: control.stopping,
    pause: control.pause,
    log,
  });
  return EXIT.ok;
}

// Only when started as the entry point: the image's build requires this file once to fill Node's compile
// cache (the Dockerfile's warm-up step), which must load every module and run nothing.
if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      const err = e instanceof Error ? e : new Error(String(e));
      // Cloud Logging reads `severity` and `message` from JSON lines on stderr.
      process.stderr.write(
        JSON.stringify({ severity: 'ERROR', error: err.name, message: err.message }) + '\n',
      );
      process.exit(err instanceof ListenerError ? err.exitCode : EXIT.other);
    },
  );
}
