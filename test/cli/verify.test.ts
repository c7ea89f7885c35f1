// `pgcdc verify` on the real local stack: after an end-to-end workload the replica equals the source
// (exit 0); damage to the source made without the pipeline running and damage to the replica written
// through the Storage Write API are each found and reported (exit 16); changes in flight are excluded.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BigQuery } from '@google-cloud/bigquery';
import { managedwriter } from '@google-cloud/bigquery-storage';
import * as grpc from '@grpc/grpc-js';
import { Client } from 'pg';
import { CliDeps, defaultDeps } from '../../cli/deps';
import { EXIT } from '../../cli/errors';
import { BufferedOutput, bufferOutput } from '../../cli/output';
import { runCli } from '../../cli/program';
import { emulatorBigQuery, LocalEndpoints, localDown, localEnv } from '../../local/stack';
import { BigQueryRest } from '../../sink/bigquery-rest';
import { ProtoRow, TableAppender } from '../../sink/storage-writer';
import { verifyArgs } from '../../verify/job';
import { replicaTableName } from '../../verify/sink-adapter';
import { runVerify, TableReport, VerifyReport } from '../../verify/verify';
import { harness, Harness, PROJECT, REGION } from './fakes';

function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

const SETUP = `
  CREATE TYPE public.verify_mood AS ENUM ('sad', 'ok', 'happy');
  CREATE TABLE public.verify_types (
    id bigint PRIMARY KEY, amount numeric(20,5), big numeric, price double precision, ok boolean,
    born date, at timestamptz, local_at timestamp, t time, doc jsonb, raw json, tags text[], nums int[],
    blob bytea, u uuid, m public.verify_mood, note text);
  INSERT INTO public.verify_types
    SELECT g, g * 1.5, (10::numeric ^ 30) + g, g / 3.0, g % 2 = 0, date '2020-01-01' + g,
           timestamptz '2024-03-01 12:00:00.123456+02' + g * interval '1 hour 1.5 second',
           timestamp '1999-12-31 23:59:59.5' + g * interval '1 day', time '10:00' + g * interval '1 minute',
           jsonb_build_object('g', g, 'b', array[g, g + 1]), json_build_object('z', 1, 'a', g),
           array['x' || g, 'y,"q"'], array[g, -g], decode(md5(g::text), 'hex'), md5(g::text)::uuid,
           (array['sad','ok','happy']::public.verify_mood[])[1 + g % 3],
           CASE WHEN g % 5 = 0 THEN NULL ELSE 'note ' || g END
      FROM generate_series(1, 60) g;
  -- Columns named like Object.prototype members: kept by the listener and by verify's own source reads.
  CREATE TABLE public.verify_text_key (code text, n int, label text, "__proto__" text, "constructor" text,
    PRIMARY KEY (code, n));
  -- Values BigQuery's types cannot hold: the sink keeps each as Postgres text in the column's companion
  -- "<col>__pg" with the typed column NULL (sink/event-work.ts); verify compares them as that text.
  CREATE TABLE public.verify_companions (id int PRIMARY KEY, amount numeric, day date, at timestamptz,
    local_at timestamp, t time, doc jsonb, tags text[], nums numeric[]);
  INSERT INTO public.verify_companions VALUES
    (1, 'NaN', '0044-03-15 BC', '10000-01-01 00:00:00+00', '0100-01-01 00:00:00 BC', '24:00:00',
     '{"n": 123456789012345678901234567890}', '{a,NULL}', '{1,NaN}'),
    (2, 10::numeric ^ 40, '12000-01-01', '2024-01-01 00:00:00+00', '2024-01-01 00:00:00', '12:00',
     '{"n": 1}', '{{a,b},{c,d}}', '{1,NULL}'),
    (3, 'Infinity', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (4, '-Infinity', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (5, 2.5, '2020-01-02', '2024-01-02 00:00:00+00', '2024-01-02 00:00:00', '12:30', '{"a": 1}', '{a}', '{1.5}'),
    (6, ('0.' || repeat('0', 39) || '1')::numeric, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (7, 3.25, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
  CREATE TABLE public.verify_no_key (a int, b text);
  INSERT INTO public.verify_no_key VALUES (1, 'x');
  INSERT INTO public.verify_text_key
    SELECT 'k' || lpad(g::text, 2, '0'), g, 'label ' || g, 'p' || g, CASE WHEN g % 2 = 0 THEN 'c' || g END
      FROM generate_series(1, 40) g;
`;

