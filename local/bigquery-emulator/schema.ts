/**
 * Table schemas as the v2 REST API carries them, and the rules BigQuery applies when a schema changes.
 *
 * BigQuery answers with legacy type names whatever name the request used (INT64 → INTEGER, FLOAT64 → FLOAT,
 * BOOL → BOOLEAN, STRUCT → RECORD; https://cloud.google.com/bigquery/docs/reference/rest/v2/tables#TableFieldSchema),
 * and fills in `mode: NULLABLE`; we store the schema in that normalized form.
 */
import { invalid } from './errors';

export interface FieldSchema {
  name: string;
  type: string;
  mode?: string;
  fields?: FieldSchema[];
  description?: string;
  maxLength?: string;
  precision?: string;
  scale?: string;
  [passThrough: string]: unknown;
}

export interface TableSchema {
  fields: FieldSchema[];
}

const LEGACY_NAME: Record<string, string> = {
  INT64: 'INTEGER',
  INTEGER: 'INTEGER',
  FLOAT64: 'FLOAT',
  FLOAT: 'FLOAT',
  BOOL: 'BOOLEAN',
  BOOLEAN: 'BOOLEAN',
  STRUCT: 'RECORD',
  RECORD: 'RECORD',
  DECIMAL: 'NUMERIC',
  NUMERIC: 'NUMERIC',
  BIGDECIMAL: 'BIGNUMERIC',
  BIGNUMERIC: 'BIGNUMERIC',
  STRING: 'STRING',
  BYTES: 'BYTES',
  DATE: 'DATE',
  TIME: 'TIME',
  DATETIME: 'DATETIME',
  TIMESTAMP: 'TIMESTAMP',
  JSON: 'JSON',
  GEOGRAPHY: 'GEOGRAPHY',
};

const MODES = new Set(['NULLABLE', 'REQUIRED', 'REPEATED']);

/**
 * Column names (https://cloud.google.com/bigquery/docs/schemas#column_names): "A column name can contain
 * letters (a-z, A-Z), numbers (0-9), or underscores (_), and it must start with a letter or underscore. If you
 * use flexible column names, BigQuery supports starting a column name with a number." "Column names have a
 * maximum length of 300 characters."
 */
const MAX_COLUMN_NAME_LENGTH = 300;
const STANDARD_COLUMN_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/**
 * Flexible column names (https://cloud.google.com/bigquery/docs/schemas#flexible-column-names): letters \p{L},
 * numbers \p{N}, connectors \p{Pc}, dashes \p{Pd}, marks \p{M}, "& % = + : ' < > # |" and whitespace; the
 * characters "! \" $ ( ) * , . / ; ? @ [ \\ ] ^ ` { } ~" are not supported.
 */
