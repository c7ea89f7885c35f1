// The local stack behind `pgcdc local up/down`: a throwaway PostgreSQL cluster, Google's Pub/Sub emulator
// and our BigQuery emulator, all left running in the background after `up` returns, their endpoints written
// to <dir>/endpoints.json for every later command (and any later process) to read.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
// The Google clients are types here and loaded on first use: `pgcdc status --env local` reads this module
// (endpoints) and must start in well under a second, which loading @google-cloud/pubsub alone exceeds.
import type { BigQuery } from '@google-cloud/bigquery';
import type { PubSub } from '@google-cloud/pubsub';
import { Client } from 'pg';
import { ENV } from '../contract/env';
import { CLOUDSQL_LIKE_ROLES, prepareCloudSqlLikeDatabase, startPostgres, stopPostgres } from './postgres';
import { killGroup, startPubSubEmulator } from './pubsub-emulator';

/** Names of the local stack's resources (the cloud ones come from the Pulumi stack outputs). */
export const LOCAL = {
  project: 'pgcdc-local',
  database: 'pgcdc',
  topic: 'pgcdc-changes',
  subscription: 'pgcdc-sink',
  deadLetterTopic: 'pgcdc-dead-letter',
  deadLetterSubscription: 'pgcdc-dead-letter-sub',
  dataset: 'pgcdc',
  slot: 'pgcdc_slot',
  publication: 'pgcdc_pub',
  /** BRIEF decision 3: pgoutput by default everywhere; `local up --decoder wal2json` for the other. */
  decoder: 'pgoutput',
  /** The replicator role the SQL init creates and the listener logs in as. */
  replicator: 'pgcdc_replicator',
} as const;

export const DEFAULT_LOCAL_DIR = '.local';

export interface LocalEndpoints {
  /** The bootstrap superuser's connection (the application side of the demo, and inspection). */
  pg: { host: string; port: number; user: string; database: string };
  /**
   * The Cloud-SQL-like role mode (local/postgres.ts): the admin the SQL init runs as, the application's table
   * owner, the replicator the listener logs in as. Absent in stacks started before the role split.
   */
  roles?: { admin: string; owner: string; replicator: string };
  /** host:port, the value for PUBSUB_EMULATOR_HOST. */
  pubsubEmulatorHost: string;
  /** http://host:port, the value for BIGQUERY_EMULATOR_HOST (REST, no /bigquery/v2 prefix). */
  bigQueryEmulatorHost: string;
  /** host:port of the emulator's Storage Write API (gRPC, no TLS). */
  bigQueryStorageEmulatorHost: string;
  project: string;
  topic: string;
  subscription: string;
  deadLetterTopic: string;
  deadLetterSubscription: string;
  dataset: string;
  slot: string;
  publication: string;
  decoder: 'wal2json' | 'pgoutput';
  /** Data directory of the Postgres cluster (pg_ctl-managed; its postmaster.pid says whether it runs). */
  pgDataDir: string;
  pids: { pubsub: number; bigquery: number };
  startedAt: string;
}

export class LocalStackNotUpError extends Error {
  readonly hint = 'Run `pgcdc local up` first.';
  constructor(detail: string) {
    super(`the local stack is not up: ${detail}`);
    this.name = 'LocalStackNotUpError';
  }
}

export interface LocalStackOptions {
  /** Directory holding the stack's data, logs and endpoints.json (default .local). */
  dir?: string;
  /** Progress lines ("starting Postgres…"). */
  log?: (line: string) => void;
  /** Output plugin of the local slot (default pgoutput). */
  decoder?: 'wal2json' | 'pgoutput';
}

export function endpointsFile(dir = DEFAULT_LOCAL_DIR): string {
  return path.resolve(dir, 'endpoints.json');
}

/** Whether a process with this id exists (signal 0 checks without sending anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** What is wrong with a recorded stack, or undefined when every process is still there. */
function deadParts(e: LocalEndpoints): string[] {
  const dead: string[] = [];
  if (!existsSync(path.join(e.pgDataDir, 'postmaster.pid'))) dead.push('PostgreSQL');
  if (!alive(e.pids.pubsub)) dead.push('the Pub/Sub emulator');
  if (!alive(e.pids.bigquery)) dead.push('the BigQuery emulator');
  return dead;
}

