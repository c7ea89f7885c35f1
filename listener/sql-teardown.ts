// The SQL teardown: removes what the SQL init created, and says what it removed and what it kept. A
// forgotten slot keeps WAL on the server's disk forever, so the slot goes first; the publications follow;
// the replicator role and the pgcdc schema only when asked for. Nothing of the application's is touched:
// REPLICA IDENTITY FULL set by the init on the user's request stays (said so, with the statement to undo it).

import { Client, ClientConfig } from 'pg';
import { sqlTableName } from '../contract/table-name';
import { resolveInDatabase } from './table-lookup';
import { connectWithRetry, ConnectRetryOptions } from './connect';

export interface SqlTeardownOptions {
  slot: string;
  publication: string;
  replicationUser?: string;
  replicatorPassword?: string;
  /** Also drop the replicator role (its grants in this database first). */
  dropRole?: boolean;
  /** Also drop schema pgcdc (only if it holds nothing but pgcdc's progress table). */
  dropSchema?: boolean;
  replicaIdentityFull?: string[];
  connectRetry?: ConnectRetryOptions;
}

export interface SqlTeardownReport {
  removed: string[];
  kept: string[];
}

export class TeardownError extends Error {
  constructor(
    message: string,
    readonly report: SqlTeardownReport,
  ) {
    super(message);
    this.name = 'TeardownError';
  }
}

async function one<T>(client: Client, text: string, params: unknown[] = []): Promise<T | undefined> {
  return (await client.query(text, params)).rows[0] as T | undefined;
}

async function dropSlot(
  admin: Client,
  pg: ClientConfig,
  opts: SqlTeardownOptions,
  report: SqlTeardownReport,
) {
  const slot = await one<{ active_pid: number | null; database: string }>(
    admin,
    'SELECT active_pid, database FROM pg_replication_slots WHERE slot_name = $1',
    [opts.slot],
  );
  if (!slot) {
    report.kept.push(`replication slot ${opts.slot}: there is none`);
    return;
  }
  if (slot.active_pid !== null)
    throw new TeardownError(
      `replication slot ${opts.slot} is in use by process ${slot.active_pid} (a listener run): nothing was dropped. ` +
        'Pause the listener schedule, wait for the run to end, then run the teardown again.',
      report,
    );
  // Dropping a slot needs REPLICATION: the replicator has it, Cloud SQL's admin does not.
  const me = await one<{ ok: boolean }>(
    admin,
    'SELECT rolsuper OR rolreplication AS ok FROM pg_roles WHERE rolname = current_user',
  );
  const asReplicator = !me?.ok && opts.replicationUser;
  const client = asReplicator
    ? await connectWithRetry(
        { ...pg, user: opts.replicationUser, password: opts.replicatorPassword },
        opts.connectRetry,
      )
    : admin;
  try {
    await client.query('SELECT pg_drop_replication_slot($1)', [opts.slot]);
  } finally {
    if (client !== admin) await client.end();
  }
  report.removed.push(`replication slot ${opts.slot}`);
}

/**
 * Revokes every grant the role holds in this database (tables, schemas), taking each owner's rights for
 * the transaction as the init does (DROP OWNED BY would need them too, and silently leaves grants made by
 * another owner), then drops the role. A CREATEROLE admin may drop a REPLICATION role on PostgreSQL 15
 * (unlike creating one); the role is cluster-wide, so grants in other databases make DROP ROLE fail: said so.
 */
