// A throwaway PostgreSQL cluster for tests, benchmarks and the local stack: its own data directory, its own
// port, wal_level=logical. It never touches the machine's own clusters.
//
// initdb and pg_ctl refuse to run as root, and CI runs as root: there we run them as the `postgres` user on a
// directory it owns.

import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { postgresBinDir, requireWal2json } from './prerequisites';
import { freePort } from './ports';

export interface PostgresCluster {
  host: string;
  port: number;
  /** Superuser; trust authentication on loopback only. */
  user: string;
  dataDir: string;
  binDir: string;
  /** libpq-style connection parameters for `pg` (database defaults to "postgres"). */
  connection(database?: string): { host: string; port: number; user: string; database: string };
  stop(): void;
}

export interface StartPostgresOptions {
  /** Directory for the cluster (created); the data directory is `<dir>/data`. */
  dir: string;
  port?: number;
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string | number>;
}

const SUPERUSER = 'postgres';

function asPostgresUser(): string[] {
  return process.getuid && process.getuid() === 0 ? ['runuser', '-u', 'postgres', '--'] : [];
}

function run(binDir: string, tool: string, args: string[]): string {
  const prefix = asPostgresUser();
  const argv = [...prefix, path.join(binDir, tool), ...args];
  try {
    return execFileSync(argv[0], argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${tool} failed: ${err.stderr || err.stdout || err.message}`, { cause: e });
  }
}

function ownByPostgres(dir: string): void {
  if (asPostgresUser().length === 0) return;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  chownSync(dir, uid, gid);
}

// Settings chosen for a disposable cluster: logical decoding on, enough slots and senders for parallel
// tests, fsync off because the data is thrown away (it does not change what logical decoding sees).
const DEFAULT_SETTINGS: Record<string, string | number> = {
  wal_level: 'logical',
  // The test suite creates a slot per test (and leaves them to the throwaway cluster): room for all of them.
  max_replication_slots: 200,
  max_wal_senders: 100,
  max_connections: 200,
  listen_addresses: '127.0.0.1',
  fsync: 'off',
  full_page_writes: 'off',
  shared_buffers: '256MB',
  max_wal_size: '4GB',
  wal_sender_timeout: '60s',
};

export async function startPostgres(opts: StartPostgresOptions): Promise<PostgresCluster> {
  const binDir = postgresBinDir();
  requireWal2json(binDir);
  const dir = path.resolve(opts.dir);
  mkdirSync(dir, { recursive: true });
  ownByPostgres(dir);
  const dataDir = path.join(dir, 'data');
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    run(binDir, 'initdb', ['-D', dataDir, '-U', SUPERUSER, '-A', 'trust', '-E', 'UTF8', '--no-sync']);
  }
  const port = opts.port ?? (await freePort());
  const settings = { ...DEFAULT_SETTINGS, ...opts.settings, port, unix_socket_directories: dir };
  // Written to a conf file rather than passed as -o flags, so a restarted cluster keeps them.
  const conf = Object.entries(settings)
    .map(([k, v]) => `${k} = '${String(v).replace(/'/g, "''")}'`)
    .join('\n');
  writeFileSync(path.join(dir, 'pgcdc.conf'), conf + '\n');
  ownByPostgres(path.join(dir, 'pgcdc.conf'));
  const mainConf = path.join(dataDir, 'postgresql.conf');
  const include = `include '${path.join(dir, 'pgcdc.conf')}'`;
  if (!readFileSync(mainConf, 'utf8').includes(include)) {
    writeFileSync(mainConf, readFileSync(mainConf, 'utf8') + '\n' + include + '\n');
  }
  run(binDir, 'pg_ctl', ['-D', dataDir, '-l', path.join(dir, 'postgres.log'), '-w', '-t', '60', 'start']);
  const host = '127.0.0.1';
  return {
    host,
    port,
    user: SUPERUSER,
    dataDir,
    binDir,
    connection: (database = 'postgres') => ({ host, port, user: SUPERUSER, database }),
    stop: () => stopPostgres(dataDir, binDir),
  };
}

