// The SQL init: preflight, then the project's sql/ scripts, each statement its own transaction (a logical
// slot cannot be created in a transaction that has written), collecting the NOTICEs that say what was done.
//
//   sql/1-init_customers.sql  the sample table (only with `sample`: the local stack and the demo)
//   sql/0-init.sql            as the ADMIN: replicator role, grants, schema pgcdc, publications (one transaction)
//   sql/0-init-slot.sql       as the REPLICATOR: the slot (recreated when lost, snapshot progress reset)
//
// The admin is Cloud SQL's `postgres` (a cloudsqlsuperuser member, CREATEROLE, not SUPERUSER, not
// REPLICATION); the replicator is the LOGIN REPLICATION role the listener runs as (BRIEF decision 1).

import { readdirSync, readFileSync } from 'node:fs';
import { resolveInDatabase } from './table-lookup';
import path from 'node:path';
import { Client, ClientConfig } from 'pg';
import { connectWithRetry, ConnectRetryOptions } from './connect';
import { Finding, PreflightError, runPreflight } from './preflight';

export interface SqlInitReport {
  statements: number;
  /** What was done or found, in order (WARNINGs prefixed "WARNING: "). */
  notices: string[];
  /** The preflight's findings (warnings and information; an error stops the init before it changes anything). */
  preflight?: Finding[];
  /** Captured tables without a replica identity: history only. */
  historyOnly?: string[];
}

export interface SqlInitOptions {
  slot: string;
  publication: string;
  decoder: 'wal2json' | 'pgoutput';
  /** The replicator role (created LOGIN REPLICATION); unset only for a superuser test setup (no grants). */
  replicationUser?: string;
  replicatorPassword?: string;
  /** "schema.table" to capture; empty: every table present at init time. */
  tables?: string[];
  /** Captured tables pgcdc may set REPLICA IDENTITY FULL on (PGCDC_REPLICA_IDENTITY_FULL). */
  replicaIdentityFull?: string[];
  /**
   * Also create the sample table public.customers with its rows (the local stack and the demo only; never a
   * user's database): `true` over the admin's connection, or the connection of the role that should own it.
   */
  sample?: boolean | ClientConfig;
  /**
   * The local Cloud-SQL-like mode: the one step PostgreSQL 15 reserves to superusers and Cloud SQL allows
   * cloudsqlsuperuser (creating a REPLICATION role, setting its password) runs over this superuser
   * connection; everything else runs as the non-superuser admin.
   */
  bootstrapSuperuser?: ClientConfig;
  /**
   * Superuser test fixtures that create their tables after the init: publish FOR ALL TABLES, as pgcdc once
   * did. That makes UPDATE/DELETE fail on keyless tables: never set by the CLI or the admin job.
   */
  publishAllTablesForTests?: boolean;
  /** Skip the preflight (tests of the scripts' own guards). */
  skipPreflight?: boolean;
  connectRetry?: ConnectRetryOptions;
}

const SAMPLE_FILE = '1-init_customers.sql';
const ADMIN_FILE = '0-init.sql';
const SLOT_FILE = '0-init-slot.sql';

/** sql/ next to the compiled code (dist/listener/.. /../sql) or next to the sources. */
export function defaultSqlDir(): string {
  for (const dir of [path.resolve(__dirname, '..', '..', 'sql'), path.resolve(__dirname, '..', 'sql')]) {
    try {
      if (readdirSync(dir).some((f) => f.endsWith('.sql'))) return dir;
    } catch {
      /* try the next one */
    }
  }
  throw new Error(`no sql/ directory found near ${__dirname}`);
}

