/**
 * The emulator's state: datasets, tables, their rows, and BigQuery CDC applied to them.
 * In memory; `toJSON`/`fromJSON` let the emulator persist it to a file.
 *
 * CDC follows https://cloud.google.com/bigquery/docs/change-data-capture:
 * - a change carries `_CHANGE_TYPE` UPSERT (replace the whole row for its primary key) or DELETE (remove it);
 * - `_CHANGE_SEQUENCE_NUMBER`, when given, orders changes per key: a change whose sequence is lower than the one
 *   already applied for that key has no effect, and deletes are remembered, so a late lower-sequence UPSERT does
 *   not bring a deleted row back; without sequence numbers, arrival order decides;
 * - `max_staleness` only bounds how late BigQuery may apply changes; this emulator applies each change as soon as
 *   it is accepted, so reads always see the applied state (a legal outcome for any staleness);
 * - "To apply CDC DELETE operations that arrive out of order, BigQuery maintains a delete retention window of two
 *   days" ("Deleted data considerations"): a tombstone older than two days on the emulator clock is forgotten, so
 *   a later UPSERT with a lower sequence brings the row back, as it would on BigQuery.
 *
 * Every change goes through `commit()`, which hands a JSON record of it to the journal (see journal.ts) before the
 * caller answers the client; `replay()` re-applies such records on start. Time comes from the emulator clock
 * (`now()`), which tests can move forward (`advanceClock`) instead of waiting.
 */
import { createHash } from 'node:crypto';
import { alreadyExists, invalid, notFound, ApiError } from './errors';
import { checkSchemaChange, findField, normalizeSchema, type TableSchema } from './schema';
import type { StoredRecord } from './values';

export type ChangeType = 'UPSERT' | 'DELETE';

export interface Change {
  type: ChangeType;
  /** `_CHANGE_SEQUENCE_NUMBER` as given, or null when the writer sent none. */
  sequence: string | null;
  row: StoredRecord;
}

export interface TableRef {
  projectId: string;
  datasetId: string;
  tableId: string;
}

interface DatasetState {
  resource: Record<string, unknown>;
}

interface AppliedVersion {
  sequence: string | null;
  deleted: boolean;
  /** Emulator time (ms) the change was applied; tombstones expire two days after it. */
  at?: number;
}

/** A schema as it was from `at` on; the Write API sees a version only after the propagation delay. */
interface SchemaVersion {
  version: number;
  at: number;
  schema: TableSchema;
}

/** One journaled change: the Store method and its (JSON) arguments, at emulator time `at`. */
export interface JournalRecord {
  seq: number;
  at: number;
  op: MutatingOp;
  args: unknown[];
}

type MutatingOp =
  | 'createDataset'
  | 'patchDataset'
  | 'deleteDataset'
  | 'createTable'
  | 'updateTable'
  | 'deleteTable'
  | 'appendRows'
  | 'applyChanges'
  | 'insertAll'
  | 'advanceClock';
const MUTATING_OPS: ReadonlySet<string> = new Set<MutatingOp>([
  'createDataset',
  'patchDataset',
  'deleteDataset',
  'createTable',
  'updateTable',
  'deleteTable',
  'appendRows',
  'applyChanges',
  'insertAll',
  'advanceClock',
]);

interface TableState {
  ref: TableRef;
  /** The REST fields we keep (schema, tableConstraints, maxStaleness, clustering, ...). */
  meta: Record<string, unknown>;
  schema: TableSchema;
  creationTime: number;
  lastModifiedTime: number;
  /** Bumped on every schema change, so Storage Write connections can report `updated_schema`. */
  schemaVersion: number;
  /** Recent schema versions with the time they were made (the first is always kept). */
  schemaHistory: SchemaVersion[];
  /** Set by the first CDC write: the table is then "active with CDC" (change-data-capture page). */
  cdcActive: boolean;
  /** Rows appended without CDC (plain Write API appends, insertAll). */
  plainRows: StoredRecord[];
  /** Rows kept by CDC, by primary-key value. */
  keyedRows: Map<string, StoredRecord>;
  /** Last applied change per primary-key value, deletes included (tombstones). */
  applied: Map<string, AppliedVersion>;
  /** Recent insertAll insertIds (BigQuery de-duplicates on a best-effort basis for about a minute). */
  insertIds: Set<string>;
}

