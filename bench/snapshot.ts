// npm run bench:snapshot — snapshot rows per second (chunks read, packed, published to the Pub/Sub emulator
// and acknowledged) next to `COPY ... TO STDOUT` of the same table into /dev/null, our physical limit.

import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { PubSub } from '@google-cloud/pubsub';
import { Client } from 'pg';
import { runSqlInit } from '../listener/sql-init';
import { runSnapshot } from '../listener/snapshot';
import { BENCH_PROJECT, benchListenerConfig, withBenchStack } from './support';

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);

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
      await db.query('ANALYZE t');
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
      const t0 = process.hrtime.bigint();
      execFileSync(argv[0], [...argv.slice(1), '-d', 'postgres', '-c', 'COPY t TO STDOUT'], {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      const copySeconds = Number(process.hrtime.bigint() - t0) / 1e9;

      for (const chunkRows of [10_000, 50_000]) {
        await db.query('DELETE FROM pgcdc.snapshot_progress');
        const cfg = benchListenerConfig(cluster, 'postgres', 'bench-snapshot', {
          slot: 'bench',
          tables: ['public.t'],
        });
        const s = await runSnapshot(cfg, { tables: ['public.t'], chunkRows });
        console.log(
          `  chunks of ${chunkRows}: pgcdc snapshot ${s.seconds.toFixed(2)} s (${Math.round(s.rows / s.seconds)} rows/s, ` +
            `${s.chunks} chunks, ${s.messages} messages)  COPY TO STDOUT ${copySeconds.toFixed(2)} s ` +
            `(${Math.round(ROWS / copySeconds)} rows/s)  ratio ${(copySeconds / s.seconds).toFixed(2)}`,
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