const WORKLOAD = `
  UPDATE public.verify_types SET note = 'updated', doc = '{"nested": {"x": [1, 2.50, "s"]}}' WHERE id % 7 = 0;
  DELETE FROM public.verify_types WHERE id IN (3, 33);
  INSERT INTO public.verify_types (id, amount, tags) VALUES (100, -0.00001, '{}');
  UPDATE public.verify_text_key SET label = NULL, "__proto__" = 'changed', "constructor" = NULL WHERE n = 4;
  DELETE FROM public.verify_text_key WHERE n = 9;
  UPDATE public.customers SET loyalty_points = loyalty_points + 5 WHERE customer_id % 3 = 0;
  -- From a companion back to the typed column, and the other way.
  UPDATE public.verify_companions SET amount = 7 WHERE id = 2;
  UPDATE public.verify_companions SET amount = 'NaN', day = '0001-01-01 BC' WHERE id = 5;
`;

function hex16(n: bigint): string {
  return n.toString(16).toUpperCase().padStart(16, '0');
}

/** A change sequence after `seq` in the same transaction: newer than the row, still before any snapshot. */
function laterSeq(seq: string): string {
  const [commit, ordinal] = seq.split('/');
  return `${commit}/${hex16(BigInt('0x' + ordinal) + 1000n)}`;
}