/**
 * Splits a script into statements at semicolons outside quotes, dollar-quoted bodies and comments.
 * Enough for our own scripts (DO blocks, DDL, DML); not a general SQL parser.
 */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let start = 0;
  let i = 0;
  while (i < sql.length) {
    const c = sql[i];
    if (c === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      i = nl === -1 ? sql.length : nl + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end === -1 ? sql.length : end + 2;
    } else if (c === "'" || c === '"') {
      const end = sql.indexOf(c, i + 1);
      i = end === -1 ? sql.length : end + 1;
    } else if (c === '$') {
      const tag = /^\$[A-Za-z_0-9]*\$/.exec(sql.slice(i));
      if (tag) {
        const end = sql.indexOf(tag[0], i + tag[0].length);
        i = end === -1 ? sql.length : end + tag[0].length;
      } else {
        i++;
      }
    } else if (c === ';') {
      out.push(sql.slice(start, i + 1));
      start = i + 1;
      i++;
    } else {
      i++;
    }
  }
  out.push(sql.slice(start));
  return out.filter((s) => stripComments(s).trim().length > 0).map((s) => s.trim());
}

function stripComments(s: string): string {
  return s.replace(/--[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '');
}

/** The session settings sql/0-init.sql and sql/0-init-slot.sql read. */
function scriptSettings(opts: SqlInitOptions, byBootstrap: boolean): Record<string, string> {
  return {
    'pgcdc.slot': opts.slot,
    'pgcdc.publication': opts.publication,
    'pgcdc.decoder': opts.decoder,
    'pgcdc.replication_user': opts.replicationUser ?? '',
    'pgcdc.replicator_password': byBootstrap ? '' : (opts.replicatorPassword ?? ''),
    'pgcdc.replicator_by_bootstrap': byBootstrap ? 'on' : '',
    'pgcdc.tables': (opts.tables ?? []).join(','),
    'pgcdc.replica_identity_full': (opts.replicaIdentityFull ?? []).join(','),
    'pgcdc.publish_all_tables': opts.publishAllTablesForTests ? 'on' : '',
  };
}

async function withSession<T>(
  config: ClientConfig,
  opts: SqlInitOptions,
  notices: string[],
  fn: (client: Client) => Promise<T>,
): Promise<T> {
  const client = await connectWithRetry(config, opts.connectRetry);
  client.on('notice', (n) => {
    const msg = n.message ?? String(n);
    notices.push(n.severity === 'WARNING' ? `WARNING: ${msg}` : msg);
  });
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Runs one sql/ file statement by statement with the given session settings; returns how many ran. */
async function runScript(client: Client, file: string, settings: Record<string, string>): Promise<number> {
  for (const [k, v] of Object.entries(settings))
    await client.query('SELECT set_config($1, $2, false)', [k, v]);
  let n = 0;
  for (const statement of splitStatements(readFileSync(file, 'utf8'))) {
    try {
      await client.query(statement);
    } catch (e) {
      const err = e as Error & { hint?: string };
      throw new Error(
        `${path.basename(file)}: ${err.message}${err.hint ? ` (hint: ${err.hint})` : ''}\n  in: ${statement.slice(0, 200)}`,
        { cause: e },
      );
    }
    n++;
  }
  // The password must not linger in the session (it ends right after, but say it).
  await client.query("SELECT set_config('pgcdc.replicator_password', '', false)");
  return n;
}

/**
 * The local Cloud-SQL-like mode's one superuser step: create the replicator LOGIN REPLICATION, or give an
 * existing one REPLICATION, and set its password. PostgreSQL 15 reserves this to superusers ("must be
 * superuser to create replication users", "must be superuser to alter replication roles"); Cloud SQL lets
 * the cloudsqlsuperuser admin do it (https://cloud.google.com/sql/docs/postgres/users: cloudsqlsuperuser
 * "has some superuser privileges, including: [...] Creating replication users"), which sql/0-init.sql does
 * itself there.
 */
export async function giveReplicatorReplicationAsBootstrapSuperuser(
  superuser: ClientConfig,
  role: string,
  password: string | undefined,
  notices: string[] = [],
): Promise<void> {
  const client = new Client(superuser);
  await client.connect();
  try {
    const ident = client.escapeIdentifier(role);
    const r = await client.query<{ rolreplication: boolean; rolcanlogin: boolean }>(
      'SELECT rolreplication, rolcanlogin FROM pg_roles WHERE rolname = $1',
      [role],
    );
    if (r.rowCount === 0) {
      await client.query(`CREATE ROLE ${ident} LOGIN REPLICATION`);
      notices.push(
        `bootstrap superuser (as Cloud SQL lets cloudsqlsuperuser): created role ${role} (LOGIN REPLICATION)`,
      );
    } else if (!r.rows[0].rolreplication || !r.rows[0].rolcanlogin) {
      await client.query(`ALTER ROLE ${ident} LOGIN REPLICATION`);
      notices.push(
        `bootstrap superuser (as Cloud SQL lets cloudsqlsuperuser): gave role ${role} LOGIN REPLICATION`,
      );
    }
    if (password !== undefined && password !== '')
      await client.query(`ALTER ROLE ${ident} PASSWORD ${client.escapeLiteral(password)}`);
  } finally {
    await client.end();
  }
}

export async function runSqlInit(pgConfig: ClientConfig, opts: SqlInitOptions): Promise<SqlInitReport> {
  const dir = defaultSqlDir();
  const notices: string[] = [];
  let statements = 0;
  if (opts.sample) {
    const samplePg = opts.sample === true ? pgConfig : opts.sample;
    statements += await withSession(samplePg, opts, notices, (c) =>
      runScript(c, path.join(dir, SAMPLE_FILE), {}),
    );
  }
  const replicatorPg: ClientConfig | undefined = opts.replicationUser
    ? { ...pgConfig, user: opts.replicationUser, password: opts.replicatorPassword }
    : undefined;
  let preflight: Finding[] = [];
  let historyOnly: string[] = [];
  if (!opts.skipPreflight) {
    const report = await runPreflight(pgConfig, {
      slot: opts.slot,
      publication: opts.publication,
      decoder: opts.decoder,
      replicationUser: opts.replicationUser,
      tables: opts.tables,
      replicaIdentityFull: opts.replicaIdentityFull,
      bootstrapSuperuser: opts.bootstrapSuperuser !== undefined,
      setsPassword: !!opts.replicatorPassword,
      replicatorPg,
      connectRetry: opts.connectRetry,
    });
    if (!report.ok) throw new PreflightError(report);
    preflight = report.findings;
    historyOnly = report.historyOnly;
  }
  const byBootstrap = opts.bootstrapSuperuser !== undefined && opts.replicationUser !== undefined;
  if (byBootstrap)
    await giveReplicatorReplicationAsBootstrapSuperuser(
      opts.bootstrapSuperuser!,
      opts.replicationUser!,
      opts.replicatorPassword,
      notices,
    );
  let settings: Record<string, string> = {};
  statements += await withSession(pgConfig, opts, notices, async (c) => {
    // The script gets each table by its key, which names it exactly (an entry with upper case in a bare part
    // is resolved here to the table it means: listener/table-lookup.ts).
    const keys = async (list: string[] | undefined, what: string) =>
      (await resolveInDatabase(c, list ?? [], what)).map((t) => t.key);
    settings = scriptSettings(
      {
        ...opts,
        tables: await keys(opts.tables, 'PGCDC_TABLES'),
        replicaIdentityFull: await keys(opts.replicaIdentityFull, 'PGCDC_REPLICA_IDENTITY_FULL'),
      },
      byBootstrap,
    );
    return runScript(c, path.join(dir, ADMIN_FILE), settings);
  });
  // The slot over the replicator's own session: it has REPLICATION, the Cloud SQL admin does not.
  statements += await withSession(replicatorPg ?? pgConfig, opts, notices, (c) =>
    runScript(c, path.join(dir, SLOT_FILE), { ...settings, 'pgcdc.replicator_password': '' }),
  );
  return { statements, notices, preflight, historyOnly };
}
