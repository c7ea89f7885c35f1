// Preflight: everything the SQL init and the listener need from the database, checked before anything is
// changed, every problem reported at once with its fix. Used by `pgcdc sql init` (which stops on an error)
// and by the read-only `pgcdc check`.
//
// Read-only: catalog and settings queries only. The one exception is proving that the wal2json plugin is
// installed on a self-managed server (PostgreSQL lists no output plugins; pg_available_extensions does not
// know wal2json, and looking at the library directory needs superuser functions): then a TEMPORARY slot is
// created and dropped on the spot by a session with REPLICATION, under a statement timeout. A temporary slot
// lives only as long as its session, so nothing is left behind even if the check is killed.

import { Client, ClientConfig } from 'pg';
import { tableKey } from '../contract/table-name';
import { resolveInDatabase } from './table-lookup';
import { connectWithRetry, ConnectRetryOptions } from './connect';

export type Severity = 'error' | 'warning' | 'info';

export interface Finding {
  severity: Severity;
  /** Short name of what was checked: "wal_level", "slots", "table public.x"... */
  check: string;
  message: string;
  /** What to do about it (errors and warnings). */
  fix?: string;
}

export interface PreflightOptions {
  slot: string;
  publication: string;
  decoder: 'wal2json' | 'pgoutput';
  replicationUser?: string;
  /** "schema.table" names; empty = every table (see sql/0-init.sql). */
  tables?: string[];
  replicaIdentityFull?: string[];
  /** The local Cloud-SQL-like mode gives the replicator REPLICATION through the bootstrap superuser. */
  bootstrapSuperuser?: boolean;
  /** Whether the init is to set the replicator's password (PGCDC_REPLICATOR_PASSWORD given). */
  setsPassword?: boolean;
  /** A replicator session for the wal2json probe when the admin has no REPLICATION (optional). */
  replicatorPg?: ClientConfig;
  connectRetry?: ConnectRetryOptions;
}

export interface PreflightReport {
  ok: boolean;
  cloudSql: boolean;
  serverVersion: string;
  findings: Finding[];
  /** Captured tables that will only have a history (no identity: no replica, or inserts only). */
  historyOnly: string[];
}

/** "ERROR  wal_level: ... Fix: ..." lines, errors first. */
export function formatFindings(findings: Finding[]): string[] {
  const order: Record<Severity, number> = { error: 0, warning: 1, info: 2 };
  return [...findings]
    .sort((a, b) => order[a.severity] - order[b.severity])
    .map(
      (f) =>
        `${f.severity.toUpperCase().padEnd(7)} ${f.check}: ${f.message}${f.fix ? `\n        fix: ${f.fix}` : ''}`,
    );
}

export class PreflightError extends Error {
  constructor(readonly report: PreflightReport) {
    const errors = report.findings.filter((f) => f.severity === 'error');
    super(
      `the database is not ready for pgcdc (${errors.length} problem${errors.length === 1 ? '' : 's'}); nothing was changed:\n` +
        formatFindings(errors).join('\n'),
    );
    this.name = 'PreflightError';
  }
}

// https://cloud.google.com/datastream/docs/configure-cloudsql-psql: "Choose the cloudsql.logical_decoding flag
// [...] Set the flag value to on. [...] You'll need to restart your instance to update your instance with the
// changes." (also https://cloud.google.com/sql/docs/postgres/replication/configure-logical-replication).
const CLOUDSQL_FLAG_FIX =
  'gcloud sql instances patch INSTANCE --database-flags=cloudsql.logical_decoding=on ' +
  "(this RESTARTS the instance; --database-flags replaces the instance's whole flag list, so repeat the flags it " +
  'already has). pgcdc never changes it for you.';

interface TableRow {
  oid: number;
  /** Its key (contract/table-name.ts tableKey), set from schema and rel once read. */
  name: string;
  schema: string;
  rel: string;
  relkind: string;
  persistence: string;
  owner: string;
  owner_super: boolean;
  has_identity: boolean;
}

const TABLE_COLUMNS = `c.oid::int AS oid, n.nspname AS schema, c.relname AS rel, c.relkind::text AS relkind,
  c.relpersistence::text AS persistence, r.rolname AS owner, r.rolsuper AS owner_super,
  (SELECT bool_and(l.relreplident = 'f'
            OR (l.relreplident = 'd' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = l.oid AND i.indisprimary))
            OR (l.relreplident = 'i' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = l.oid AND i.indisreplident)))
     FROM pg_class l WHERE l.oid = c.oid OR (l.relkind = 'r' AND l.oid IN (SELECT relid FROM pg_partition_tree(c.oid) WHERE isleaf))
  ) AS has_identity`;

