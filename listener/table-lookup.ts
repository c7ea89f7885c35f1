// Table-list entries (contract/table-name.ts) resolved against a database: which existing table each entry
// means. Only an entry with upper case in a bare part can mean two names (exactly as written, as before
// quoting was supported, or folded to lower case, as PostgreSQL reads it); the others need no query. Where
// both exist the entry is refused (resolveTableEntry).
//
// Both resolvers, this one (sql init, teardown, preflight) and the listener's (catalog.ts resolveTables),
// count the same relations: the ones pgcdc can capture, ordinary and partitioned tables (relkind 'r', 'p'),
// logged or unlogged, never temporary. A view or a temporary table of the exact-case name does not make the
// entry mean it. pg_class (https://www.postgresql.org/docs/15/catalog-pg-class.html): relkind "r = ordinary
// table, ... p = partitioned table"; relpersistence "p = permanent table/sequence, u = unlogged table/sequence,
// t = temporary table/sequence".

import { Client } from 'pg';
import {
  TableEntry,
  TableName,
  TableNameError,
  candidateNames,
  formatTableName,
  parseTableList,
  resolveTableEntry,
  tableKey,
} from '../contract/table-name';
import { ConfigError } from './errors';

export interface ResolvedTable extends TableName {
  /** The table's key (formatTableName). */
  key: string;
}

/** Parses entries (texts of one list setting, `what`), throwing ConfigError with what to write. */
export function parseEntries(entries: string[], what: string) {
  return asConfigError(() => parseTableList(entries.join(','), what));
}

/** Resolves parsed entries to table keys (`exists`: is there a capturable table of that key), as ConfigError. */
export function resolveEntries(
  parsed: TableEntry[],
  exists: (key: string) => boolean,
  what: string,
): string[] {
  return asConfigError(() => parsed.map((e) => resolveTableEntry(e, exists, what)));
}

function asConfigError<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof TableNameError) throw new ConfigError(e.message);
    throw e;
  }
}

/**
 * The table each entry means in the connected database. A name that exists in no form (or only as a view, a
 * foreign table, a temporary table) resolves to PostgreSQL's reading: "does not exist" and "is not a table"
 * are the caller's to report.
 */
export async function resolveInDatabase(
  client: Client,
  entries: string[],
  what: string,
): Promise<ResolvedTable[]> {
  const parsed = parseEntries(entries, what);
  const ambiguous = parsed.filter((e) => e.asWritten);
  const existing = new Set<string>();
  if (ambiguous.length > 0) {
    const names = ambiguous.flatMap(candidateNames);
    const r = await client.query<{ schema: string; table: string }>(
      `SELECT n.nspname AS schema, c.relname AS table
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN unnest($1::text[], $2::text[]) AS w(schema, tab) ON w.schema = n.nspname AND w.tab = c.relname
        WHERE c.relkind IN ('r', 'p') AND c.relpersistence IN ('p', 'u')
          AND n.nspname NOT LIKE 'pg\\_temp\\_%'`,
      [names.map((n) => n.schema), names.map((n) => n.table)],
    );
    for (const row of r.rows) existing.add(tableKey(row.schema, row.table));
  }
  const keys = resolveEntries(parsed, (k) => existing.has(k), what);
  return parsed.map((e, i) => {
    const key = keys[i]!;
    const name = e.asWritten && key === formatTableName(e.asWritten) ? e.asWritten : e.name;
    return { ...name, key };
  });
}
