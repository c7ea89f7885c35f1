// The source side of verify: which tables are captured, their columns, and their rows as Postgres text,
// read in one REPEATABLE READ READ ONLY snapshot per table (so every chunk of a table is the same moment)
// whose WAL position is recorded. Nothing is written; the snapshot is held only while one table is read.

import { Client, ClientConfig } from 'pg';
import {
  parseTableKey,
  parseTableList,
  quoteIdentifier,
  resolveTableEntry,
  sqlTableName,
  tableKey,
} from '../contract/table-name';
import { ColumnInfo, setColumn } from '../contract/events';
import { withOutputSettings } from '../listener/config';

export type TextRow = Record<string, string | null>;

export interface SourceTable {
  schema: string;
  table: string;
  columns: ColumnInfo[];
  /** Key columns in key order, each with the base type to cast a text value to. */
  key: { name: string; castType: string }[];
}

/**
 * How a table is cut into chunks: by ranges of its first key column when both sides order that column the
 * same way — integers numerically, text/varchar byte-wise (COLLATE "C" here, BigQuery compares STRING
 * byte-wise) — else the whole table is one chunk.
 */
export type KeyOrder = 'integer' | 'text' | 'whole';

const INTEGER_TYPES = new Set(['smallint', 'integer', 'bigint', 'oid']);
const TEXT_TYPES = new Set(['text', 'character varying']);

export function keyOrder(t: SourceTable): KeyOrder {
  const first = t.columns.find((c) => c.name === t.key[0]?.name);
  if (!first) return 'whole';
  const base = first.type.replace(/\(.*\)$/, '');
  if (INTEGER_TYPES.has(base)) return 'integer';
  if (TEXT_TYPES.has(base)) return 'text';
  return 'whole';
}

/**
 * A client that hands every value back as Postgres text (the output function's text, as decoders send),
 * printed with the listener's session settings: a value the sink keeps as text in a companion column is
 * compared as that text, and its form follows the session ("DateStyle: Sets the display format for date and
 * time values", "IntervalStyle: Sets the display format for interval values", "TimeZone: Sets the time zone
 * for displaying and interpreting time stamps", https://www.postgresql.org/docs/15/runtime-config-client.html).
 * TimeZone is the role's and database's default on both sides, as the listener leaves it.
 */
export function textClient(pg: ClientConfig): Client {
  return new Client({
    ...withOutputSettings(pg),
    application_name: 'pgcdc verify',
    types: { getTypeParser: () => (v: string) => v },
  } as ClientConfig);
}

/**
 * The captured tables (optionally only `only`), as schema.table. pgoutput: the tables of the SQL init's two
 * publications, `<pub>` (keyed) and `<pub>_inserts` (keyless, history only: reported as skipped later).
 * wal2json reads no publication (the init keeps none): then the tables the connected role may read, which
 * for the replicator the listener job runs as are exactly the captured ones. pgcdc's own schema never is.
 */
export async function capturedTables(client: Client, publication: string, only: string[]): Promise<string[]> {
  const pubs = [publication, `${publication}_inserts`];
  const hasPublication = await client.query('SELECT 1 FROM pg_publication WHERE pubname = ANY($1)', [pubs]);
  const { rows } = hasPublication.rowCount
    ? await client.query<{ schema: string; table: string }>(
        `SELECT DISTINCT schemaname AS schema, tablename AS table FROM pg_publication_tables
          WHERE pubname = ANY($1) AND schemaname <> 'pgcdc' ORDER BY 1, 2`,
        [pubs],
      )
    : await client.query<{ schema: string; table: string }>(
        `SELECT n.nspname AS schema, c.relname AS table FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'r' AND c.relpersistence = 'p' AND has_table_privilege(c.oid, 'SELECT')
            AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgcdc') AND n.nspname NOT LIKE 'pg_toast%'
          ORDER BY 1, 2`,
      );
  // Table keys (contract/table-name.ts): `schema.table`, a part that is not plain lower case double-quoted.
  const all = rows.map((r) => tableKey(r.schema, r.table));
  if (only.length === 0) return all;
  const known = new Set(all);
  const wanted = parseTableList(only.join(','), '--table').map((e) =>
    resolveTableEntry(e, (k) => known.has(k), '--table'),
  );
  const missing = wanted.filter((t) => !known.has(t));
  if (missing.length > 0) {
    throw new Error(
      `not captured (publications ${pubs.join(', ')}, or readable tables for wal2json): ${missing.join(', ')} (captured: ${all.join(', ') || 'none'})`,
    );
  }
  return wanted;
}

