import assert from 'node:assert/strict';
import { Client } from 'pg';
import { runSqlInit, SqlInitOptions } from '../../listener/sql-init';
import { CloudSqlLikeDatabase } from '../../local/postgres';
import { freshCloudSqlLikeDatabase, freshDatabase, uniqueName } from '../support/stack';

type Conn = CloudSqlLikeDatabase['admin'];

async function query<T = Record<string, unknown>>(
  conn: Conn,
  text: string,
  params?: unknown[],
): Promise<T[]> {
  const c = new Client(conn);
  await c.connect();
  try {
    return (await c.query(text, params)).rows as T[];
  } finally {
    await c.end();
  }
}

async function publicationTables(conn: Conn, pub: string): Promise<string[]> {
  const rows = await query<{ t: string }>(
    conn,
    `SELECT format('%s.%s', schemaname, tablename) AS t FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1`,
    [pub],
  );
  return rows.map((r) => r.t);
}

async function readable(conn: Conn, role: string, tables: string[]): Promise<Record<string, boolean>> {
  const out: Record<string, boolean> = {};
  for (const t of tables) {
    const [r] = await query<{ ok: boolean }>(conn, "SELECT has_table_privilege($1, $2, 'SELECT') AS ok", [
      role,
      t,
    ]);
    out[t] = r.ok;
  }
  return out;
}

/** Init options for a Cloud-SQL-like database: fresh slot, publication and replicator names. */
function roleModeOptions(db: CloudSqlLikeDatabase, extra: Partial<SqlInitOptions> = {}): SqlInitOptions {
  return {
    slot: uniqueName('slot'),
    publication: uniqueName('pub'),
    decoder: 'pgoutput',
    replicationUser: uniqueName('repl'),
    replicatorPassword: 'secret-1',
    bootstrapSuperuser: db.superuser,
    ...extra,
  };
}

async function dropSlot(conn: Conn, slot: string): Promise<void> {
  await query(
    conn,
    'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1',
    [slot],
  );
}

