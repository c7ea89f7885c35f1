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
import type { ProtoValue } from './type-map';

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

/** Rows and serialized bytes this process has sent to BigQuery (all tables), for benchmarks and logs. */
export const writeStats = { rows: 0, bytes: 0 };

export class TableAppender {
  private readonly type: protobuf.Type;
  private readonly writer: managedwriter.Writer;
  private readonly connection: { close(): void };

  private constructor(type: protobuf.Type, writer: managedwriter.Writer, connection: { close(): void }) {
    this.type = type;
    this.writer = writer;
    this.connection = connection;
  }

  static async open(
    client: managedwriter.WriterClient,
    tablePath: string,
    fields: TableField[],
    cdc: boolean,
  ): Promise<TableAppender> {
    const storageSchema = adapt.convertBigQuerySchemaToStorageTableSchema({ fields });
    const options = cdc ? [adapt.withChangeType(), adapt.withChangeSequenceNumber()] : [];
    const descriptor = adapt.convertStorageSchemaToProto2Descriptor(storageSchema, 'root', ...options);
    const fromDescriptor = (protobuf.Type as unknown as { fromDescriptor: FromDescriptor }).fromDescriptor;
    const type = fromDescriptor(adapt.normalizeDescriptor(descriptor));
    const connection = await client.createStreamConnection({
      streamId: managedwriter.DefaultStream,
      destinationTable: tablePath,
    });
    // A connection error with no write pending is reported again on the next append; without a
    // listener EventEmitter would throw it.
    connection.onConnectionError(() => undefined);
    const writer = new managedwriter.Writer({ connection, protoDescriptor: descriptor });
    return new TableAppender(type, writer, connection);
  }

  /**
   * Serialises a row (values already converted by type-map.ts; fromObject turns int64 decimal strings
   * into Longs exactly); throws when a REQUIRED field is missing.
   */
  encode(row: ProtoRow): Uint8Array {
    return this.type.encode(this.type.fromObject(row)).finish();
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
