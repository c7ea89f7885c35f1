// `npm run bench:e2e [-- --scale N --latency-seconds S --latency-rate R --decoder D --no-latency --cpu-prof DIR]`:
// the whole pipeline, measured per process, next to its physical limit, in one run on one machine.
// `--decoder` runs one decoder only, `--no-latency` skips the latency phase, `--cpu-prof DIR` writes a V8 CPU
// profile of every Node process (listener, sink, BigQuery emulator) into DIR (open it in Chrome DevTools).
//
// One throwaway Postgres, Google's Pub/Sub emulator (a Java process) and our BigQuery emulator (its own Node
// process, dist/local/bigquery-emulator/main.js). A mixed workload (large and one-row transactions of
// inserts, updates and deletes; one table whose 4 KB values live out of line in TOAST, updated without
// touching them) is written once, behind four slots created beforehand: per decoder one for
// `pg_recvlogical` (writing to /dev/null: what decoding alone costs) and one for pgcdc. Per decoder the
// listener and the sink then run as the jobs do — `node dist/listener/main.js` and `node dist/sink/main.js`
// configured by the environment only (and the images' NODE_OPTIONS, entry-point V8 flags and warmed NODE_COMPILE_CACHE), both
// PGCDC_MODE=continuous — until every change is a row of the
// BigQuery history. Then, per decoder, a steady 500 changes/s stream measures commit-to-replica latency.
//
// Per process, read from /proc while it still runs: CPU = utime + stime of /proc/<pid>/stat (for the
// Pub/Sub emulator, every process of its process group: the gcloud wrapper and the JVM), peak RSS = VmHWM of
// /proc/<pid>/status (for the emulators: since they started, so across phases). Bytes per change: Pub/Sub =
// the payload bytes the listener reports publishing (its summary lines); Storage Write API = the bytes the
// BigQuery emulator process read from its sockets (rchar of /proc/<pid>/io, which also counts the small
// REST calls of the sink and of this bench's polling).

import { execFileSync, spawn, ChildProcess } from 'node:child_process';
import { chmodSync, createWriteStream, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { BigQuery } from '@google-cloud/bigquery';
import { PubSub } from '@google-cloud/pubsub';
import { PassThroughClient } from 'google-auth-library';
import { Client } from 'pg';
import { PostgresCluster, startPostgres } from '../local/postgres';
import { PubSubEmulator, startPubSubEmulator } from '../local/pubsub-emulator';
import { emptyCatalog } from '../listener/catalog';
import { PgOutputDecoder } from '../listener/decoders/pgoutput';
// The listener image's NODE_OPTIONS (listener/Dockerfile; a test keeps the two equal), so its RSS is the job's.
import { LISTENER_NODE_FLAGS, LISTENER_NODE_OPTIONS } from '../listener/runtime';
// Likewise the sink image's (sink/Dockerfile; test/sink/bounded.test.ts keeps the two equal).
import { SINK_NODE_FLAGS, SINK_NODE_OPTIONS } from '../sink/runtime';
import { Wal2JsonDecoder } from '../listener/decoders/wal2json';
import { BigQueryEmulatorProcess, startBigQueryEmulatorProcess } from './support';

const PROJECT = 'pgcdc-bench';
const DECODERS = ['wal2json', 'pgoutput'] as const;
type Decoder = (typeof DECODERS)[number];
const DIST = path.resolve(__dirname, '..');
const LISTENER_MAIN = path.join(DIST, 'listener', 'main.js');
const SINK_MAIN = path.join(DIST, 'sink', 'main.js');
/** The plugin options the listener's decoders send, for pg_recvlogical: taken from the decoders themselves. */
const PLUGIN_OPTIONS: Record<Decoder, Record<string, string>> = {
  wal2json: new Wal2JsonDecoder(emptyCatalog(), []).pluginOptions,
  pgoutput: new PgOutputDecoder(emptyCatalog(), 'bench_pub', []).pluginOptions,
};
const PHASE_TIMEOUT_MS = 240_000;

// ---------------------------------------------------------------------------------------------------------
// /proc readings

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces): [0] is field 3, state. */
function statFields(pid: number): string[] {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return s.slice(s.lastIndexOf(')') + 2).split(' ');
}
/** utime + stime (fields 14 and 15), in seconds. */
function cpuSeconds(pid: number): number {
  const f = statFields(pid);
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}
/** Every live process of a process group (field 5 of stat). */
function groupPids(pgid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (Number(statFields(Number(name))[2]) === pgid) out.push(Number(name));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}
function statusKb(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}
function readChars(pid: number): number {
  return Number(/^rchar:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1] ?? 0);
}

