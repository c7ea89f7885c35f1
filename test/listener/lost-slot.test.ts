// An invalidated slot (issue 10.3): a real slot lost to max_slot_wal_keep_size is detected at run start,
// the listener exits with the replication-setup code and says how to recover. Runs on its own cluster,
// because max_slot_wal_keep_size is a server-wide setting (Cloud SQL does not offer it; here it is only
// the way to make the server invalidate a slot).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { ENV } from '../../contract/env';
import { loadListenerConfig } from '../../listener/config';
import { EXIT, classifyPgError } from '../../listener/errors';
import { runListener } from '../../listener/run';
import { ReplicationStream } from '../../listener/replication-stream';
import { PostgresCluster, startPostgres } from '../../local/postgres';
import { TEST_PROJECT, createTopic } from '../support/pubsub';

const MAIN = path.resolve(__dirname, '../../listener/main.js');

async function walStatus(c: Client, slot: string): Promise<string> {
  const r = await c.query<{ s: string }>(
    'SELECT wal_status AS s FROM pg_replication_slots WHERE slot_name = $1',
    [slot],
  );
  return r.rows[0].s;
}

describe('listener: an invalidated (lost) slot', function () {
  this.timeout(180_000);
  let dir: string;
  let cluster: PostgresCluster;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'pgcdc-lost-'));
    chmodSync(dir, 0o755);
    cluster = await startPostgres({ dir, settings: { max_slot_wal_keep_size: '1MB' } });
  });

  after(() => {
    cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is detected at run start: exit 4 with the recovery steps; START_REPLICATION on it says the same', async () => {
    const c = new Client(cluster.connection());
    await c.connect();
    const slot = 'pgcdc_lost';
    try {
      await c.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
      await c.query('CREATE PUBLICATION pgcdc_pub FOR ALL TABLES');
      await c.query('CREATE TABLE filler (x text)');
      assert.equal(await walStatus(c, slot), 'reserved');
      // Write WAL past max_slot_wal_keep_size until a checkpoint removes what the slot still needs.
      for (let i = 0; i < 20 && (await walStatus(c, slot)) !== 'lost'; i++) {
        await c.query("INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 20000)");
        await c.query('SELECT pg_switch_wal()');
        await c.query('CHECKPOINT');
      }
      assert.equal(await walStatus(c, slot), 'lost');
    } finally {
      await c.end();
    }

    const topic = await createTopic('lost');
    const env = {
      PGHOST: cluster.host,
      PGPORT: String(cluster.port),
      PGUSER: cluster.user,
      PGDATABASE: 'postgres',
      [ENV.slot]: slot,
      [ENV.decoder]: 'pgoutput',
      [ENV.project]: TEST_PROJECT,
      [ENV.topic]: topic.topic,
    };
    const res = spawnSync(process.execPath, [MAIN], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(res.status, EXIT.replicationSetup, res.stderr);
    const err = JSON.parse(res.stderr.trim().split('\n').pop()!) as { message: string };
    assert.match(err.message, /"pgcdc_lost" has been invalidated \(wal_status = lost\)/);
    assert.match(err.message, /pgcdc sql init --env <env>.*recreates the slot.*sent again/);
    assert.match(err.message, /only through that re-snapshot/);
    await assert.rejects(runListener(loadListenerConfig(env)), /has been invalidated/);

    // Past the check (a slot lost between the check and START_REPLICATION): the server's own refusal is
    // classified the same way.
    const stream = new ReplicationStream(cluster.connection());
    await stream.connect();
    try {
      const started = stream.start({
        slot,
        startLsn: 0n,
        pluginOptions: { proto_version: '1', publication_names: 'pgcdc_pub' },
      });
      const e = await started.then(
        () => assert.fail('START_REPLICATION on a lost slot succeeded'),
        (x: unknown) => classifyPgError(x, { slot }),
      );
      assert.equal((e as Error & { exitCode?: number }).exitCode, EXIT.replicationSetup);
      assert.match(e.message, /has been invalidated \(wal_status = lost\).*pgcdc sql init/);
    } finally {
      await stream.destroy();
    }
  });
});
