// `npm run bench:sink [-- EVENTS]`: how fast the sink drains a subscription into BigQuery, on the local
// stack (Google's Pub/Sub emulator, our BigQuery emulator). Publishes EVENTS change events (default 50 000:
// 80% inserts, 15% updates, 5% deletes of a 6-column table, 1000 events a message, gzip), runs one
// bounded sink run in this process with the sink's default configuration, and prints events/s, the sink's
// CPU seconds per million events and bytes/event (Pub/Sub payload, and rows sent to BigQuery).
// The BigQuery emulator runs in its own process (dist/local/bigquery-emulator/main.js), so this process's CPU
// time is the sink's (plus the small publishing phase before, which is not counted). The process runs with the
// sink image's heap options and V8 flags (sink/runtime.ts; it starts itself again with them), since they
// decide what garbage collection costs: `node --cpu-prof dist/bench/sink.js` profiles the sink alone.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PubSub } from '@google-cloud/pubsub';
import { encodeBatch } from '../contract/codec';
import type { ChangeEvent, ColumnInfo } from '../contract/events';
import { changeSeq, formatLsn } from '../contract/lsn';
import { startPubSubEmulator } from '../local/pubsub-emulator';
import { loadSinkConfig } from '../sink/config';
import { SINK_NODE_FLAGS, SINK_NODE_OPTIONS } from '../sink/runtime';
import { runSink } from '../sink/run';
import { writeStats } from '../sink/storage-writer';
import { startBigQueryEmulatorProcess } from './support';

const PROJECT = 'pgcdc-bench';
const PER_MESSAGE = 1000;

const COLUMNS: ColumnInfo[] = [
  { name: 'id', type: 'bigint', oid: 20, key: true },
  { name: 'email', type: 'character varying(255)', oid: 1043, key: false },
  { name: 'balance', type: 'numeric(12,2)', oid: 1700, key: false },
  { name: 'active', type: 'boolean', oid: 16, key: false },
  { name: 'updated_at', type: 'timestamp with time zone', oid: 1184, key: false },
  { name: 'profile', type: 'jsonb', oid: 3802, key: false },
];

/** The workload, a message's worth at a time: `next(n)` gives the next n events. */
function workload(): { next(n: number): ChangeEvent[] } {
  let lsn = 0x16000000n;
  let live = 0;
  let made = 0;
  return { next: (n) => Array.from({ length: n }, () => event(made++)) };
  // Event i of the workload (its op and row id follow from i and the inserts before it).
  function event(i: number): ChangeEvent {
    lsn += 0x80n;
    const r = i % 20;
    const op: ChangeEvent['op'] = live === 0 || r < 16 ? 'c' : r < 19 ? 'u' : 'd';
    const id = String(op === 'c' ? ++live : 1 + (i % live));
    const row = {
      id,
      email: `user${id}@example.com`,
      balance: `${i % 100000}.${String(i % 100).padStart(2, '0')}`,
      active: i % 3 === 0 ? 'f' : 't',
      updated_at: '2024-05-06 07:08:09.123456+00',
      profile: `{"plan": "p${i % 7}", "n": ${i}}`,
    };
    const text = formatLsn(lsn);
    return {
      op,
      key: { id },
      before: op === 'd' ? { id } : null,
      after: op === 'd' ? null : row,
      unchanged: [],
      fromSource: [],
      lsn: text,
      commitLsn: text,
      xid: 1000 + i,
      commitTs: '2024-05-06 07:08:09.123456+00',
      seq: changeSeq(lsn, 0),
    };
  }
}

