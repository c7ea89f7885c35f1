import assert from 'node:assert/strict';
import { Client } from 'pg';
import { runSqlInit } from '../../listener/sql-init';
import { runSqlTeardown, TeardownError } from '../../listener/sql-teardown';
import { CloudSqlLikeDatabase } from '../../local/postgres';
import { freshCloudSqlLikeDatabase, uniqueName } from '../support/stack';

async function query(conn: CloudSqlLikeDatabase['admin'], text: string, params?: unknown[]) {
  const c = new Client(conn);
  await c.connect();
  try {
    return (await c.query(text, params)).rows as Record<string, unknown>[];
  } finally {
    await c.end();
  }
}

describe('SQL teardown (pgcdc sql teardown)', () => {
  it('as the non-superuser admin drops the slot (over the replicator session) and both publications, and with the options the role and schema; the application keeps its tables and data', async () => {
    const db = await freshCloudSqlLikeDatabase('teardown');
    await query(db.owner, 'CREATE TABLE k (id int PRIMARY KEY, v text)');
    await query(db.owner, 'CREATE TABLE nokey (v text)');
    await query(db.owner, "INSERT INTO k VALUES (1, 'a')");
    const opts = {
      slot: uniqueName('slot'),
      publication: uniqueName('pub'),
      decoder: 'pgoutput' as const,
      replicationUser: uniqueName('repl'),
      replicaIdentityFull: ['public.nokey'],
    };
    await runSqlInit(db.admin, { ...opts, bootstrapSuperuser: db.superuser });

    // Only the slot and publications by default; the role and the schema are kept, and said so.
    const first = await runSqlTeardown(db.admin, opts);
    assert.deepEqual(first.removed, [
      `replication slot ${opts.slot}`,
      `publication ${opts.publication}`,
      `publication ${opts.publication}_inserts`,
    ]);
    assert.ok(
      first.kept.includes(`role ${opts.replicationUser} (--drop-role removes it)`),
      first.kept.join('\n'),
    );
    assert.ok(
      first.kept.some((k) => /REPLICA IDENTITY FULL on public\.nokey.*REPLICA IDENTITY DEFAULT/.test(k)),
    );
    assert.deepEqual(
      await query(db.superuser, 'SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [opts.slot]),
      [],
    );
    assert.deepEqual(await query(db.superuser, 'SELECT pubname FROM pg_publication'), []);

    const second = await runSqlTeardown(db.admin, { ...opts, dropRole: true, dropSchema: true });
    assert.deepEqual(second.removed, [
      'schema pgcdc (snapshot progress)',
      `the grants of role ${opts.replicationUser} in this database`,
      `role ${opts.replicationUser}`,
    ]);
    assert.ok(second.kept.includes(`replication slot ${opts.slot}: there is none`));
    assert.deepEqual(
      await query(db.superuser, 'SELECT 1 FROM pg_roles WHERE rolname = $1', [opts.replicationUser]),
      [],
    );
    assert.deepEqual(await query(db.superuser, "SELECT to_regnamespace('pgcdc') AS s"), [{ s: null }]);
    assert.deepEqual(await query(db.owner, 'SELECT id, v FROM k'), [{ id: 1, v: 'a' }]);
    // The admin holds no membership it took for the teardown.
    assert.deepEqual(await query(db.admin, "SELECT pg_has_role(current_user, 'app_owner', 'MEMBER') AS m"), [
      { m: false },
    ]);
  });

  it('refuses while a listener reads the slot, dropping nothing', async () => {
    const db = await freshCloudSqlLikeDatabase('teardown_busy');
    const opts = {
      slot: uniqueName('slot'),
      publication: uniqueName('pub'),
      decoder: 'pgoutput' as const,
      replicationUser: uniqueName('repl'),
    };
    await runSqlInit(db.admin, { ...opts, bootstrapSuperuser: db.superuser });
    // A replication connection holding the slot, as a running listener does.
    const reader = new Client({
      ...db.admin,
      user: opts.replicationUser,
      replication: 'database',
    } as ConstructorParameters<typeof Client>[0]);
    await reader.connect();
    const streaming = reader
      .query(
        `START_REPLICATION SLOT ${opts.slot} LOGICAL 0/0 (proto_version '1', publication_names '${opts.publication}')`,
      )
      .catch(() => undefined);
    try {
      // Wait for the server to mark the slot active (an event, not a timer: poll the catalog).
      for (;;) {
        const [r] = await query(
          db.superuser,
          'SELECT active FROM pg_replication_slots WHERE slot_name = $1',
          [opts.slot],
        );
        if (r.active) break;
      }
      await assert.rejects(
        runSqlTeardown(db.admin, opts),
        (e: Error) =>
          e instanceof TeardownError && /in use by process \d+ .*nothing was dropped/.test(e.message),
      );
      assert.equal((await query(db.superuser, 'SELECT count(*)::int AS n FROM pg_publication')).at(0)?.n, 2);
    } finally {
      reader.end().catch(() => undefined);
      await streaming;
    }
    for (;;) {
      const [r] = await query(db.superuser, 'SELECT active FROM pg_replication_slots WHERE slot_name = $1', [
        opts.slot,
      ]);
      if (!r.active) break;
    }
    const report = await runSqlTeardown(db.admin, opts);
    assert.ok(report.removed.includes(`replication slot ${opts.slot}`));
  });
});