const REVOKE_ALL_GRANTS = `
DO $revoke$
DECLARE
  repl text := current_setting('pgcdc.teardown_role');
  r record;
  joined text[] := '{}';
  o text;
BEGIN
  PERFORM set_config('search_path', '', true);
  FOR r IN
    SELECT format('TABLE %I.%I', n.nspname, c.relname) AS what, o.rolname AS owner
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_roles o ON o.oid = c.relowner
     WHERE EXISTS (SELECT 1 FROM aclexplode(c.relacl) a JOIN pg_roles g ON g.oid = a.grantee WHERE g.rolname = repl)
    UNION ALL
    SELECT format('SCHEMA %I', n.nspname), o.rolname
      FROM pg_namespace n JOIN pg_roles o ON o.oid = n.nspowner
     WHERE EXISTS (SELECT 1 FROM aclexplode(n.nspacl) a JOIN pg_roles g ON g.oid = a.grantee WHERE g.rolname = repl)
  LOOP
    IF NOT pg_has_role(current_user, r.owner, 'USAGE') THEN
      EXECUTE format('GRANT %I TO %I', r.owner, current_user);
      joined := joined || r.owner;
    END IF;
    EXECUTE format('REVOKE ALL ON %s FROM %I', r.what, repl);
  END LOOP;
  FOREACH o IN ARRAY joined LOOP
    IF pg_has_role(current_user, o, 'MEMBER') THEN
      EXECUTE format('REVOKE %I FROM %I', o, current_user);
    END IF;
  END LOOP;
END
$revoke$`;

async function dropRole(admin: Client, opts: SqlTeardownOptions, report: SqlTeardownReport) {
  const role = opts.replicationUser!;
  const exists = await one(admin, 'SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
  if (!exists) {
    report.kept.push(`role ${role}: there is none`);
    return;
  }
  try {
    await admin.query("SELECT set_config('pgcdc.teardown_role', $1, false)", [role]);
    await admin.query(REVOKE_ALL_GRANTS);
  } catch (e) {
    throw new TeardownError(`could not revoke the grants of role ${role}: ${(e as Error).message}`, report);
  }
  report.removed.push(`the grants of role ${role} in this database`);
  try {
    await admin.query(`DROP ROLE ${admin.escapeIdentifier(role)}`);
  } catch (e) {
    report.kept.push(
      `role ${role}: ${(e as Error).message} (revoke its grants in the other databases, then DROP ROLE ${role};)`,
    );
    return;
  }
  report.removed.push(`role ${role}`);
}

async function dropSchema(admin: Client, report: SqlTeardownReport) {
  if (!(await one(admin, "SELECT 1 FROM pg_namespace WHERE nspname = 'pgcdc'"))) {
    report.kept.push('schema pgcdc: there is none');
    return;
  }
  const others = await admin.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'pgcdc' AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
        AND c.relname <> 'snapshot_progress'
     UNION ALL SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pgcdc'`,
  );
  if (others.rowCount) {
    report.kept.push(
      `schema pgcdc: it also holds ${others.rows.map((r) => r.name).join(', ')}, which pgcdc did not create`,
    );
    return;
  }
  await admin.query('DROP SCHEMA pgcdc CASCADE');
  report.removed.push('schema pgcdc (snapshot progress)');
}

export async function runSqlTeardown(pg: ClientConfig, opts: SqlTeardownOptions): Promise<SqlTeardownReport> {
  const report: SqlTeardownReport = { removed: [], kept: [] };
  const admin = await connectWithRetry(pg, opts.connectRetry);
  try {
    await dropSlot(admin, pg, opts, report);
    for (const pub of [opts.publication, `${opts.publication}_inserts`]) {
      if (await one(admin, 'SELECT 1 FROM pg_publication WHERE pubname = $1', [pub])) {
        await admin.query(`DROP PUBLICATION ${admin.escapeIdentifier(pub)}`);
        report.removed.push(`publication ${pub}`);
      }
    }
    if (opts.dropSchema) await dropSchema(admin, report);
    else report.kept.push('schema pgcdc (snapshot progress; --drop-schema removes it)');
    if (opts.replicationUser && opts.dropRole) await dropRole(admin, opts, report);
    else if (opts.replicationUser) report.kept.push(`role ${opts.replicationUser} (--drop-role removes it)`);
    for (const t of await resolveInDatabase(
      admin,
      opts.replicaIdentityFull ?? [],
      'PGCDC_REPLICA_IDENTITY_FULL',
    )) {
      const full = await one(
        admin,
        `SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relname = $2 AND c.relreplident = 'f'`,
        [t.schema, t.table],
      );
      if (full)
        report.kept.push(
          `REPLICA IDENTITY FULL on ${t.key}, set at your request (undo: ALTER TABLE ${sqlTableName(t)} REPLICA IDENTITY DEFAULT;)`,
        );
    }
  } finally {
    await admin.end();
  }
  return report;
}