async function main(): Promise<void> {
  const total = Number(process.argv[2] ?? 50_000);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgcdc-bench-sink-'));
  const ps = await startPubSubEmulator({ dir });
  const bq = await startBigQueryEmulatorProcess();
  try {
    process.env.PUBSUB_EMULATOR_HOST = ps.host;
    process.env.BIGQUERY_EMULATOR_HOST = `http://${bq.restHost}`;
    const pubsub = new PubSub({ projectId: PROJECT, universeDomain: 'googleapis.com', emulatorMode: true });
    const [topic] = await pubsub.createTopic('bench');
    await topic.createSubscription('bench-sink', { ackDeadlineSeconds: 60 });
    // Built a message at a time: the events must not stay in this process's heap while the sink runs (it
    // runs here, under the job's heap cap when started with sink/runtime.ts's flags).
    const gen = workload();
    let payloadBytes = 0;
    for (let i = 0; i < total; i += PER_MESSAGE) {
      const batch = {
        v: 1 as const,
        schema: 'public',
        table: 'accounts',
        columns: COLUMNS,
        events: gen.next(Math.min(PER_MESSAGE, total - i)),
      };
      const { data, attributes } = await encodeBatch(batch, 'json+gzip');
      payloadBytes += data.length;
      await topic.publishMessage({ data, attributes });
    }
    const cpuBefore = process.cpuUsage();
    const started = process.hrtime.bigint();
    // Every event is one history row and one replica row: the time until BigQuery accepted them all is
    // the sink's work (the bounded run then still waits for two empty pulls before it ends).
    let writtenAt: bigint | undefined;
    let cpuAtWritten: NodeJS.CpuUsage | undefined;
    const watch = setInterval(() => {
      if (writtenAt === undefined && writeStats.rows >= 2 * total) {
        writtenAt = process.hrtime.bigint();
        cpuAtWritten = process.cpuUsage(cpuBefore);
      }
    }, 5);
    // The sink's defaults (batch size, …), as the job runs it; only the end-of-run wait is shortened.
    const cfg = loadSinkConfig({
      PGCDC_PROJECT: PROJECT,
      PGCDC_SUBSCRIPTION: `projects/${PROJECT}/subscriptions/bench-sink`,
      PGCDC_DATASET: 'bench',
      PGCDC_MAX_RUN_SECONDS: '600',
      PGCDC_SINK_PULL_WAIT_SECONDS: '5',
      PGCDC_BQ_STORAGE_EMULATOR_HOST: bq.grpcHost,
    });
    const summary = await runSink(cfg, { log: () => undefined });
    clearInterval(watch);
    const cpu = cpuAtWritten ?? process.cpuUsage(cpuBefore);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (summary.events !== total)
      throw new Error(`expected ${total} events, the sink wrote ${summary.events}`);
    const busy = Number((writtenAt ?? process.hrtime.bigint()) - started) / 1e9;
    const result = {
      events: total,
      secondsToWrite: Number(busy.toFixed(2)),
      secondsRun: Number(seconds.toFixed(2)),
      eventsPerSecond: Math.round(total / busy),
      sinkCpuSecondsPerMillionEvents: Number((((cpu.user + cpu.system) / 1e6 / total) * 1e6).toFixed(1)),
      pubsubBytesPerEvent: Number((payloadBytes / total).toFixed(1)),
      bigQueryRows: writeStats.rows,
      bigQueryBytesPerEvent: Number((writeStats.bytes / total).toFixed(1)),
      replicaRows: summary.replicaRows,
      changelogRows: summary.changelogRows,
      // getrusage's ru_maxrss (KB on Linux): the sink's peak, and the publishing phase before it.
      peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    };
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    await bq.stop();
    await ps.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** This script again, as the sink job starts (sink/Dockerfile): its NODE_OPTIONS and V8 flags. */
function asTheJobRuns(): number {
  const r = spawnSync(process.execPath, [...process.execArgv, ...SINK_NODE_FLAGS, ...process.argv.slice(1)], {
    env: { ...process.env, NODE_OPTIONS: SINK_NODE_OPTIONS, PGCDC_BENCH_AS_JOB: '1' },
    stdio: 'inherit',
  });
  return r.status ?? 1;
}

if (process.env.PGCDC_BENCH_AS_JOB !== '1') process.exit(asTheJobRuns());
main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`bench:sink failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