/** A measured process: CPU of its whole group when `group`, peak RSS of its largest member. */
interface Probe {
  cpu(): number;
  peakRssMb(): number;
}
function probe(pid: number, group = false): Probe {
  const pids = () => (group ? groupPids(pid) : [pid]);
  return {
    cpu: () => pids().reduce((s, p) => s + cpuSeconds(p), 0),
    peakRssMb: () => Math.max(...pids().map((p) => statusKb(p, 'VmHWM'))) / 1024,
  };
}

// ---------------------------------------------------------------------------------------------------------
// processes

interface Job {
  child: ChildProcess;
  /** JSON lines the job printed on stdout (its summaries). */
  summaries: Record<string, unknown>[];
  exited: Promise<number>;
}

/** `--cpu-prof DIR`: node flags that make a process write its CPU profile into DIR/<name> when it exits. */
function profileFlags(name: string): string[] {
  const i = process.argv.indexOf('--cpu-prof');
  if (i < 0) return [];
  const dir = process.argv[i + 1];
  if (!dir || dir.startsWith('--')) throw new Error('--cpu-prof needs a directory');
  return ['--cpu-prof', '--cpu-prof-dir', path.resolve(dir, name)];
}

function startJob(main: string, flags: readonly string[], env: Record<string, string>, logFile: string): Job {
  const name = path.basename(logFile, '.log');
  const child = spawn(process.execPath, [...profileFlags(name), ...flags, main], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const summaries: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      summaries.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      /* not a summary */
    }
  });
  child.stderr!.pipe(createWriteStream(logFile));
  const exited = new Promise<number>((resolve) =>
    child.once('exit', (code, sig) => resolve(code ?? (sig ? 128 : 1))),
  );
  return { child, summaries, exited };
}

/** Rejects when any of the jobs exits (they run until stopped): a failed job ends the bench, not a timeout. */
function failWhenExits(jobs: Job[], dir: string, name: string): Promise<never> {
  const p = Promise.race(jobs.map((j) => j.exited)).then((code): never => {
    throw new Error(`a job stopped early (exit ${code}); see ${dir}/${name}-*.log`);
  });
  p.catch(() => undefined); // observed by the caller's race; stopping the jobs later must not be "unhandled"
  return p;
}

async function stopJob(job: Job, name: string): Promise<void> {
  job.child.kill('SIGTERM');
  const killer = setTimeout(() => job.child.kill('SIGKILL'), 60_000);
  const code = await job.exited;
  clearTimeout(killer);
  if (code !== 0) throw new Error(`${name} exited with code ${code}`);
}

// ---------------------------------------------------------------------------------------------------------
// workload

interface Workload {
  sql: string[];
  changes: number;
  /** Rows each table must hold afterwards (the replica's row count). */
  rows: Record<string, number>;
}

