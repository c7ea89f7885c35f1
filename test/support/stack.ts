// One PostgreSQL cluster and one Pub/Sub emulator for the whole test run, started on first use and stopped
// by mocha's global teardown. Tests isolate themselves with their own database, slot and topic names.

import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import {
  CloudSqlLikeDatabase,
  PostgresCluster,
  prepareCloudSqlLikeDatabase,
  startPostgres,
} from '../../local/postgres';
import { PubSubEmulator, startPubSubEmulator } from '../../local/pubsub-emulator';

let root: string | undefined;
let pg: Promise<PostgresCluster> | undefined;
let pubsub: Promise<PubSubEmulator> | undefined;

function rootDir(): string {
  if (!root) {
    root = mkdtempSync(path.join(os.tmpdir(), 'pgcdc-test-'));
    // initdb runs as the postgres user when we are root: it must be able to enter this directory.
    chmodSync(root, 0o755);
  }
  return root;
}

export function testPostgres(): Promise<PostgresCluster> {
  pg ??= startPostgres({ dir: path.join(rootDir(), 'pg') });
  return pg;
}

export function testPubSub(): Promise<PubSubEmulator> {
  pubsub ??= startPubSubEmulator({ dir: path.join(rootDir(), 'pubsub') });
  return pubsub;
}

let counter = 0;
/** A unique lower-case name for a database, slot, topic... within this test run. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}_${process.pid}_${counter}`.toLowerCase();
}

/** Creates a fresh database in the shared cluster and returns its connection parameters. */
export async function freshDatabase(
  prefix = 'db',
): Promise<{ host: string; port: number; user: string; database: string }> {
  const cluster = await testPostgres();
  const name = uniqueName(prefix);
  const admin = new Client(cluster.connection());
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return cluster.connection(name);
}

/**
 * A fresh database in the Cloud-SQL-like role mode (local/postgres.ts): owned by cloudsqlsuperuser, an admin
 * that is NOSUPERUSER CREATEROLE, the application's tables to be created by the owner role.
 */
export async function freshCloudSqlLikeDatabase(prefix = 'csql'): Promise<CloudSqlLikeDatabase> {
  const db = await freshDatabase(prefix);
  return prepareCloudSqlLikeDatabase(await testPostgres(), db.database);
}

export async function stopTestStack(): Promise<void> {
  const [p, s] = [pg, pubsub];
  pg = pubsub = undefined;
  // A part that failed to start has nothing to stop; its error was reported by the test that wanted it.
  if (s)
    await s.then(
      (emu) => emu.stop(),
      () => undefined,
    );
  if (p)
    await p.then(
      (cluster) => cluster.stop(),
      () => undefined,
    );
  if (root) rmSync(root, { recursive: true, force: true });
  root = undefined;
}
