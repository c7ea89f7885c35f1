// What the decoders need from the system catalog, read once per run on an ordinary connection: every
// capturable table's columns (with format_type names and primary-key flags) and the names of all types.
//
// wal2json omits unchanged TOAST columns from an update, and pgoutput sends type OIDs without names; the
// catalog fills both gaps. It reflects the catalog at the start of the run; a table created or altered
// later in the run is described from the decoder's own data.
//
// Tables and columns that are never captured (README "Tables and columns that are not captured"):
// - temporary tables (relpersistence 't'): private to the session that made them and never WAL-logged; a
//   snapshot cannot even read another session's ("cannot access temporary tables of other sessions");
// - unlogged tables (relpersistence 'u'): never in the WAL, so logical decoding never sees their changes
//   and a replica would silently freeze; listed in `unlogged` so the run can say so;
// - generated columns (attgenerated <> ''): pgoutput does not send them ("Generated columns are skipped
//   for logical replication", https://www.postgresql.org/docs/15/ddl-generated-columns.html), wal2json 2.5
//   does (its pg_decode_write_tuple skips only dropped and system columns). Both decoders leave them out,
//   and so does the snapshot, so a table's events and its BigQuery schema never depend on the decoder;
//   BigQuery can compute them in a view. Listed in `generated` so the wal2json decoder can drop them.

import { Client } from 'pg';
import { ColumnInfo } from '../contract/events';
import { tableKey } from '../contract/table-name';
import { parseEntries, resolveEntries } from './table-lookup';

// Tables are keyed by their canonical name (contract/table-name.ts tableKey): `schema.table` for plain names,
// each other part double-quoted, so that schema "a.b" table "c" and schema "a" table "b.c" stay apart.
export interface Catalog {
  /** Table key → columns in attribute order (generated columns left out). */
  tables: Map<string, ColumnInfo[]>;
  /** type OID → format_type(oid, NULL). */
  typeNames: Map<number, string>;
  /**
   * Types whose values can be TOASTed: variable length (typlen = -1) and a storage other than PLAIN. Only a
   * column of such a type can be an unchanged TOAST value an update leaves out (a fixed-length value such as
   * an integer or a timestamp is always in the row itself).
   */
  toastableTypes: Set<number>;
  /** Array type OID → element type OID, for printing a column type with its typmod ("numeric(10,2)[]"). */
  arrayElements: Map<number, number>;
  /** "oid/typmod" → format_type(oid, typmod) for every typmod a user column uses (extension types too). */
  typmodNames: Map<string, string>;
  /** "schema.table" → its generated columns' names, for tables that have any (absent: none known). */
  generated?: Map<string, Set<string>>;
  /** Unlogged user tables, "schema.table": their changes never reach the WAL (absent: none known). */
  unlogged?: string[];
  /**
   * Tables the connected role may not SELECT ("schema.table"): the SQL init grants the replicator exactly the
   * captured tables, so one created after the last init is not readable until `pgcdc sql init` runs again.
   */
  unreadable?: string[];
  /**
   * Logged tables the connected role may SELECT, as [schema, table] (names may hold periods): with grants
   * from the SQL init, exactly the captured tables plus pgcdc's own (absent: not known).
   */
  readable?: [string, string][];
  /**
   * Whether the role reads every table, present and future, without grants (a superuser, or a member of
   * pg_read_all_data): then a table created later is readable as soon as it exists (absent: not known).
   */
  readsAllTables?: boolean;
  /** Partitioned table "schema.table" → its leaf partitions, the tables its rows and changes live in. */
  partitions?: Map<string, string[]>;
}

/**
 * PGCDC_TABLES entries (their texts, as ListenerConfig holds them) → the keys of the tables they mean: an
 * entry with upper case in a bare part means the table of that exact name when one exists (as before quoting
 * was supported), else PostgreSQL's lower-case reading (contract/table-name.ts resolveTableEntry); an entry
 * whose two readings both exist is refused (ConfigError). The tables that count are the ones the catalog
 * knows, the kinds resolveInDatabase counts too (listener/table-lookup.ts): ordinary and partitioned tables,
 * logged or unlogged.
 */
export function resolveTables(entries: string[], catalog: Catalog, what = 'PGCDC_TABLES'): string[] {
  if (entries.length === 0) return [];
  const known = (key: string) =>
    catalog.tables.has(key) ||
    (catalog.unlogged ?? []).includes(key) ||
    (catalog.partitions?.has(key) ?? false);
  return resolveEntries(parseEntries(entries, what), known, what);
}

/**
 * A PGCDC_TABLES list (resolved to keys) as the decoders and the snapshot need it: a partitioned table stands for its leaf
 * partitions (the SQL init grants and publishes them so; changes arrive under the partitions' names because
 * publish_via_partition_root is off, and wal2json names the partition too). Other names stay as they are.
 */
export function expandPartitions(tables: string[], catalog: Catalog): string[] {
  const out = new Set<string>();
  for (const t of tables) for (const leaf of catalog.partitions?.get(t) ?? [t]) out.add(leaf);
  return [...out];
}

