// The TOAST lookup never waits on the application's locks (listener/toast-fill.ts): with the table locked
// ACCESS EXCLUSIVE by the application (an ALTER TABLE in progress, or one queued behind a long transaction),
// the run gives up the lookup after lock_timeout, stops before the unresolved change without confirming it,
// names the table and the sessions in the way, and the next run — once the lock is gone — delivers every
// change. Real cluster, Cloud-SQL-like roles (the replicator sees other roles' locks only through pg_locks).

import assert from 'node:assert/strict';
import { Client } from 'pg';
import { formatLsn, parseLsn } from '../../contract/lsn';
import { DecoderName } from '../../listener/config';
import { runListener } from '../../listener/run';
import { LOOKUP_LIMITS, SourceLookup } from '../../listener/toast-fill';
import { loadCatalog } from '../../listener/catalog';
import { ChangeEvent } from '../../contract/events';
import { listenerFixture } from '../support/listener';
import { CloudSqlFixture, cloudSqlListenerFixture } from '../support/cloudsql';
import { TableEvent, createTopic, eventsOf, pullAll } from '../support/pubsub';
import { confirmedFlush } from '../support/slot';

/** 4 kB+ of text that does not compress: with STORAGE EXTERNAL it always lives out of line. */
const BIG = (seed: number) =>
  `(SELECT string_agg(md5((${seed} * 1000 + g)::text), '') FROM generate_series(1, 130) g)`;

/** The replica the events build, table by table: each key's highest-seq event (deletes remove it). */
function replicaOf(
  events: TableEvent[],
  table: string,
  cols: string[],
): Map<string, Record<string, unknown>> {
  const rows = new Map<string, Record<string, unknown>>();
  for (const e of events.filter((x) => x.table === table)) {
    const id = String((e.key ?? e.after ?? {}).id);
    if (e.op === 'd') rows.delete(id);
    else if (e.after) rows.set(id, Object.fromEntries(cols.map((c) => [c, e.after![c]])));
  }
  return rows;
}

async function sourceRows(f: CloudSqlFixture, table: string, cols: string[]) {
  const rows = await f.sql(`SELECT ${cols.join(', ')} FROM ${table} ORDER BY id`);
  return new Map(
    rows.map((r) => [
      String(r.id),
      Object.fromEntries(cols.map((c) => [c, r[c] === null ? null : String(r[c])])),
    ]),
  );
}

/** A session of the application's owner that stays open (holds its locks) until the test ends it. */
async function appSession(f: CloudSqlFixture): Promise<{ client: Client; pid: number }> {
  const client = new Client(f.db);
  await client.connect();
  const r = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return { client, pid: r.rows[0].pid };
}

async function lockHeld(f: CloudSqlFixture, pid: number): Promise<boolean> {
  const r = await f.sql(
    "SELECT 1 FROM pg_locks WHERE pid = $1 AND relation = 'docs'::regclass AND mode = 'AccessExclusiveLock' AND granted",
    [pid],
  );
  return r.length === 1;
}

/** Waits until the session's lock request on docs is queued (observed in pg_locks, no timer). */
async function untilWaiting(f: CloudSqlFixture, pid: number): Promise<void> {
  for (;;) {
    const r = await f.sql(
      "SELECT 1 FROM pg_locks WHERE pid = $1 AND relation = 'docs'::regclass AND NOT granted",
      [pid],
    );
    if (r.length > 0) return;
  }
}

const DOC_COLS = ['id', 'small', 'big'];
const OTHER_COLS = ['id', 'v'];