async function settings(client: Client): Promise<Map<string, string>> {
  const r = await client.query<{ name: string; setting: string }>(
    `SELECT name, setting FROM pg_settings
      WHERE name IN ('wal_level', 'max_replication_slots', 'max_wal_senders', 'server_version_num', 'server_version')
         OR name LIKE 'cloudsql.%'`,
  );
  return new Map(r.rows.map((x) => [x.name, x.setting]));
}

/** Finds what the init would capture, and what is wrong with the list. */
/** Table rows named by their keys (the names pgcdc prints, contract/table-name.ts). */
function named(rows: TableRow[]): TableRow[] {
  return rows.map((t) => ({ ...t, name: tableKey(t.schema, t.rel) }));
}

async function checkTables(
  client: Client,
  opts: PreflightOptions,
  findings: Finding[],
  full: Set<string>,
): Promise<TableRow[]> {
  const listed = await resolveInDatabase(client, opts.tables ?? [], 'PGCDC_TABLES');
  const captured: TableRow[] = [];
  if (listed.length === 0) {
    const all = await client.query<TableRow>(
      `SELECT ${TABLE_COLUMNS} FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_roles r ON r.oid = c.relowner
        WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgcdc')
          AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 2, 3`,
    );
    let temp = 0;
    for (const t of named(all.rows)) {
      if (t.persistence === 't') temp++;
      else if (t.persistence === 'u')
        findings.push({
          severity: 'info',
          check: `table ${t.name}`,
          message: 'unlogged: never captured (its changes are not written to the WAL)',
          fix: `ALTER TABLE ${t.name} SET LOGGED; then run sql init again, if it should be captured`,
        });
      else captured.push(t);
    }
    if (temp > 0)
      findings.push({
        severity: 'info',
        check: 'tables',
        message: `${temp} temporary table(s) of other sessions exist: temporary tables are never captured`,
      });
    findings.push({
      severity: 'info',
      check: 'tables',
      message: `no table list: every table present now is captured (${captured.length}); run sql init again after creating tables`,
    });
  } else {
    for (const { key: name, schema, table } of listed) {
      const r = await client.query<TableRow>(
        `SELECT ${TABLE_COLUMNS} FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_roles r ON r.oid = c.relowner
          WHERE n.nspname = $1 AND c.relname = $2 AND n.nspname NOT LIKE 'pg\\_temp\\_%'`,
        [schema, table],
      );
      const t = named(r.rows)[0];
      if (!t) {
        const temp = await client.query(
          `SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname LIKE 'pg\\_temp\\_%' AND c.relname = $1`,
          [table],
        );
        findings.push({
          severity: 'error',
          check: `table ${name}`,
          message: temp.rowCount
            ? 'does not exist (only a temporary table of that name: temporary tables are never captured)'
            : 'does not exist',
          fix: 'create it, or remove it from the table list (pgcdc:tables / PGCDC_TABLES)',
        });
      } else if (t.relkind !== 'r' && t.relkind !== 'p') {
        findings.push({
          severity: 'error',
          check: `table ${name}`,
          message: `is not a table (relkind ${t.relkind}): views, materialized views and foreign tables have no changes to capture`,
          fix: 'remove it from the table list',
        });
      } else if (t.persistence === 'u') {
        findings.push({
          severity: 'error',
          check: `table ${name}`,
          message: 'is unlogged: its changes are never written to the WAL, so they cannot be captured',
          fix: `ALTER TABLE ${name} SET LOGGED; or remove it from the table list`,
        });
      } else captured.push(t);
    }
  }
  const capturedNames = new Set(captured.map((t) => t.name));
  for (const name of full) {
    if (!capturedNames.has(name) && !listed.some((t) => t.key === name))
      findings.push({
        severity: 'error',
        check: 'PGCDC_REPLICA_IDENTITY_FULL',
        message: `names ${name}, which is not a captured table`,
        fix: 'list only captured tables there',
      });
  }
  for (const t of captured) {
    if (t.has_identity || full.has(t.name)) continue;
    findings.push({
      severity: 'warning',
      check: `table ${t.name}`,
      message:
        opts.decoder === 'pgoutput'
          ? 'has no primary key or replica identity: history only — its inserts and truncates are captured, its updates and deletes are not (it goes into the insert-only publication, so the application can still update and delete)'
          : 'has no primary key or replica identity: history only (no replica table; updates and deletes carry no key)',
      fix: `add a primary key, or allow pgcdc to set REPLICA IDENTITY FULL (PGCDC_REPLICA_IDENTITY_FULL=${t.name}; every update and delete then logs the whole old row)`,
    });
  }
  return captured;
}