function workload(scale: number): Workload {
  const n = (x: number) => Math.round(x * scale);
  const [ins, upd, del, small, toast, toastSmall, toastDel] = [
    n(100_000),
    n(50_000),
    n(10_000),
    n(2_000),
    n(2_000),
    n(500),
    n(200),
  ];
  // Correlated with the outer row, so it is computed per row: 128 × 32 hex digits = 4 KB.
  const doc = "(SELECT string_agg(md5(random()::text || g || x), '') FROM generate_series(1, 128) x)";
  return {
    sql: [
      // large transactions
      `INSERT INTO bench_rows SELECT g, 'name ' || g, g * 1.5, now() FROM generate_series(1, ${ins}) g`,
      `UPDATE bench_rows SET name = name || ' updated', amount = amount + 1 WHERE id <= ${upd}`,
      `DELETE FROM bench_rows WHERE id > ${ins - del}`,
      // one-row transactions: an insert, an update and a delete each
      `DO $$ BEGIN FOR i IN 1..${small} LOOP
         INSERT INTO bench_rows VALUES (${ins} + i, 'small ' || i, i, now()); COMMIT;
         UPDATE bench_rows SET amount = amount + 2 WHERE id = i; COMMIT;
         DELETE FROM bench_rows WHERE id = ${ins - del - small} + i; COMMIT;
       END LOOP; END $$`,
      // TOAST: 4 KB values stored out of line, then updates that leave them unchanged
      `INSERT INTO bench_toast SELECT g, 0, ${doc} FROM generate_series(1, ${toast}) g`,
      'UPDATE bench_toast SET counter = counter + 1',
      `DO $$ BEGIN FOR i IN 1..${toastSmall} LOOP UPDATE bench_toast SET counter = counter + 1 WHERE id = i; COMMIT; END LOOP; END $$`,
      `DELETE FROM bench_toast WHERE id > ${toast - toastDel}`,
    ],
    changes: ins + upd + del + 3 * small + toast + toast + toastSmall + toastDel,
    rows: { bench_rows: ins - del, bench_toast: toast - toastDel },
  };
}

// ---------------------------------------------------------------------------------------------------------

interface Env {
  cluster: PostgresCluster;
  pubsub: PubSubEmulator;
  bq: BigQueryEmulatorProcess;
  dir: string;
}

/** Where the jobs' compile cache is, as the images have it (NODE_COMPILE_CACHE, filled at build time). */
function compileCache(e: Env): string {
  return path.join(e.dir, 'node-compile-cache');
}

/** The images' build step (listener/Dockerfile, sink/Dockerfile): load each entry point once, run nothing. */
function warmCompileCache(e: Env): void {
  // With the flags each job starts with: the cache's folder is named by V8's flag hash, which they change.
  for (const [main, flags] of [
    [LISTENER_MAIN, LISTENER_NODE_FLAGS],
    [SINK_MAIN, SINK_NODE_FLAGS],
  ] as const) {
    execFileSync(process.execPath, [...flags, '-e', `require(${JSON.stringify(main)})`], {
      env: { PATH: process.env.PATH ?? '', NODE_COMPILE_CACHE: compileCache(e) },
    });
  }
}

function listenerEnv(e: Env, decoder: Decoder, slot: string, topic: string): Record<string, string> {
  const pg = e.cluster.connection('bench');
  return {
    PATH: process.env.PATH ?? '',
    NODE_OPTIONS: LISTENER_NODE_OPTIONS,
    NODE_COMPILE_CACHE: compileCache(e),
    PGHOST: pg.host,
    PGPORT: String(pg.port),
    PGUSER: pg.user,
    PGDATABASE: pg.database,
    PGSSLMODE: 'disable',
    PGCDC_SLOT: slot,
    PGCDC_PUBLICATION: 'bench_pub',
    PGCDC_DECODER: decoder,
    PGCDC_PROJECT: PROJECT,
    PGCDC_TOPIC: topic,
    PGCDC_SNAPSHOT: 'off',
    PGCDC_MODE: 'continuous',
    PUBSUB_EMULATOR_HOST: e.pubsub.host,
    GOOGLE_CLOUD_PROJECT: PROJECT,
    METADATA_SERVER_DETECTION: 'none',
  };
}

function sinkEnv(e: Env, subscription: string, dataset: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    NODE_OPTIONS: SINK_NODE_OPTIONS,
    NODE_COMPILE_CACHE: compileCache(e),
    PGCDC_PROJECT: PROJECT,
    PGCDC_SUBSCRIPTION: subscription,
    PGCDC_BQ_PROJECT: PROJECT,
    PGCDC_DATASET: dataset,
    PGCDC_MODE: 'continuous',
    BIGQUERY_EMULATOR_HOST: `http://${e.bq.restHost}`,
    PGCDC_BQ_STORAGE_EMULATOR_HOST: e.bq.grpcHost,
    PUBSUB_EMULATOR_HOST: e.pubsub.host,
    GOOGLE_CLOUD_PROJECT: PROJECT,
    METADATA_SERVER_DETECTION: 'none',
  };
}