for (const decoder of ['pgoutput', 'wal2json'] as DecoderName[]) {
  describe(`listener with ${decoder}: a TOAST lookup on a table the application has locked`, function () {
    this.timeout(180_000);

    async function setUp(name: string) {
      const topic = await createTopic(`lock_${name}_${decoder}`);
      const f = await cloudSqlListenerFixture(topic, decoder, {}, async (sql) => {
        await sql('CREATE TABLE docs (id int PRIMARY KEY, small text, big text)');
        await sql('ALTER TABLE docs ALTER COLUMN big SET STORAGE EXTERNAL');
        await sql('CREATE TABLE other (id int PRIMARY KEY, v text)');
      });
      await f.sql(`INSERT INTO docs VALUES (1, 'a', ${BIG(1)}), (2, 'b', ${BIG(2)}), (3, 'c', ${BIG(3)})`);
      const first = await runListener(f.cfg);
      assert.equal(first.stoppedBy, 'wal-end');
      await f.sql("INSERT INTO other VALUES (1, 'before')");
      const [{ lsn }] = await f.sql('SELECT pg_current_wal_lsn()::text AS lsn');
      // The changes that need a lookup (small changes, big stays an unchanged TOAST value), then more.
      await f.sql("UPDATE docs SET small = small || '2' WHERE id IN (1, 2)");
      await f.sql(`INSERT INTO other VALUES (2, 'after'); UPDATE docs SET big = ${BIG(30)} WHERE id = 3`);
      return { topic, f, beforeLookup: parseLsn(String(lsn)) };
    }

    /** Run 2, after the lock is gone: everything arrives; the replica equals the source row by row. */
    async function deliversEverything(s: Awaited<ReturnType<typeof setUp>>) {
      const second = await runListener(s.f.cfg);
      assert.equal(second.stoppedBy, 'wal-end');
      assert.equal(second.blockedLookup, null);
      const events = eventsOf(await pullAll(s.topic));
      for (const id of ['1', '2']) {
        const upd = events.filter((e) => e.table === 'docs' && e.op === 'u' && e.key?.id === id);
        assert.ok(upd.length >= 1, `the update of docs ${id} was delivered`);
        for (const u of upd) {
          assert.deepEqual(u.unchanged, [], `docs ${id}: resolved`);
          assert.ok(u.fromSource.includes('big'), `docs ${id}: big read from the source`);
          assert.notEqual(u.superseded, true);
        }
      }
      assert.deepEqual(replicaOf(events, 'docs', DOC_COLS), await sourceRows(s.f, 'docs', DOC_COLS));
      assert.deepEqual(replicaOf(events, 'other', OTHER_COLS), await sourceRows(s.f, 'other', OTHER_COLS));
    }

    it('an ALTER TABLE holding ACCESS EXCLUSIVE: the run gives up after lock_timeout, confirms nothing past the change, the next run delivers it', async () => {
      const s = await setUp('held');
      const app = await appSession(s.f);
      try {
        await app.client.query('BEGIN');
        await app.client.query('LOCK TABLE docs IN ACCESS EXCLUSIVE MODE');
        const alerts: { severity: string; message: string; fields?: Record<string, unknown> }[] = [];
        const blocked = await runListener(s.f.cfg, {
          alert: (severity, message, fields) => alerts.push({ severity, message, fields }),
        });
        // It returned while the application still holds its lock: it did not wait for it.
        assert.ok(await lockHeld(s.f, app.pid), 'the application still holds its lock');
        assert.equal(blocked.stoppedBy, 'lookup-blocked');
        const b = blocked.blockedLookup!;
        assert.equal(b.table, 'public.docs');
        assert.equal(b.reason, 'lock-timeout');
        assert.equal(b.attempts, LOOKUP_LIMITS.lockAttempts);
        assert.ok(
          b.sessions.some((x) => x.pid === app.pid && x.granted === true && x.mode === 'AccessExclusiveLock'),
          JSON.stringify(b.sessions),
        );
        const warning = alerts.find((a) => a.severity === 'WARNING' && a.fields?.blockedLookup);
        assert.ok(warning, JSON.stringify(alerts));
        assert.match(warning.message, new RegExp(`public\\.docs.*pid ${app.pid} holds AccessExclusiveLock`));
        // Nothing at or after the unresolved update is confirmed.
        const confirmed = await confirmedFlush(s.f.roles.superuser, s.f.cfg.slot);
        assert.ok(
          confirmed <= s.beforeLookup,
          `confirmed ${formatLsn(confirmed)} ≤ ${formatLsn(s.beforeLookup)}`,
        );
        // The application's transaction goes on undisturbed.
        await app.client.query('ALTER TABLE docs ADD COLUMN note text');
        await app.client.query('COMMIT');
      } finally {
        await app.client.end();
      }
      await deliversEverything(s);
    });

    it('an ALTER TABLE queued behind a long transaction: the lookup does not queue behind it, and names both sessions', async () => {
      const s = await setUp('queued');
      const reader = await appSession(s.f);
      const migration = await appSession(s.f);
      try {
        await reader.client.query('BEGIN');
        await reader.client.query('SELECT count(*) FROM docs');
        const altered = migration.client.query('ALTER TABLE docs ADD COLUMN note text');
        await untilWaiting(s.f, migration.pid);
        const alerts: string[] = [];
        const blocked = await runListener(s.f.cfg, { alert: (_severity, message) => alerts.push(message) });
        assert.equal(blocked.stoppedBy, 'lookup-blocked');
        const b = blocked.blockedLookup!;
        const queued = b.sessions.find((x) => x.pid === migration.pid);
        assert.ok(
          queued && queued.granted === false && queued.blockedBy.includes(reader.pid),
          JSON.stringify(b.sessions),
        );
        assert.ok(
          b.sessions.some((x) => x.pid === reader.pid),
          JSON.stringify(b.sessions),
        );
        assert.ok(
          alerts.some((a) =>
            a.includes(`pid ${migration.pid} waits for AccessExclusiveLock, blocked by pid ${reader.pid}`),
          ),
          alerts.join('\n'),
        );
        const confirmed = await confirmedFlush(s.f.roles.superuser, s.f.cfg.slot);
        assert.ok(
          confirmed <= s.beforeLookup,
          `confirmed ${formatLsn(confirmed)} ≤ ${formatLsn(s.beforeLookup)}`,
        );
        // The migration gets its lock as soon as the long transaction ends: nothing of ours is in its way.
        await reader.client.query('COMMIT');
        await altered;
      } finally {
        await reader.client.end();
        await migration.client.end();
      }
      await deliversEverything(s);
    });
  });
}