/** Describes a table by its key (capturedTables). */
export async function describeTable(client: Client, name: string): Promise<SourceTable> {
  const { schema, table } = parseTableKey(name);
  const { rows } = await client.query<{
    name: string;
    type: string;
    oid: string;
    cast: string;
    keypos: string | null;
  }>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.atttypid::int AS oid,
            a.atttypid::regtype::text AS cast,
            array_position(i.indkey::int2[], a.attnum) AS keypos
       FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
       LEFT JOIN LATERAL (
         SELECT indkey FROM pg_index x WHERE x.indrelid = c.oid AND (x.indisprimary OR x.indisreplident)
         ORDER BY x.indisprimary DESC LIMIT 1) i ON true
      WHERE n.nspname = $1 AND c.relname = $2
      ORDER BY a.attnum`,
    [schema, table],
  );
  if (rows.length === 0) throw new Error(`table ${name} not found in the source database`);
  const columns: ColumnInfo[] = rows.map((r) => ({
    name: r.name,
    type: r.type,
    oid: Number(r.oid),
    key: r.keypos !== null,
  }));
  const key = rows
    .filter((r) => r.keypos !== null)
    .sort((a, b) => Number(a.keypos) - Number(b.keypos))
    .map((r) => ({ name: r.name, castType: r.cast }));
  return { schema, table, columns, key };
}

/** One table's consistent read: a REPEATABLE READ READ ONLY transaction and its WAL position. */
export class SourceSnapshot {
  private constructor(
    private readonly client: Client,
    readonly table: SourceTable,
    readonly order: KeyOrder,
    /** pg_current_wal_lsn() read by the snapshot's first statement. */
    readonly lsn: string,
    readonly at: string,
  ) {}

  static async open(client: Client, table: SourceTable): Promise<SourceSnapshot> {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    // The first statement takes the snapshot; the position it reads is at or after every commit it sees.
    const { rows } = await client.query<{ lsn: string; at: string }>(
      `SELECT pg_current_wal_lsn()::text AS lsn, to_json(now())#>>'{}' AS at`,
    );
    return new SourceSnapshot(client, table, keyOrder(table), rows[0].lsn, rows[0].at);
  }

  async close(): Promise<void> {
    await this.client.query('COMMIT');
  }

  private keyExpr(): string {
    const k = quoteIdentifier(this.table.key[0].name);
    return this.order === 'text' ? `${k}::text COLLATE "C"` : k;
  }

  /** Rows counted in the snapshot. */
  async count(): Promise<number> {
    const { rows } = await this.client.query<{ n: string }>(
      `SELECT count(*) AS n FROM ${sqlTableName(this.table)}`,
    );
    return Number(rows[0].n);
  }

  /**
   * The upper bound (inclusive, as text) of the chunk after `lo` holding about `rows` rows, or null when the
   * rest of the table fits in it.
   */
  async boundary(lo: string | null, rows: number): Promise<string | null> {
    if (this.order === 'whole') return null;
    const e = this.keyExpr();
    const { rows: r } = await this.client.query<{ b: string }>(
      `SELECT (${e})::text AS b FROM ${sqlTableName(this.table)} ${lo === null ? '' : `WHERE ${e} > $1`}
        ORDER BY ${e} OFFSET ${Math.max(0, rows - 1)} LIMIT 1`,
      lo === null ? [] : [lo],
    );
    return r[0]?.b ?? null;
  }

  /** Rows whose first key column is in (lo, hi] (null: unbounded). */
  async rows(lo: string | null, hi: string | null): Promise<TextRow[]> {
    const e = this.keyExpr();
    const conds: string[] = [];
    const params: string[] = [];
    if (this.order !== 'whole' && lo !== null) conds.push(`${e} > $${params.push(lo)}`);
    if (this.order !== 'whole' && hi !== null) conds.push(`${e} <= $${params.push(hi)}`);
    return textRows(
      this.client,
      `SELECT * FROM ${sqlTableName(this.table)} ${conds.length ? `WHERE ${conds.join(' AND ')}` : ''}`,
      params,
    );
  }

  /** About `n` rows picked at random (Bernoulli sampling, sized from the planner's row estimate). */
  async sample(n: number): Promise<TextRow[]> {
    const { rows: est } = await this.client.query<{ n: string }>(
      `SELECT reltuples::bigint AS n FROM pg_class WHERE oid = $1::regclass`,
      [sqlTableName(this.table)],
    );
    const estimate = Number(est[0]?.n ?? -1);
    // Twice the needed share so the LIMIT, not bad luck, decides the sample size; small tables are read whole.
    const pct = estimate > 0 ? Math.min(100, ((2 * n) / estimate) * 100) : 100;
    return textRows(
      this.client,
      `SELECT * FROM ${sqlTableName(this.table)} TABLESAMPLE BERNOULLI (${pct}) LIMIT ${Math.floor(n)}`,
      [],
    );
  }
}

/** The rows with these keys (Postgres text, key order) as they are now, outside any snapshot. */
export async function currentRows(client: Client, table: SourceTable, keys: string[][]): Promise<TextRow[]> {
  if (keys.length === 0) return [];
  const cols = table.key.map((_, i) => `c${i}`).join(', ');
  const arrays = table.key.map((_, i) => `$${i + 1}::text[]`).join(', ');
  const on = table.key.map((k, i) => `t.${quoteIdentifier(k.name)} = u.c${i}::${k.castType}`).join(' AND ');
  return textRows(
    client,
    `SELECT t.* FROM ${sqlTableName(table)} t JOIN unnest(${arrays}) AS u(${cols}) ON ${on}`,
    table.key.map((_, i) => keys.map((k) => k[i])),
  );
}

/**
 * A query's rows as column name → text. Read as arrays and named here: pg's own row objects assign each
 * column by name, which drops a column named "__proto__" (setColumn keeps it).
 */
async function textRows(client: Client, text: string, values: unknown[]): Promise<TextRow[]> {
  const r = await client.query<(string | null)[]>({ text, values, rowMode: 'array' });
  return r.rows.map((cells) => {
    const row: TextRow = {};
    r.fields.forEach((f, i) => setColumn(row, f.name, cells[i] ?? null));
    return row;
  });
}