describe('pgcdc verify against the local stack', function () {
  // A whole local stack, two pipeline runs and re-checks per test: minutes on a loaded 2-core machine.
  this.timeout(600_000);
  let dir: string;
  let out: BufferedOutput;
  let deps: CliDeps;
  const cli = async (...argv: string[]) => {
    out = bufferOutput();
    deps = defaultDeps({ output: out, localDir: dir });
    return runCli(argv, deps);
  };
  const endpoints = () =>
    JSON.parse(readFileSync(path.join(dir, 'endpoints.json'), 'utf8')) as LocalEndpoints;
  // As the application's table owner: in the Cloud-SQL-like local mode the admin acts for the owner, and
  // cannot for tables a superuser owns (what a user's app would never do on Cloud SQL either).
  const sql = async (text: string) => {
    const e = endpoints();
    const pg = new Client(e.roles ? { ...e.pg, user: e.roles.owner } : e.pg);
    await pg.connect();
    try {
      await pg.query(text);
    } finally {
      await pg.end();
    }
  };
  const verify = async (...extra: string[]) => {
    const code = await cli('verify', '--env', 'local', '--json', '--recheck-seconds', '0', ...extra);
    assert.ok(out.stdout.trim(), `verify printed no report (exit ${code}): ${out.stderr}`);
    return { code, report: JSON.parse(out.stdout) as VerifyReport };
  };
  const table = (r: VerifyReport, name: string): TableReport => {
    const t = r.tables.find((x) => x.table === name);
    assert.ok(t, `no report for ${name}: ${JSON.stringify(r.tables.map((x) => x.table))}`);
    return t;
  };
  const runOnce = async () =>
    assert.equal(await cli('run-once', '--env', 'local', '--json'), EXIT.ok, out.stderr);

  /** Writes CDC rows into a replica through the Storage Write API, as the sink would (but wrong). */
  async function writeReplica(tableId: string, rows: ProtoRow[]): Promise<void> {
    const e = endpoints();
    const [host, port] = e.bigQueryStorageEmulatorHost.split(':');
    const writer = new managedwriter.WriterClient({
      projectId: e.project,
      apiEndpoint: host,
      port: Number(port),
      sslCreds: grpc.credentials.createInsecure(),
      universeDomain: 'googleapis.com',
    } as ConstructorParameters<typeof managedwriter.WriterClient>[0]);
    const rest = new BigQueryRest(emulatorBigQuery(e), e.project, e.dataset);
    const meta = await rest.getTable(tableId);
    const app = await TableAppender.open(
      writer,
      `projects/${e.project}/datasets/${e.dataset}/tables/${tableId}`,
      meta?.schema?.fields ?? [],
      true,
    );
    try {
      assert.deepEqual(await app.append(rows.map((r) => app.encode(r))), []);
    } finally {
      app.close();
      await writer.close();
    }
  }

  async function replicaSeq(
    tableId: string,
    match: (r: Record<string, unknown>) => boolean,
  ): Promise<string> {
    const e = endpoints();
    const rows = await new BigQueryRest(emulatorBigQuery(e), e.project, e.dataset).listRows(tableId);
    const row = rows.find(match);
    assert.ok(row, `no replica row in ${tableId}`);
    return String(row._event_id);
  }

  /** A replica table's rows by their `id` (REST values). */
  async function replicaRows(tableId: string): Promise<Map<string, Record<string, unknown>>> {
    const e = endpoints();
    const rows = await new BigQueryRest(emulatorBigQuery(e), e.project, e.dataset).listRows(tableId);
    return new Map(rows.map((r) => [String(r.id), r]));
  }

  before(async () => {
    dir = tempDir('pgcdc-verify-');
    assert.equal(await cli('local', 'up'), EXIT.ok, out.stderr);
    // The tables exist before the SQL init, which grants and publishes exactly the tables present then.
    await sql(SETUP);
    assert.equal(await cli('sql', 'init', '--env', 'local'), EXIT.ok, out.stderr);
    await runOnce();
    await sql(WORKLOAD);
    await runOnce();
  });
  after(async () => {
    await localDown({ dir, purge: true });
  });

  it('finds the replica equal to the source after the workload, chunk by chunk, and exits 0', async () => {
    const { code, report } = await verify('--chunk-rows', '7');
    assert.equal(code, EXIT.ok, JSON.stringify(report, null, 1));
    assert.equal(report.equal, true);
    assert.deepEqual(report.tables.map((t) => t.table).sort(), [
      'public.customers',
      'public.verify_companions',
      'public.verify_text_key',
      'public.verify_types',
    ]);
    assert.deepEqual(
      report.skipped.map((x) => x.table),
      ['public.verify_no_key'],
    );
    const types = table(report, 'public.verify_types');
    assert.equal(types.sourceRows, 59);
    assert.equal(types.replicaRows, 59);
    assert.equal(types.chunking, 'integer');
    assert.equal(types.chunks, 9);
    assert.equal(types.chunksDiffering, 0);
    assert.match(types.position.lsn, /^[0-9A-F]+\/[0-9A-F]+$/);
    const text = table(report, 'public.verify_text_key');
    assert.equal(text.chunking, 'text');
    assert.equal(text.sourceRows, 39);
    assert.ok(text.chunks >= 6);
    // The human form says the same.
    assert.equal(await cli('verify', '--env', 'local'), EXIT.ok, out.stderr);
    assert.match(out.stdout, /public\.verify_types → verify_types: equal at source position/);
    assert.match(out.stdout, /verify: replica equals source — 4 table\(s\)/);
    assert.match(out.stderr, /verify public\.verify_types: chunk 1/);
  });

  it('compares values kept in companion columns as their Postgres text: equal after the workload', async () => {
    const { code, report } = await verify('--table', 'public.verify_companions');
    assert.equal(code, EXIT.ok, JSON.stringify(report, null, 1));
    const t = table(report, 'public.verify_companions');
    assert.equal(t.sourceRows, 7);
    assert.equal(t.replicaRows, 7);
    // The values really are in the companions (typed column NULL), so the comparison above used them.
    const rows = await replicaRows('verify_companions');
    assert.deepEqual(
      { amount: rows.get('1')?.amount, amount__pg: rows.get('1')?.amount__pg, t__pg: rows.get('1')?.t__pg },
      { amount: null, amount__pg: 'NaN', t__pg: '24:00:00' },
    );
    assert.equal(rows.get('1')?.tags__pg, '{a,NULL}');
    assert.equal(rows.get('1')?.nums__pg, '{1,NaN}');
    assert.equal(rows.get('2')?.day__pg, '12000-01-01');
    assert.equal(rows.get('2')?.tags__pg, '{{a,b},{c,d}}');
    assert.equal(rows.get('6')?.amount__pg, '0.' + '0'.repeat(39) + '1');
    // An update that moved a value between the typed column and its companion left the other one NULL.
    assert.deepEqual([rows.get('2')?.amount, rows.get('2')?.amount__pg], ['7', null]);
    assert.deepEqual([rows.get('5')?.amount, rows.get('5')?.amount__pg], [null, 'NaN']);
    assert.deepEqual([rows.get('5')?.day, rows.get('5')?.day__pg], [null, '0001-01-01 BC']);
  });

  it('the listener container runs the same verify with args ["verify", ...] and prints the report as its JSON line', async () => {
    const e = endpoints();
    const main = path.resolve(__dirname, '..', '..', 'listener', 'main.js');
    const args = verifyArgs({
      project: e.project,
      dataset: e.dataset,
      tables: [],
      mode: { kind: 'full' },
      recheckSeconds: 0,
    });
    const { stdout, code } = await new Promise<{ stdout: string; code: number }>((resolve) =>
      execFile(
        process.execPath,
        [main, ...args],
        { env: { ...process.env, ...localEnv(e) } },
        (err, stdout) => resolve({ stdout, code: err ? ((err as { code?: number }).code ?? 1) : 0 }),
      ),
    );
    assert.equal(code, 0);
    const line = JSON.parse(stdout.trim()) as { command: string; verify: VerifyReport };
    assert.equal(line.command, 'verify');
    assert.equal(line.verify.equal, true);
    assert.equal(table(line.verify, 'public.verify_types').sourceRows, 59);
  });

  it('a sample finds the replica equal too', async () => {
    const { code, report } = await verify('--sample', '10');
    assert.equal(code, EXIT.ok, JSON.stringify(report));
    assert.ok(table(report, 'public.verify_types').mode === 'sample');
  });

  it('reports source rows changed, added and deleted while the pipeline did not run (exit 16), then equal once it ran', async () => {
    await sql(`
      UPDATE public.verify_types SET note = 'changed behind the pipeline', amount = 1.23 WHERE id = 5;
      INSERT INTO public.verify_types (id, note) VALUES (500, 'new');
      DELETE FROM public.verify_text_key WHERE code = 'k07' AND n = 7;`);
    const { code, report } = await verify('--chunk-rows', '10');
    assert.equal(code, EXIT.verifyDifferences);
    assert.equal(report.equal, false);
    const types = table(report, 'public.verify_types');
    assert.deepEqual(types.onlyInSource, { count: 1, keys: ['["500"]'] });
    assert.equal(types.differing.count, 1);
    assert.equal(types.differing.rows[0].key, '["5"]');
    assert.deepEqual(types.differing.rows[0].columns, [
      { column: 'amount', source: '1.23000', replica: '7.5' },
      { column: 'note', source: 'changed behind the pipeline', replica: null },
    ]);
    assert.equal(types.chunksDiffering, 2);
    const text = table(report, 'public.verify_text_key');
    assert.deepEqual(text.onlyInReplica, { count: 1, keys: ['["k07","7"]'] });
    assert.equal(table(report, 'public.customers').equal, true);

    // A sample (here as large as the tables) finds the same rows, and the row counts show the missing one.
    const sampled = await verify('--sample', '100');
    assert.equal(sampled.code, EXIT.verifyDifferences);
    const st = table(sampled.report, 'public.verify_types');
    assert.deepEqual(st.onlyInSource.keys, ['["500"]']);
    assert.deepEqual(
      st.differing.rows.map((r) => r.key),
      ['["5"]'],
    );
    assert.match(
      table(sampled.report, 'public.verify_text_key').notes.join('\n'),
      /row counts differ: source 38, replica 39/,
    );

    await runOnce();
    const after = await verify();
    assert.equal(after.code, EXIT.ok, JSON.stringify(after.report));
  });

  it('reports a companion value tampered with, nulled, or set beside a typed value, by the Postgres column name', async () => {
    const seq = async (id: string) => laterSeq(await replicaSeq('verify_companions', (r) => r.id === id));
    const upsert = async (id: string, values: ProtoRow) => {
      const s = await seq(id);
      return { id, ...values, _event_id: s, _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: s };
    };
    await writeReplica('verify_companions', [
      // Source 'Infinity': another text in the companion.
      await upsert('3', { amount: null, amount__pg: 'NaN' }),
      // Source '-Infinity': the companion lost (the typed column cannot hold it, so nothing holds it).
      await upsert('4', { amount: null, amount__pg: null }),
      // Source 3.25: the typed value, and a companion the sink never writes beside one.
      await upsert('7', { amount: '3.25', amount__pg: '3.25' }),
    ]);
    const { code, report } = await verify('--table', 'public.verify_companions');
    assert.equal(code, EXIT.verifyDifferences);
    const t = table(report, 'public.verify_companions');
    assert.equal(t.equal, false);
    assert.equal(t.differing.count, 3);
    assert.deepEqual(t.differing.rows, [
      {
        key: '["3"]',
        columns: [
          {
            column: 'amount',
            source: 'Infinity',
            replica: null,
            companion: { field: 'amount__pg', text: 'NaN' },
          },
        ],
      },
      { key: '["4"]', columns: [{ column: 'amount', source: '-Infinity', replica: null }] },
      {
        key: '["7"]',
        columns: [
          {
            column: 'amount',
            source: '3.25',
            replica: '3.25',
            companion: { field: 'amount__pg', text: '3.25' },
          },
        ],
      },
    ]);
    assert.equal(
      await cli('verify', '--env', 'local', '--table', 'public.verify_companions', '--recheck-seconds', '0'),
      EXIT.verifyDifferences,
    );
    assert.match(out.stdout, /\["3"\]: amount source "Infinity" replica null and amount__pg "NaN"/);
    assert.match(out.stdout, /\["4"\]: amount source "-Infinity" replica null\n/);

    // The pipeline repairs it (new changes with higher sequences).
    await sql(`UPDATE public.verify_companions SET amount = amount WHERE id IN (3, 4, 7)`);
    await runOnce();
    const after = await verify('--table', 'public.verify_companions');
    assert.equal(after.code, EXIT.ok, JSON.stringify(after.report));
  });

  it('reports replica rows deleted, altered and added through the Storage Write API (exit 16)', async () => {
    const seq8 = await replicaSeq('verify_text_key', (r) => r.code === 'k08');
    const seq10 = await replicaSeq('verify_types', (r) => r.id === '10');
    await writeReplica('verify_text_key', [
      { code: 'k08', n: '8', _CHANGE_TYPE: 'DELETE', _CHANGE_SEQUENCE_NUMBER: laterSeq(seq8) },
      {
        code: 'k11',
        n: '11',
        label: 'tampered',
        _event_id: laterSeq(seq8),
        _CHANGE_TYPE: 'UPSERT',
        _CHANGE_SEQUENCE_NUMBER: laterSeq(seq8),
      },
      {
        code: 'ghost',
        n: '1',
        label: 'never in the source',
        _event_id: laterSeq(seq8),
        _CHANGE_TYPE: 'UPSERT',
        _CHANGE_SEQUENCE_NUMBER: laterSeq(seq8),
      },
    ]);
    await writeReplica('verify_types', [
      { id: '10', _CHANGE_TYPE: 'DELETE', _CHANGE_SEQUENCE_NUMBER: laterSeq(seq10) },
    ]);
    const { code, report } = await verify();
    assert.equal(code, EXIT.verifyDifferences);
    const text = table(report, 'public.verify_text_key');
    assert.deepEqual(text.onlyInSource, { count: 1, keys: ['["k08","8"]'] });
    assert.deepEqual(text.onlyInReplica, { count: 1, keys: ['["ghost","1"]'] });
    assert.deepEqual(text.differing.rows, [
      {
        key: '["k11","11"]',
        // The tampering row names the key and `label` only: its "__proto__" is null now, which verify sees too.
        columns: [
          { column: 'label', source: 'label 11', replica: 'tampered' },
          { column: '__proto__', source: 'p11', replica: null },
        ],
      },
    ]);
    assert.deepEqual(table(report, 'public.verify_types').onlyInSource, { count: 1, keys: ['["10"]'] });
    // The human form names each kind.
    assert.equal(await cli('verify', '--env', 'local', '--recheck-seconds', '0'), EXIT.verifyDifferences);
    assert.match(out.stdout, /only in the source: 1: \["k08","8"\]/);
    assert.match(out.stdout, /only in the replica: 1: \["ghost","1"\]/);
    assert.match(out.stdout, /\["k11","11"\]: label source "label 11" replica "tampered"/);
    assert.match(out.stderr, /the replica differs from the source/);
  });

  it('excludes and counts changes in flight: a replica row newer than the snapshot, a source row changed since, a replica that caught up', async () => {
    // Repair the damage of the last test through the pipeline (new changes with higher sequences).
    await sql(`
      UPDATE public.verify_text_key SET label = label WHERE code IN ('k08', 'k11');
      INSERT INTO public.verify_text_key VALUES ('ghost', 1, 'briefly');
      DELETE FROM public.verify_text_key WHERE code = 'ghost';
      UPDATE public.verify_types SET note = note WHERE id = 10;`);
    await runOnce();
    assert.equal((await verify()).code, EXIT.ok, out.stdout);
    // A replica row written by a change after any snapshot verify can take (a commit position beyond it).
    await writeReplica('verify_text_key', [
      {
        code: 'k12',
        n: '12',
        label: 'from the future',
        _event_id: 'FFFFFFFF00000000/0000000000000001',
        _CHANGE_TYPE: 'UPSERT',
        _CHANGE_SEQUENCE_NUMBER: 'FFFFFFFF00000000/0000000000000001',
      },
    ]);
    // Two source changes not yet delivered: the pipeline delivers the first while verify re-checks, and the
    // second key changes again after the snapshot.
    await sql(`UPDATE public.verify_text_key SET label = 'on its way' WHERE code = 'k13';
               UPDATE public.verify_text_key SET label = 'changing' WHERE code = 'k14';`);
    const e = endpoints();
    const report = await runVerify({
      pg: e.pg,
      publication: e.publication,
      tables: ['public.verify_text_key'],
      bigquery: emulatorBigQuery(e),
      project: e.project,
      dataset: e.dataset,
      mode: { kind: 'full' },
      recheckDelayMs: 0,
      afterSnapshot: async () => {
        await runOnce();
        await sql(`UPDATE public.verify_text_key SET label = 'changed again' WHERE code = 'k14'`);
      },
    });
    const t = report.tables[0];
    assert.equal(t.equal, true, JSON.stringify(t));
    assert.deepEqual(
      { ...t.excluded, keys: [...t.excluded.keys].sort() },
      {
        count: 3,
        newerInReplica: 1,
        changedInSource: 1,
        caughtUp: 1,
        keys: ['["k12","12"] (newerInReplica)', '["k13","13"] (caughtUp)', '["k14","14"] (changedInSource)'],
      },
    );
  });

  it('refuses --sample with --full, and an unknown table, with clear errors', async () => {
    assert.equal(await cli('verify', '--env', 'local', '--sample', '5', '--full'), EXIT.usage);
    assert.match(out.stderr, /either --sample or --full/);
    assert.equal(await cli('verify', '--env', 'local', '--table', 'public.nope'), EXIT.failure);
    assert.match(
      out.stderr,
      /not captured \(publications pgcdc_pub, pgcdc_pub_inserts, or readable tables for wal2json\): public\.nope/,
    );
  });
});

