// The preflight (`pgcdc check`, and the first step of `pgcdc sql init`) against real clusters with each
// problem provoked: wal_level = replica, no free slot, the wal2json library missing, missing / keyless /
// unlogged / temporary tables, tables a CREATEROLE admin cannot act for; and a lost slot recreated.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { Finding, formatFindings, PreflightError, runPreflight } from '../../listener/preflight';
import { runSqlInit } from '../../listener/sql-init';
import {
  CloudSqlLikeDatabase,
  PostgresCluster,
  prepareCloudSqlLikeDatabase,
  startPostgres,
} from '../../local/postgres';
import { postgresBinDir } from '../../local/prerequisites';
import { freshCloudSqlLikeDatabase, uniqueName } from '../support/stack';

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

async function databaseOn(cluster: PostgresCluster, prefix: string): Promise<CloudSqlLikeDatabase> {
  const name = uniqueName(prefix);
  await query(cluster.connection(), `CREATE DATABASE ${name}`);
  return prepareCloudSqlLikeDatabase(cluster, name);
}

function errors(findings: Finding[]): Finding[] {
  return findings.filter((f) => f.severity === 'error');
}

function options(extra: Partial<Parameters<typeof runPreflight>[1]> = {}) {
  return {
    slot: uniqueName('slot'),
    publication: uniqueName('pub'),
    decoder: 'pgoutput' as const,
    replicationUser: uniqueName('repl'),
    bootstrapSuperuser: true,
    ...extra,
  };
}

