// What the benchmarks share: a throwaway Postgres cluster and Pub/Sub emulator for one run, and the
// listener configuration they measure (the production defaults, pointed at them).

import { ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
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

export interface BigQueryEmulatorProcess {
  restHost: string;
  grpcHost: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Our BigQuery emulator in its own Node process (dist/local/bigquery-emulator/main.js), so its CPU is measured
 * apart from the sink's; `nodeFlags` go before the script (e.g. --cpu-prof). Resolves once it prints its
 * endpoints.
 */
export async function startBigQueryEmulatorProcess(
  nodeFlags: string[] = [],
): Promise<BigQueryEmulatorProcess> {
  const main = path.resolve(__dirname, '..', 'local', 'bigquery-emulator', 'main.js');
  const child = spawn(process.execPath, [...nodeFlags, main, '--rest-port', '0', '--grpc-port', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  };
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    try {
      const e = JSON.parse(line) as { restHost?: string; grpcHost?: string };
      if (e.restHost && e.grpcHost) {
        lines.removeAllListeners();
        child.stdout!.resume();
        return { restHost: e.restHost, grpcHost: e.grpcHost, child, stop };
      }
    } catch {
      /* not the endpoints line */
    }
  }
  throw new Error('the BigQuery emulator exited before printing its endpoints');
}