/** Stop a cluster started by startPostgres (fast shutdown); harmless if it is not running. */
export function stopPostgres(dataDir: string, binDir = postgresBinDir()): void {
  if (!existsSync(path.join(dataDir, 'postmaster.pid'))) return;
  try {
    run(binDir, 'pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', 'stop']);
  } catch (e) {
    if (existsSync(path.join(dataDir, 'postmaster.pid'))) throw e;
  }
}

/**
 * The roles of the Cloud-SQL-like mode (issue 9), as close to Cloud SQL's as PostgreSQL 15 allows:
 * - `cloudsqlsuperuser`: a NOLOGIN group with CREATEROLE and CREATEDB that owns the database, like the
 *   Cloud SQL role of that name (https://cloud.google.com/sql/docs/postgres/users: "The postgres user is part
 *   of the cloudsqlsuperuser role, and has the following attributes (privileges): CREATEROLE, CREATEDB, and
 *   LOGIN. It does not have the SUPERUSER or REPLICATION attributes.");
 * - `admin`: the login pgcdc's SQL init runs as, a member of it — NOSUPERUSER, NOREPLICATION;
 * - `owner`: the application's role, owning the application's tables (the admin is not a member of it).
 * The replicator is created by the SQL init itself.
 */
export const CLOUDSQL_LIKE_ROLES = {
  group: 'cloudsqlsuperuser',
  admin: 'pgcdc_admin',
  owner: 'app_owner',
} as const;

export interface CloudSqlLikeDatabase {
  /** The bootstrap superuser (only for the one step Cloud SQL allows cloudsqlsuperuser; see sql-init.ts). */
  superuser: { host: string; port: number; user: string; database: string };
  admin: { host: string; port: number; user: string; database: string };
  owner: { host: string; port: number; user: string; database: string };
}

/**
 * Makes `database` (which must exist) look like a Cloud SQL database: the roles above (created once per
 * cluster), the database owned by cloudsqlsuperuser, the application owner allowed to create in it.
 */
export async function prepareCloudSqlLikeDatabase(
  cluster: Pick<PostgresCluster, 'connection'>,
  database: string,
): Promise<CloudSqlLikeDatabase> {
  // Loaded here so this module stays free of `pg` for the callers that only start clusters.
  const { Client } = await import('pg');
  const { group, admin, owner } = CLOUDSQL_LIKE_ROLES;
  const su = new Client(cluster.connection(database));
  await su.connect();
  try {
    const exists = async (role: string) =>
      ((await su.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount ?? 0) > 0;
    // Several test processes share no cluster, but one process may prepare many databases at once.
    await su.query('SELECT pg_advisory_lock(7263)');
    try {
      if (!(await exists(group))) await su.query(`CREATE ROLE ${group} NOLOGIN CREATEROLE CREATEDB`);
      if (!(await exists(admin)))
        await su.query(
          `CREATE ROLE ${admin} LOGIN NOSUPERUSER NOREPLICATION CREATEROLE CREATEDB IN ROLE ${group}`,
        );
      if (!(await exists(owner))) await su.query(`CREATE ROLE ${owner} LOGIN NOSUPERUSER NOREPLICATION`);
    } finally {
      await su.query('SELECT pg_advisory_unlock(7263)');
    }
    await su.query(`ALTER DATABASE ${su.escapeIdentifier(database)} OWNER TO ${group}`);
    await su.query(`GRANT CREATE ON DATABASE ${su.escapeIdentifier(database)} TO ${owner}`);
    await su.query(`GRANT CREATE ON SCHEMA public TO ${owner}`);
  } finally {
    await su.end();
  }
  const base = cluster.connection(database);
  return { superuser: base, admin: { ...base, user: admin }, owner: { ...base, user: owner } };
}
