// Appends rows to one table through the Storage Write API default stream.
//
// We use the plain `Writer` with a proto descriptor we build ourselves, not `JSONWriter`: on a server
// schema update JSONWriter rebuilds its descriptor from the table schema WITHOUT `_CHANGE_TYPE` and
// `_CHANGE_SEQUENCE_NUMBER`, which would turn CDC upserts into plain appends. Our descriptor only changes
// when we add columns, and then we open a new connection with it. One connection per table and kind
// (CDC replica or plain history): BigQuery rejects CDC and plain rows on one connection.

import { adapt, managedwriter, protos } from '@google-cloud/bigquery-storage';
import * as protobuf from 'protobufjs';
// Registers Type.fromDescriptor (the same extension the Storage client loads).
import 'protobufjs/ext/descriptor';
import type { TableField } from './bigquery-rest';
import { fastFields, ProtobufField, rowBytes } from './row-bytes';
import type { ProtoValue } from './type-map';

export type { ProtoValue };
export type ProtoRow = Record<string, ProtoValue>;

/** The whole append request failed (nothing was written): BigQuery down, schema mismatch, … */
export class StorageWriteError extends Error {
  override name = 'StorageWriteError';
  constructor(
    message: string,
    readonly code?: number,
    /** The `StorageError.code` BigQuery attached in the status details (storage.proto), if any. */
    readonly storageCode?: number,
  ) {
    super(message);
  }
}

const STORAGE_ERROR_TYPE = 'type.googleapis.com/google.cloud.bigquery.storage.v1.StorageError';

/**
 * The machine-readable reason of a failed append: "The error details may contain a StorageError"
 * (storage.proto, AppendRowsResponse / StorageError), packed as a google.protobuf.Any.
 */
