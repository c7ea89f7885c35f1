// pgcdc demo: from nothing to rows in the local BigQuery replica — local stack up, sql init, a few changes
// on customers, one listener + sink run, then the source and the replica side by side.

import { Command } from 'commander';
import type { LocalEndpoints } from '../../local/stack';
import type { CliDeps } from '../deps';
import { CliError, EXIT } from '../errors';
import { readRows, valueText } from '../warehouse';
import { ensureLocalUp } from './local';
import { runOnceLocal } from './run-once';
import { describeListener, describeSink } from './run-once';
import { table } from './shared';
import { localSqlInit } from './sql';

const SOURCE = 'public.customers';
/** BigQuery replica of public.customers (tables of the public schema keep their name). */
const REPLICA = 'customers';
const KEY = 'customer_id';
/** Columns shown side by side (all columns are compared). */
const SHOWN = ['customer_id', 'first_name', 'email', 'loyalty_points'];

type TextRow = Record<string, string | null>;

/** One insert, one update, one delete, different on every run so a second demo still shows changes. */
// pg and the local stack's module are loaded when the demo runs, not when `pgcdc --help` builds the program.
async function pgClient(pg: LocalEndpoints['pg']) {
  const { Client } = await import('pg');
  return new Client(pg);
}

export async function applyDemoChanges(pg: LocalEndpoints['pg']): Promise<string[]> {
  const client = await pgClient(pg);
  await client.connect();
  try {
    await client.query('BEGIN');
    const ins = await client.query<{ customer_id: number }>(
      `INSERT INTO ${SOURCE} (customer_id, first_name, last_name, email, loyalty_points)
       SELECT COALESCE(MAX(customer_id), 9000) + 1, 'Demo', 'Customer', format('demo%s@example.com', COALESCE(MAX(customer_id), 9000) + 1), 10
         FROM ${SOURCE} WHERE customer_id > 9000
       RETURNING customer_id`,
    );
    const upd = await client.query<{ customer_id: number; loyalty_points: number }>(
      `UPDATE ${SOURCE} SET loyalty_points = loyalty_points + 100 WHERE customer_id = 2001 RETURNING customer_id, loyalty_points`,
    );
    const del = await client.query<{ customer_id: number }>(
      `DELETE FROM ${SOURCE} WHERE customer_id = (SELECT MIN(customer_id) FROM ${SOURCE} WHERE customer_id BETWEEN 2002 AND 2030)
       RETURNING customer_id`,
    );
    await client.query('COMMIT');
    return [
      `inserted customer ${ins.rows[0].customer_id}`,
      ...upd.rows.map((r) => `updated customer ${r.customer_id}: loyalty_points = ${r.loyalty_points}`),
      ...del.rows.map((r) => `deleted customer ${r.customer_id}`),
    ];
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    await client.end();
  }
}

/** Source rows as Postgres prints each value (no JS conversion), keyed by customer_id. */
export async function sourceRows(pg: LocalEndpoints['pg']): Promise<Map<string, TextRow>> {
  const client = await pgClient(pg);
  await client.connect();
  try {
    const { rows } = await client.query<TextRow>({
      text: `SELECT * FROM ${SOURCE} ORDER BY ${KEY}`,
      types: { getTypeParser: () => (v: string) => v },
    });
    return new Map(rows.map((r) => [String(r[KEY]), r]));
  } finally {
    await client.end();
  }
}

export async function replicaRows(e: LocalEndpoints): Promise<Map<string, TextRow>> {
  const { emulatorBigQuery } = await import('../../local/stack');
  const rows = await readRows(emulatorBigQuery(e), e.dataset, REPLICA);
  return new Map(
    rows.map((r) => {
      const text: TextRow = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, valueText(v)]));
      return [String(text[KEY]), text];
    }),
  );
}

