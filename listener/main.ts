#!/usr/bin/env node
// Container entry point of the listener job: `node dist/listener/main.js [listen|snapshot|sql-init|verify]`.
// Prints one JSON line (the run's summary, or the SQL init's report) on stdout; errors go to stderr as one
// JSON line too, and the exit code says what kind of failure it was (listener/errors.ts).

import { ENV } from '../contract/env';
import { loadListenerConfig, pgConfigFromEnv } from './config';
import { EXIT, ListenerError } from './errors';
import { runListenerJob } from './job';
import { runSnapshot } from './snapshot';
import { runSqlInit } from './sql-init';

async function main(argv: string[]): Promise<number> {
  const command = argv[0] ?? 'listen';
  const log = (line: string) =>
    process.stderr.write(JSON.stringify({ severity: 'INFO', message: line }) + '\n');
  if (command === 'sql-init') {
    const env = process.env;
    const report = await runSqlInit(pgConfigFromEnv(env), {
      slot: env[ENV.slot] || 'pgcdc_slot',
      publication: env[ENV.publication] || 'pgcdc_pub',
      decoder: env[ENV.decoder] === 'pgoutput' ? 'pgoutput' : 'wal2json',
      replicationUser: env[ENV.replicationUser] || env.PGUSER,
    });
    process.stdout.write(JSON.stringify({ command, ...report }) + '\n');
    return EXIT.ok;
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
      `unknown command "${command}": expected "listen", "snapshot", "sql-init" or "verify"\n`,
    );
    return EXIT.config;
  }
  const cfg = loadListenerConfig(process.env);
  if (process.env[ENV.mode] !== 'continuous') {
    const summary = await runListenerJob(cfg, { log });
    process.stdout.write(JSON.stringify({ command, ...summary }) + '\n');
    return EXIT.ok;
  }
  // Continuous: bounded runs back to back (each confirms what it published), a short pause when idle, until
  // SIGTERM — which lets the current run finish and confirm before exiting.
  let stopping = false;
  process.once('SIGTERM', () => (stopping = true));
  process.once('SIGINT', () => (stopping = true));
  while (!stopping) {
    const summary = await runListenerJob(cfg, { log });
    process.stdout.write(JSON.stringify({ command, ...summary }) + '\n');
    if (summary.changes === 0 && !stopping) await new Promise((r) => setTimeout(r, IDLE_PAUSE_MS));
  }
  return EXIT.ok;
}

/** Pause between runs that found nothing in continuous mode: each run writes a small marker record. */
const IDLE_PAUSE_MS = 1000;

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    const err = e instanceof Error ? e : new Error(String(e));
    // Cloud Logging reads `severity` and `message` from JSON lines on stderr.
    process.stderr.write(JSON.stringify({ severity: 'ERROR', error: err.name, message: err.message }) + '\n');
    process.exit(err instanceof ListenerError ? err.exitCode : EXIT.other);
  },
);
