// What the benchmarks share: a throwaway Postgres cluster and Pub/Sub emulator for one run, and the
// listener configuration they measure (the production defaults, pointed at them).

import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ListenerConfig, loadListenerConfig } from '../listener/config';
import { PostgresCluster, startPostgres } from '../local/postgres';
import { startPubSubEmulator } from '../local/pubsub-emulator';

export const BENCH_PROJECT = 'pgcdc-bench';

export async function withBenchStack<T>(fn: (cluster: PostgresCluster) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgcdc-bench-'));
  chmodSync(dir, 0o755); // initdb runs as the postgres user when we are root
  const cluster = await startPostgres({ dir: path.join(dir, 'pg') });
  const emulator = await startPubSubEmulator({ dir: path.join(dir, 'pubsub') });
  process.env.PUBSUB_EMULATOR_HOST = emulator.host;
  process.env.METADATA_SERVER_DETECTION = 'none';
  try {
    return await fn(cluster);
  } finally {
    await emulator.stop();
    cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The listener's defaults (as a job gets them from an empty environment), for one database and topic. */
export function benchListenerConfig(
  cluster: PostgresCluster,
  database: string,
  topic: string,
  overrides: Partial<ListenerConfig>,
): ListenerConfig {
  const defaults = loadListenerConfig({
    PGCDC_TOPIC: topic,
    PGCDC_PROJECT: BENCH_PROJECT,
    PGCDC_SNAPSHOT: 'off',
  });
  return { ...defaults, pg: cluster.connection(database), maxRunSeconds: 3600, ...overrides };
}