/** How many insertIds per table we remember; BigQuery's best-effort window is short too. */
const INSERT_ID_MEMORY = 100_000;
/**
 * "Primary keys cannot exceed 16 columns." and "Primary keys and foreign keys must be of one of the following
 * types: BIGNUMERIC, BOOLEAN, DATE, DATETIME, INT64, NUMERIC, STRING, or TIMESTAMP." and "Primary keys and foreign
 * keys can only be set on top-level columns." (https://cloud.google.com/bigquery/docs/information-schema-table-constraints,
 * Limitations). The REST form is `tableConstraints.primaryKey.columns` (https://cloud.google.com/bigquery/docs/reference/rest/v2/tables#TableConstraints);
 * BigQuery keys are always NOT ENFORCED, so the REST resource has no enforcement field.
 */
const MAX_PRIMARY_KEY_COLUMNS = 16;
const PRIMARY_KEY_TYPES: ReadonlySet<string> = new Set([
  'BIGNUMERIC',
  'BOOLEAN',
  'DATE',
  'DATETIME',
  'INTEGER',
  'NUMERIC',
  'STRING',
  'TIMESTAMP',
]);
/**
 * "You can specify up to four clustering columns." "Clustering columns must be top-level, non-repeated columns"
 * of DATE, BOOL, GEOGRAPHY, INT64, NUMERIC, BIGNUMERIC, STRING, TIMESTAMP or DATETIME
 * (https://cloud.google.com/bigquery/docs/clustered-tables#limitations); "You can't partition or
 * cluster a table on JSON columns" (https://cloud.google.com/bigquery/docs/json-data).
 */
const MAX_CLUSTERING_COLUMNS = 4;
const CLUSTERING_TYPES: ReadonlySet<string> = new Set([
  'BIGNUMERIC',
  'BOOLEAN',
  'DATE',
  'DATETIME',
  'GEOGRAPHY',
  'INTEGER',
  'NUMERIC',
  'STRING',
  'TIMESTAMP',
]);
/**
 * `maxStaleness`: "The maximum staleness of data that could be returned when the table (or stale MV) is queried.
 * Staleness encoded as a string encoding of sql IntervalValue type." (https://cloud.google.com/bigquery/docs/reference/rest/v2/tables),
 * i.e. the canonical INTERVAL text `[sign]Y-M [sign]D [sign]H:M:S[.F]` ("0-0 0 0:10:0" in the change-data-capture
 * page's example). We accept that form only, without negative parts.
 */
const MAX_STALENESS = /^\d+-\d+ \d+ \d+:\d+:\d+(\.\d{1,6})?$/;
/** "Tables with active CDC cannot have more than 2,000 top-level columns defined by the table's schema." */
export const MAX_CDC_COLUMNS = 2000;
/** "BigQuery maintains a delete retention window of two days" (change-data-capture, Deleted data considerations). */
export const DELETE_RETENTION_MS = 2 * 24 * 60 * 60 * 1000;
/**
 * Table names (https://cloud.google.com/bigquery/docs/tables#table_naming): "Contain characters with a total of up
 * to 1,024 UTF-8 bytes." "Contain Unicode characters in category L (letter), M (mark), N (number), Pc (connector,
 * including underscore), Pd (dash), Zs (space)."
 */
const TABLE_NAME = /^[\p{L}\p{M}\p{N}\p{Pc}\p{Pd}\p{Zs}]+$/u;
const MAX_TABLE_NAME_BYTES = 1024;
/** Schema versions kept per table for the Write API's propagation delay. */
const SCHEMA_HISTORY = 20;

/** Table resource fields a client may set and that we keep and return. */
const TABLE_FIELDS = [
  'description',
  'friendlyName',
  'labels',
  'tableConstraints',
  'maxStaleness',
  'clustering',
  'timePartitioning',
  'rangePartitioning',
  'requirePartitionFilter',
  'expirationTime',
];
const DATASET_FIELDS = ['description', 'friendlyName', 'labels', 'defaultTableExpirationMs', 'access'];