export async function loadCatalog(client: Client): Promise<Catalog> {
  const cols = await client.query<{
    schema: string;
    table: string;
    persistence: string;
    name: string;
    type: string;
    oid: number;
    key: boolean;
    generated: boolean;
    readable: boolean;
  }>(`
    SELECT n.nspname AS schema, c.relname AS table, c.relpersistence AS persistence, a.attname AS name,
           format_type(a.atttypid, a.atttypmod) AS type, a.atttypid::int AS oid,
           coalesce(a.attnum = ANY (i.indkey), false) AS key, a.attgenerated <> '' AS generated,
           has_table_privilege(c.oid, 'SELECT') AS readable
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
    -- Ordinary tables only: a partitioned parent has no rows of its own, and changes arrive under the
    -- partitions' names (publish_via_partition_root is off), so that is what we describe and snapshot.
    -- Temporary tables (any session's, in pg_temp_N) are never captured.
    WHERE c.relkind = 'r' AND c.relpersistence IN ('p', 'u')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp_%'
    ORDER BY n.nspname, c.relname, a.attnum`);
  const tables = new Map<string, ColumnInfo[]>();
  const generated = new Map<string, Set<string>>();
  const unlogged = new Set<string>();
  const unreadable = new Set<string>();
  const readable: [string, string][] = [];
  for (const r of cols.rows) {
    const qn = tableKey(r.schema, r.table);
    if (!r.readable) unreadable.add(qn);
    if (r.persistence === 'u') {
      unlogged.add(qn);
      continue;
    }
    let list = tables.get(qn);
    if (!list) {
      tables.set(qn, (list = []));
      if (r.readable) readable.push([r.schema, r.table]);
    }
    if (r.generated) {
      let g = generated.get(qn);
      if (!g) generated.set(qn, (g = new Set()));
      g.add(r.name);
      continue;
    }
    list.push({ name: r.name, type: r.type, oid: r.oid, key: r.key });
  }
  const types = await client.query<{ oid: number; name: string; toastable: boolean; elem: number }>(
    `SELECT oid::int AS oid, format_type(oid, NULL) AS name,
            typlen = -1 AND typstorage <> 'p' AS toastable,
            -- what format_type itself treats as an array: a varlena type with an element type, not PLAIN
            -- (int2vector and oidvector have elements but print as their own names)
            CASE WHEN typelem <> 0 AND typlen = -1 AND typstorage <> 'p' THEN typelem::int ELSE 0 END AS elem
     FROM pg_type`,
  );
  const typeNames = new Map(types.rows.map((t) => [t.oid, t.name]));
  const toastableTypes = new Set(types.rows.filter((t) => t.toastable).map((t) => t.oid));
  const arrayElements = new Map(types.rows.filter((t) => t.elem !== 0).map((t) => [t.oid, t.elem]));
  const mods = await client.query<{ oid: number; typmod: number; name: string }>(
    `SELECT DISTINCT atttypid::int AS oid, atttypmod AS typmod, format_type(atttypid, atttypmod) AS name
     FROM pg_attribute WHERE attnum > 0 AND atttypmod >= 0 AND attrelid >= 16384`,
  );
  const typmodNames = new Map(mods.rows.map((m) => [`${m.oid}/${m.typmod}`, m.name]));
  // pg_read_all_data (PostgreSQL 14+): "Read all data (tables, views, sequences), as if having SELECT rights
  // on those objects" (https://www.postgresql.org/docs/15/predefined-roles.html).
  const all = await client.query<{ all: boolean }>(
    `SELECT rolsuper OR coalesce(pg_has_role(current_user, to_regrole('pg_read_all_data'), 'MEMBER'), false) AS all
     FROM pg_roles WHERE rolname = current_user`,
  );
  const parts = await client.query<{ ps: string; pt: string; ls: string; lt: string }>(
    `SELECT pn.nspname AS ps, p.relname AS pt, n.nspname AS ls, c.relname AS lt
     FROM pg_class p
     JOIN pg_namespace pn ON pn.oid = p.relnamespace
     CROSS JOIN LATERAL pg_partition_tree(p.oid) t
     JOIN pg_class c ON c.oid = t.relid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE p.relkind = 'p' AND t.isleaf AND c.relkind = 'r' AND c.relpersistence IN ('p', 'u')
     ORDER BY 1, 2, 3, 4`,
  );
  const partitions = new Map<string, string[]>();
  for (const r of parts.rows) {
    const parent = tableKey(r.ps, r.pt);
    let leaves = partitions.get(parent);
    if (!leaves) partitions.set(parent, (leaves = []));
    leaves.push(tableKey(r.ls, r.lt));
  }
  return {
    tables,
    typeNames,
    toastableTypes,
    arrayElements,
    typmodNames,
    generated,
    unlogged: [...unlogged],
    unreadable: [...unreadable],
    readable,
    readsAllTables: all.rows[0]?.all ?? false,
    partitions,
  };
}

/** A catalog that knows nothing (every table is described from the decoder's own data). */
export function emptyCatalog(): Catalog {
  return {
    tables: new Map(),
    typeNames: new Map(),
    toastableTypes: new Set(),
    arrayElements: new Map(),
    typmodNames: new Map(),
    generated: new Map(),
    unlogged: [],
  };
}