describe('TOAST lookup over statement_timeout', function () {
  this.timeout(120_000);

  it('is retried in halves, so a slow batch still resolves and no statement runs past the limit', async () => {
    const topic = await createTopic('lookup_slow');
    const f = await listenerFixture(topic, 'pgoutput');
    // Casting a key to this domain takes 0.3 s, in the lookup's session only (the cast runs once per key):
    // 8 keys take 2.4 s, over a 1 s statement_timeout; 2 keys take 0.6 s.
    await f.sql(`CREATE FUNCTION slow_ok(v int) RETURNS bool LANGUAGE sql AS $$
      SELECT CASE WHEN current_setting('application_name') = 'pgcdc-listener-toast'
                  THEN pg_sleep(0.3) IS NOT NULL ELSE true END $$`);
    await f.sql('CREATE DOMAIN slow_key AS int CHECK (slow_ok(VALUE))');
    await f.sql('CREATE TABLE slow (id slow_key PRIMARY KEY, body text)');
    await f.sql("INSERT INTO slow SELECT g, 'v' || g FROM generate_series(1, 2000) g");
    const c = new Client(f.db);
    await c.connect();
    const catalog = await loadCatalog(c).finally(() => c.end());
    const columns = catalog.tables.get('public.slow')!;
    const xid = Number((await f.sql('SELECT txid_current()::text::int8 % 4294967296 AS x'))[0].x);
    const events: ChangeEvent[] = [1, 2, 3, 4, 5, 6, 7, 8].map((g) => ({
      op: 'u',
      key: { id: String(g * 100) },
      before: null,
      after: { id: String(g * 100) },
      unchanged: ['body'],
      fromSource: [],
      lsn: '0/1',
      commitLsn: '0/1',
      xid,
      commitTs: '2026-01-01 00:00:00.000000+00',
      seq: `0000000000000001/${g.toString(16).padStart(16, '0')}`,
    }));
    const lookup = new SourceLookup(f.db, undefined, { ...LOOKUP_LIMITS, statementTimeoutMs: 1000 });
    try {
      await lookup.resolve({ schema: 'public', table: 'slow', columns }, events);
    } finally {
      await lookup.close();
    }
    for (const e of events) {
      assert.deepEqual([e.after!.body, e.unchanged, e.fromSource], [`v${e.key!.id}`, [], ['body']]);
    }
    assert.ok(
      lookup.stats.lookups >= 4,
      `halved down to batches under the limit: ${lookup.stats.lookups} lookups`,
    );
  });
});