function recvlogical(cluster: PostgresCluster, slot: string, decoder: Decoder, endpos: string): number {
  const asPostgres = process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--'] : [];
  const argv = [
    ...asPostgres,
    path.join(cluster.binDir, 'pg_recvlogical'),
    ...['-h', cluster.host, '-p', String(cluster.port), '-U', cluster.user, '-d', 'bench'],
    ...['--slot', slot, '--start', '--endpos', endpos, '--no-loop', '-f', '/dev/null'],
    ...Object.entries(PLUGIN_OPTIONS[decoder]).flatMap(([k, v]) => ['-o', `${k}=${v}`]),
  ];
  const t0 = performance.now();
  execFileSync(argv[0]!, argv.slice(1), { stdio: 'inherit' });
  return (performance.now() - t0) / 1000;
}

async function count(bq: BigQuery, dataset: string, table: string): Promise<number> {
  const [rows] = await bq.query({ query: `SELECT COUNT(*) AS n FROM \`${PROJECT}.${dataset}.${table}\`` });
  return Number((rows[0] as { n: number | string }).n);
}
/** COUNT(*) of a table the sink may not have created yet (0 then). */
async function countOrZero(bq: BigQuery, dataset: string, table: string): Promise<number> {
  try {
    return await count(bq, dataset, table);
  } catch (err) {
    if (/not found/i.test((err as Error).message)) return 0;
    throw err;
  }
}

