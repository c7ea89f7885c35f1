// npm run bench:listener — the listener against pg_recvlogical, our physical limit, on identical slots.
//
// For each workload, slots are created before the changes, so pg_recvlogical (writing to /dev/null) and the
// listener (publishing to the Pub/Sub emulator and waiting for every acknowledgement) decode the same WAL.
// Both run with the same output-plugin options. Prints one line per measurement and the ratio, and the
// listener's own CPU seconds per million changes (this process: decoding, packing, gzip, the Pub/Sub client),
// a steadier number than wall time on a shared machine.
// `--decoder wal2json|pgoutput` measures one decoder only. `--trials N` (default 3) measures each pair N times
// on slots of its own, alternating which of the two reads first, and prints every trial and the median
// ratio: on a 2-core machine one pair's ratio moves by ±0.1 with what else runs (pg_recvlogical alone took
// 4.5–5.6 s for the same WAL in one session), so one pair is not a measurement.

import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { PubSub } from '@google-cloud/pubsub';
import { Client } from 'pg';
import { emptyCatalog } from '../listener/catalog';
import { DecoderName } from '../listener/config';
import { PgOutputDecoder } from '../listener/decoders/pgoutput';
import { Wal2JsonDecoder } from '../listener/decoders/wal2json';
import { runListener } from '../listener/run';
import { PostgresCluster } from '../local/postgres';
import { BENCH_PROJECT, benchListenerConfig, withBenchStack } from './support';
const ALL_DECODERS: DecoderName[] = ['wal2json', 'pgoutput'];

function decodersFromArgs(argv: string[]): DecoderName[] {
  const i = argv.indexOf('--decoder');
  if (i < 0) return ALL_DECODERS;
  const d = argv[i + 1] as DecoderName;
  if (!ALL_DECODERS.includes(d)) throw new Error(`--decoder takes one of ${ALL_DECODERS.join(', ')}`);
  return [d];
}

const DECODERS = decodersFromArgs(process.argv.slice(2));

function trialsFromArgs(argv: string[]): number {
  const i = argv.indexOf('--trials');
  if (i < 0) return 3;
  const n = Number(argv[i + 1]);
  if (!Number.isInteger(n) || n < 1 || n > 20) throw new Error('--trials takes a whole number from 1 to 20');
  return n;
}

const TRIALS = trialsFromArgs(process.argv.slice(2));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

interface Workload {
  name: string;
  changes: number;
  sql: string[];
}

const WORKLOADS: Workload[] = [
  {
    name: '500k inserts + 250k updates + 50k deletes, 3 transactions',
    changes: 800_000,
    sql: [
      "INSERT INTO bench SELECT g, 'name ' || g, g * 1.5, now() FROM generate_series(1, 500000) g",
      "UPDATE bench SET name = name || ' updated', amount = amount + 1 WHERE id <= 250000",
      'DELETE FROM bench WHERE id > 450000',
    ],
  },
  {
    name: '100k one-row transactions',
    changes: 100_000,
    sql: [
      "DO $$ BEGIN FOR i IN 1..100000 LOOP INSERT INTO bench VALUES (1000000 + i, 'row ' || i, i, now()); COMMIT; END LOOP; END $$",
    ],
  },
];

function pluginArgs(decoder: DecoderName): string[] {
  const d =
    decoder === 'wal2json'
      ? new Wal2JsonDecoder(emptyCatalog(), [])
      : new PgOutputDecoder(emptyCatalog(), 'bench_pub', []);
  return Object.entries(d.pluginOptions).flatMap(([k, v]) => ['-o', `${k}=${v}`]);
}

async function query(c: Client, sql: string): Promise<Record<string, string>[]> {
  return (await c.query(sql)).rows as Record<string, string>[];
}