/** Keys whose rows differ (missing on either side, or any source column different). */
export function differences(source: Map<string, TextRow>, replica: Map<string, TextRow>): string[] {
  const keys = new Set([...source.keys(), ...replica.keys()]);
  const diff: string[] = [];
  for (const key of keys) {
    const s = source.get(key);
    const r = replica.get(key);
    if (!s || !r || Object.keys(s).some((col) => (s[col] ?? null) !== (r[col] ?? null))) diff.push(key);
  }
  return diff.sort((a, b) => Number(a) - Number(b));
}

export function sideBySide(
  source: Map<string, TextRow>,
  replica: Map<string, TextRow>,
  diff: Set<string>,
): string[] {
  const keys = [...new Set([...source.keys(), ...replica.keys()])].sort((a, b) => Number(a) - Number(b));
  const absent = (label: string) => [label, ...SHOWN.slice(2).map(() => '')];
  const cells = (row: TextRow | undefined) => SHOWN.slice(1).map((c) => (row ? (row[c] ?? 'NULL') : ''));
  return table([
    [
      KEY,
      ...SHOWN.slice(1).map((c) => `source.${c}`),
      '│',
      ...SHOWN.slice(1).map((c) => `replica.${c}`),
      'match',
    ],
    ...keys.map((k) => [
      k,
      ...(source.has(k) ? cells(source.get(k)) : absent('(deleted)')),
      '│',
      ...(replica.has(k) ? cells(replica.get(k)) : absent('(absent)')),
      diff.has(k) ? '✗' : '✓',
    ]),
  ]);
}

export function demoCommand(deps: CliDeps): Command {
  return new Command('demo')
    .description(
      'local stack → sql init → some changes → run once → source and BigQuery replica side by side',
    )
    .option('--timeout <seconds>', 'how long to wait for the replica to match', (v) => Number(v), 30)
    .action(async (opts: { timeout: number }) => {
      const log = (line: string) => deps.output.log(line);
      log('1. Local stack');
      const e = await ensureLocalUp(deps);
      log('2. SQL init (publication, replication slot, sample table customers)');
      await localSqlInit(deps);
      log('3. Changes on public.customers');
      const applied = await deps.output.task('Applying an insert, an update and a delete', () =>
        applyDemoChanges(e.pg),
      );
      for (const line of applied) log(`  ${line}`);
      log('4. One listener run and one sink run');
      const run = await runOnceLocal(deps);
      if (run.listener.summary) log(`  listener: ${describeListener(run.listener.summary)}`);
      if (run.sink.summary) log(`  sink: ${describeSink(run.sink.summary)}`);
      log(`5. ${SOURCE} in PostgreSQL next to ${e.project}.${e.dataset}.${REPLICA} in the BigQuery emulator`);
      // The replica is applied by the emulator as the sink writes; poll (with a deadline) rather than assume.
      const deadline = deps.clock.now() + opts.timeout * 1000;
      let source = await sourceRows(e.pg);
      let replica: Map<string, TextRow>;
      let diff: string[];
      for (;;) {
        replica = await replicaRows(e).catch(() => new Map<string, TextRow>());
        diff = differences(source, replica);
        if (diff.length === 0 || deps.clock.now() > deadline) break;
        await new Promise((r) => setTimeout(r, deps.pollMs));
        source = await sourceRows(e.pg);
      }
      for (const line of sideBySide(source, replica, new Set(diff))) log(line);
      if (diff.length > 0) {
        throw new CliError(
          `the replica does not match the source: ${diff.length} row(s) differ (customer_id ${diff.slice(0, 10).join(', ')})`,
          EXIT.mismatch,
          'See `npx pgcdc status --env local`, and the logs in the local directory.',
        );
      }
      log(`The replica matches the source: ${source.size} rows, every column equal.`);
      log(
        `Next: change rows (psql postgresql://${e.pg.user}@${e.pg.host}:${e.pg.port}/${e.pg.database}), then`,
      );
      log('  npx pgcdc run-once --env local   and   npx pgcdc status --env local');
      log('Stop the local stack with: npx pgcdc local down');
    });
}