async function until(what: string, check: () => Promise<boolean>, everyMs: number): Promise<void> {
  const deadline = Date.now() + PHASE_TIMEOUT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Topic, ordered subscription (shared decision 5: the stack's is ordered too) and dataset of one phase. */
async function messaging(ps: PubSub, bq: BigQuery, name: string): Promise<void> {
  const [topic] = await ps.createTopic(name);
  await topic.createSubscription(`${name}-sink`, { ackDeadlineSeconds: 60, enableMessageOrdering: true });
  await bq.createDataset(name.replace(/-/g, '_'));
}

interface ThroughputRow {
  decoder: Decoder;
  recvSeconds: number;
  pipelineSeconds: number;
  cpu: Record<string, number>;
  rssMb: Record<string, number>;
  pubsubBytes: number;
  writeApiBytes: number;
  replicaOk: boolean;
}

async function throughput(
  e: Env,
  ps: PubSub,
  bq: BigQuery,
  decoder: Decoder,
  w: Workload,
  endLsn: string,
): Promise<ThroughputRow> {
  const recvSeconds = recvlogical(e.cluster, `recv_${decoder}`, decoder, endLsn);
  const name = `e2e-${decoder}`;
  const dataset = name.replace(/-/g, '_');
  await messaging(ps, bq, name);
  const emulators = { pubsub: probe(e.pubsub.pid, true), bigquery: probe(e.bq.child.pid!) };
  const cpu0 = { pubsub: emulators.pubsub.cpu(), bigquery: emulators.bigquery.cpu() };
  const rchar0 = readChars(e.bq.child.pid!);
  const t0 = performance.now();
  const sink = startJob(
    SINK_MAIN,
    SINK_NODE_FLAGS,
    sinkEnv(e, `${name}-sink`, dataset),
    path.join(e.dir, `${name}-sink.log`),
  );
  const listener = startJob(
    LISTENER_MAIN,
    LISTENER_NODE_FLAGS,
    listenerEnv(e, decoder, `pgcdc_${decoder}`, name),
    path.join(e.dir, `${name}-listener.log`),
  );
  const jobs = { listener: probe(listener.child.pid!), sink: probe(sink.child.pid!) };
  const died = failWhenExits([listener, sink], e.dir, name);
  await Promise.race([
    died,
    until(
      `${w.changes} changes in the BigQuery history (${decoder})`,
      async () =>
        (await countOrZero(bq, dataset, 'bench_rows_changes')) +
          (await countOrZero(bq, dataset, 'bench_toast_changes')) >=
        w.changes,
      200,
    ),
  ]);
  const pipelineSeconds = (performance.now() - t0) / 1000;
  const cpu = {
    listener: jobs.listener.cpu(),
    sink: jobs.sink.cpu(),
    pubsub: emulators.pubsub.cpu() - cpu0.pubsub,
    bigquery: emulators.bigquery.cpu() - cpu0.bigquery,
  };
  const rssMb = {
    listener: jobs.listener.peakRssMb(),
    sink: jobs.sink.peakRssMb(),
    pubsub: emulators.pubsub.peakRssMb(),
    bigquery: emulators.bigquery.peakRssMb(),
  };
  const writeApiBytes = readChars(e.bq.child.pid!) - rchar0;
  await stopJob(listener, `${decoder} listener`);
  await stopJob(sink, `${decoder} sink`);
  const pubsubBytes = listener.summaries.reduce((s, x) => s + (Number(x.bytes) || 0), 0);
  let replicaOk = true;
  for (const [table, rows] of Object.entries(w.rows))
    replicaOk &&= (await count(bq, dataset, table)) === rows;
  await forget(ps, bq, name);
  return { decoder, recvSeconds, pipelineSeconds, cpu, rssMb, pubsubBytes, writeApiBytes, replicaOk };
}

/**
 * Drops a phase's topic, subscription and dataset once it is measured, so the next phase starts from the same
 * emulator state: our BigQuery emulator keeps every table in its heap, and a second decoder's phase run after the
 * first one's 170,700 changes (twice: history and replica) paid for them in garbage collection (pgoutput measured
 * 28–29k changes/s after wal2json's phase, 31–34k alone, same machine and hour).
 */
async function forget(ps: PubSub, bq: BigQuery, name: string): Promise<void> {
  await ps.subscription(`${name}-sink`).delete();
  await ps.topic(name).delete();
  await bq.dataset(name.replace(/-/g, '_')).delete({ force: true });
}

interface LatencyRow {
  decoder: Decoder;
  changes: number;
  rate: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * Steady `rate` changes/s (20 transactions a second: 25 inserts every 50 ms at 500/s) for `seconds`, both jobs
 * continuous; a change's latency is from its COMMIT returning to this process seeing its row in the
 * replica (polled every 50 ms, so up to ~50 ms plus one query of it is the measuring, not the pipeline).
 */
async function latency(
  e: Env,
  ps: PubSub,
  bq: BigQuery,
  db: Client,
  decoder: Decoder,
  rate: number,
  seconds: number,
  idBase: number,
): Promise<LatencyRow> {
  const name = `lat-${decoder}`;
  const dataset = name.replace(/-/g, '_');
  await db.query(`SELECT pg_create_logical_replication_slot('lat_${decoder}', '${decoder}')`);
  await messaging(ps, bq, name);
  const sink = startJob(
    SINK_MAIN,
    SINK_NODE_FLAGS,
    sinkEnv(e, `${name}-sink`, dataset),
    path.join(e.dir, `${name}-sink.log`),
  );
  const listener = startJob(
    LISTENER_MAIN,
    LISTENER_NODE_FLAGS,
    listenerEnv(e, decoder, `lat_${decoder}`, name),
    path.join(e.dir, `${name}-listener.log`),
  );
  const table = `\`${PROJECT}.${dataset}.bench_latency\``;
  let seenUpTo = idBase;
  const committedAt = new Map<number, number>();
  const latencies: number[] = [];
  const poll = async (): Promise<void> => {
    let rows: { id: number | string }[];
    try {
      const [r] = await bq.query({
        query: `SELECT * FROM ${table} WHERE id > @last`,
        params: { last: seenUpTo },
      });
      rows = r as { id: number | string }[];
    } catch (err) {
      if (/not found/i.test((err as Error).message)) return; // the sink has not created the table yet
      throw err;
    }
    const now = performance.now();
    for (const r of rows) {
      const id = Number(r.id);
      const at = committedAt.get(id);
      if (at !== undefined) latencies.push(now - at);
      seenUpTo = Math.max(seenUpTo, id);
    }
  };
  // Warm-up: one row through the whole pipeline (tables created, clients connected) before measuring.
  await db.query('INSERT INTO bench_latency VALUES ($1, now())', [idBase]);
  const died = failWhenExits([listener, sink], e.dir, name);
  await Promise.race([
    died,
    until(
      `the first row (${decoder})`,
      async () => (await countOrZero(bq, dataset, 'bench_latency')) > 0,
      100,
    ),
  ]);
  const perTxn = Math.max(1, Math.round(rate / 20)); // 20 transactions a second
  const periodMs = (1000 * perTxn) / rate;
  const txns = Math.round((seconds * 1000) / periodMs);
  let polling = true;
  const poller = (async () => {
    while (polling) {
      await poll();
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const start = performance.now();
  let id = idBase;
  for (let t = 0; t < txns; t++) {
    const due = start + t * periodMs;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const ids = Array.from({ length: perTxn }, () => ++id);
    await db.query(`INSERT INTO bench_latency SELECT g, now() FROM unnest($1::bigint[]) g`, [ids]);
    const at = performance.now();
    for (const i of ids) committedAt.set(i, at);
  }
  const achieved = (id - idBase) / ((performance.now() - start) / 1000);
  await Promise.race([
    died,
    until(`every latency row in the replica (${decoder})`, async () => latencies.length >= id - idBase, 100),
  ]);
  polling = false;
  await poller;

  await stopJob(listener, `${decoder} listener (latency)`);
  await stopJob(sink, `${decoder} sink (latency)`);
  await forget(ps, bq, name);
  const sorted = latencies.sort((a, b) => a - b);
  return {
    decoder,
    changes: id - idBase,
    rate: achieved,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1]!,
  };
}

function decoders(): readonly Decoder[] {
  const i = process.argv.indexOf('--decoder');
  if (i < 0) return DECODERS;
  const d = process.argv[i + 1];
  if (!(DECODERS as readonly string[]).includes(d ?? ''))
    throw new Error(`--decoder needs one of ${DECODERS.join(', ')}`);
  return [d as Decoder];
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} needs a positive number`);
  return v;
}

async function main(): Promise<void> {
  const scale = arg('scale', 1);
  const latencySeconds = arg('latency-seconds', 20);
  const latencyRate = arg('latency-rate', 500);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgcdc-bench-e2e-'));
  chmodSync(dir, 0o755); // initdb runs as the postgres user when we are root
  const cluster = await startPostgres({ dir: path.join(dir, 'pg') });
  let pubsub: PubSubEmulator | undefined;
  let bqEmu: Env['bq'] | undefined;
  try {
    pubsub = await startPubSubEmulator({ dir: path.join(dir, 'pubsub') });
    bqEmu = await startBigQueryEmulatorProcess(profileFlags('bigquery-emulator'));
    const e: Env = { cluster, pubsub, bq: bqEmu, dir };
    warmCompileCache(e);
    const ps = new PubSub({
      projectId: PROJECT,
      apiEndpoint: pubsub.host,
      emulatorMode: true,
      clientOptions: { universeDomain: 'googleapis.com' },
    } as ConstructorParameters<typeof PubSub>[0]);
    const bq = new BigQuery({
      projectId: PROJECT,
      apiEndpoint: `http://${bqEmu.restHost}`,
      authClient: new PassThroughClient(),
    });

    const admin = new Client(cluster.connection());
    await admin.connect();
    await admin.query('CREATE DATABASE bench');
    await admin.end();
    const db = new Client(cluster.connection('bench'));
    await db.connect();
    try {
      await db.query(
        'CREATE TABLE bench_rows (id bigint PRIMARY KEY, name text, amount numeric(12,2), at timestamptz)',
      );
      await db.query('CREATE TABLE bench_toast (id int PRIMARY KEY, counter int, doc text)');
      await db.query('ALTER TABLE bench_toast ALTER COLUMN doc SET STORAGE EXTERNAL'); // out of line, uncompressed
      await db.query('CREATE TABLE bench_latency (id bigint PRIMARY KEY, at timestamptz)');
      await db.query('CREATE PUBLICATION bench_pub FOR TABLE bench_rows, bench_toast, bench_latency');
      for (const d of DECODERS)
        for (const who of ['recv', 'pgcdc'])
          await db.query(`SELECT pg_create_logical_replication_slot('${who}_${d}', '${d}')`);
      const w = workload(scale);
      const tw = performance.now();
      for (const s of w.sql) await db.query(s);
      const { rows } = await db.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      console.log(
        `pgcdc end-to-end benchmark — ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), node ${process.version}, ${new Date().toISOString()}`,
      );
      console.log(
        `workload: ${w.changes} changes (large and one-row transactions of inserts/updates/deletes; 4 KB TOAST values) written in ${((performance.now() - tw) / 1000).toFixed(1)} s`,
      );
      const results: ThroughputRow[] = [];
      for (const d of decoders()) results.push(await throughput(e, ps, bq, d, w, rows[0]!.lsn));
      const lat: LatencyRow[] = [];
      if (!process.argv.includes('--no-latency'))
        for (const [i, d] of decoders().entries())
          lat.push(await latency(e, ps, bq, db, d, latencyRate, latencySeconds, i * 1e9));
      printTables(w, results, lat);
    } finally {
      await db.end();
      await ps.close();
    }
  } finally {
    await bqEmu?.stop();
    await pubsub?.stop();
    cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function printTables(w: Workload, rows: ThroughputRow[], lat: LatencyRow[]): void {
  const perM = (s: number) => ((s / w.changes) * 1e6).toFixed(1);
  const line = (cells: string[]) => console.log(`| ${cells.join(' | ')} |`);
  console.log(
    '\nthroughput: backlog of the whole workload, from the listener start to its last change in BigQuery',
  );
  line(['decoder', 'pg_recvlogical', 'pipeline', 'ratio', 'replica = source']);
  line(['---', '---', '---', '---', '---']);
  for (const r of rows)
    line([
      r.decoder,
      `${r.recvSeconds.toFixed(2)} s (${Math.round(w.changes / r.recvSeconds)}/s)`,
      `${r.pipelineSeconds.toFixed(2)} s (${Math.round(w.changes / r.pipelineSeconds)}/s)`,
      (r.recvSeconds / r.pipelineSeconds).toFixed(2),
      r.replicaOk ? 'yes' : 'NO',
    ]);
  console.log(
    '\nCPU seconds per million changes, and peak RSS (VmHWM; emulators: since they started), per process',
  );
  line([
    'decoder',
    'listener',
    'sink',
    'Pub/Sub emulator',
    'BigQuery emulator',
    'Pub/Sub B/change',
    'Write API B/change',
  ]);
  line(['---', '---', '---', '---', '---', '---', '---']);
  for (const r of rows) {
    const c = (k: string) => `${perM(r.cpu[k]!)} s, ${Math.round(r.rssMb[k]!)} MB`;
    line([
      r.decoder,
      c('listener'),
      c('sink'),
      c('pubsub'),
      c('bigquery'),
      (r.pubsubBytes / w.changes).toFixed(1),
      (r.writeApiBytes / w.changes).toFixed(1),
    ]);
  }
  console.log('\ncommit-to-replica latency, both jobs PGCDC_MODE=continuous');
  line(['decoder', 'changes', 'rate', 'p50', 'p95', 'p99', 'max']);
  line(['---', '---', '---', '---', '---', '---', '---']);
  const ms = (x: number) => `${(x / 1000).toFixed(2)} s`;
  for (const l of lat)
    line([
      l.decoder,
      String(l.changes),
      `${Math.round(l.rate)}/s`,
      ms(l.p50),
      ms(l.p95),
      ms(l.p99),
      ms(l.max),
    ]);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
