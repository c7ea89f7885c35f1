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
 *   it is accepted, so reads always see the applied state (a legal outcome for any staleness).
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
}

interface TableState {
  ref: TableRef;
  /** The REST fields we keep (schema, tableConstraints, maxStaleness, clustering, ...). */
  meta: Record<string, unknown>;
  schema: TableSchema;
  creationTime: number;
  lastModifiedTime: number;
  /** Bumped on every schema change, so Storage Write connections can report `updated_schema`. */
  schemaVersion: number;
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
/** BigQuery primary keys have at most 16 columns (https://cloud.google.com/bigquery/docs/primary-foreign-keys). */
const MAX_PRIMARY_KEY_COLUMNS = 16;

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
  const sections = text.split('/');
  if (sections.length > 4 || !sections.every((s) => /^[0-9A-Fa-f]{1,16}$/.test(s))) return null;
  return sections.map((s) => BigInt(`0x${s}`));
}

/**
 * Compares two valid sequence numbers section by section, as hexadecimal numbers ("A/1" > "9/FFFF").
 * A missing trailing section counts as 0 (our reading; the docs only define same-shape comparisons).
 */
export function compareSequences(a: string, b: string): number {
  const pa = parseSequence(a) ?? [];
  const pb = parseSequence(b) ?? [];
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? 0n;
    const y = pb[i] ?? 0n;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

const tableName = (ref: TableRef): string => `${ref.projectId}:${ref.datasetId}.${ref.tableId}`;
const etagOf = (...parts: unknown[]): string =>
  createHash('md5').update(JSON.stringify(parts)).digest('base64').slice(0, 22);

export class Store {
  private readonly datasets = new Map<string, DatasetState>();
  private readonly tables = new Map<string, TableState>();
  private readonly listeners: Array<() => void> = [];

  /** Registers a callback run after every change (used for persistence). */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
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
    const now = Date.now();
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
    this.changed();
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
    ds.resource.lastModifiedTime = String(Date.now());
    this.changed();
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
    this.changed();
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
    if (!tableId || !/^[\p{L}\p{M}\p{N}\p{Pc}\p{Pd}\p{Zs}]{1,1024}$/u.test(tableId)) {
      throw invalid(`Invalid table ID "${tableId ?? ''}".`);
    }
    const ref = { projectId, datasetId, tableId };
    if (this.tables.has(tableName(ref))) throw alreadyExists(`Table ${tableName(ref)}`);
    const schema = normalizeSchema(body.schema as TableSchema | undefined);
    const meta = pickFields(body, TABLE_FIELDS);
    checkConstraints(schema, meta);
    const now = Date.now();
    this.tables.set(tableName(ref), {
      ref,
      meta,
      schema,
      creationTime: now,
      lastModifiedTime: now,
      schemaVersion: 1,
      plainRows: [],
      keyedRows: new Map(),
      applied: new Map(),
      insertIds: new Set(),
    });
    this.changed();
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
    checkConstraints(schema, meta);
    if (JSON.stringify(schema) !== JSON.stringify(table.schema)) table.schemaVersion++;
    table.schema = schema;
    table.meta = meta;
    table.lastModifiedTime = Date.now();
    this.changed();
    return this.tableResource(ref);
  }

  deleteTable(ref: TableRef): void {
    this.table(ref);
    this.tables.delete(tableName(ref));
    this.changed();
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

  schemaOf(ref: TableRef): { schema: TableSchema; version: number; primaryKey: string[] } {
    const t = this.table(ref);
    return { schema: t.schema, version: t.schemaVersion, primaryKey: primaryKeyOf(t.meta) };
  }

  // ---- rows ----

  /** All rows, plain appends first, then CDC-kept rows. */
  rows(ref: TableRef): StoredRecord[] {
    const t = this.table(ref);
    return [...t.plainRows, ...t.keyedRows.values()];
  }

  appendRows(ref: TableRef, rows: StoredRecord[]): void {
    const t = this.table(ref);
    for (const row of rows) t.plainRows.push(row);
    t.lastModifiedTime = Date.now();
    this.changed();
  }

  /** Applies CDC changes in order; the table must declare a primary key (checked by the caller). */
  applyChanges(ref: TableRef, changes: Change[]): void {
    const t = this.table(ref);
    // Key columns named as the schema spells them (BigQuery column names are case-insensitive).
    const key = primaryKeyOf(t.meta).map((column) => findField(t.schema.fields, column)?.name ?? column);
    for (const change of changes) {
      const keyValue = JSON.stringify(key.map((column) => change.row[column] ?? null));
      const previous = t.applied.get(keyValue);
      if (
        change.sequence !== null &&
        previous?.sequence != null &&
        compareSequences(change.sequence, previous.sequence) < 0
      ) {
        continue; // a lower sequence than the one already applied for this key has no effect
      }
      if (change.type === 'UPSERT') t.keyedRows.set(keyValue, change.row);
      else t.keyedRows.delete(keyValue);
      t.applied.set(keyValue, { sequence: change.sequence, deleted: change.type === 'DELETE' });
    }
    t.lastModifiedTime = Date.now();
    this.changed();
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
    t.lastModifiedTime = Date.now();
    this.changed();
    return appended;
  }

  // ---- persistence ----

  toJSON(): object {
    return {
      datasets: [...this.datasets.values()].map((d) => d.resource),
      tables: [...this.tables.values()].map((t) => ({
        ref: t.ref,
        meta: t.meta,
        schema: t.schema,
        creationTime: t.creationTime,
        lastModifiedTime: t.lastModifiedTime,
        schemaVersion: t.schemaVersion,
        plainRows: t.plainRows,
        keyedRows: [...t.keyedRows.entries()],
        applied: [...t.applied.entries()],
      })),
    };
  }

  static fromJSON(json: unknown): Store {
    const store = new Store();
    const data = json as { datasets?: Record<string, unknown>[]; tables?: Array<Record<string, unknown>> };
    for (const resource of data.datasets ?? []) {
      store.datasets.set(String(resource.id), { resource });
    }
    for (const t of data.tables ?? []) {
      const ref = t.ref as TableRef;
      store.tables.set(tableName(ref), {
        ref,
        meta: t.meta as Record<string, unknown>,
        schema: t.schema as TableSchema,
        creationTime: Number(t.creationTime),
        lastModifiedTime: Number(t.lastModifiedTime),
        schemaVersion: Number(t.schemaVersion ?? 1),
        plainRows: (t.plainRows ?? []) as StoredRecord[],
        keyedRows: new Map((t.keyedRows ?? []) as Array<[string, StoredRecord]>),
        applied: new Map((t.applied ?? []) as Array<[string, AppliedVersion]>),
        insertIds: new Set(),
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

function checkConstraints(schema: TableSchema, meta: Record<string, unknown>): void {
  const columns = primaryKeyOf(meta);
  if (columns.length > MAX_PRIMARY_KEY_COLUMNS) {
    throw invalid(`Primary key can have at most ${MAX_PRIMARY_KEY_COLUMNS} columns.`);
  }
  for (const column of columns) {
    const field = findField(schema.fields, column);
    if (!field) throw invalid(`Primary key column ${column} does not exist in the table schema.`);
    if (field.type === 'RECORD' || field.mode === 'REPEATED') {
      throw invalid(`Primary key column ${column} must be a non-repeated scalar column.`);
    }
  }
}