const FLEXIBLE_COLUMN_NAME = /^[\p{L}\p{N}\p{Pc}\p{Pd}\p{M}&%=+:'<>#|\s]+$/u;
/**
 * "Column names can't use any of the following prefixes: _TABLE_, _FILE_, _PARTITION, _ROW_TIMESTAMP, __ROOT__,
 * _COLIDENTIFIER, _CHANGE_SEQUENCE_NUMBER, _CHANGE_TYPE, _CHANGE_TIMESTAMP" (same page). Checked without regard
 * to case, like every other name rule (names are case-insensitive).
 */
export const RESERVED_COLUMN_PREFIXES = [
  '_TABLE_',
  '_FILE_',
  '_PARTITION',
  '_ROW_TIMESTAMP',
  '__ROOT__',
  '_COLIDENTIFIER',
  '_CHANGE_SEQUENCE_NUMBER',
  '_CHANGE_TYPE',
  '_CHANGE_TIMESTAMP',
];
/** "The description is a string with a maximum length of 1,024 characters." (schemas#column_descriptions) */
export const MAX_COLUMN_DESCRIPTION_LENGTH = 1024;

/** BigQuery's complaint about a column name, or null when the name is legal. */
export function columnNameProblem(name: unknown): string | null {
  if (typeof name !== 'string' || name.length === 0) return `Invalid field name "${String(name ?? '')}".`;
  if ([...name].length > MAX_COLUMN_NAME_LENGTH) {
    return `Invalid field name "${name}". Fields must be at most ${MAX_COLUMN_NAME_LENGTH} characters long.`;
  }
  if (!STANDARD_COLUMN_NAME.test(name) && !FLEXIBLE_COLUMN_NAME.test(name)) {
    return `Invalid field name "${name}". Fields must contain only letters, numbers, underscores, dashes, marks, whitespace or the characters & % = + : ' < > # |.`;
  }
  const upper = name.toUpperCase();
  const prefix = RESERVED_COLUMN_PREFIXES.find((p) => upper.startsWith(p));
  if (prefix)
    return `Invalid field name "${name}". Field names cannot start with the reserved prefix ${prefix}.`;
  return null;
}

/** The type BigQuery reports for `type` (legacy spelling), or an `invalid` error. */
export function normalizeType(type: string | undefined, column: string): string {
  const legacy = LEGACY_NAME[String(type ?? '').toUpperCase()];
  if (!legacy) throw invalid(`Invalid value for type: ${type} is not a valid value (field: ${column})`);
  return legacy;
}

/** Validates a schema from a request and returns it as BigQuery would store and report it. */
export function normalizeSchema(schema: TableSchema | undefined): TableSchema {
  return { fields: normalizeFields(schema?.fields ?? [], '') };
}

function normalizeFields(fields: FieldSchema[], prefix: string): FieldSchema[] {
  const seen = new Set<string>();
  return fields.map((field) => {
    const problem = columnNameProblem(field?.name);
    if (problem) throw invalid(problem);
    const path = prefix + field.name;
    // "Duplicate column names are not allowed even if the case differs." (schemas#column_names)
    if (seen.has(field.name.toLowerCase())) throw invalid(`Duplicate column names: '${path}'.`);
    seen.add(field.name.toLowerCase());
    if (
      field.description !== undefined &&
      [...String(field.description)].length > MAX_COLUMN_DESCRIPTION_LENGTH
    ) {
      throw invalid(
        `The description for field ${path} is too long. The maximum length is ${MAX_COLUMN_DESCRIPTION_LENGTH} characters.`,
      );
    }
    const type = normalizeType(field.type, path);
    const mode = String(field.mode ?? 'NULLABLE').toUpperCase();
    if (!MODES.has(mode))
      throw invalid(`Invalid value for mode: ${field.mode} is not a valid value (field: ${path})`);
    const normalized: FieldSchema = { ...field, name: field.name, type, mode };
    if (type === 'RECORD') {
      if (!field.fields || field.fields.length === 0)
        throw invalid(`Field ${path} is type RECORD but has no schema`);
      normalized.fields = normalizeFields(field.fields, `${path}.`);
    } else {
      delete normalized.fields;
    }
    return normalized;
  });
}

/** Finds a column by name; BigQuery column names are case-insensitive. */
export function findField(fields: FieldSchema[], name: string): FieldSchema | undefined {
  const lower = name.toLowerCase();
  return fields.find((f) => f.name.toLowerCase() === lower);
}

/**
 * A schema update may only add NULLABLE/REPEATED columns or relax REQUIRED to NULLABLE
 * (https://cloud.google.com/bigquery/docs/managing-table-schemas). Anything else is rejected with BigQuery's
 * "Provided Schema does not match Table" message.
 */
export function checkSchemaChange(before: TableSchema, after: TableSchema, tableName: string): void {
  const fail = (detail: string): never => {
    throw invalid(`Provided Schema does not match Table ${tableName}. ${detail}`);
  };
  const compare = (oldFields: FieldSchema[], newFields: FieldSchema[], prefix: string): void => {
    for (const oldField of oldFields) {
      const path = prefix + oldField.name;
      const newField = findField(newFields, oldField.name);
      if (!newField) fail(`Field ${path} is missing in new schema`);
      else {
        if (newField.type !== oldField.type) {
          fail(`Field ${path} has changed type from ${oldField.type} to ${newField.type}`);
        }
        const relaxed = oldField.mode === 'REQUIRED' && newField.mode === 'NULLABLE';
        if (newField.mode !== oldField.mode && !relaxed) {
          fail(`Field ${path} has changed mode from ${oldField.mode} to ${newField.mode}`);
        }
        if (oldField.type === 'RECORD') compare(oldField.fields ?? [], newField.fields ?? [], `${path}.`);
      }
    }
    for (const newField of newFields) {
      if (!findField(oldFields, newField.name) && newField.mode === 'REQUIRED') {
        fail(`Cannot add required fields to an existing schema. (field: ${prefix + newField.name})`);
      }
    }
  };
  compare(before.fields, after.fields, '');
}

/** Storage Write API spelling of a column type (google.cloud.bigquery.storage.v1.TableFieldSchema.Type). */
const STORAGE_TYPE: Record<string, string> = {
  INTEGER: 'INT64',
  FLOAT: 'DOUBLE',
  BOOLEAN: 'BOOL',
  RECORD: 'STRUCT',
};

export interface StorageFieldSchema {
  name: string;
  type: string;
  mode: string;
  fields: StorageFieldSchema[];
  description?: string;
  maxLength?: string;
  precision?: string;
  scale?: string;
}

/** The table schema in the Storage Write API's TableSchema form, as GetWriteStream (view FULL) returns it. */
export function toStorageSchema(schema: TableSchema): { fields: StorageFieldSchema[] } {
  const convert = (field: FieldSchema): StorageFieldSchema => {
    const out: StorageFieldSchema = {
      name: field.name,
      type: STORAGE_TYPE[field.type] ?? field.type,
      mode: field.mode ?? 'NULLABLE',
      fields: (field.fields ?? []).map(convert),
    };
    if (field.description !== undefined) out.description = field.description;
    if (field.maxLength !== undefined) out.maxLength = String(field.maxLength);
    if (field.precision !== undefined) out.precision = String(field.precision);
    if (field.scale !== undefined) out.scale = String(field.scale);
    return out;
  };
  return { fields: schema.fields.map(convert) };
}
