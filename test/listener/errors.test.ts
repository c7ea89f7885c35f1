// Errors a user can act on: each names the fix, and the process exit code tells them apart.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { mkdtempSync, chmodSync, rmSync } from 'node:fs';
import os from 'node:os';
import { ENV } from '../../contract/env';
import { loadListenerConfig } from '../../listener/config';
import { EXIT } from '../../listener/errors';
import { runListener } from '../../listener/run';
import { startPostgres } from '../../local/postgres';
import { freePort } from '../../local/ports';
import { createTopic, eventsOf, pullAll } from '../support/pubsub';
import { confirmedFlush } from '../support/slot';
import { parseLsn } from '../../contract/lsn';
import { listenerEnv, listenerFixture } from '../support/listener';

const MAIN = path.resolve(__dirname, '../../listener/main.js');

function runMain(env: Record<string, string>): {
  code: number | null;
  error: { error: string; message: string };
  stderr: string;
} {
  const res = spawnSync(process.execPath, [MAIN], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  const last = res.stderr.trim().split('\n').pop() ?? '{}';
  return {
    code: res.status,
    error: JSON.parse(last) as { error: string; message: string },
    stderr: res.stderr,
  };
}

describe('listener: actionable errors and exit codes', function () {
  this.timeout(120_000);

  it('a missing slot says how to create it (exit 4)', async () => {
    const topic = await createTopic('err_slot');
    const f = await listenerFixture(topic, 'wal2json');
    const res = runMain({ ...listenerEnv(f.cfg), [ENV.slot]: 'no_such_slot' });
    assert.equal(res.code, EXIT.replicationSetup);
    assert.match(
      res.error.message,
      /replication slot "no_such_slot" does not exist.*pg_create_logical_replication_slot/,
    );
  });

  it('a slot of another plugin names the plugin to use (exit 4)', async () => {
    const topic = await createTopic('err_plugin');
    const f = await listenerFixture(topic, 'pgoutput');
    const res = runMain({ ...listenerEnv(f.cfg), [ENV.decoder]: 'wal2json' });
    assert.equal(res.code, EXIT.replicationSetup);
    assert.match(res.error.message, /uses plugin "pgoutput".*PGCDC_DECODER=pgoutput/);
  });

  it('a user without REPLICATION is told to grant it (exit 4)', async () => {
    const topic = await createTopic('err_priv');
    const f = await listenerFixture(topic, 'wal2json');
    await f.sql('CREATE ROLE plain_user LOGIN');
    const res = runMain({ ...listenerEnv(f.cfg), PGUSER: 'plain_user' });
    assert.equal(res.code, EXIT.replicationSetup);
    assert.match(res.error.message, /REPLICATION/);
  });

  it('an unreachable database is retried within the run, then named with host and port to check (exit 3)', async () => {
    const topic = await createTopic('err_net');
    const f = await listenerFixture(topic, 'wal2json');
    // A short run: the connection is retried with backoff (1 s, 2 s...) only while the run has time.
    const res = runMain({
      ...listenerEnv(f.cfg),
      PGPORT: String(await freePort()),
      [ENV.maxRunSeconds]: '3',
    });
    assert.equal(res.code, EXIT.databaseUnreachable);
    assert.match(res.error.message, /cannot reach the database.*PGHOST\/PGPORT/);
    assert.match(res.stderr, /database not reachable yet \(attempt 1: .*\); retrying in 1 s/);
  });

  it('a missing topic is reported as such; the slot stays before the unpublished change (exit 5)', async () => {
    const topic = await createTopic('err_topic');
    const f = await listenerFixture(topic, 'wal2json');
    await f.sql('CREATE TABLE t (id int PRIMARY KEY)');
    await f.sql('INSERT INTO t VALUES (1)');
    const res = runMain({ ...listenerEnv(f.cfg), [ENV.topic]: 'no-such-topic' });
    assert.equal(res.code, EXIT.pubsub);
    assert.match(res.error.message, /topic projects\/pgcdc-test\/topics\/no-such-topic not found/);
    const confirmed = await confirmedFlush(f.db, f.cfg.slot);
    await runListener(f.cfg);
    const [insert] = eventsOf(await pullAll(topic));
    assert.deepEqual(insert.key, { id: '1' });
    assert.ok(
      confirmed <= parseLsn(insert.commitLsn),
      'the failed run confirmed past its unpublished insert',
    );
  });

  it('wal_level other than logical is explained with the Cloud SQL flag to set', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pgcdc-replica-'));
    chmodSync(dir, 0o755);
    const cluster = await startPostgres({ dir, settings: { wal_level: 'replica' } });
    try {
      const topic = await createTopic('err_wal');
      const cfg = loadListenerConfig({
        ...listenerEnv((await listenerFixture(topic, 'wal2json')).cfg),
        PGPORT: String(cluster.port),
        PGDATABASE: 'postgres',
      });
      await assert.rejects(runListener(cfg), (e: Error & { exitCode?: number }) => {
        assert.equal(e.exitCode, EXIT.replicationSetup);
        assert.match(e.message, /wal_level is "replica".*cloudsql.logical_decoding=on/);
        return true;
      });
    } finally {
      cluster.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bad configuration stops before connecting, naming the variable (exit 2)', () => {
    assert.throws(
      () => loadListenerConfig({ [ENV.topic]: 't', [ENV.project]: 'p', [ENV.decoder]: 'test_decoding' }),
      /PGCDC_DECODER/,
    );
    assert.throws(() => loadListenerConfig({ [ENV.project]: 'p' }), /PGCDC_TOPIC is required/);
    assert.throws(
      () => loadListenerConfig({ [ENV.topic]: 't', [ENV.project]: 'p', [ENV.tables]: 'customers' }),
      /schema\.table/,
    );
    assert.throws(
      () => loadListenerConfig({ [ENV.topic]: 't', [ENV.project]: 'p', [ENV.maxRunSeconds]: '0' }),
      /PGCDC_MAX_RUN_SECONDS/,
    );
    const res = spawnSync(process.execPath, [MAIN], { env: { PATH: process.env.PATH }, encoding: 'utf8' });
    assert.equal(res.status, EXIT.config);
    assert.match(res.stderr, /PGCDC_TOPIC is required/);
  });
});