describe('SQL init (sql/) in the Cloud-SQL-like role mode', () => {
  it('the non-superuser admin creates the replicator LOGIN REPLICATION with SELECT on exactly the captured tables of every schema; a second run changes nothing and says so', async () => {
    const db = await freshCloudSqlLikeDatabase('init_roles');
    await query(db.owner, 'CREATE SCHEMA sales');
    await query(db.owner, 'CREATE TABLE public.a (id int PRIMARY KEY, v text)');
    await query(db.owner, 'CREATE TABLE sales.orders (id int PRIMARY KEY, total numeric)');
    await query(db.owner, 'CREATE TABLE public.secret (id int PRIMARY KEY, pin text)');
    const opts = roleModeOptions(db, { tables: ['public.a', 'sales.orders'] });
    const repl = opts.replicationUser!;
    const first = await runSqlInit(db.admin, opts);
    const notices = first.notices.join('\n');
    assert.match(notices, new RegExp(`created role ${repl} \\(LOGIN REPLICATION\\)`));
    assert.match(notices, /granted USAGE on schema sales/);
    assert.match(notices, /granted SELECT on public\.a/);
    assert.match(notices, /granted SELECT on sales\.orders/);
    assert.match(notices, new RegExp(`created logical replication slot ${opts.slot} \\(plugin pgoutput\\)`));

    const [role] = await query(
      db.admin,
      `SELECT rolsuper, rolreplication, rolcanlogin, rolcreaterole, rolcreatedb, rolbypassrls,
              (SELECT count(*)::int FROM pg_auth_members m WHERE m.member = r.oid) AS memberships
         FROM pg_roles r WHERE rolname = $1`,
      [repl],
    );
    assert.deepEqual(role, {
      rolsuper: false,
      rolreplication: true,
      rolcanlogin: true,
      rolcreaterole: false,
      rolcreatedb: false,
      rolbypassrls: false,
      memberships: 0,
    });
    assert.deepEqual(await readable(db.superuser, repl, ['public.a', 'sales.orders', 'public.secret']), {
      'public.a': true,
      'sales.orders': true,
      'public.secret': false,
    });
    // The admin borrowed the owner's rights for the init's transaction only.
    const [member] = await query<{ m: boolean }>(
      db.admin,
      "SELECT pg_has_role(current_user, 'app_owner', 'MEMBER') AS m",
    );
    assert.equal(member.m, false);
    assert.deepEqual(await publicationTables(db.admin, opts.publication), ['public.a', 'sales.orders']);
    assert.deepEqual(await publicationTables(db.admin, `${opts.publication}_inserts`), []);
    // The replicator can use the progress table, read what it captures, and nothing it does not.
    const asRepl = { ...db.admin, user: repl };
    await query(asRepl, "INSERT INTO pgcdc.snapshot_progress (table_name) VALUES ('public.a')");
    await query(asRepl, 'SELECT * FROM sales.orders');
    await assert.rejects(query(asRepl, 'SELECT * FROM public.secret'), /permission denied/);
    await assert.rejects(query(asRepl, 'INSERT INTO public.a VALUES (1)'), /permission denied/);

    const second = await runSqlInit(db.admin, opts);
    const again = second.notices.join('\n');
    assert.match(again, new RegExp(`role ${repl} exists`));
    assert.match(again, new RegExp(`replication slot ${opts.slot} already exists`));
    assert.doesNotMatch(again, /granted SELECT|added .* to publication|created publication/);
    await dropSlot(db.superuser, opts.slot);
  });

  it('keyless tables never make application statements fail: existing and later tables, partitioned, temporary and unlogged ones; keyless ones go to the insert-only publication unless REPLICA IDENTITY FULL is allowed', async () => {
    const db = await freshCloudSqlLikeDatabase('init_keyless');
    for (const ddl of [
      'CREATE TABLE keyed (id int PRIMARY KEY, v text)',
      'CREATE TABLE app_log (at timestamptz DEFAULT now(), msg text)',
      'CREATE TABLE audit (who text, what text)',
      'CREATE TABLE parted (id int, region text, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region)',
      "CREATE TABLE parted_eu PARTITION OF parted FOR VALUES IN ('eu')",
      "CREATE TABLE parted_us PARTITION OF parted FOR VALUES IN ('us')",
      'CREATE TABLE events (at date, msg text) PARTITION BY RANGE (at)',
      "CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
      'CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY, v text)',
    ])
      await query(db.owner, ddl);
    // Another session's temporary table with a primary key, open during the init.
    const tempSession = new Client(db.owner);
    await tempSession.connect();
    await tempSession.query('CREATE TEMP TABLE mine (id int PRIMARY KEY)');
    const opts = roleModeOptions(db, { replicaIdentityFull: ['public.audit'] });
    const report = await runSqlInit(db.admin, opts);
    const notices = report.notices.join('\n');
    assert.match(notices, /unlogged table public\.scratch is not captured/);
    assert.match(notices, /set REPLICA IDENTITY FULL on public\.audit/);
    assert.match(notices, /public\.app_log has no primary key or replica identity: history only/);
    assert.deepEqual(report.historyOnly?.sort(), ['public.app_log', 'public.events_2026']);
    assert.deepEqual(await publicationTables(db.admin, opts.publication), [
      'public.audit',
      'public.keyed',
      'public.parted_eu',
      'public.parted_us',
    ]);
    assert.deepEqual(await publicationTables(db.admin, `${opts.publication}_inserts`), [
      'public.app_log',
      'public.events_2026',
    ]);
    const [pubIns] = await query(
      db.admin,
      'SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1',
      [`${opts.publication}_inserts`],
    );
    assert.deepEqual(pubIns, { pubinsert: true, pubupdate: false, pubdelete: false, pubtruncate: true });
    const [ident] = await query(
      db.admin,
      "SELECT relreplident::text AS r FROM pg_class WHERE oid = 'public.audit'::regclass",
    );
    assert.equal(ident.r, 'f');

    // Every application statement still succeeds, on the tables of the init and on one created later.
    await query(db.owner, 'CREATE TABLE later_log (msg text)');
    for (const sql of [
      "INSERT INTO keyed VALUES (1, 'a')",
      "UPDATE keyed SET v = 'b'",
      "INSERT INTO app_log (msg) VALUES ('x')",
      "UPDATE app_log SET msg = 'y'",
      'DELETE FROM app_log',
      "INSERT INTO audit VALUES ('me', 'x')",
      "UPDATE audit SET what = 'y'",
      'DELETE FROM audit',
      "INSERT INTO parted VALUES (1, 'eu', 'a'), (2, 'us', 'b')",
      "UPDATE parted SET v = 'c'",
      "DELETE FROM parted WHERE region = 'us'",
      "INSERT INTO events VALUES ('2026-05-01', 'x')",
      "UPDATE events SET msg = 'y'",
      'DELETE FROM events',
      "INSERT INTO scratch VALUES (1, 'a')",
      "UPDATE scratch SET v = 'b'",
      'DELETE FROM scratch',
      "INSERT INTO later_log VALUES ('x')",
      "UPDATE later_log SET msg = 'y'",
      'DELETE FROM later_log',
      'TRUNCATE keyed, app_log',
    ])
      await query(db.owner, sql);
    await tempSession.query('INSERT INTO mine VALUES (1)');
    await tempSession.query('UPDATE mine SET id = 2');
    await tempSession.query('DELETE FROM mine');
    // Re-running the init with the later table present and the temp session still open works too.
    await runSqlInit(db.admin, opts);
    await query(db.owner, "INSERT INTO later_log VALUES ('x')");
    await query(db.owner, "UPDATE later_log SET msg = 'z'");
    await query(db.owner, 'DELETE FROM later_log');
    assert.ok(
      (await publicationTables(db.admin, `${opts.publication}_inserts`)).includes('public.later_log'),
    );
    await tempSession.end();
    await dropSlot(db.superuser, opts.slot);
  });

  it('pgoutput over both publications sends every change of a keyed table and the inserts of a keyless one', async () => {
    const db = await freshCloudSqlLikeDatabase('init_decode');
    await query(db.owner, 'CREATE TABLE keyed (id int PRIMARY KEY, v text)');
    await query(db.owner, 'CREATE TABLE app_log (msg text)');
    const opts = roleModeOptions(db);
    await runSqlInit(db.admin, opts);
    await query(db.owner, "INSERT INTO keyed VALUES (1, 'a')");
    await query(db.owner, "UPDATE keyed SET v = 'b'");
    await query(db.owner, "INSERT INTO app_log VALUES ('x')");
    await query(db.owner, "UPDATE app_log SET msg = 'y'");
    await query(db.owner, 'DELETE FROM app_log');
    // What pgoutput (proto 1) sends for these publication names: change tags per table.
    const decoded = async (publications: string) => {
      const rows = await query<{ data: Buffer }>(
        db.superuser,
        `SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', $2)`,
        [opts.slot, publications],
      );
      const names = new Map<number, string>();
      const seen: string[] = [];
      for (const { data } of rows) {
        const tag = String.fromCharCode(data[0]);
        if (tag === 'R') {
          const nsEnd = data.indexOf(0, 5);
          names.set(data.readUInt32BE(1), data.subarray(nsEnd + 1, data.indexOf(0, nsEnd + 1)).toString());
        } else if ('IUD'.includes(tag)) seen.push(`${tag} ${names.get(data.readUInt32BE(1))}`);
      }
      return seen;
    };
    assert.deepEqual(await decoded(opts.publication), ['I keyed', 'U keyed']);
    assert.deepEqual(await decoded(`${opts.publication},${opts.publication}_inserts`), [
      'I keyed',
      'U keyed',
      'I app_log',
    ]);
    await dropSlot(db.superuser, opts.slot);
  });

  it('re-running the init after the table list changed adds and removes tables in the publications and the grants', async () => {
    const db = await freshCloudSqlLikeDatabase('init_rerun');
    await query(db.owner, 'CREATE TABLE t1 (id int PRIMARY KEY)');
    await query(db.owner, 'CREATE TABLE t2 (id int PRIMARY KEY)');
    await query(db.owner, 'CREATE TABLE nokey (v text)');
    const opts = roleModeOptions(db, { tables: ['public.t1', 'public.nokey'] });
    await runSqlInit(db.admin, opts);
    assert.deepEqual(await publicationTables(db.admin, opts.publication), ['public.t1']);
    assert.deepEqual(await publicationTables(db.admin, `${opts.publication}_inserts`), ['public.nokey']);
    const changed = await runSqlInit(db.admin, { ...opts, tables: ['public.t2'] });
    const notices = changed.notices.join('\n');
    assert.match(notices, new RegExp(`removed public\\.t1 from publication ${opts.publication}\\b`));
    assert.match(notices, new RegExp(`added public\\.t2 to publication ${opts.publication}\\b`));
    assert.match(notices, /revoked SELECT on public\.nokey/);
    assert.deepEqual(await publicationTables(db.admin, opts.publication), ['public.t2']);
    assert.deepEqual(await publicationTables(db.admin, `${opts.publication}_inserts`), []);
    assert.deepEqual(
      await readable(db.superuser, opts.replicationUser!, ['public.t1', 'public.t2', 'public.nokey']),
      {
        'public.t1': false,
        'public.t2': true,
        'public.nokey': false,
      },
    );
    await dropSlot(db.superuser, opts.slot);
  });

  it('wal2json gets no publication; an old FOR ALL TABLES publication the admin cannot drop is reported with the fix, and nothing is changed', async () => {
    const db = await freshCloudSqlLikeDatabase('init_pubs');
    await query(db.owner, 'CREATE TABLE k (id int PRIMARY KEY)');
    await query(db.owner, 'CREATE TABLE nokey (v text)');
    const w = roleModeOptions(db, { decoder: 'wal2json' });
    const r = await runSqlInit(db.admin, w);
    assert.doesNotMatch(r.notices.join('\n'), /publication/);
    assert.deepEqual(await query(db.admin, 'SELECT pubname FROM pg_publication'), []);
    await query(db.owner, "UPDATE nokey SET v = 'x'");

    // What earlier pgcdc versions created: FOR ALL TABLES (on vanilla PostgreSQL only a superuser can).
    const p = roleModeOptions(db);
    await query(db.superuser, `CREATE PUBLICATION ${p.publication} FOR ALL TABLES`);
    await assert.rejects(query(db.owner, "UPDATE nokey SET v = 'y'"), /does not have a replica identity/);
    await assert.rejects(
      runSqlInit(db.admin, p),
      (e: Error) =>
        /nothing was changed/.test(e.message) &&
        e.message.includes(`as postgres: DROP PUBLICATION ${p.publication};`) &&
        /FOR ALL TABLES: application UPDATE\/DELETE on keyless tables fails/.test(e.message),
    );
    assert.deepEqual(
      await query(db.admin, 'SELECT 1 FROM pg_roles WHERE rolname = $1', [p.replicationUser]),
      [],
    );
    await query(db.superuser, `DROP PUBLICATION ${p.publication}`);
    await runSqlInit(db.admin, p);
    const [pub] = await query(db.admin, 'SELECT puballtables FROM pg_publication WHERE pubname = $1', [
      p.publication,
    ]);
    assert.equal(pub.puballtables, false);
    await query(db.owner, "UPDATE nokey SET v = 'y'");
    await query(db.owner, 'DELETE FROM nokey');
    await dropSlot(db.superuser, w.slot);
    await dropSlot(db.superuser, p.slot);
  });

  it('the sample customers table is created only when asked for (local stack and demo)', async () => {
    const db = await freshCloudSqlLikeDatabase('init_sample');
    const opts = roleModeOptions(db);
    await runSqlInit(db.admin, opts);
    assert.deepEqual(await query(db.admin, "SELECT to_regclass('public.customers') AS t"), [{ t: null }]);
    const withSample = await runSqlInit(db.admin, { ...opts, sample: db.owner });
    assert.ok(withSample.notices.includes('customers: 30 sample rows inserted, 0 already there'));
    const [owner] = await query(
      db.admin,
      "SELECT relowner::regrole::text AS o FROM pg_class WHERE oid = 'public.customers'::regclass",
    );
    assert.equal(owner.o, 'app_owner');
    assert.deepEqual(await readable(db.superuser, opts.replicationUser!, ['public.customers']), {
      'public.customers': true,
    });
    await dropSlot(db.superuser, opts.slot);
  });

  it('refuses a replicator role that is a member of other roles (a Cloud SQL API user is a cloudsqlsuperuser member)', async () => {
    const db = await freshCloudSqlLikeDatabase('init_member');
    const opts = roleModeOptions(db);
    await query(db.superuser, `CREATE ROLE ${opts.replicationUser} LOGIN IN ROLE cloudsqlsuperuser`);
    await assert.rejects(
      runSqlInit(db.admin, opts),
      /is a member of cloudsqlsuperuser: the replicator must hold only pgcdc's grants/,
    );
    assert.deepEqual(
      await query(db.admin, 'SELECT slot_name FROM pg_replication_slots WHERE slot_name = $1', [opts.slot]),
      [],
    );
  });
});

describe('SQL init (sql/) as a superuser without a replicator', () => {
  it('refuses a slot that exists with another plugin, saying how to resolve it', async () => {
    const db = await freshDatabase('sqlinit2');
    const slot = uniqueName('slot');
    await runSqlInit(db, { slot, publication: 'p', decoder: 'pgoutput' });
    await assert.rejects(
      runSqlInit(db, { slot, publication: 'p', decoder: 'wal2json' }),
      /slot .* uses plugin pgoutput, not wal2json/,
    );
    await dropSlot(db, slot);
  });
});