/**
 * Parses `_CHANGE_SEQUENCE_NUMBER`: up to four `/`-separated sections of 1..16 hexadecimal digits.
 * Returns null when the format is invalid.
 */
export function parseSequence(text: string): bigint[] | null {
  if (!isValidSequence(text)) return null;
  return text.split('/').map((s) => BigInt(`0x${s}`));
}

/** Value of a hexadecimal digit's char code, or -1. */
function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const lower = c | 0x20;
  return lower >= 97 && lower <= 102 ? lower - 87 : -1;
}

/** Whether `text` is a valid `_CHANGE_SEQUENCE_NUMBER` (the format parseSequence accepts), without allocating. */
export function isValidSequence(text: string): boolean {
  let sections = 1;
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 47 /* / */) {
      if (digits === 0 || ++sections > 4) return false;
      digits = 0;
    } else if (hexValue(c) < 0 || ++digits > 16) return false;
  }
  return digits > 0;
}

/**
 * Compares section `a[as..ae)` with `b[bs..be)` as hexadecimal numbers: leading zeros skipped, then the longer
 * one is larger, else the first differing digit decides.
 */
function compareHexSection(a: string, as: number, ae: number, b: string, bs: number, be: number): number {
  while (as < ae && a.charCodeAt(as) === 48) as++;
  while (bs < be && b.charCodeAt(bs) === 48) bs++;
  if (ae - as !== be - bs) return ae - as < be - bs ? -1 : 1;
  for (; as < ae; as++, bs++) {
    const x = hexValue(a.charCodeAt(as));
    const y = hexValue(b.charCodeAt(bs));
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/**
 * Compares two valid sequence numbers section by section, as hexadecimal numbers ("A/1" > "9/FFFF").
 * A missing trailing section counts as 0 (our reading; the docs only define same-shape comparisons); an invalid
 * one counts as 0 entirely. Works on the text itself: this runs once per CDC row.
 */
export function compareSequences(a: string, b: string): number {
  if (!isValidSequence(a)) a = '';
  if (!isValidSequence(b)) b = '';
  let ai = 0;
  let bi = 0;
  while (ai < a.length || bi < b.length) {
    let ae = a.indexOf('/', ai);
    if (ae < 0) ae = a.length;
    let be = b.indexOf('/', bi);
    if (be < 0) be = b.length;
    const c = compareHexSection(a, ai, ae, b, bi, be);
    if (c !== 0) return c;
    ai = Math.min(ae + 1, a.length);
    bi = Math.min(be + 1, b.length);
  }
  return 0;
}

const tableName = (ref: TableRef): string => `${ref.projectId}:${ref.datasetId}.${ref.tableId}`;
const etagOf = (...parts: unknown[]): string =>
  createHash('md5').update(JSON.stringify(parts)).digest('base64').slice(0, 22);

export class Store {
  private readonly datasets = new Map<string, DatasetState>();
  private readonly tables = new Map<string, TableState>();
  private journal: ((record: JournalRecord) => void) | undefined;
  /** Sequence number of the last change (journaled or replayed). */
  lastSeq = 0;
  /** How far the emulator clock is ahead of the wall clock. */
  private clockOffsetMs = 0;
  /** While replaying, the recorded time of the record being replayed. */
  private replayAt: number | undefined;

  /** Registers the journal: it is handed every change, and must make it durable before it returns. */
  setJournal(journal: (record: JournalRecord) => void): void {
    this.journal = journal;
  }

  /** The emulator clock (ms since the epoch): wall time plus whatever tests advanced it by. */
  now(): number {
    return this.replayAt ?? Date.now() + this.clockOffsetMs;
  }

  /** Moves the emulator clock forward (no real waiting): e.g. past BigQuery's two-day delete retention. */
  advanceClock(ms: number): number {
    if (!Number.isFinite(ms) || ms < 0) throw invalid(`The clock only moves forward; got ${ms} ms.`);
    const at = this.now();
    this.clockOffsetMs += ms;
    this.commit('advanceClock', [ms], at);
    return this.now();
  }

  /** Journals a change just made in memory; the caller answers the client only after this returns. */
  private commit(op: MutatingOp, args: unknown[], at = this.now()): void {
    this.lastSeq++;
    if (this.replayAt === undefined) this.journal?.({ seq: this.lastSeq, at, op, args });
  }

  /** Re-applies a journaled change (on start); records already in the snapshot are skipped. */
  replay(record: JournalRecord): void {
    if (record.seq <= this.lastSeq) return;
    if (!MUTATING_OPS.has(record.op)) throw new Error(`unknown journal operation ${String(record.op)}`);
    this.replayAt = record.at;
    try {
      (this[record.op] as (...args: unknown[]) => unknown).apply(this, record.args);
    } finally {
      this.replayAt = undefined;
    }
    this.lastSeq = record.seq;
  }

  // ---- datasets ----

  createDataset(projectId: string, body: Record<string, unknown>): Record<string, unknown> {
    const ref = (body.datasetReference ?? {}) as { datasetId?: string; projectId?: string };
    const datasetId = ref.datasetId;
    if (!datasetId || !/^[A-Za-z0-9_]{1,1024}$/.test(datasetId)) {
      throw invalid(
        `Invalid dataset ID "${datasetId ?? ''}". Dataset IDs must be alphanumeric (plus underscores) and must be at most 1024 characters long.`,
      );
    }
    const key = `${projectId}:${datasetId}`;
    if (this.datasets.has(key)) throw alreadyExists(`Dataset ${key}`);
    const now = this.now();
    const resource: Record<string, unknown> = {
      kind: 'bigquery#dataset',
      id: key,
      datasetReference: { projectId, datasetId },
      location: (body.location as string | undefined) ?? 'US',
      creationTime: String(now),
      lastModifiedTime: String(now),
      type: 'DEFAULT',
    };
    for (const field of DATASET_FIELDS) if (body[field] !== undefined) resource[field] = body[field];
    this.datasets.set(key, { resource });
    this.commit('createDataset', [projectId, body]);
    return this.datasetResource(projectId, datasetId);
  }

  private dataset(projectId: string, datasetId: string): DatasetState {
    const ds = this.datasets.get(`${projectId}:${datasetId}`);
    if (!ds) throw notFound(`Dataset ${projectId}:${datasetId}`);
    return ds;
  }

  datasetResource(projectId: string, datasetId: string): Record<string, unknown> {
    const { resource } = this.dataset(projectId, datasetId);
    return { ...resource, etag: etagOf(resource), selfLink: `/projects/${projectId}/datasets/${datasetId}` };
  }

  patchDataset(projectId: string, datasetId: string, body: Record<string, unknown>): Record<string, unknown> {
    const ds = this.dataset(projectId, datasetId);
    for (const field of DATASET_FIELDS) if (body[field] !== undefined) ds.resource[field] = body[field];
    ds.resource.lastModifiedTime = String(this.now());
    this.commit('patchDataset', [projectId, datasetId, body]);
    return this.datasetResource(projectId, datasetId);
  }

  listDatasets(projectId: string): Record<string, unknown>[] {
    return [...this.datasets.values()]
      .filter((ds) => (ds.resource.datasetReference as { projectId: string }).projectId === projectId)
      .map((ds) => {
        const { kind, id, datasetReference, location, labels } = ds.resource;
        return { kind, id, datasetReference, location, ...(labels ? { labels } : {}) };
      });
  }

  deleteDataset(projectId: string, datasetId: string, deleteContents: boolean): void {
    this.dataset(projectId, datasetId);
    const tables = this.tablesOf(projectId, datasetId);
    if (tables.length > 0 && !deleteContents) {
      throw new ApiError('resourceInUse', `Dataset ${projectId}:${datasetId} is still in use`);
    }
    for (const t of tables) this.tables.delete(tableName(t.ref));
    this.datasets.delete(`${projectId}:${datasetId}`);
    this.commit('deleteDataset', [projectId, datasetId, deleteContents]);
  }

  // ---- tables ----

  private tablesOf(projectId: string, datasetId: string): TableState[] {
    return [...this.tables.values()].filter(
      (t) => t.ref.projectId === projectId && t.ref.datasetId === datasetId,
    );
  }

  private table(ref: TableRef): TableState {
    this.dataset(ref.projectId, ref.datasetId);
    const table = this.tables.get(tableName(ref));
    if (!table) throw notFound(`Table ${tableName(ref)}`);
    return table;
  }

  hasTable(ref: TableRef): boolean {
    return this.tables.has(tableName(ref));
  }

  createTable(projectId: string, datasetId: string, body: Record<string, unknown>): Record<string, unknown> {
    this.dataset(projectId, datasetId);
    const tableId = (body.tableReference as { tableId?: string } | undefined)?.tableId;
    if (!tableId || !TABLE_NAME.test(tableId) || Buffer.byteLength(tableId, 'utf8') > MAX_TABLE_NAME_BYTES) {
      throw invalid(
        `Invalid table ID "${tableId ?? ''}". Table IDs must be alphanumeric (plus underscores, dashes and spaces) and must be at most ${MAX_TABLE_NAME_BYTES} UTF-8 bytes long.`,
      );
    }
    const ref = { projectId, datasetId, tableId };
    if (this.tables.has(tableName(ref))) throw alreadyExists(`Table ${tableName(ref)}`);
    const schema = normalizeSchema(body.schema as TableSchema | undefined);
    const meta = pickFields(body, TABLE_FIELDS);
    checkTableOptions(schema, meta);
    const now = this.now();
    this.tables.set(tableName(ref), {
      ref,
      meta,
      schema,
      creationTime: now,
      lastModifiedTime: now,
      schemaVersion: 1,
      schemaHistory: [{ version: 1, at: now, schema }],
      cdcActive: false,
      plainRows: [],
      keyedRows: new Map(),
      applied: new Map(),
      insertIds: new Set(),
    });
    this.commit('createTable', [projectId, datasetId, body]);
    return this.tableResource(ref);
  }

  /** tables.patch (`replace` false) or tables.update (`replace` true). */
  updateTable(ref: TableRef, body: Record<string, unknown>, replace: boolean): Record<string, unknown> {
    const table = this.table(ref);
    let schema = table.schema;
    if (body.schema !== undefined) {
      schema = normalizeSchema(body.schema as TableSchema);
      checkSchemaChange(table.schema, schema, tableName(ref));
    }
    const meta = replace
      ? pickFields(body, TABLE_FIELDS)
      : { ...table.meta, ...pickFields(body, TABLE_FIELDS) };
    for (const [k, v] of Object.entries(meta)) if (v === null) delete meta[k];
    checkTableOptions(schema, meta);
    if (table.cdcActive) checkCdcColumnCount(schema, tableName(ref));
    const now = this.now();
    if (JSON.stringify(schema) !== JSON.stringify(table.schema)) {
      table.schemaVersion++;
      table.schemaHistory.push({ version: table.schemaVersion, at: now, schema });
      // Keep the first version (always visible) and the most recent ones.
      if (table.schemaHistory.length > SCHEMA_HISTORY) table.schemaHistory.splice(1, 1);
    }
    table.schema = schema;
    table.meta = meta;
    table.lastModifiedTime = now;
    this.commit('updateTable', [ref, body, replace]);
    return this.tableResource(ref);
  }

  deleteTable(ref: TableRef): void {
    this.table(ref);
    this.tables.delete(tableName(ref));
    this.commit('deleteTable', [ref]);
  }

  tableResource(ref: TableRef): Record<string, unknown> {
    const t = this.table(ref);
    const numRows = t.plainRows.length + t.keyedRows.size;
    const resource: Record<string, unknown> = {
      kind: 'bigquery#table',
      id: tableName(ref),
      selfLink: `/projects/${ref.projectId}/datasets/${ref.datasetId}/tables/${ref.tableId}`,
      tableReference: { ...ref },
      schema: t.schema,
      ...t.meta,
      numRows: String(numRows),
      numBytes: '0',
      creationTime: String(t.creationTime),
      lastModifiedTime: String(t.lastModifiedTime),
      type: 'TABLE',
      location: (this.dataset(ref.projectId, ref.datasetId).resource.location as string) ?? 'US',
    };
    resource.etag = etagOf(resource);
    return resource;
  }

  listTables(projectId: string, datasetId: string): Record<string, unknown>[] {
    this.dataset(projectId, datasetId);
    return this.tablesOf(projectId, datasetId).map((t) => ({
      kind: 'bigquery#table',
      id: tableName(t.ref),
      tableReference: { ...t.ref },
      type: 'TABLE',
      creationTime: String(t.creationTime),
      ...(t.meta.labels ? { labels: t.meta.labels } : {}),
    }));
  }

  schemaOf(ref: TableRef): {
    schema: TableSchema;
    version: number;
    primaryKey: string[];
    cdcActive: boolean;
  } {
    const t = this.table(ref);
    return {
      schema: t.schema,
      version: t.schemaVersion,
      primaryKey: primaryKeyOf(t.meta),
      cdcActive: t.cdcActive,
    };
  }

  /**
   * The schema the Storage Write API works with: the newest version made at least `delayMs` ago on the emulator
   * clock (the first version is visible at once). BigQuery documents that writers see a table's new schema only
   * "after some time (in order of minutes)" (SchemaAwareStreamWriter in the Java client,
   * https://cloud.google.com/java/docs/reference/google-cloud-bigquerystorage/latest/com.google.cloud.bigquery.storage.v1.SchemaAwareStreamWriter).
   */
  writeSchemaOf(ref: TableRef, delayMs: number): { schema: TableSchema; version: number } {
    const t = this.table(ref);
    const visibleFrom = this.now() - delayMs;
    let visible = t.schemaHistory[0];
    for (const v of t.schemaHistory) if (v.at <= visibleFrom) visible = v;
    return { schema: visible.schema, version: visible.version };
  }

  // ---- rows ----

  /** All rows, plain appends first, then CDC-kept rows. */
  rows(ref: TableRef): StoredRecord[] {
    const t = this.table(ref);
    return [...t.plainRows, ...t.keyedRows.values()];
  }

  /** How many rows `rows(ref)` would return, without copying them. */
  rowCount(ref: TableRef): number {
    const t = this.table(ref);
    return t.plainRows.length + t.keyedRows.size;
  }

  /** Counts the rows that satisfy `keep`, in `rows(ref)` order, without copying them. */
  countRows(ref: TableRef, keep: (row: StoredRecord) => boolean): number {
    const t = this.table(ref);
    let n = 0;
    for (const row of t.plainRows) if (keep(row)) n++;
    for (const row of t.keyedRows.values()) if (keep(row)) n++;
    return n;
  }

  appendRows(ref: TableRef, rows: StoredRecord[]): void {
    const t = this.table(ref);
    for (const row of rows) t.plainRows.push(row);
    t.lastModifiedTime = this.now();
    this.commit('appendRows', [ref, rows]);
  }

  /** Applies CDC changes in order; the table must declare a primary key (checked by the caller). */
  applyChanges(ref: TableRef, changes: Change[]): void {
    const t = this.table(ref);
    const now = this.now();
    // Key columns named as the schema spells them (BigQuery column names are case-insensitive).
    const key = primaryKeyOf(t.meta).map((column) => findField(t.schema.fields, column)?.name ?? column);
    const single = key.length === 1 ? key[0] : undefined;
    for (const change of changes) {
      // JSON of the key values' array; `[${JSON.stringify(v)}]` is the same text for a one-column key.
      const keyValue =
        single !== undefined
          ? `[${JSON.stringify(change.row[single] ?? null)}]`
          : JSON.stringify(key.map((column) => change.row[column] ?? null));
      let previous = t.applied.get(keyValue);
      if (previous?.deleted && previous.at !== undefined && now - previous.at > DELETE_RETENTION_MS) {
        // The delete retention window has passed: BigQuery no longer remembers this delete for ordering.
        t.applied.delete(keyValue);
        previous = undefined;
      }
      if (
        change.sequence !== null &&
        previous?.sequence != null &&
        compareSequences(change.sequence, previous.sequence) < 0
      ) {
        continue; // a lower sequence than the one already applied for this key has no effect
      }
      if (change.type === 'UPSERT') t.keyedRows.set(keyValue, change.row);
      else t.keyedRows.delete(keyValue);
      if (previous) {
        // Updated in place: one allocation less per change on a key seen before (the usual case).
        previous.sequence = change.sequence;
        previous.deleted = change.type === 'DELETE';
        previous.at = now;
      } else
        t.applied.set(keyValue, { sequence: change.sequence, deleted: change.type === 'DELETE', at: now });
    }
    t.cdcActive = true;
    t.lastModifiedTime = now;
    this.commit('applyChanges', [ref, changes]);
  }

  /**
   * insertAll: drops rows whose insertId was seen recently, appends the others.
   * Returns how many rows were appended.
   */
  insertAll(ref: TableRef, rows: Array<{ insertId?: string; row: StoredRecord }>): number {
    const t = this.table(ref);
    let appended = 0;
    for (const { insertId, row } of rows) {
      if (insertId) {
        if (t.insertIds.has(insertId)) continue;
        t.insertIds.add(insertId);
        if (t.insertIds.size > INSERT_ID_MEMORY)
          t.insertIds.delete(t.insertIds.values().next().value as string);
      }
      t.plainRows.push(row);
      appended++;
    }
    t.lastModifiedTime = this.now();
    this.commit('insertAll', [ref, rows]);
    return appended;
  }

  // ---- persistence ----

  toJSON(): object {
    return {
      lastSeq: this.lastSeq,
      clockOffsetMs: this.clockOffsetMs,
      datasets: [...this.datasets.values()].map((d) => d.resource),
      tables: [...this.tables.values()].map((t) => ({
        ref: t.ref,
        meta: t.meta,
        schema: t.schema,
        creationTime: t.creationTime,
        lastModifiedTime: t.lastModifiedTime,
        schemaVersion: t.schemaVersion,
        schemaHistory: t.schemaHistory,
        cdcActive: t.cdcActive,
        plainRows: t.plainRows,
        keyedRows: [...t.keyedRows.entries()],
        applied: [...t.applied.entries()],
        insertIds: [...t.insertIds],
      })),
    };
  }

  static fromJSON(json: unknown): Store {
    const store = new Store();
    const data = json as {
      lastSeq?: number;
      clockOffsetMs?: number;
      datasets?: Record<string, unknown>[];
      tables?: Array<Record<string, unknown>>;
    };
    store.lastSeq = Number(data.lastSeq ?? 0);
    store.clockOffsetMs = Number(data.clockOffsetMs ?? 0);
    for (const resource of data.datasets ?? []) {
      store.datasets.set(String(resource.id), { resource });
    }
    for (const t of data.tables ?? []) {
      const ref = t.ref as TableRef;
      const schema = t.schema as TableSchema;
      const schemaVersion = Number(t.schemaVersion ?? 1);
      store.tables.set(tableName(ref), {
        ref,
        meta: t.meta as Record<string, unknown>,
        schema,
        creationTime: Number(t.creationTime),
        lastModifiedTime: Number(t.lastModifiedTime),
        schemaVersion,
        schemaHistory: (t.schemaHistory as SchemaVersion[] | undefined) ?? [
          { version: schemaVersion, at: Number(t.creationTime), schema },
        ],
        cdcActive: Boolean(t.cdcActive),
        plainRows: (t.plainRows ?? []) as StoredRecord[],
        keyedRows: new Map((t.keyedRows ?? []) as Array<[string, StoredRecord]>),
        applied: new Map((t.applied ?? []) as Array<[string, AppliedVersion]>),
        insertIds: new Set((t.insertIds ?? []) as string[]),
      });
    }
    return store;
  }
}

function pickFields(body: Record<string, unknown>, fields: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of fields) if (body[field] !== undefined) out[field] = body[field];
  return out;
}

export function primaryKeyOf(meta: Record<string, unknown>): string[] {
  const constraints = meta.tableConstraints as { primaryKey?: { columns?: string[] } } | undefined;
  return constraints?.primaryKey?.columns ?? [];
}

/** "Tables with active CDC cannot have more than 2,000 top-level columns defined by the table's schema." */
export function checkCdcColumnCount(schema: TableSchema, table: string): void {
  if (schema.fields.length > MAX_CDC_COLUMNS) {
    throw invalid(
      `Table ${table} has ${schema.fields.length} top-level columns; tables with active CDC cannot have more than ${MAX_CDC_COLUMNS}.`,
    );
  }
}

/** tables.insert/patch/update rules for the primary key, clustering and maxStaleness. */
function checkTableOptions(schema: TableSchema, meta: Record<string, unknown>): void {
  checkPrimaryKey(schema, meta.tableConstraints);
  checkClustering(schema, meta.clustering);
  if (meta.maxStaleness !== undefined && !MAX_STALENESS.test(String(meta.maxStaleness))) {
    throw invalid(
      `Invalid value for maxStaleness: "${String(meta.maxStaleness)}". Expected an INTERVAL such as "0-0 0 0:15:0" (Y-M D H:M:S).`,
    );
  }
}

function checkPrimaryKey(schema: TableSchema, constraints: unknown): void {
  if (constraints === undefined) return;
  const primaryKey = (constraints as { primaryKey?: unknown } | null)?.primaryKey;
  if (primaryKey === undefined) return;
  const columns = (primaryKey as { columns?: unknown } | null)?.columns;
  if (!Array.isArray(columns) || columns.length === 0 || !columns.every((c) => typeof c === 'string' && c)) {
    throw invalid('tableConstraints.primaryKey.columns must be a non-empty list of column names.');
  }
  if (columns.length > MAX_PRIMARY_KEY_COLUMNS) {
    throw invalid(`Primary key can have at most ${MAX_PRIMARY_KEY_COLUMNS} columns, got ${columns.length}.`);
  }
  const seen = new Set<string>();
  for (const column of columns as string[]) {
    if (seen.has(column.toLowerCase())) throw invalid(`Duplicate column ${column} in the primary key.`);
    seen.add(column.toLowerCase());
    const field = findField(schema.fields, column);
    if (!field) throw invalid(`Primary key column ${column} does not exist in the table schema.`);
    if (field.mode === 'REPEATED' || !PRIMARY_KEY_TYPES.has(field.type)) {
      throw invalid(
        `Primary key column ${column} has type ${field.mode === 'REPEATED' ? 'ARRAY<' + field.type + '>' : field.type}; primary key columns must be top-level columns of type BIGNUMERIC, BOOL, DATE, DATETIME, INT64, NUMERIC, STRING or TIMESTAMP.`,
      );
    }
  }
}

function checkClustering(schema: TableSchema, clustering: unknown): void {
  if (clustering === undefined) return;
  const fields = (clustering as { fields?: unknown } | null)?.fields;
  if (!Array.isArray(fields) || !fields.every((f) => typeof f === 'string' && f)) {
    throw invalid('clustering.fields must be a list of column names.');
  }
  if (fields.length > MAX_CLUSTERING_COLUMNS) {
    throw invalid(`Too many clustering fields: ${fields.length}, the maximum is ${MAX_CLUSTERING_COLUMNS}.`);
  }
  const seen = new Set<string>();
  for (const column of fields as string[]) {
    if (seen.has(column.toLowerCase())) throw invalid(`Duplicate clustering field ${column}.`);
    seen.add(column.toLowerCase());
    const field = findField(schema.fields, column);
    if (!field) throw invalid(`The field specified for clustering cannot be found in the schema: ${column}`);
    if (field.mode === 'REPEATED' || !CLUSTERING_TYPES.has(field.type)) {
      throw invalid(
        `Field ${column} of type ${field.mode === 'REPEATED' ? 'ARRAY<' + field.type + '>' : field.type} is not supported for clustering; clustering fields must be top-level, non-repeated columns of type BIGNUMERIC, BOOL, DATE, DATETIME, GEOGRAPHY, INT64, NUMERIC, STRING or TIMESTAMP.`,
      );
    }
  }
}
