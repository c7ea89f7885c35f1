// Builds listener configurations against the shared test stack.

import { Client } from 'pg';
import { ENV } from '../../contract/env';
import { ListenerConfig, DecoderName, loadListenerConfig } from '../../listener/config';
import { runSqlInit } from '../../listener/sql-init';
import { TEST_PROJECT, TestTopic } from './pubsub';
import { freshDatabase, uniqueName } from './stack';

export interface ListenerFixture {
  cfg: ListenerConfig;
  db: { host: string; port: number; user: string; database: string };
  /** Runs SQL against the fixture's database on a fresh connection. */
  sql(text: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
}

export async function listenerFixture(
  topic: TestTopic,
  decoder: DecoderName,
  overrides: Partial<ListenerConfig> = {},
  /** Runs before the slot exists: data it writes is "existing data", invisible to the stream. */
  beforeSlot?: (sql: (text: string) => Promise<unknown>) => Promise<void>,
): Promise<ListenerFixture> {
  const db = await freshDatabase(`l_${decoder}`);
  const sql = async (text: string, params?: unknown[]) => {
    const c = new Client(db);
    await c.connect();
    try {
      return (await c.query(text, params)).rows as Record<string, unknown>[];
    } finally {
      await c.end();
    }
  };
  if (beforeSlot) await beforeSlot(sql);
  const slot = uniqueName(`slot_${decoder}`);
  const publication = uniqueName('pub');
  // Tables are created after the init by most tests: the superuser fixture publishes FOR ALL TABLES (the
  // Cloud-SQL-like fixture in test/support/cloudsql.ts publishes exactly the captured tables).
  await runSqlInit(db, { slot, publication, decoder, publishAllTablesForTests: true });
  // The production defaults (an empty job environment), pointed at this database and topic; no automatic
  // snapshot unless a test asks for it.
  const cfg: ListenerConfig = {
    ...loadListenerConfig({ [ENV.topic]: topic.topic, [ENV.project]: TEST_PROJECT, [ENV.snapshot]: 'off' }),
    pg: db,
    slot,
    publication,
    decoder,
    ...overrides,
  };

  return { cfg, db, sql };
}

/** The environment a Cloud Run job would get for this configuration. */
export function listenerEnv(cfg: ListenerConfig): Record<string, string> {
  return {
    PGHOST: String(cfg.pg.host),
    PGPORT: String(cfg.pg.port),
    PGUSER: String(cfg.pg.user),
    PGDATABASE: String(cfg.pg.database),
    [ENV.slot]: cfg.slot,
    [ENV.publication]: cfg.publication,
    [ENV.decoder]: cfg.decoder,
    [ENV.project]: cfg.projectId,
    [ENV.topic]: cfg.topic,
    [ENV.encoding]: cfg.encoding,
    [ENV.maxEventsPerMessage]: String(cfg.maxEventsPerMessage),
    [ENV.maxMessageBytes]: String(cfg.maxMessageBytes),
    [ENV.maxRunSeconds]: String(cfg.maxRunSeconds),
    [ENV.maxInFlightBytes]: String(cfg.maxInFlightBytes),
    [ENV.snapshot]: cfg.snapshot,
    [ENV.snapshotChunkRows]: String(cfg.snapshotChunkRows),
  };
}
