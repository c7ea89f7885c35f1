// A listener fixture in the Cloud-SQL-like role mode (issue 9): the application's tables are created by the
// owner role, the SQL init runs as the NOSUPERUSER CREATEROLE admin (plus the one bootstrap-superuser step
// Cloud SQL allows cloudsqlsuperuser), and the listener and snapshot run as the LOGIN REPLICATION replicator
// with only the init's grants.

import { Client } from 'pg';
import { ENV } from '../../contract/env';
import { DecoderName, ListenerConfig, loadListenerConfig } from '../../listener/config';
import { runSqlInit, SqlInitReport } from '../../listener/sql-init';
import { ListenerFixture } from './listener';
import { TEST_PROJECT, TestTopic } from './pubsub';
import { freshCloudSqlLikeDatabase, uniqueName } from './stack';

export interface CloudSqlFixture extends ListenerFixture {
  /** Connections of the three roles (and the bootstrap superuser). */
  roles: Awaited<ReturnType<typeof freshCloudSqlLikeDatabase>> & {
    replicator: { host: string; port: number; user: string; database: string };
  };
  init: SqlInitReport;
}

export async function cloudSqlListenerFixture(
  topic: TestTopic,
  decoder: DecoderName,
  overrides: Partial<ListenerConfig> = {},
  /** Runs as the application owner before the init: tables it creates are captured, rows it writes are existing data. */
  beforeInit?: (sql: (text: string) => Promise<unknown>) => Promise<void>,
  initOptions: { tables?: string[]; replicaIdentityFull?: string[] } = {},
): Promise<CloudSqlFixture> {
  const db = await freshCloudSqlLikeDatabase(`c_${decoder}`);
  const sql = async (text: string, params?: unknown[]) => {
    const c = new Client(db.owner);
    await c.connect();
    try {
      return (await c.query(text, params)).rows as Record<string, unknown>[];
    } finally {
      await c.end();
    }
  };
  if (beforeInit) await beforeInit(sql);
  const slot = uniqueName(`slot_${decoder}`);
  const publication = uniqueName('pub');
  const replicator = uniqueName('repl');
  const init = await runSqlInit(db.admin, {
    slot,
    publication,
    decoder,
    replicationUser: replicator,
    replicatorPassword: 'not-used-with-trust-auth',
    bootstrapSuperuser: db.superuser,
    ...initOptions,
  });
  const replicatorPg = { ...db.admin, user: replicator };
  const cfg: ListenerConfig = {
    ...loadListenerConfig({ [ENV.topic]: topic.topic, [ENV.project]: TEST_PROJECT, [ENV.snapshot]: 'off' }),
    pg: replicatorPg,
    slot,
    publication,
    decoder,
    ...overrides,
  };
  return { cfg, db: db.owner, sql, roles: { ...db, replicator: replicatorPg }, init };
}