function readRecorded(dir: string): LocalEndpoints | undefined {
  const file = endpointsFile(dir);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as LocalEndpoints;
  } catch {
    return undefined;
  }
}

/** The running local stack's endpoints; throws LocalStackNotUpError when it was never started or died. */
export function readLocalEndpoints(opts: { dir?: string } = {}): LocalEndpoints {
  const dir = opts.dir ?? DEFAULT_LOCAL_DIR;
  const e = readRecorded(dir);
  if (!e) throw new LocalStackNotUpError(`no ${endpointsFile(dir)}`);
  const dead = deadParts(e);
  if (dead.length > 0)
    throw new LocalStackNotUpError(
      `${dead.join(', ')} no longer running (run \`pgcdc local down\`, then up)`,
    );
  return e;
}

/**
 * The environment the listener and sink read (contract/env.ts names plus libpq's PG* variables), pointing
 * at the local stack. Complete on its own: callers need not merge in process.env.
 */
export function localEnv(e: LocalEndpoints): Record<string, string> {
  return {
    PGHOST: e.pg.host,
    PGPORT: String(e.pg.port),
    // The listener runs as the replicator, with only the grants the SQL init gave it.
    PGUSER: e.roles?.replicator ?? e.pg.user,
    PGDATABASE: e.pg.database,
    PGSSLMODE: 'disable',
    [ENV.slot]: e.slot,
    [ENV.publication]: e.publication,
    [ENV.decoder]: e.decoder,
    [ENV.project]: e.project,
    [ENV.topic]: e.topic,
    [ENV.subscription]: e.subscription,
    [ENV.deadLetterSubscription]: e.deadLetterSubscription,
    [ENV.bigQueryProject]: e.project,
    [ENV.dataset]: e.dataset,
    [ENV.mode]: 'once',
    [ENV.pubsubEmulatorHost]: e.pubsubEmulatorHost,
    [ENV.bigQueryEmulatorHost]: e.bigQueryEmulatorHost,
    [ENV.bigQueryStorageEmulatorHost]: e.bigQueryStorageEmulatorHost,
    GOOGLE_CLOUD_PROJECT: e.project,
    // Nothing local runs on Google Cloud: tell the auth library not to probe for a metadata server (it would
    // wait for the probe to time out and print a warning).
    METADATA_SERVER_DETECTION: 'none',
  };
}

/** Path of the BigQuery emulator's process entry, next to this module in the build output. */
function bigQueryEmulatorMain(): string {
  return path.resolve(__dirname, 'bigquery-emulator', 'main.js');
}

function withScheme(host: string): string {
  return /^https?:\/\//.test(host) ? host : `http://${host}`;
}

