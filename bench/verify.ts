// `npm run bench:verify [-- ROWS [CHUNK_ROWS]]`: rows verified per second by `pgcdc verify --full`, on a
// throwaway Postgres cluster and our BigQuery emulator (in this process, so the number includes the
// emulator's own work). Loads ROWS rows (default 1 000 000; CHUNK_ROWS default 100 000) of a 6-column table
// into Postgres, copies them into a replica table with the sink's own type conversions through the Storage
// Write API, then times one full verify (and one --sample 100).

import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BigQuery } from '@google-cloud/bigquery';
import { managedwriter } from '@google-cloud/bigquery-storage';
import * as grpc from '@grpc/grpc-js';
import { PassThroughClient } from 'google-auth-library';
import { startBigQueryEmulator } from '../local/bigquery-emulator';
import { startPostgres } from '../local/postgres';
import { BigQueryRest } from '../sink/bigquery-rest';
import { TableAppender } from '../sink/storage-writer';
import { planColumns, REPLICA_META_FIELDS } from '../sink/table-schema';
import { describeTable, textClient } from '../verify/source';
import { runVerify } from '../verify/verify';

const PROJECT = 'pgcdc-bench';
const DATASET = 'bench';
const LOAD_BATCH = 20_000;

async function main(): Promise<void> {
  const rows = Number(process.argv[2] ?? 1_000_000);
  // Big chunks: the emulator answers each chunk's range query by scanning the whole table (real BigQuery
  // prunes by the replica's clustering), so fewer chunks keep its share of the time down.
  const chunkRows = Number(process.argv[3] ?? 100_000);
  if (!Number.isInteger(rows) || rows <= 0) throw new Error('usage: bench:verify [-- ROWS [CHUNK_ROWS]]');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgcdc-bench-verify-'));
  chmodSync(dir, 0o755);
  process.env.METADATA_SERVER_DETECTION = 'none';
  const cluster = await startPostgres({ dir: path.join(dir, 'pg') });
  const emulator = await startBigQueryEmulator();
  const pg = cluster.connection();
  const client = textClient(pg);
  await client.connect();
  try {
    let t = Date.now();
    await client.query(`
      CREATE TABLE public.accounts (id bigint PRIMARY KEY, email varchar(255), balance numeric(12,2),
        active boolean, updated_at timestamptz, profile jsonb);
      INSERT INTO public.accounts
        SELECT g, 'user' || g || '@example.com', (g % 100000) + (g % 100) / 100.0, g % 3 <> 0,
               timestamptz '2024-05-06 07:08:09.123456+00' + g * interval '1 second',
               jsonb_build_object('plan', 'p' || g % 7, 'n', g)
          FROM generate_series(1, ${rows}) g;
      CREATE PUBLICATION pgcdc_pub FOR ALL TABLES;`);
    process.stderr.write(`source: ${rows} rows in ${((Date.now() - t) / 1000).toFixed(1)}s\n`);

    const bq = new BigQuery({
      projectId: PROJECT,
      apiEndpoint: `http://${emulator.restHost}`,
      authClient: new PassThroughClient(),
    });
    const rest = new BigQueryRest(bq, PROJECT, DATASET);
    await rest.ensureDataset();
    const src = await describeTable(client, 'public.accounts');
    const plan = planColumns(REPLICA_META_FIELDS, REPLICA_META_FIELDS, src.columns, 'bench', false);
    await rest.createTable('accounts', {
      schema: { fields: plan.fields },
      tableConstraints: { primaryKey: { columns: ['id'] } },
      maxStaleness: '0-0 0 0:0:0',
    });
    const [host, port] = emulator.grpcHost.split(':');
    const writer = new managedwriter.WriterClient({
      projectId: PROJECT,
      apiEndpoint: host,
      port: Number(port),
      sslCreds: grpc.credentials.createInsecure(),
      universeDomain: 'googleapis.com',
    } as ConstructorParameters<typeof managedwriter.WriterClient>[0]);
    const app = await TableAppender.open(
      writer,
      `projects/${PROJECT}/datasets/${DATASET}/tables/accounts`,
      plan.fields,
      true,
    );
    t = Date.now();
    for (let lo = 0; lo < rows; lo += LOAD_BATCH) {
      const { rows: batch } = await client.query<Record<string, string | null>>(
        'SELECT * FROM public.accounts WHERE id > $1 AND id <= $2',
        [lo, lo + LOAD_BATCH],
      );
      const encoded = batch.map((r) => {
        const row: Record<string, ReturnType<(typeof plan.mapping)[0]['mapping']['convert']>> = {
          _event_id: '0000000000000001/0000000000000000',
          _CHANGE_TYPE: 'UPSERT',
          _CHANGE_SEQUENCE_NUMBER: '0000000000000001/0000000000000000',
        };
        for (const m of plan.mapping) {
          const v = r[m.column.name];
          row[m.field] = v === null || v === undefined ? null : m.mapping.convert(v);
        }
        return app.encode(row);
      });
      const errors = await app.append(encoded);
      if (errors.length) throw new Error(`replica load: ${errors[0].message}`);
    }
    app.close();
    await writer.close();
    process.stderr.write(`replica: ${rows} rows in ${((Date.now() - t) / 1000).toFixed(1)}s\n`);

    const common = {
      pg,
      publication: 'pgcdc_pub',
      tables: [],
      bigquery: bq,
      project: PROJECT,
      dataset: DATASET,
    };
    t = Date.now();
    const full = await runVerify({ ...common, mode: { kind: 'full' }, chunkRows, recheckDelayMs: 0 });
    const fullSeconds = (Date.now() - t) / 1000;
    if (!full.equal)
      throw new Error(`verify found differences: ${JSON.stringify(full.tables[0]).slice(0, 500)}`);
    const rss = process.memoryUsage().rss / 1024 / 1024;
    process.stdout.write(
      `verify --full: ${full.rowsCompared} rows in ${fullSeconds.toFixed(1)}s = ` +
        `${Math.round(full.rowsCompared / fullSeconds)} rows/s (chunks of ${chunkRows}, ` +
        `${full.tables[0].chunks} chunks); process RSS (the emulator and its rows included): ${rss.toFixed(0)} MiB\n`,
    );
    // A sample looks keys up with IN UNNEST, which the emulator answers by comparing every row with every
    // key (1000 keys on 1M rows: minutes); kept small here, and it says nothing about real BigQuery.
    t = Date.now();
    const sample = await runVerify({ ...common, mode: { kind: 'sample', rows: 100 }, recheckDelayMs: 0 });
    if (!sample.equal) throw new Error('verify --sample found differences');
    process.stdout.write(`verify --sample 100: ${((Date.now() - t) / 1000).toFixed(2)}s\n`);
  } finally {
    await client.end();
    await emulator.stop();
    cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