describe('preflight: every problem reported at once with its fix, nothing changed', function () {
  this.timeout(180_000);
  let root: string;
  let replicaCluster: PostgresCluster;
  let tightCluster: PostgresCluster;

  before(async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'pgcdc-preflight-'));
    chmodSync(root, 0o755);
    // A library directory holding pgoutput but not wal2json: the server finds output plugins through
    // dynamic_library_path, so wal2json is "not installed" there, as on a server without the package.
    const libs = path.join(root, 'libs');
    mkdirSync(libs);
    chmodSync(libs, 0o755);
    const pkglib = execFileSync(path.join(postgresBinDir(), 'pg_config'), ['--pkglibdir'], {
      encoding: 'utf8',
    }).trim();
    symlinkSync(path.join(pkglib, 'pgoutput.so'), path.join(libs, 'pgoutput.so'));
    [replicaCluster, tightCluster] = await Promise.all([
      startPostgres({ dir: path.join(root, 'replica'), settings: { wal_level: 'replica' } }),
      startPostgres({
        dir: path.join(root, 'tight'),
        settings: { max_replication_slots: 2, dynamic_library_path: libs, max_slot_wal_keep_size: '1MB' },
      }),
    ]);
  });
  after(() => {
    replicaCluster?.stop();
    tightCluster?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('wal_level = replica: named with the setting to change and the restart; sql init creates nothing', async () => {
    const db = await databaseOn(replicaCluster, 'walrep');
    const opts = options();
    const report = await runPreflight(db.admin, opts);
    assert.equal(report.ok, false);
    assert.equal(report.cloudSql, false);
    const [f] = errors(report.findings);
    assert.deepEqual(
      { check: f.check, message: f.message },
      { check: 'wal_level', message: 'wal_level is replica; logical decoding needs wal_level = logical' },
    );
    assert.match(f.fix!, /wal_level = 'logical'.*restart/);
    assert.equal(errors(report.findings).length, 1, formatFindings(report.findings).join('\n'));
    await assert.rejects(runSqlInit(db.admin, { ...opts, bootstrapSuperuser: db.superuser }), PreflightError);
    assert.deepEqual(
      await query(db.superuser, 'SELECT 1 FROM pg_roles WHERE rolname = $1', [opts.replicationUser]),
      [],
    );
    assert.deepEqual(await query(db.superuser, "SELECT to_regnamespace('pgcdc') AS s"), [{ s: null }]);
  });

  it('no free replication slot: reported with the slots in use and what to do', async () => {
    const db = await databaseOn(tightCluster, 'noslot');
    await query(
      db.superuser,
      "SELECT pg_create_physical_replication_slot('other_a'), pg_create_physical_replication_slot('other_b')",
    );
    try {
      const report = await runPreflight(db.admin, options());
      const slotErrors = errors(report.findings).filter((f) => f.check === 'replication slots');
      assert.equal(slotErrors.length, 1, formatFindings(report.findings).join('\n'));
      assert.equal(
        slotErrors[0].message,
        'no free replication slot: 2 of max_replication_slots = 2 in use (other_a, other_b)',
      );
      assert.match(slotErrors[0].fix!, /pg_drop_replication_slot|max_replication_slots/);
    } finally {
      await query(
        db.superuser,
        "SELECT pg_drop_replication_slot('other_a'), pg_drop_replication_slot('other_b')",
      );
    }
    assert.ok((await runPreflight(db.admin, options())).ok);
  });

  it('wal2json not installed: found by a temporary slot that leaves nothing behind; pgoutput needs no library', async () => {
    const db = await databaseOn(tightCluster, 'noplugin');
    // A superuser admin (self-managed server) can try the plugin.
    const report = await runPreflight(
      db.superuser,
      options({ decoder: 'wal2json', bootstrapSuperuser: false }),
    );
    const plugin = errors(report.findings).filter((f) => f.check === 'plugin');
    assert.equal(plugin.length, 1, formatFindings(report.findings).join('\n'));
    assert.match(plugin[0].message, /the wal2json output plugin is not installed on the server/);
    assert.match(plugin[0].fix!, /postgresql-<version>-wal2json.*PGCDC_DECODER=pgoutput/);
    assert.deepEqual(await query(db.superuser, 'SELECT slot_name FROM pg_replication_slots'), []);
    const pgoutput = await runPreflight(db.superuser, options({ bootstrapSuperuser: false }));
    assert.ok(pgoutput.ok, formatFindings(pgoutput.findings).join('\n'));
  });

  it('wal2json installed: verified the same way, nothing left behind', async () => {
    const db = await freshCloudSqlLikeDatabase('plugin_ok');
    const report = await runPreflight(
      db.superuser,
      options({ decoder: 'wal2json', bootstrapSuperuser: false }),
    );
    assert.ok(
      report.findings.some((f) => f.check === 'plugin' && f.message === 'wal2json is installed'),
      formatFindings(report.findings).join('\n'),
    );
    const left = await query(
      db.superuser,
      "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pgcdc_probe%'",
    );
    assert.deepEqual(left, []);
  });

  it('missing, unlogged and temporary tables, tables of a superuser owner: all errors at once with fixes; keyless ones are history only', async () => {
    const db = await freshCloudSqlLikeDatabase('tables');
    await query(db.owner, 'CREATE TABLE ok (id int PRIMARY KEY)');
    await query(db.owner, 'CREATE TABLE nokey (v text)');
    await query(db.owner, 'CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY)');
    await query(db.owner, 'CREATE VIEW v AS SELECT 1 AS x');
    await query(db.superuser, 'CREATE TABLE su_owned (id int PRIMARY KEY)');
    const temp = new Client(db.owner);
    await temp.connect();
    try {
      await temp.query('CREATE TEMP TABLE tmp (id int PRIMARY KEY)');
      const tables = [
        'public.ok',
        'public.nokey',
        'public.missing',
        'public.scratch',
        'public.tmp',
        'public.v',
        'public.su_owned',
      ];
      const opts = options({ tables });
      const report = await runPreflight(db.admin, opts);
      const byCheck = new Map(
        report.findings.filter((f) => f.severity !== 'info').map((f) => [`${f.severity} ${f.check}`, f]),
      );
      assert.match(byCheck.get('error table public.missing')!.message, /^does not exist$/);
      assert.match(
        byCheck.get('error table public.scratch')!.message,
        /unlogged: its changes are never written to the WAL/,
      );
      assert.match(byCheck.get('error table public.scratch')!.fix!, /SET LOGGED/);
      assert.match(byCheck.get('error table public.tmp')!.message, /temporary tables are never captured/);
      assert.match(byCheck.get('error table public.v')!.message, /is not a table/);
      assert.match(byCheck.get('warning table public.nokey')!.message, /history only/);
      assert.match(
        byCheck.get('warning table public.nokey')!.fix!,
        /PGCDC_REPLICA_IDENTITY_FULL=public\.nokey/,
      );
      assert.match(
        byCheck.get('error admin rights')!.message,
        /cannot act for postgres, owner of public\.su_owned/,
      );
      assert.deepEqual(report.historyOnly, ['public.nokey']);
      // sql init stops before changing anything and lists every error in one message.
      await assert.rejects(
        runSqlInit(db.admin, { ...opts, bootstrapSuperuser: db.superuser }),
        (e: Error) => {
          for (const t of ['public.missing', 'public.scratch', 'public.tmp', 'public.v', 'public.su_owned'])
            assert.ok(e.message.includes(t), `${t} in: ${e.message}`);
          return /5 problems\); nothing was changed/.test(e.message);
        },
      );
      assert.deepEqual(
        await query(db.superuser, 'SELECT 1 FROM pg_roles WHERE rolname = $1', [opts.replicationUser]),
        [],
      );
      // With the list fixed, only the keyless table's warning remains and the init succeeds.
      const fixed = await runSqlInit(db.admin, {
        ...opts,
        tables: ['public.ok', 'public.nokey'],
        bootstrapSuperuser: db.superuser,
      });
      assert.deepEqual(fixed.historyOnly, ['public.nokey']);
      await query(db.superuser, 'SELECT pg_drop_replication_slot($1)', [opts.slot]);
    } finally {
      await temp.end();
    }
  });

  it('a lost slot is recreated by sql init, with the snapshot progress reset and a warning about what only the re-snapshot recovers', async () => {
    const db = await databaseOn(tightCluster, 'lost');
    await query(db.owner, 'CREATE TABLE t (id int PRIMARY KEY, v text)');
    await query(db.owner, "INSERT INTO t SELECT g, 'v' FROM generate_series(1, 10) g");
    const opts = { ...options(), bootstrapSuperuser: db.superuser };
    await runSqlInit(db.admin, opts);
    await query(
      db.superuser,
      "INSERT INTO pgcdc.snapshot_progress (table_name, rows_done, done) VALUES ('public.t', 10, true)",
    );
    // max_slot_wal_keep_size = 1MB on this cluster: a few WAL segments later a checkpoint invalidates the slot.
    for (let i = 0; i < 4; i++) {
      await query(
        db.owner,
        "INSERT INTO t SELECT g, 'w' FROM generate_series(1000 * $1::int + 1, 1000 * $1::int + 100) g",
        [i + 1],
      );
      await query(db.superuser, 'SELECT pg_switch_wal()');
    }
    await query(db.superuser, 'CHECKPOINT');
    const [before] = await query(
      db.superuser,
      'SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1',
      [opts.slot],
    );
    assert.equal(before.wal_status, 'lost');
    const check = await runPreflight(db.admin, { ...options(), slot: opts.slot });
    assert.ok(check.findings.some((f) => f.severity === 'warning' && /is lost/.test(f.message)));

    const report = await runSqlInit(db.admin, opts);
    const notices = report.notices.join('\n');
    assert.match(notices, new RegExp(`WARNING: replication slot ${opts.slot} was lost`));
    assert.match(notices, /WARNING: slot .* recreated: snapshot progress reset \(1 tables\)/);
    assert.match(notices, /recovered only through that re-snapshot/);
    const [after] = await query(
      db.superuser,
      'SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1',
      [opts.slot],
    );
    assert.equal(after.wal_status, 'reserved');
    assert.deepEqual(await query(db.superuser, 'SELECT * FROM pgcdc.snapshot_progress'), []);
    await query(db.superuser, 'SELECT pg_drop_replication_slot($1)', [opts.slot]);
  });
});
