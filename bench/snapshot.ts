// npm run bench:snapshot — snapshot rows per second (chunks read, packed, published to the Pub/Sub emulator
// and acknowledged) next to `COPY ... TO STDOUT` of the same table into /dev/null, our physical limit.
// Per run it also prints CPU seconds per million rows of each process, read from /proc (utime + stime of
// /proc/<pid>/stat): this Node process (its main thread, and the rest: zlib on libuv's thread pool, gRPC),
// the Postgres server (postmaster and its children) and the Pub/Sub emulator (its process group). The last
// run publishes uncompressed JSON (PGCDC_ENCODING=json) to show what gzip costs.

import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PubSub } from '@google-cloud/pubsub';
import { Client } from 'pg';
import { runSqlInit } from '../listener/sql-init';
import { runSnapshot } from '../listener/snapshot';
import { DEFAULT_SNAPSHOT_CHUNK_ROWS } from '../listener/config';
import { BENCH_PROJECT, benchListenerConfig, withBenchStack } from './support';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** Fields of a /proc stat file after the command name: [0] is field 3 (state), [1] ppid, [2] pgid. */
function statFields(file: string): string[] {
  const s = readFileSync(file, 'utf8');
  return s.slice(s.lastIndexOf(')') + 2).split(' ');
}
/** utime + stime (fields 14, 15); with `reaped`, also of its waited-for children (cutime, cstime). */
function cpuOf(file: string, reaped = false): number {
  try {
    const f = statFields(file);
    return (Number(f[11]) + Number(f[12]) + (reaped ? Number(f[13]) + Number(f[14]) : 0)) / CLK_TCK;
  } catch {
    return 0; // gone meanwhile
  }
}
function allPids(): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}
function field(pid: number, i: number): number {
  try {
    return Number(statFields(`/proc/${pid}/stat`)[i]);
  } catch {
    return -1;
  }
}

/** CPU seconds so far of the processes a snapshot run keeps busy. */
function cpuProbe(dataDir: string, emulatorHost: string): () => Record<string, number> {
  const postmaster = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const port = `:${emulatorHost.split(':').pop()}`;
  const emulatorGroups = new Set(
    allPids()
      .filter((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(port);
        } catch {
          return false;
        }
      })
      .map((p) => field(p, 2)),
  );
  return () => {
    const pids = allPids();
    const sum = (ps: number[]) => ps.reduce((n, p) => n + cpuOf(`/proc/${p}/stat`), 0);
    const node = process.cpuUsage();
    const nodeMain = cpuOf(`/proc/self/task/${process.pid}/stat`);
    return {
      nodeMain,
      nodeOther: (node.user + node.system) / 1e6 - nodeMain,
      // A backend that exited (the snapshot's own connection) counts in the postmaster's cutime/cstime.
      postgres: cpuOf(`/proc/${postmaster}/stat`, true) + sum(pids.filter((p) => field(p, 1) === postmaster)),
      pubsub: sum(pids.filter((p) => emulatorGroups.has(field(p, 2)))),
    };
  };
}

async function main(): Promise<void> {
  await withBenchStack(async (cluster) => {
    const pubsub = new PubSub({ projectId: BENCH_PROJECT });
    const db = new Client(cluster.connection());
    await db.connect();
    try {
      await db.query('CREATE TABLE t (id int PRIMARY KEY, name text, amount numeric(12,2), at timestamptz)');
      await db.query(
        `INSERT INTO t SELECT g, 'name ' || g, g * 1.5, now() FROM generate_series(1, ${ROWS}) g`,
      );
      // Vacuumed now (visibility map, hint bits) so that autovacuum, which the 1M-row insert would start, does
      // not run during the first measured run (it showed as ~0.7 more Postgres CPU-s per million rows).
      await db.query('VACUUM ANALYZE t');
      await runSqlInit(cluster.connection(), {
        slot: 'bench',
        publication: 'bench_pub',
        decoder: 'wal2json',
      });
      const [topic] = await pubsub.createTopic('bench-snapshot');
      console.log(
        `pgcdc snapshot benchmark — ${ROWS} rows, ${os.cpus().length} cores, node ${process.version}`,
      );

      const asPostgres = process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--'] : [];
      const psql = path.join(cluster.binDir, 'psql');
      const argv = [...asPostgres, psql, '-h', cluster.host, '-p', String(cluster.port), '-U', cluster.user];
      // The physical limit, measured right before each run: on a shared machine the ratio of the same minute
      // is steadier than either time.
      const copyToStdout = () => {
        const t0 = process.hrtime.bigint();
        execFileSync(argv[0], [...argv.slice(1), '-d', 'postgres', '-c', 'COPY t TO STDOUT'], {
          stdio: ['ignore', 'ignore', 'inherit'],
        });
        return Number(process.hrtime.bigint() - t0) / 1e9;
      };
      copyToStdout(); // warms the table's pages and hint bits for every run alike

      const cpu = cpuProbe(cluster.dataDir, process.env.PUBSUB_EMULATOR_HOST ?? '');
      // BENCH_RUNS="10000:json+gzip,100000:json+gzip" picks runs (chunk rows : encoding); the default chunk
      // rows (PGCDC_SNAPSHOT_CHUNK_ROWS) first.
      const runs = (
        process.env.BENCH_RUNS ??
        `${DEFAULT_SNAPSHOT_CHUNK_ROWS}:json+gzip,10000:json+gzip,${DEFAULT_SNAPSHOT_CHUNK_ROWS}:json`
      )
        .split(',')
        .map((r) => {
          const [rows, encoding] = r.split(':');
          if (encoding !== 'json' && encoding !== 'json+gzip')
            throw new Error(`BENCH_RUNS: bad encoding in ${r}`);
          return { chunkRows: Number(rows), encoding: encoding as 'json' | 'json+gzip' };
        });
      for (const { chunkRows, encoding } of runs) {
        await db.query('DELETE FROM pgcdc.snapshot_progress');
        const cfg = benchListenerConfig(cluster, 'postgres', 'bench-snapshot', {
          slot: 'bench',
          tables: ['public.t'],
          encoding,
        });
        const copySeconds = copyToStdout();
        const before = cpu();
        const s = await runSnapshot(cfg, { tables: ['public.t'], chunkRows });
        // The snapshot's backend exits after the run; its CPU reaches the postmaster once it is reaped.
        await new Promise((resolve) => setTimeout(resolve, 300));
        const after = cpu();
        const perM = (k: string) => (((after[k] - before[k]) * 1e6) / s.rows).toFixed(2);
        console.log(
          `  chunks of ${chunkRows}, ${encoding}: pgcdc snapshot ${s.seconds.toFixed(2)} s (${Math.round(s.rows / s.seconds)} rows/s, ` +
            `${s.chunks} chunks, ${s.messages} messages, peak RSS ${s.peakRssMb} MB)  COPY TO STDOUT ${copySeconds.toFixed(2)} s ` +
            `(${Math.round(ROWS / copySeconds)} rows/s)  ratio ${(copySeconds / s.seconds).toFixed(2)}\n` +
            `    CPU s per million rows: node main thread ${perM('nodeMain')}, node other threads (zlib, gRPC) ` +
            `${perM('nodeOther')}, postgres ${perM('postgres')}, pubsub emulator ${perM('pubsub')}`,
        );
      }
      await topic.delete();
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
