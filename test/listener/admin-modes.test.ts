// The admin job's container modes (listener/main.ts: check, sql-init, sql-teardown), run as the container
// runs them: a child process with only the job's environment, its JSON report on stdout, its exit code.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { Client } from 'pg';
import { ENV } from '../../contract/env';
import { EXIT } from '../../listener/errors';
import { CloudSqlLikeDatabase } from '../../local/postgres';
import { freshCloudSqlLikeDatabase, uniqueName } from '../support/stack';

const MAIN = path.resolve(__dirname, '..', '..', 'listener', 'main.js');

function run(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; report: Record<string, unknown>; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: { PATH: process.env.PATH ?? '', ...env } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      const report = line.startsWith('{') ? (JSON.parse(line) as Record<string, unknown>) : {};
      resolve({ code: code ?? -1, report, stderr: err });
    });
  });
}

async function query(conn: CloudSqlLikeDatabase['admin'], text: string) {
  const c = new Client(conn);
  await c.connect();
  try {
    return (await c.query(text)).rows as Record<string, unknown>[];
  } finally {
    await c.end();
  }
}

describe('admin job modes: check, sql-init, sql-teardown (listener/main.ts)', function () {
  this.timeout(120_000);

  it('check reports a missing table (exit 4) and nothing else changes; with the replicator created by a superuser, sql-init and sql-teardown run as the non-superuser admin', async () => {
    const db = await freshCloudSqlLikeDatabase('modes');
    await query(db.owner, 'CREATE TABLE orders (id int PRIMARY KEY, total numeric)');
    const repl = uniqueName('repl');
    const slot = uniqueName('slot');
    const env: Record<string, string> = {
      PGHOST: db.admin.host,
      PGPORT: String(db.admin.port),
      PGDATABASE: db.admin.database,
      PGSSLMODE: 'disable',
      [ENV.adminUser]: db.admin.user,
      [ENV.replicationUser]: repl,
      [ENV.slot]: slot,
      [ENV.tables]: 'public.orders,public.missing',
    };
    const bad = await run(['check'], env);
    assert.equal(bad.code, EXIT.replicationSetup);
    const findings = bad.report.findings as { severity: string; check: string; message: string }[];
    assert.deepEqual(
      findings.filter((f) => f.severity === 'error').map((f) => `${f.check}: ${f.message}`),
      [
        'replicator: only a superuser can create role ' + repl + ' with REPLICATION on this server',
        'table public.missing: does not exist',
      ],
    );
    const refused = await run(['sql-init'], env);
    assert.equal(refused.code, EXIT.replicationSetup);
    assert.equal(refused.report.ok, false);

    // The fix the check gave: a superuser creates the replicator (vanilla PostgreSQL; on Cloud SQL the admin can).
    await query(db.superuser, `CREATE ROLE ${repl} LOGIN REPLICATION`);
    env[ENV.tables] = 'public.orders';
    assert.equal((await run(['check'], env)).code, EXIT.ok);
    const init = await run(['sql-init'], env);
    assert.equal(init.code, EXIT.ok, JSON.stringify(init.report));
    assert.ok(
      (init.report.notices as string[]).includes(
        `created logical replication slot ${slot} (plugin pgoutput)`,
      ),
    );
    const [granted] = await query(
      db.superuser,
      `SELECT has_table_privilege('${repl}', 'public.orders', 'SELECT') AS ok`,
    );
    assert.equal(granted.ok, true);

    const down = await run(['sql-teardown', '--drop-role', '--drop-schema'], env);
    assert.equal(down.code, EXIT.ok);
    assert.deepEqual(down.report.removed, [
      `replication slot ${slot}`,
      'publication pgcdc_pub',
      'publication pgcdc_pub_inserts',
      'schema pgcdc (snapshot progress)',
      `the grants of role ${repl} in this database`,
      `role ${repl}`,
    ]);
  });

  it('refuses a replicator named like the admin, before connecting', async () => {
    const r = await run(['check'], {
      [ENV.adminUser]: 'postgres',
      [ENV.replicationUser]: 'postgres',
      PGHOST: '127.0.0.1',
    });
    assert.equal(r.code, EXIT.config);
    assert.match(r.stderr, /PGCDC_REPLICATION_USER must differ from the admin login postgres/);
  });
});