function withoutScheme(host: string): string {
  return host.replace(/^https?:\/\//, '');
}

/**
 * Starts the BigQuery emulator detached (its own process group, output to a log file so it survives this
 * process) and waits for the endpoints line it prints once it listens.
 */
async function startBigQueryDetached(
  dir: string,
  timeoutMs = 60_000,
): Promise<{ restHost: string; grpcHost: string; pid: number }> {
  const main = bigQueryEmulatorMain();
  if (!existsSync(main)) throw new Error(`${main} not found: build the project first (npm run build)`);
  const logFile = path.join(dir, 'bigquery.log');
  writeFileSync(logFile, '');
  const out = openSync(logFile, 'a');
  // Port 0: the emulator binds free ports itself and prints them, so no other process can take them between.
  const child = spawn(
    process.execPath,
    [main, '--rest-port', '0', '--grpc-port', '0', '--data-file', path.join(dir, 'bigquery.json')],
    { detached: true, stdio: ['ignore', out, out] },
  );
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start the BigQuery emulator');
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? -1));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const line of readFileSync(logFile, 'utf8').split('\n')) {
      if (!line.trim().startsWith('{')) continue;
      try {
        const parsed = JSON.parse(line) as { restHost?: string; grpcHost?: string };
        if (parsed.restHost && parsed.grpcHost)
          return { restHost: parsed.restHost, grpcHost: parsed.grpcHost, pid };
      } catch {
        /* a partial line: read again */
      }
    }
    if (exited !== null) throw new Error(`the BigQuery emulator exited with code ${exited}; see ${logFile}`);
    if (Date.now() > deadline) {
      await killGroup(pid);
      throw new Error(`the BigQuery emulator printed no endpoints within ${timeoutMs} ms; see ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Creates `database` unless it exists, connected to the cluster's maintenance database. */
async function createDatabase(maintenance: LocalEndpoints['pg'], database: string): Promise<void> {
  const admin = new Client(maintenance);
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (!rowCount) await admin.query(`CREATE DATABASE ${database}`);
  } finally {
    await admin.end();
  }
}

/** A Pub/Sub client for the emulator, without touching process.env. */
export function emulatorPubSub(e: Pick<LocalEndpoints, 'pubsubEmulatorHost' | 'project'>): PubSub {
  // The universe domain given up front spares google-gax asking the (absent) credentials for it, which
  // would probe for the GCE metadata server and print a warning.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { PubSub: PubSubClient } = require('@google-cloud/pubsub') as typeof import('@google-cloud/pubsub');
  return new PubSubClient({
    projectId: e.project,
    apiEndpoint: e.pubsubEmulatorHost,
    emulatorMode: true,
    clientOptions: { universeDomain: 'googleapis.com' },
  } as ConstructorParameters<typeof PubSubClient>[0]);
}

/** A BigQuery client for the emulator's REST endpoint, without touching process.env. */
export function emulatorBigQuery(e: Pick<LocalEndpoints, 'bigQueryEmulatorHost' | 'project'>): BigQuery {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { BigQuery: BigQueryClient } =
    require('@google-cloud/bigquery') as typeof import('@google-cloud/bigquery');
  // A dependency of @google-cloud/bigquery; its PassThroughClient sends no credentials (the emulator wants
  // none, and without it the library probes for the GCE metadata server and warns).
  const { PassThroughClient } = require('google-auth-library') as typeof import('google-auth-library');
  /* eslint-enable @typescript-eslint/no-require-imports */
  return new BigQueryClient({
    projectId: e.project,
    apiEndpoint: e.bigQueryEmulatorHost,
    authClient: new PassThroughClient(),
  });
}

async function createMessaging(e: LocalEndpoints): Promise<void> {
  const pubsub = emulatorPubSub(e);
  try {
    const ensureTopic = async (name: string) => {
      const [exists] = await pubsub.topic(name).exists();
      if (!exists) await pubsub.createTopic(name);
    };
    await ensureTopic(e.topic);
    await ensureTopic(e.deadLetterTopic);
    const ensureSubscription = async (topic: string, name: string, withDeadLetter: boolean) => {
      const [exists] = await pubsub.subscription(name).exists();
      if (exists) return;
      await pubsub.topic(topic).createSubscription(name, {
        // Same shape as the cloud subscription: a minute to ack, poison messages to the dead-letter topic,
        // and each table's messages in publish order (BRIEF decision 5: the listener publishes with the
        // ordering key schema.table; https://cloud.google.com/pubsub/docs/ordering: "To receive the messages
        // in order, you must enable message ordering on the subscription. [...] If message ordering isn't
        // enabled, the subscription receives messages without the expected ordering").
        ackDeadlineSeconds: 60,
        enableMessageOrdering: true,
        ...(withDeadLetter
          ? {
              deadLetterPolicy: {
                deadLetterTopic: `projects/${e.project}/topics/${e.deadLetterTopic}`,
                maxDeliveryAttempts: 5,
              },
            }
          : {}),
      });
    };
    await ensureSubscription(e.deadLetterTopic, e.deadLetterSubscription, false);
    await ensureSubscription(e.topic, e.subscription, true);
  } finally {
    await pubsub.close();
  }
}

async function createDataset(e: LocalEndpoints): Promise<void> {
  const bq = emulatorBigQuery(e);
  const [exists] = await bq.dataset(e.dataset).exists();
  if (!exists) await bq.createDataset(e.dataset);
}

/**
 * Starts the local stack, or returns the one already running in `dir`. Everything it starts is stopped
 * again if a later step fails, so a failed `up` leaves nothing behind.
 */
export async function localUp(
  opts: LocalStackOptions = {},
): Promise<LocalEndpoints & { alreadyUp: boolean }> {
  const dir = path.resolve(opts.dir ?? DEFAULT_LOCAL_DIR);
  const log = opts.log ?? (() => undefined);
  const recorded = readRecorded(dir);
  if (recorded && deadParts(recorded).length === 0) return { ...recorded, alreadyUp: true };
  // Half up (a process died, or an earlier `up` failed midway): stop what is left, then start clean.
  await localDown({ dir });
  mkdirSync(dir, { recursive: true });

  const undo: Array<() => Promise<void> | void> = [];
  try {
    log('starting PostgreSQL');
    const cluster = await startPostgres({ dir: path.join(dir, 'pg') });
    undo.push(() => cluster.stop());
    await createDatabase(cluster.connection('postgres'), LOCAL.database);
    log('preparing the Cloud-SQL-like roles (admin, application owner)');
    await prepareCloudSqlLikeDatabase(cluster, LOCAL.database);

    log('starting the Pub/Sub emulator');
    const pubsub = await startPubSubEmulator({ dir: path.join(dir, 'pubsub'), detached: true });
    undo.push(() => pubsub.stop());

    log('starting the BigQuery emulator');
    const bq = await startBigQueryDetached(dir);
    undo.push(() => killGroup(bq.pid));

    const e: LocalEndpoints = {
      pg: cluster.connection(LOCAL.database),
      roles: {
        admin: CLOUDSQL_LIKE_ROLES.admin,
        owner: CLOUDSQL_LIKE_ROLES.owner,
        replicator: LOCAL.replicator,
      },
      pubsubEmulatorHost: pubsub.host,
      bigQueryEmulatorHost: withScheme(bq.restHost),
      bigQueryStorageEmulatorHost: withoutScheme(bq.grpcHost),
      project: LOCAL.project,
      topic: LOCAL.topic,
      subscription: LOCAL.subscription,
      deadLetterTopic: LOCAL.deadLetterTopic,
      deadLetterSubscription: LOCAL.deadLetterSubscription,
      dataset: LOCAL.dataset,
      slot: LOCAL.slot,
      publication: LOCAL.publication,
      decoder: opts.decoder ?? LOCAL.decoder,
      pgDataDir: cluster.dataDir,
      pids: { pubsub: pubsub.pid, bigquery: bq.pid },
      startedAt: new Date().toISOString(),
    };
    log('creating the topic, subscription and dataset');
    await createMessaging(e);
    await createDataset(e);
    writeFileSync(endpointsFile(dir), JSON.stringify(e, null, 2) + '\n');
    return { ...e, alreadyUp: false };
  } catch (err) {
    for (const step of undo.reverse()) {
      try {
        await step();
      } catch {
        /* keep undoing; the original error matters */
      }
    }
    throw err;
  }
}

/**
 * Stops whatever the local stack in `dir` has running and forgets its endpoints. Idempotent: stopping a
 * stack that is down (or half down) is fine. Data stays in `dir` unless `purge` is set.
 */
export async function localDown(
  opts: LocalStackOptions & { purge?: boolean } = {},
): Promise<{ stopped: string[] }> {
  const dir = path.resolve(opts.dir ?? DEFAULT_LOCAL_DIR);
  const stopped: string[] = [];
  const e = readRecorded(dir);
  if (e) {
    if (alive(e.pids.bigquery)) {
      await killGroup(e.pids.bigquery);
      stopped.push('BigQuery emulator');
    }
    if (alive(e.pids.pubsub)) {
      await killGroup(e.pids.pubsub);
      stopped.push('Pub/Sub emulator');
    }
  }
  // Postgres is found by its data directory, even when endpoints.json was never written (a failed up).
  const dataDir = e?.pgDataDir ?? path.join(dir, 'pg', 'data');
  if (existsSync(path.join(dataDir, 'postmaster.pid'))) {
    stopPostgres(dataDir);
    stopped.push('PostgreSQL');
  }
  rmSync(endpointsFile(dir), { force: true });
  if (opts.purge) rmSync(dir, { recursive: true, force: true });
  return { stopped };
}