describe('pgcdc verify on a cloud stack (an execution of the listener job)', () => {
  const LISTENER_JOB = `projects/${PROJECT}/locations/${REGION}/jobs/pgcdc-listener`;
  let h: Harness;
  afterEach(() => h?.cleanup());

  const report = (equal: boolean): VerifyReport => ({
    equal,
    skipped: [],
    startedAt: '2026-01-01T12:00:00.000Z',
    seconds: 1.5,
    rowsCompared: 31,
    tables: [
      {
        table: 'public.customers',
        replicaTable: 'customers',
        position: { lsn: '0/1A2B3C4', at: '2026-01-01T12:00:00Z' },
        mode: 'sample',
        chunking: 'integer',
        sourceRows: 31,
        replicaRows: 31,
        chunks: 1,
        chunksDiffering: equal ? 0 : 1,
        onlyInSource: { count: 0, keys: [] },
        onlyInReplica: { count: 0, keys: [] },
        differing: equal
          ? { count: 0, rows: [] }
          : {
              count: 1,
              rows: [{ key: '["2005"]', columns: [{ column: 'email', source: 'a@x', replica: 'b@x' }] }],
            },
        excluded: { count: 0, newerInReplica: 0, changedInSource: 0, caughtUp: 0, keys: [] },
        notRechecked: 0,
        missingColumns: [],
        notes: [],
        equal,
      },
    ],
  });

  /** The harness's clients with a BigQuery that answers table gets and dry runs (what a --full asks). */
  function withDryRun(bytes: number, moreTables: string[] = []): string[] {
    const asked: string[] = [];
    const bigquery = {
      dataset: () => ({
        getTables: async () => [
          [
            { id: 'customers' },
            { id: 'customers_changes' },
            { id: '_failed' },
            ...moreTables.map((id) => ({ id })),
          ],
        ],
        table: () => ({ getMetadata: async () => [{ numRows: '31' }] }),
      }),
      request: (
        o: { method: string; uri: string; json?: { dryRun?: boolean; query?: string } },
        cb: Callback,
      ) => {
        asked.push(`${o.method} ${o.uri}${o.json?.dryRun ? ` dryRun ${o.json.query}` : ''}`);
        cb(null, o.method === 'GET' ? { schema: { fields: [] } } : { totalBytesProcessed: String(bytes) });
      },
    } as unknown as BigQuery;
    h.deps.cloud = async () => ({
      jobs: h.jobs,
      executions: h.executions,
      metrics: h.metrics,
      logs: h.logs,
      bigquery,
    });
    return asked;
  }
  type Callback = (err: Error | null, res?: unknown) => void;

  it('runs the listener job with args ["verify", ...] (a sample by default), prints the logged report and exits 11 on differences', async () => {
    h = harness();
    h.logs.summaries.set('pgcdc-listener', { command: 'verify', verify: report(false) });
    const code = await h.run('verify', '--env', 'dev', '--table', 'public.customers');
    assert.equal(code, EXIT.verifyDifferences, h.out.stderr);
    assert.deepEqual(h.jobs.requests, [
      {
        name: LISTENER_JOB,
        overrides: {
          containerOverrides: [
            {
              args: [
                'verify',
                '--project',
                PROJECT,
                '--dataset',
                'pgcdc_dev',
                '--table',
                'public.customers',
                '--sample',
                '1000',
              ],
            },
          ],
        },
      },
    ]);
    assert.deepEqual(h.logs.requests.at(-1), {
      project: PROJECT,
      job: 'pgcdc-listener',
      field: 'verify',
      executionName: 'pgcdc-listener-exec-1',
    });
    assert.match(h.out.stdout, /public\.customers → customers: DIFFERENT at source position 0\/1A2B3C4/);
    assert.match(h.out.stdout, /\["2005"\]: email source "a@x" replica "b@x"/);

    h.logs.summaries.set('pgcdc-listener', { command: 'verify', verify: report(true) });
    assert.equal(await h.run('verify', '--env', 'dev', '--json'), EXIT.ok, h.out.stderr);
    assert.equal((JSON.parse(h.out.stdout.trim().split('\n').at(-1)!) as VerifyReport).equal, true);
  });

  it('--full shows the bytes a dry run says it scans and, off a terminal, needs --yes before running anything', async () => {
    h = harness();
    const asked = withDryRun(123 * 1024 * 1024);
    h.logs.summaries.set('pgcdc-listener', { command: 'verify', verify: report(true) });
    assert.equal(await h.run('verify', '--env', 'dev', '--full'), EXIT.usage);
    assert.match(h.out.stdout, /cost: a full verify scans about 123\.0 MiB of BigQuery \(dry run/);
    assert.match(h.out.stderr, /Pass --yes/);
    assert.equal(h.jobs.requests.length, 0);
    assert.ok(!asked.some((x) => /customers_changes|_failed/.test(x)), asked.join('\n'));
    assert.ok(
      asked.some((a) => a.includes('dryRun SELECT * FROM `' + PROJECT + '.pgcdc_dev.customers`')),
      asked.join('\n'),
    );

    assert.equal(await h.run('verify', '--env', 'dev', '--full', '--yes'), EXIT.ok, h.out.stderr);
    assert.deepEqual(h.jobs.requests.at(-1)?.overrides?.containerOverrides?.[0]?.args, [
      'verify',
      '--project',
      PROJECT,
      '--dataset',
      'pgcdc_dev',
      '--full',
    ]);
  });

  it('--full --table reads each entry as PostgreSQL does: quoted parts with periods, a bare upper-case part folded when only that replica exists', async () => {
    h = harness();
    const dotted = replicaTableName('a.b', 'c.d');
    const asked = withDryRun(1024, [dotted, 'orders', 'orders_changes']);
    h.logs.summaries.set('pgcdc-listener', { command: 'verify', verify: report(true) });
    const code = await h.run(
      'verify',
      '--env',
      'dev',
      '--full',
      '--table',
      '"a.b"."c.d"',
      '--table',
      'public.Orders',
    );
    assert.equal(code, EXIT.usage, h.out.stderr);
    const dryRuns = asked.filter((a) => a.includes('dryRun'));
    assert.deepEqual(
      dryRuns.map((a) => /pgcdc_dev\.([^`]+)`/.exec(a)?.[1]),
      [dotted, 'orders'],
      asked.join('\n'),
    );
  });

  it('at a terminal, a declined confirmation runs nothing', async () => {
    h = harness({ tty: true, answer: 'n' });
    withDryRun(1000);
    assert.equal(await h.run('verify', '--env', 'dev', '--full'), EXIT.cancelled);
    assert.deepEqual(h.confirmations, ['Run the full verify? [y/N]']);
    assert.equal(h.jobs.requests.length, 0);
  });
});