function recvlogical(cluster: PostgresCluster, slot: string, decoder: DecoderName, endpos: string): number {
  const t0 = process.hrtime.bigint();
  const asPostgres = process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--'] : [];
  const argv = [
    ...asPostgres,
    path.join(cluster.binDir, 'pg_recvlogical'),
    '-h',
    cluster.host,
    '-p',
    String(cluster.port),
    '-U',
    cluster.user,
    '-d',
    'bench',
    '--slot',
    slot,
    '--start',
    '--endpos',
    endpos,
    '--no-loop',
    '-f',
    '/dev/null',
    ...pluginArgs(decoder),
  ];
  execFileSync(argv[0], argv.slice(1), { stdio: 'inherit' });
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function main(): Promise<void> {
  await withBenchStack(async (cluster) => {
    const admin = new Client(cluster.connection());
    await admin.connect();
    await admin.query('CREATE DATABASE bench');
    await admin.end();
    const db = new Client(cluster.connection('bench'));
    await db.connect();
    const pubsub = new PubSub({ projectId: BENCH_PROJECT });
    console.log(`pgcdc listener benchmark — ${os.cpus().length} cores, node ${process.version}`);
    try {
      await query(db, 'CREATE PUBLICATION bench_pub FOR ALL TABLES');
      await query(
        db,
        'CREATE TABLE bench (id int PRIMARY KEY, name text, amount numeric(12,2), at timestamptz)',
      );
      for (const [w, workload] of WORKLOADS.entries()) {
        for (const decoder of DECODERS) {
          for (let trial = 0; trial < TRIALS; trial++) {
            for (const who of ['recv', 'pgcdc']) {
              await query(
                db,
                `SELECT pg_create_logical_replication_slot('${who}_${decoder}_${w}_${trial}', '${decoder}')`,
              );
            }
          }
        }
        const t0 = Date.now();
        for (const s of workload.sql) await query(db, s);
        const [{ lsn }] = await query(db, 'SELECT pg_current_wal_lsn()::text AS lsn');
        console.log(
          `\n${workload.name}: ${workload.changes} changes written in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
        );
        for (const decoder of DECODERS) {
          const ratios: number[] = [];
          for (let trial = 0; trial < TRIALS; trial++) {
            const slot = (who: string) => `${who}_${decoder}_${w}_${trial}`;
            const recvFirst = trial % 2 === 0;
            let recvSeconds = recvFirst ? recvlogical(cluster, slot('recv'), decoder, lsn) : 0;
            const topicName = `bench-${decoder}-${w}-${trial}`;
            const [topic] = await pubsub.createTopic(topicName);
            const cfg = benchListenerConfig(cluster, 'bench', topicName, {
              slot: slot('pgcdc'),
              publication: 'bench_pub',
              decoder,
            });
            const cpu0 = process.cpuUsage();
            const s = await runListener(cfg);
            const cpu = process.cpuUsage(cpu0);
            await topic.delete();
            if (!recvFirst) recvSeconds = recvlogical(cluster, slot('recv'), decoder, lsn);
            const cpuPerMillion = ((cpu.user + cpu.system) / 1e6 / s.changes) * 1e6;
            const recvRate = workload.changes / recvSeconds;
            const ourRate = s.changes / s.seconds;
            ratios.push(ourRate / recvRate);
            console.log(
              `  ${decoder.padEnd(8)}  pg_recvlogical ${recvSeconds.toFixed(2)} s (${Math.round(recvRate)}/s)` +
                `  pgcdc ${s.seconds.toFixed(2)} s (${Math.round(ourRate)}/s, ${s.messages} messages, ` +
                `${(s.bytes / s.changes).toFixed(1)} B/change, peak RSS ${s.peakRssMb} MB, ` +
                `${cpuPerMillion.toFixed(1)} CPU-s/M changes)` +
                `  ratio ${(ourRate / recvRate).toFixed(2)}  (trial ${trial + 1}, ${recvFirst ? 'pg_recvlogical' : 'pgcdc'} first)`,
            );
            if (s.changes !== workload.changes)
              throw new Error(`pgcdc read ${s.changes} changes, expected ${workload.changes}`);
          }
          console.log(
            `  ${decoder.padEnd(8)}  median ratio ${median(ratios).toFixed(2)} of ${TRIALS} ` +
              `(${ratios.map((r) => r.toFixed(2)).join(', ')})`,
          );
        }
      }
    } finally {
      await db.end();
      await pubsub.close();
    }
  });
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