function storageErrorCode(details: protos.google.protobuf.IAny[] | null | undefined): number | undefined {
  for (const d of details ?? []) {
    if (d.type_url !== STORAGE_ERROR_TYPE || !d.value || typeof d.value === 'string') continue;
    try {
      const code = protos.google.cloud.bigquery.storage.v1.StorageError.decode(d.value).code;
      return typeof code === 'number' ? code : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

export interface RowError {
  index: number;
  message: string;
}

// The Storage Write API takes at most 10 MB per AppendRows request; stay well under it.
const MAX_REQUEST_BYTES = 8 * 1024 * 1024;
// An append that gets no answer in this long is treated as failed (its message is not acked).
const APPEND_TIMEOUT_MS = 120_000;

type FromDescriptor = (d: unknown) => protobuf.Type;
const fromDescriptor = (protobuf.Type as unknown as { fromDescriptor: FromDescriptor }).fromDescriptor;

/** Rows and serialized bytes this process has sent to BigQuery (all tables), for benchmarks and logs. */
export const writeStats = { rows: 0, bytes: 0 };

/** The names of the meta columns a kind of row sets (one constant per row builder: the split is cached by it). */
export class MetaFields {
  readonly names: ReadonlySet<string>;
  constructor(names: readonly string[]) {
    this.names = new Set(names);
  }
}

/**
 * A row as two objects, the source columns' values and the row's meta columns, encoded without merging them:
 * V8 makes `{ ...values, meta… }` copies slowly (tens of µs each), and every event is two rows. A protobuf
 * message may be written as any sequence of its fields ("parsers must be able to parse fields in any order",
 * https://protobuf.dev/programming-guides/encoding/#order), so the two halves are written one after the other.
 */
export class SplitRow {
  constructor(
    readonly values: ProtoRow,
    readonly meta: ProtoRow,
    readonly metaFields: MetaFields,
  ) {}
}

export type AppendRow = ProtoRow | SplitRow;

/** One half of a split row's message type, and the fast writer's fields for it (null: protobufjs writes it). */
interface Half {
  type: protobuf.Type;
  fast: ReturnType<typeof fastFields>;
}

/** Serialises rows for one table's fields (the proto descriptor the connection declares). */

export class RowEncoder {
  readonly descriptor: protos.google.protobuf.DescriptorProto;
  private readonly normalized: { field?: { name?: string | null }[] | null };
  private readonly type: protobuf.Type;
  private readonly useFast: boolean;
  private readonly fast: ReturnType<typeof fastFields>;
  private readonly halves = new Map<MetaFields, { values: Half; meta: Half }>();

  /** `fast: false`: protobufjs only (the reference the fast writer is tested against). */
  constructor(fields: TableField[], cdc: boolean, opts: { fast?: boolean } = {}) {
    const storageSchema = adapt.convertBigQuerySchemaToStorageTableSchema({ fields });
    const options = cdc ? [adapt.withChangeType(), adapt.withChangeSequenceNumber()] : [];
    this.descriptor = adapt.convertStorageSchemaToProto2Descriptor(storageSchema, 'root', ...options);
    this.normalized = adapt.normalizeDescriptor(this.descriptor) as typeof this.normalized;
    this.type = fromDescriptor(this.normalized);
    this.useFast = opts.fast !== false;
    this.fast = this.useFast ? fastFieldsOf(this.type) : null;
  }

  /**
   * Serialises a row whose values type-map.ts already converted to what protobufjs writes for each field
   * type (int64: number or decimal string; bytes: Buffer; …). Written by row-bytes.ts where it handles the
   * message type and the values (the same bytes as protobufjs: test/sink/row-bytes.test.ts), otherwise by
   * protobufjs from the plain objects as they are, without `fromObject`'s copy (which encodes the same bytes).
   * Should that throw on a value protobufjs does not write as is, the row is merged and normalised through
   * `fromObject`.
   */
  encode(row: AppendRow): Uint8Array {
    try {
      if (row instanceof SplitRow) {
        const h = this.halvesFor(row.metaFields);
        if (h.values.fast && h.meta.fast) {
          rowBytes.write(h.values.fast, row.values);
          rowBytes.write(h.meta.fast, row.meta);
          return rowBytes.finish();
        }
      } else if (this.fast) {
        rowBytes.write(this.fast, row);
        return rowBytes.finish();
      }
    } catch {
      // Declined (row-bytes.ts), or anything unforeseen: nothing of the row stays in the slab, protobufjs
      // writes it.
      rowBytes.abandon();
    }
    return this.encodeWithProtobufjs(row);
  }

  private encodeWithProtobufjs(row: AppendRow): Uint8Array {
    try {
      if (!(row instanceof SplitRow)) return this.type.encode(row).finish();
      const h = this.halvesFor(row.metaFields);
      const w = protobuf.Writer.create();
      h.values.type.encode(row.values, w);
      h.meta.type.encode(row.meta, w);
      return w.finish();
    } catch {
      const whole = row instanceof SplitRow ? { ...row.values, ...row.meta } : row;
      return this.type.encode(this.type.fromObject(whole)).finish();
    }
  }

  /** The message type cut in two: the meta fields, and all others; same field numbers, same rules. */
  private halvesFor(meta: MetaFields) {
    let h = this.halves.get(meta);
    if (!h) {
      const all = this.normalized.field ?? [];
      const part = (keep: boolean): Half => {
        const type = fromDescriptor({
          ...this.normalized,
          field: all.filter((f) => meta.names.has(f.name ?? '') === keep),
        });
        return { type, fast: this.useFast ? fastFieldsOf(type) : null };
      };
      h = { values: part(false), meta: part(true) };
      this.halves.set(meta, h);
    }
    return h;
  }
}

/**
 * The fast writer's fields for a type, read after protobufjs set the type up: a field's `required` follows from
 * its resolved features (protobufjs 8), which setup resolves as the encoder it generates does.
 */
function fastFieldsOf(type: protobuf.Type) {
  type.setup();
  return fastFields(type.fieldsArray as unknown as ProtobufField[]);
}

export class TableAppender {
  private readonly rows: RowEncoder;
  private readonly writer: managedwriter.Writer;
  private readonly connection: { close(): void };

  private constructor(rows: RowEncoder, writer: managedwriter.Writer, connection: { close(): void }) {
    this.rows = rows;
    this.writer = writer;
    this.connection = connection;
  }

  static async open(
    client: managedwriter.WriterClient,
    tablePath: string,
    fields: TableField[],
    cdc: boolean,
  ): Promise<TableAppender> {
    const rows = new RowEncoder(fields, cdc);
    const connection = await client.createStreamConnection({
      streamId: managedwriter.DefaultStream,
      destinationTable: tablePath,
    });
    // A connection error with no write pending is reported again on the next append; without a
    // listener EventEmitter would throw it.
    connection.onConnectionError(() => undefined);
    const writer = new managedwriter.Writer({ connection, protoDescriptor: rows.descriptor });
    return new TableAppender(rows, writer, connection);
  }

  /** See RowEncoder.encode. */
  encode(row: AppendRow): Uint8Array {
    return this.rows.encode(row);
  }

  /**
   * Appends encoded rows (in requests under the size limit). Resolves with BigQuery's per-row errors
   * (when any row is bad BigQuery writes none of that request); rejects when a request failed as a whole.
   */
  async append(rows: Uint8Array[]): Promise<RowError[]> {
    const errors: RowError[] = [];
    let start = 0;
    while (start < rows.length) {
      let end = start;
      let bytes = 0;
      while (end < rows.length && (end === start || bytes + rows[end].length < MAX_REQUEST_BYTES)) {
        bytes += rows[end].length;
        end += 1;
      }
      const chunk = rows.slice(start, end);
      writeStats.rows += chunk.length;
      writeStats.bytes += bytes;
      const pending = this.writer.appendRows({ serializedRows: chunk });
      let timer: NodeJS.Timeout | undefined;
      const res = await Promise.race([
        pending.getResult(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new StorageWriteError('append got no answer in time')),
            APPEND_TIMEOUT_MS,
          );
        }),
      ])
        .catch((e: Error & { code?: number }) => {
          throw e instanceof StorageWriteError
            ? e
            : new StorageWriteError(`append failed: ${e.message}`, e.code);
        })
        .finally(() => clearTimeout(timer));
      if (res.rowErrors && res.rowErrors.length > 0) {
        for (const re of res.rowErrors) {
          errors.push({ index: start + Number(re.index ?? 0), message: re.message ?? 'row rejected' });
        }
      } else if (res.error && res.error.code) {
        throw new StorageWriteError(
          `append rejected: ${res.error.message ?? 'unknown error'}`,
          res.error.code,
          storageErrorCode(res.error.details),
        );
      }
      start = end;
    }
    return errors;
  }

  close(): void {
    this.connection.close();
  }
}