async function probePlugin(config: ClientConfig, plugin: string): Promise<Finding | null> {
  const client = new Client(config);
  try {
    await client.connect();
    await client.query("SET statement_timeout = '10s'");
    const name = `pgcdc_probe_${process.pid}_${Date.now() % 100000}`;
    await client.query('SELECT pg_create_logical_replication_slot($1, $2, true)', [name, plugin]);
    await client.query('SELECT pg_drop_replication_slot($1)', [name]);
    return null;
  } catch (e) {
    const err = e as { code?: string; message?: string };
    if (/could not access file|could not load library/i.test(err.message ?? ''))
      return {
        severity: 'error',
        check: 'plugin',
        message: `the ${plugin} output plugin is not installed on the server (${err.message})`,
        fix: `install it (Debian/Ubuntu: apt install postgresql-<version>-wal2json), or use PGCDC_DECODER=pgoutput (built in)`,
      };
    return {
      severity: 'warning',
      check: 'plugin',
      message: `could not verify that ${plugin} is installed: ${err.message}`,
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function runPreflight(pg: ClientConfig, opts: PreflightOptions): Promise<PreflightReport> {
  const client = await connectWithRetry(pg, opts.connectRetry);
  const findings: Finding[] = [];
  let cloudSql: boolean;
  let serverVersion: string;
  let historyOnly: string[];
  try {
    const s = await settings(client);
    serverVersion = s.get('server_version') ?? '';
    cloudSql = [...s.keys()].some((k) => k.startsWith('cloudsql.'));
    const versionNum = Number(s.get('server_version_num') ?? 0);
    if (versionNum < 130000)
      findings.push({
        severity: 'error',
        check: 'server version',
        message: `PostgreSQL ${serverVersion}: pgcdc needs 13 or later (slot wal_status, partition trees)`,
        fix: 'upgrade the server',
      });
    else
      findings.push({
        severity: 'info',
        check: 'server version',
        message: `PostgreSQL ${serverVersion}${cloudSql ? ' (Cloud SQL)' : ''}`,
      });

    const walLevel = s.get('wal_level');
    if (cloudSql && s.get('cloudsql.logical_decoding') !== 'on')
      findings.push({
        severity: 'error',
        check: 'cloudsql.logical_decoding',
        message: `the Cloud SQL flag cloudsql.logical_decoding is ${s.get('cloudsql.logical_decoding') ?? 'not set'} (wal_level ${walLevel})`,
        fix: CLOUDSQL_FLAG_FIX,
      });
    else if (walLevel !== 'logical')
      findings.push({
        severity: 'error',
        check: 'wal_level',
        message: `wal_level is ${walLevel}; logical decoding needs wal_level = logical`,
        fix: "ALTER SYSTEM SET wal_level = 'logical'; then restart PostgreSQL (or set it in postgresql.conf)",
      });

    const slots = await client.query<{
      slot_name: string;
      plugin: string | null;
      database: string | null;
      wal_status: string | null;
    }>('SELECT slot_name, plugin, database, wal_status FROM pg_replication_slots');
    const ours = slots.rows.find((r) => r.slot_name === opts.slot);
    const maxSlots = Number(s.get('max_replication_slots') ?? 0);
    if (!ours && slots.rowCount! >= maxSlots)
      findings.push({
        severity: 'error',
        check: 'replication slots',
        message: `no free replication slot: ${slots.rowCount} of max_replication_slots = ${maxSlots} in use (${slots.rows.map((r) => r.slot_name).join(', ')})`,
        fix: cloudSql
          ? 'drop a slot nobody reads (SELECT pg_drop_replication_slot(name)), or raise the flag max_replication_slots (restarts the instance)'
          : 'drop a slot nobody reads (SELECT pg_drop_replication_slot(name)), or raise max_replication_slots and restart',
      });
    if (ours) {
      if (ours.database !== String(pg.database ?? ''))
        findings.push({
          severity: 'error',
          check: 'replication slot',
          message: `slot ${opts.slot} belongs to database ${ours.database}, not ${String(pg.database)}`,
          fix: 'choose another slot name (PGCDC_SLOT)',
        });
      else if (ours.plugin !== opts.decoder)
        findings.push({
          severity: 'error',
          check: 'replication slot',
          message: `slot ${opts.slot} uses plugin ${ours.plugin}, not ${opts.decoder}`,
          fix: `use PGCDC_DECODER=${ours.plugin}, or drop the slot (pgcdc sql teardown) and run sql init again`,
        });
      else if (ours.wal_status === 'lost')
        findings.push({
          severity: 'warning',
          check: 'replication slot',
          message: `slot ${opts.slot} is lost (the server removed WAL it still needed): changes since the loss cannot be read from it`,
          fix: 'run pgcdc sql init: it recreates the slot and resets the snapshot progress, so existing rows are sent again',
        });
      else
        findings.push({
          severity: 'info',
          check: 'replication slot',
          message: `slot ${opts.slot} exists (${ours.plugin}, ${ours.wal_status})`,
        });
    }

    const senders = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_replication');
    const maxSenders = Number(s.get('max_wal_senders') ?? 0);
    if (senders.rows[0].n >= maxSenders)
      findings.push({
        severity: 'error',
        check: 'wal senders',
        message: `no free WAL sender: ${senders.rows[0].n} of max_wal_senders = ${maxSenders} in use; the listener needs one per run`,
        fix: 'raise max_wal_senders (restart needed)',
      });

    const me = await client.query<{
      name: string;
      super: boolean;
      createrole: boolean;
      replication: boolean;
      dbcreate: boolean;
    }>(
      `SELECT rolname AS name, rolsuper AS super, rolcreaterole AS createrole, rolreplication AS replication,
              has_database_privilege(current_database(), 'CREATE') AS dbcreate
         FROM pg_roles WHERE rolname = current_user`,
    );
    const admin = me.rows[0];
    if (!admin.super && !admin.createrole)
      findings.push({
        severity: 'error',
        check: 'admin rights',
        message: `${admin.name} has neither CREATEROLE nor SUPERUSER: it cannot create the replicator or take the table owners' rights`,
        fix: cloudSql
          ? 'run sql init as the postgres user (or another cloudsqlsuperuser member)'
          : `ALTER ROLE ${admin.name} CREATEROLE; (as a superuser), or use another admin login`,
      });
    if (!admin.dbcreate)
      findings.push({
        severity: 'error',
        check: 'admin rights',
        message: `${admin.name} has no CREATE privilege on database ${String(pg.database)} (needed for schema pgcdc and the publications)`,
        fix: `GRANT CREATE ON DATABASE ${String(pg.database)} TO ${admin.name};`,
      });

    if (opts.replicationUser) {
      const r = await client.query<{ super: boolean; replication: boolean; memberof: string[] }>(
        `SELECT rolsuper AS super, rolreplication AS replication,
                ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid)::text[] AS memberof
           FROM pg_roles r WHERE rolname = $1`,
        [opts.replicationUser],
      );
      const role = r.rows[0];
      const canGiveReplication = admin.super || cloudSql || opts.bootstrapSuperuser;
      if (role?.super || (role && role.memberof.length > 0))
        findings.push({
          severity: 'error',
          check: 'replicator',
          message: `role ${opts.replicationUser} is ${role.super ? 'a superuser' : `a member of ${role.memberof.join(', ')}`}: the replicator must hold only pgcdc's grants`,
          fix: 'choose a new PGCDC_REPLICATION_USER name; sql init creates it LOGIN REPLICATION',
        });
      else if ((!role || !role.replication) && !canGiveReplication)
        findings.push({
          severity: 'error',
          check: 'replicator',
          message: `only a superuser can ${role ? 'give' : 'create'} role ${opts.replicationUser} ${role ? '' : 'with '}REPLICATION on this server`,
          fix: `as a superuser: ${role ? 'ALTER' : 'CREATE'} ROLE ${opts.replicationUser} LOGIN REPLICATION PASSWORD '...'; then run sql init again`,
        });
      else if (
        role &&
        role.replication &&
        !admin.super &&
        !cloudSql &&
        !opts.bootstrapSuperuser &&
        opts.setsPassword
      )
        // PostgreSQL 15: "must be superuser to alter replication roles or change replication attribute".
        findings.push({
          severity: 'error',
          check: 'replicator',
          message: `role ${opts.replicationUser} has REPLICATION: only a superuser can change its password on this server`,
          fix: `leave ${'PGCDC_REPLICATOR_PASSWORD'} unset (the role keeps its password), or as a superuser: ALTER ROLE ${opts.replicationUser} PASSWORD '...';`,
        });
    }

    const full = new Set(
      (await resolveInDatabase(client, opts.replicaIdentityFull ?? [], 'PGCDC_REPLICA_IDENTITY_FULL')).map(
        (t) => t.key,
      ),
    );
    const captured = await checkTables(client, opts, findings, full);
    historyOnly = captured.filter((t) => !t.has_identity && !full.has(t.name)).map((t) => t.name);
    const owners = new Map<string, boolean>();
    for (const t of captured) owners.set(t.owner, t.owner_super);
    for (const [owner, ownerSuper] of owners) {
      const rights = await client.query<{ ok: boolean }>(
        "SELECT pg_has_role(current_user, $1, 'USAGE') AS ok",
        [owner],
      );
      if (rights.rows[0].ok) continue;
      if (ownerSuper || !admin.createrole)
        findings.push({
          severity: 'error',
          check: 'admin rights',
          message: `${admin.name} cannot act for ${owner}, owner of ${captured
            .filter((t) => t.owner === owner)
            .map((t) => t.name)
            .join(', ')} (granting SELECT and publishing a table need its owner's rights)`,
          fix: ownerSuper
            ? `as ${owner}: ALTER TABLE ... OWNER TO an application role, or run sql init as ${owner}`
            : `as ${owner} or a superuser: GRANT ${owner} TO ${admin.name};`,
        });
    }

    const pubs = await client.query<{ pubname: string; puballtables: boolean; owner: string; mine: boolean }>(
      `SELECT pubname, puballtables, pubowner::regrole::text AS owner, pg_has_role(current_user, pubowner, 'USAGE') AS mine
         FROM pg_publication WHERE pubname = ANY($1)`,
      [[opts.publication, `${opts.publication}_inserts`]],
    );
    for (const p of pubs.rows) {
      if (!p.mine)
        findings.push({
          severity: 'error',
          check: 'publication',
          message: `publication ${p.pubname} exists and belongs to ${p.owner}: ${admin.name} can neither update nor drop it${p.puballtables ? ' (it is FOR ALL TABLES: application UPDATE/DELETE on keyless tables fails while it exists)' : ''}`,
          fix: `as ${p.owner}: DROP PUBLICATION ${p.pubname}; (sql init creates its own), or choose another PGCDC_PUBLICATION`,
        });
      else if (p.puballtables)
        findings.push({
          severity: 'warning',
          check: 'publication',
          message: `publication ${p.pubname} is FOR ALL TABLES: application UPDATE/DELETE on keyless tables fails while it exists`,
          fix: 'sql init replaces it with a publication of exactly the captured tables',
        });
    }
    if (opts.decoder === 'wal2json' && pubs.rowCount)
      findings.push({
        severity: 'info',
        check: 'publication',
        message: `wal2json reads no publication: sql init drops ${pubs.rows.map((p) => p.pubname).join(', ')}`,
      });

    // The output plugin. pgoutput ships with PostgreSQL (10 and later).
    if (opts.decoder === 'wal2json') {
      if (ours && ours.plugin === 'wal2json') {
        findings.push({
          severity: 'info',
          check: 'plugin',
          message: 'wal2json: in use by the existing slot',
        });
      } else if (cloudSql) {
        // https://cloud.google.com/sql/docs/postgres/replication/configure-logical-replication: Cloud SQL
        // supports the wal2json output plugin for logical decoding.
        findings.push({ severity: 'info', check: 'plugin', message: 'wal2json: provided by Cloud SQL' });
      } else if (!ours && slots.rowCount! >= maxSlots) {
        findings.push({
          severity: 'warning',
          check: 'plugin',
          message: 'could not verify that wal2json is installed: no free slot to try it with',
        });
      } else {
        const probeAs = admin.super || admin.replication ? pg : opts.replicatorPg;
        const probeRole = probeAs ? await probeRoleExists(client, probeAs) : false;
        const f = probeAs && probeRole ? await probePlugin(probeAs, 'wal2json') : null;
        if (f) findings.push(f);
        else if (!probeAs || !probeRole)
          findings.push({
            severity: 'warning',
            check: 'plugin',
            message:
              'could not verify that wal2json is installed (no session with REPLICATION yet); sql init will tell',
          });
        else findings.push({ severity: 'info', check: 'plugin', message: 'wal2json is installed' });
      }
    }
  } finally {
    await client.end();
  }
  return {
    ok: !findings.some((f) => f.severity === 'error'),
    cloudSql,
    serverVersion,
    findings,
    historyOnly,
  };
}

async function probeRoleExists(client: Client, config: ClientConfig): Promise<boolean> {
  const r = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1 AND (rolreplication OR rolsuper)', [
    String(config.user ?? ''),
  ]);
  return (r.rowCount ?? 0) > 0;
}
