// Table-list entries (contract/table-name.ts) resolved against a database: which existing relation each
// entry means. Only an entry with upper case in a bare part can mean two names (exactly as written, as before
// quoting was supported, or folded to lower case, as PostgreSQL reads it); the others need no query.

import { Client } from 'pg';
import {
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
  try {
    return parseTableList(entries.join(','), what);
  } catch (e) {
    if (e instanceof TableNameError) throw new ConfigError(e.message);
    throw e;
  }
}

/**
 * The table each entry means in the connected database (any relation kind: "does not exist" and "is not a
 * table" are the caller's to report). A name that exists in no form resolves to PostgreSQL's reading.
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
        WHERE n.nspname NOT LIKE 'pg\\_temp\\_%'`,
      [names.map((n) => n.schema), names.map((n) => n.table)],
    );
    for (const row of r.rows) existing.add(tableKey(row.schema, row.table));
  }
  return parsed.map((e) => {
    const key = resolveTableEntry(e, (k) => existing.has(k));
    const name = e.asWritten && key === formatTableName(e.asWritten) ? e.asWritten : e.name;
    return { ...name, key };
  });
}
