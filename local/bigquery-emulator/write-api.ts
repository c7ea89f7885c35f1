/**
 * Storage Write API (gRPC service google.cloud.bigquery.storage.v1.BigQueryWrite), served from the .proto files
 * shipped with @google-cloud/bigquery-storage (https://cloud.google.com/bigquery/docs/write-api).
 *
 * AppendRows is a bidirectional stream: the first request names the write stream and carries the writer schema
 * (a proto2 DescriptorProto); later requests may omit both. Each request gets one AppendRowsResponse, in order:
 * `append_result` on success; `error` (google.rpc.Status) when the request is rejected, with `row_errors` listing
 * the bad rows; per the API reference, "if a request failed due to corrupted rows, no rows in the batch will be
 * appended" (storage.proto, AppendRowsResponse.row_errors).
 *
 * CDC (https://cloud.google.com/bigquery/docs/change-data-capture): a writer schema with a `_CHANGE_TYPE` field
 * makes the connection a CDC one; it requires the `_default` stream and a table with a primary key. A connection
 * keeps the kind its first accepted request had: "Mixing rows that have UPSERT or DELETE values for _CHANGE_TYPE
 * with rows that have INSERT or unspecified values for _CHANGE_TYPE in the same connection isn't supported and
 * results in the following validation error: The given value is not a valid CHANGE_TYPE."
 *
 * Schema changes reach writers late: the schema a request is checked against is the table's schema as it was
 * `schemaPropagationMs` ago on the emulator clock (store.writeSchemaOf). A row naming a column added since is
 * refused with INVALID_ARGUMENT "Input schema has more fields than BigQuery schema, extra fields: '...'" and
 * StorageError SCHEMA_MISMATCH_EXTRA_FIELDS (storage.proto), the answer BigQuery gives in that window.
 *
 * Connections are counted per project: "There is a quota on the number of concurrent connections that can be open
 * at the same time per project. When the limit is reached, calls to AppendRows fail."
 * (https://cloud.google.com/bigquery/docs/write-api-best-practices#connection_pool_management); the default
 * "Concurrent connections" quota is 10,000 in a multi-region such as US and 1,000 in a region
 * (https://cloud.google.com/bigquery/quotas#write-api-limits). Past the cap a new connection's first request ends
 * the call with RESOURCE_EXHAUSTED, worded like BigQuery's other Write API quota errors.
 */
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as protobuf from 'protobufjs';
import * as descriptorExt from 'protobufjs/ext/descriptor';
import { findField, toStorageSchema, type FieldSchema, type TableSchema } from './schema';
import type { Change, ChangeType, Store, TableRef } from './store';
import { isValidSequence, MAX_CDC_COLUMNS } from './store';
import {
  compileRowPlan,
  convertObjectRow,
  decodeWithTextLongs,
  protoTypeOf,
  type RowPlan,
} from './proto-rows';
import { protoTypeAccepted, ValueError, type StoredRecord } from './values';

const CHANGE_TYPE = '_CHANGE_TYPE';
const CHANGE_SEQUENCE_NUMBER = '_CHANGE_SEQUENCE_NUMBER';
/** google.rpc.Code values used in AppendRowsResponse.error. */
const Code = {
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  FAILED_PRECONDITION: 9,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
};
/** BigQuery accepts AppendRows requests up to 10 MB; leave headroom above gRPC's 4 MB default. */
const MAX_MESSAGE_BYTES = 20 * 1024 * 1024;
const MAX_APPEND_REQUEST_BYTES = 10 * 1024 * 1024;
/** BigQuery's default concurrent-connections quota in the US multi-region, the emulator's default location. */
export const DEFAULT_MAX_WRITE_CONNECTIONS = 10_000;
/** google.cloud.bigquery.storage.v1.StorageError.StorageErrorCode.SCHEMA_MISMATCH_EXTRA_FIELDS */
const SCHEMA_MISMATCH_EXTRA_FIELDS = 7;

export interface WriteApiOptions {
  /** Delay (emulator-clock ms) before a table schema change is visible to AppendRows. */
  schemaPropagationMs: number;
  /** Open AppendRows calls allowed per project. */
  maxConnectionsPerProject: number;
}

const STREAM_NAME = /^projects\/([^/]+)\/datasets\/([^/]+)\/tables\/([^/]+)\/streams\/([^/]+)$/;
const TABLE_NAME = /^projects\/([^/]+)\/datasets\/([^/]+)\/tables\/([^/]+)$/;

type StreamType = 'COMMITTED' | 'PENDING' | 'BUFFERED';

interface WriteStreamState {
  name: string;
  ref: TableRef;
  type: StreamType;
  createTime: Date;
  /** Rows accepted so far (the next offset). */
  rowCount: number;
  finalized: boolean;
  committed: boolean;
  /** PENDING streams hold their rows until BatchCommitWriteStreams. */
  pendingRows: StoredRecord[];
}

interface RpcStatus {
  code: number;
  message: string;
}

interface RowError {
  index: string;
  code: 'FIELDS_ERROR';
  message: string;
}

interface AppendRowsRequest {
  writeStream?: string;
  offset?: { value?: string };
  protoRows?: { writerSchema?: { protoDescriptor?: object }; rows?: { serializedRows?: Buffer[] } };
  arrowRows?: unknown;
}

interface AppendRowsResponse {
  appendResult?: { offset?: { value: string } };
  error?: RpcStatus & { details?: Array<{ type_url: string; value: Buffer }> };
  rowErrors?: RowError[];
  updatedSchema?: object;
  writeStream: string;
}

/** A gRPC error status for unary calls and for ending an AppendRows stream. */
class StatusError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

function loadService(): grpc.ServiceDefinition {
  // Both packages' "main" is build/src/index.js; their .proto trees live in build/protos.
  const storageProtos = path.join(
    path.dirname(require.resolve('@google-cloud/bigquery-storage')),
    '..',
    'protos',
  );
  const commonProtos = path.join(path.dirname(require.resolve('google-gax')), '..', 'protos');
  // annotations.proto declares the `column_name` field option writers use for flexible column names.
  const definition = protoLoader.loadSync(
    ['google/cloud/bigquery/storage/v1/storage.proto', 'google/cloud/bigquery/storage/v1/annotations.proto'],
    {
      includeDirs: [storageProtos, commonProtos],
      longs: String,
      enums: String,
      defaults: false,
      oneofs: true,
    },
  );
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    google: {
      cloud: { bigquery: { storage: { v1: { BigQueryWrite: { service: grpc.ServiceDefinition } } } } };
    };
  };
  return loaded.google.cloud.bigquery.storage.v1.BigQueryWrite.service;
}

/**
 * Flexible column names: "To use the expanded list of Unicode characters with the BigQuery Storage Write API, you
 * must provide the schema with column_name notation" (https://cloud.google.com/bigquery/docs/schemas#flexible-column-names),
 * the field option `google.cloud.bigquery.storage.v1.column_name` (annotations.proto), which "always take[s]
 * precedence over placeholder names". Compiled fields are mapped to the column they name here.
 */
const COLUMN_NAME_OPTION = '.google.cloud.bigquery.storage.v1.columnName';
const columnNames = new WeakMap<protobuf.Field, string>();

/** The table column a writer-schema field writes: its column_name option, else its own name. */
const columnOf = (field: protobuf.Field): string => columnNames.get(field) ?? field.name;

interface RawDescriptor {
  name?: string;
  field?: Array<{ name?: string; options?: Record<string, unknown> }>;
  nestedType?: RawDescriptor[];
}

function mapColumnNames(raw: RawDescriptor, type: protobuf.Type): void {
  for (const f of raw.field ?? []) {
    const column = f.options?.[COLUMN_NAME_OPTION];
    const compiled = f.name ? type.fields[f.name] : undefined;
    if (compiled && typeof column === 'string' && column) columnNames.set(compiled, column);
  }
  for (const nested of raw.nestedType ?? []) {
    const compiled = nested.name ? type.nested?.[nested.name] : undefined;
    if (compiled instanceof protobuf.Type) mapColumnNames(nested, compiled);
  }
}

/** Builds a protobufjs Type from a writer schema's DescriptorProto (as decoded by proto-loader). */
export function compileDescriptor(descriptor: object): protobuf.Type {
  const message = descriptorExt.DescriptorProto.fromObject(descriptor);
  const fromDescriptor = (protobuf.Type as unknown as { fromDescriptor(d: protobuf.Message): protobuf.Type })
    .fromDescriptor;
  const type = fromDescriptor(message);
  new protobuf.Root().add(type);
  type.resolveAll();
  mapColumnNames(descriptor as RawDescriptor, type);
  return type;
}

/**
 * Compiled writer schemas by their JSON: every connection of a writer sends the same descriptor, and compiling
 * one (fromDescriptor, then protobufjs generating its decoder) costs far more than a lookup. A compiled Type is
 * never changed afterwards, so connections can share it.
 */
const compiledTypes = new Map<string, protobuf.Type>();
const COMPILED_TYPES_KEPT = 256;
function compiledDescriptor(key: string, descriptor: object): protobuf.Type {
  let type = compiledTypes.get(key);
  if (!type) {
    type = compileDescriptor(descriptor);
    if (compiledTypes.size >= COMPILED_TYPES_KEPT) compiledTypes.delete(compiledTypes.keys().next().value!);
    compiledTypes.set(key, type);
  }
  return type;
}

/** Checks a writer schema against the table schema; returns BigQuery's complaint, or null when compatible. */
export function checkWriterSchema(
  type: protobuf.Type,
  columns: FieldSchema[],
  prefix = 'root',
): string | null {
  const isRoot = prefix === 'root';
  for (const field of type.fieldsArray) {
    if (isRoot && (field.name === CHANGE_TYPE || field.name === CHANGE_SEQUENCE_NUMBER)) {
      if (field.type !== 'string' || field.repeated) return `${field.name} must be a string field.`;
      continue;
    }
    const column = findField(columns, columnOf(field));
    if (!column)
      return `Input schema has more fields than BigQuery schema, extra fields: '${prefix}.${field.name}'`;
    const protoType = protoTypeOf(field);
    if (!protoTypeAccepted(column.type, protoType)) {
      return `The proto field mismatched with BigQuery field at ${prefix}.${field.name}, the proto field type ${protoType}, BigQuery field type ${column.type}`;
    }
    if (field.repeated !== (column.mode === 'REPEATED')) {
      return `The proto field mismatched with BigQuery field at ${prefix}.${field.name}, the proto field mode ${field.repeated ? 'repeated' : 'optional'}, BigQuery field mode ${column.mode}`;
    }
    if (column.type === 'RECORD') {
      const nested = checkWriterSchema(
        field.resolvedType as protobuf.Type,
        column.fields ?? [],
        `${prefix}.${field.name}`,
      );
      if (nested) return nested;
    }
  }
  for (const column of columns) {
    if (
      column.mode === 'REQUIRED' &&
      !type.fieldsArray.some((f) => columnOf(f).toLowerCase() === column.name.toLowerCase())
    ) {
      return `The required BigQuery field ${prefix}.${column.name} is missing in the proto schema.`;
    }
  }
  return null;
}

/** Decodes one serialized row; a missing proto2 `required` field is reported by our own checks instead. */
function decodeRow(type: protobuf.Type, bytes: Buffer, textLongs: boolean): Record<string, unknown> {
  let message: protobuf.Message;
  try {
    message = textLongs ? decodeWithTextLongs(type, bytes) : type.decode(bytes);
  } catch (err) {
    const partial = (err as { instance?: protobuf.Message }).instance;
    if (!(err instanceof protobuf.util.ProtocolError) || !partial) {
      throw new ValueError(
        `Could not decode the row as the writer schema's message: ${(err as Error).message}`,
      );
    }
    message = partial;
  }
  return message as unknown as Record<string, unknown>;
}

/** A field of a decoded message as `toObject` would give it: set and not null, else undefined. */
function presentValue(message: Record<string, unknown>, name: string): unknown {
  const v = message[name];
  return v !== null && v !== undefined && Object.prototype.hasOwnProperty.call(message, name) ? v : undefined;
}

/** A writer schema checked against one table schema, and how its rows convert (cached per writer schema). */
interface CheckedSchema {
  type: protobuf.Type;
  schema: TableSchema;
  problem: string | null;
  /** null: the general path (toObject, then convertObjectRow). */
  plan: RowPlan | null;
}

/** Converts a decoded message into a stored row of the checked table schema. */
function convertRow(
  checked: CheckedSchema,
  message: Record<string, unknown>,
  requireAll: boolean,
): StoredRecord {
  if (checked.plan) return checked.plan.convert(message, requireAll);
  const object = checked.type.toObject(message as unknown as protobuf.Message, {
    longs: String,
    defaults: false,
  }) as Record<string, unknown>;
  return convertObjectRow(checked.type, checked.schema.fields, object, requireAll, findField, columnOf);
}

interface Connection {
  /** The project whose connection quota this call holds, once counted. */
  project?: string;
  streamName?: string;
  descriptorKey?: string;
  type?: protobuf.Type;
  /** 'cdc' or 'plain' once a request was accepted; later requests must be of the same kind. */
  kind?: 'cdc' | 'plain';
  /** The table schema version this connection last saw, to report `updated_schema` after a change. */
  schemaVersion?: number;
}

export class WriteApi {
  private readonly streams = new Map<string, WriteStreamState>();
  readonly service = loadService();
  /** Open AppendRows calls per project. */
  private readonly openConnections = new Map<string, number>();
  /** Per compiled writer schema and table schema (version): the check's outcome and the row conversion. */
  private readonly checkedSchemas = new WeakMap<protobuf.Type, WeakMap<TableSchema, CheckedSchema>>();

  constructor(
    private readonly store: Store,
    private readonly options: WriteApiOptions = {
      schemaPropagationMs: 0,
      maxConnectionsPerProject: DEFAULT_MAX_WRITE_CONNECTIONS,
    },
  ) {}

  /** The handlers to pass to grpc.Server.addService. */
  implementation(): grpc.UntypedServiceImplementation {
    const unary =
      <Req, Res>(fn: (req: Req) => Res) =>
      (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>): void => {
        try {
          callback(null, fn(call.request));
        } catch (err) {
          const e =
            err instanceof StatusError ? err : new StatusError(grpc.status.INTERNAL, (err as Error).message);
          callback(
            { code: e.code, details: e.message, metadata: new grpc.Metadata() } as grpc.ServiceError,
            null,
          );
        }
      };
    return {
      CreateWriteStream: unary((req: { parent: string; writeStream?: { type?: string } }) =>
        this.createWriteStream(req),
      ),
      GetWriteStream: unary((req: { name: string; view?: string }) =>
        this.getWriteStream(req.name, req.view === 'FULL'),
      ),
      FinalizeWriteStream: unary((req: { name: string }) => this.finalizeWriteStream(req.name)),
      BatchCommitWriteStreams: unary((req: { parent: string; writeStreams?: string[] }) =>
        this.batchCommit(req),
      ),
      FlushRows: unary((req: { writeStream: string; offset?: { value?: string } }) => {
        const stream = this.resolveStream(req.writeStream);
        return { offset: req.offset?.value ?? String(stream.rowCount) };
      }),
      AppendRows: (call: grpc.ServerDuplexStream<AppendRowsRequest, AppendRowsResponse>) =>
        this.appendRows(call),
    };
  }

  private tableRefOf(name: string): TableRef {
    const m = TABLE_NAME.exec(name);
    if (!m) throw new StatusError(grpc.status.INVALID_ARGUMENT, `Invalid table name: ${name}`);
    const ref = { projectId: m[1], datasetId: m[2], tableId: m[3] };
    if (!this.store.hasTable(ref)) {
      throw new StatusError(grpc.status.NOT_FOUND, `Requested entity was not found. Entity: ${name}`);
    }
    return ref;
  }

  /** The stream's state; `_default` exists for every table without being created. */
  private resolveStream(name: string): WriteStreamState {
    const m = STREAM_NAME.exec(name);
    if (!m) throw new StatusError(grpc.status.INVALID_ARGUMENT, `Invalid write stream name: ${name}`);
    const ref = this.tableRefOf(`projects/${m[1]}/datasets/${m[2]}/tables/${m[3]}`);
    if (m[4] === '_default') {
      let stream = this.streams.get(name);
      if (!stream) {
        stream = {
          name,
          ref,
          type: 'COMMITTED',
          createTime: new Date(),
          rowCount: 0,
          finalized: false,
          committed: true,
          pendingRows: [],
        };
        this.streams.set(name, stream);
      }
      return stream;
    }
    const stream = this.streams.get(name);
    if (!stream)
      throw new StatusError(grpc.status.NOT_FOUND, `Requested entity was not found. Entity: ${name}`);
    return stream;
  }

  private streamResource(stream: WriteStreamState, full: boolean): object {
    const seconds = Math.floor(stream.createTime.getTime() / 1000);
    return {
      name: stream.name,
      type: stream.type,
      createTime: { seconds: String(seconds), nanos: (stream.createTime.getTime() % 1000) * 1e6 },
      writeMode: 'INSERT',
      location: 'US',
      ...(full ? { tableSchema: toStorageSchema(this.store.schemaOf(stream.ref).schema) } : {}),
    };
  }

  private createWriteStream(req: { parent: string; writeStream?: { type?: string } }): object {
    const ref = this.tableRefOf(req.parent);
    const type = (req.writeStream?.type ?? 'TYPE_UNSPECIFIED') as string;
    if (type !== 'COMMITTED' && type !== 'PENDING' && type !== 'BUFFERED') {
      throw new StatusError(grpc.status.INVALID_ARGUMENT, `Invalid write stream type: ${type}`);
    }
    const name = `${req.parent}/streams/${randomUUID().replace(/-/g, '')}`;
    const stream: WriteStreamState = {
      name,
      ref,
      type,
      createTime: new Date(),
      rowCount: 0,
      finalized: false,
      committed: type !== 'PENDING',
      pendingRows: [],
    };
    this.streams.set(name, stream);
    // "CreateWriteStream returns the full projection of write stream metadata" (storage.proto, WriteStreamView).
    return this.streamResource(stream, true);
  }

  private getWriteStream(name: string, full: boolean): object {
    return this.streamResource(this.resolveStream(name), full);
  }

  private finalizeWriteStream(name: string): object {
    const stream = this.resolveStream(name);
    if (name.endsWith('/_default')) {
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `Cannot finalize the default stream. Entity: ${name}`,
      );
    }
    stream.finalized = true;
    return { rowCount: String(stream.rowCount) };
  }

  private batchCommit(req: { parent: string; writeStreams?: string[] }): object {
    this.tableRefOf(req.parent);
    const streamErrors: object[] = [];
    const ready: WriteStreamState[] = [];
    for (const name of req.writeStreams ?? []) {
      const stream = this.streams.get(name);
      if (!stream)
        streamErrors.push({ code: 'STREAM_NOT_FOUND', entity: name, errorMessage: 'Stream not found' });
      else if (stream.type !== 'PENDING')
        streamErrors.push({
          code: 'INVALID_STREAM_TYPE',
          entity: name,
          errorMessage: 'Stream is not a PENDING stream',
        });
      else if (stream.committed)
        streamErrors.push({
          code: 'STREAM_ALREADY_COMMITTED',
          entity: name,
          errorMessage: 'Stream already committed',
        });
      else if (!stream.finalized)
        streamErrors.push({
          code: 'INVALID_STREAM_STATE',
          entity: name,
          errorMessage: 'Stream is not finalized',
        });
      else ready.push(stream);
    }
    // The commit is atomic: any stream error commits nothing (storage.proto, BatchCommitWriteStreamsResponse).
    if (streamErrors.length > 0) return { streamErrors };
    for (const stream of ready) {
      this.store.appendRows(stream.ref, stream.pendingRows);
      stream.pendingRows = [];
      stream.committed = true;
    }
    const now = Date.now();
    return { commitTime: { seconds: String(Math.floor(now / 1000)), nanos: (now % 1000) * 1e6 } };
  }

  private appendRows(call: grpc.ServerDuplexStream<AppendRowsRequest, AppendRowsResponse>): void {
    const connection: Connection = {};
    const release = (): void => {
      if (connection.project === undefined) return;
      const open = this.openConnections.get(connection.project) ?? 1;
      if (open <= 1) this.openConnections.delete(connection.project);
      else this.openConnections.set(connection.project, open - 1);
      connection.project = undefined;
    };
    const fail = (e: StatusError): void => {
      release();
      call.emit('error', { code: e.code, details: e.message, metadata: new grpc.Metadata() });
    };
    call.on('data', (request: AppendRowsRequest) => {
      if (call.destroyed) return;
      try {
        if (connection.project === undefined) this.admit(connection, request);
        call.write(this.handleAppend(connection, request));
      } catch (err) {
        fail(
          err instanceof StatusError ? err : new StatusError(grpc.status.INTERNAL, (err as Error).message),
        );
      }
    });
    call.on('end', () => {
      release();
      call.end();
    });
    call.on('cancelled', release);
    call.on('close', release);
    call.on('error', release); // a client that goes away is not our error
  }

  /** Counts a new connection against its project's quota, or refuses it. */
  private admit(connection: Connection, request: AppendRowsRequest): void {
    const m = STREAM_NAME.exec(request.writeStream ?? '');
    if (!m) return; // handleAppend reports the missing or bad stream name
    const project = m[1];
    const open = this.openConnections.get(project) ?? 0;
    if (open >= this.options.maxConnectionsPerProject) {
      throw new StatusError(
        grpc.status.RESOURCE_EXHAUSTED,
        `Exceeds 'Concurrent connections' quota, user_id: ${project} (status: INSUFFICIENT_TOKENS), ` +
          `${open} of ${this.options.maxConnectionsPerProject} connections are open; close idle connections or ` +
          `issue a raise quota request through Google Cloud Console. Entity: ${request.writeStream}`,
      );
    }
    this.openConnections.set(project, open + 1);
    connection.project = project;
  }

  /** Open AppendRows connections of a project (for tests and logs). */
  connectionsOf(project: string): number {
    return this.openConnections.get(project) ?? 0;
  }

  private handleAppend(connection: Connection, request: AppendRowsRequest): AppendRowsResponse {
    const streamName = request.writeStream || connection.streamName;
    if (!streamName)
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        'The first AppendRows request must name write_stream.',
      );
    connection.streamName = streamName;
    const stream = this.resolveStream(streamName);
    const entity = ` Entity: ${streamName}`;
    const reject = (code: number, message: string, rowErrors?: RowError[]): AppendRowsResponse => ({
      error: { code, message: message + entity },
      ...(rowErrors ? { rowErrors } : {}),
      writeStream: streamName,
    });

    const { primaryKey } = this.store.schemaOf(stream.ref);
    // What this connection may write is the schema as it was before the propagation delay.
    const { schema, version } = this.store.writeSchemaOf(stream.ref, this.options.schemaPropagationMs);
    let updatedSchema: object | undefined;
    if (connection.schemaVersion !== undefined && version > connection.schemaVersion) {
      // BigQuery tells writers about a table schema change through updated_schema (storage.proto).
      updatedSchema = toStorageSchema(schema);
    }
    connection.schemaVersion = version;

    if (request.arrowRows)
      return reject(Code.UNIMPLEMENTED, 'The BigQuery emulator only accepts proto_rows.');
    const descriptor = request.protoRows?.writerSchema?.protoDescriptor;
    if (descriptor) {
      const key = JSON.stringify(descriptor);
      if (key !== connection.descriptorKey) {
        try {
          connection.type = compiledDescriptor(key, descriptor);
          connection.descriptorKey = key;
        } catch (err) {
          return reject(Code.INVALID_ARGUMENT, `Invalid proto schema: ${(err as Error).message}`);
        }
      }
    }
    const type = connection.type;
    if (!type)
      return reject(Code.INVALID_ARGUMENT, 'The first request on a connection must carry writer_schema.');
    let bySchema = this.checkedSchemas.get(type);
    if (!bySchema) {
      bySchema = new WeakMap();
      this.checkedSchemas.set(type, bySchema);
    }
    let checked = bySchema.get(schema);
    if (!checked) {
      // Schemas are never mutated in place (a change makes a new object), so identity is enough.
      const problem = checkWriterSchema(type, schema.fields);
      const plan = problem === null ? compileRowPlan(type, schema.fields, columnOf) : null;
      checked = { type, schema, problem, plan };
      bySchema.set(schema, checked);
    }
    const schemaProblem = checked.problem;
    if (schemaProblem) {
      const response = reject(Code.INVALID_ARGUMENT, schemaProblem);
      if (schemaProblem.startsWith('Input schema has more fields')) {
        response.error!.details = [
          storageErrorDetail(SCHEMA_MISMATCH_EXTRA_FIELDS, streamName, schemaProblem),
        ];
      }
      return response;
    }

    const kind = type.fields[CHANGE_TYPE] ? 'cdc' : 'plain';
    if (kind === 'plain' && type.fields[CHANGE_SEQUENCE_NUMBER]) {
      return reject(
        Code.INVALID_ARGUMENT,
        `${CHANGE_SEQUENCE_NUMBER} is only meaningful together with ${CHANGE_TYPE}.`,
      );
    }
    if (connection.kind && connection.kind !== kind) {
      // The change-data-capture page names this exact validation error.
      return reject(
        Code.INVALID_ARGUMENT,
        `The given value is not a valid CHANGE_TYPE (rows with and without ${CHANGE_TYPE} cannot be mixed on one connection; this connection writes ${connection.kind === 'cdc' ? 'CDC' : 'plain'} rows).`,
      );
    }
    if (kind === 'cdc') {
      if (!streamName.endsWith('/_default')) {
        return reject(Code.INVALID_ARGUMENT, `${CHANGE_TYPE} is only supported on the _default stream.`);
      }
      if (primaryKey.length === 0) {
        return reject(Code.INVALID_ARGUMENT, `${CHANGE_TYPE} requires the table to have a primary key.`);
      }
      if (schema.fields.length > MAX_CDC_COLUMNS) {
        // "Tables with active CDC cannot have more than 2,000 top-level columns defined by the table's schema."
        return reject(
          Code.INVALID_ARGUMENT,
          `The table has ${schema.fields.length} top-level columns; tables with active CDC cannot have more than ${MAX_CDC_COLUMNS}.`,
        );
      }
    }
    if (stream.finalized)
      return reject(Code.INVALID_ARGUMENT, 'Stream is finalized, no more appends are accepted.');

    const rows = request.protoRows?.rows?.serializedRows ?? [];
    // "AppendRows request size: 10 MB" (cloud.google.com/bigquery/quotas#write-api-limits): refused whole.
    const requestBytes = rows.reduce((n, r) => n + r.length, 0);
    if (requestBytes > MAX_APPEND_REQUEST_BYTES) {
      return reject(
        Code.INVALID_ARGUMENT,
        `AppendRows request too large: ${requestBytes} bytes of rows, the limit is ${MAX_APPEND_REQUEST_BYTES}.`,
      );
    }
    if (request.offset?.value !== undefined && !streamName.endsWith('/_default')) {
      const offset = Number(request.offset.value);
      if (offset < stream.rowCount)
        return reject(
          Code.ALREADY_EXISTS,
          `The offset is within stream, expected offset ${stream.rowCount}, received ${offset}.`,
        );
      if (offset > stream.rowCount)
        return reject(
          Code.OUT_OF_RANGE,
          `The offset is beyond stream, expected offset ${stream.rowCount}, received ${offset}.`,
        );
    }

    const rowErrors: RowError[] = [];
    const plain: StoredRecord[] = [];
    const changes: Change[] = [];
    const sequenceRequired = type.fields[CHANGE_SEQUENCE_NUMBER]?.required === true;
    const rowSchema = checked;
    rows.forEach((bytes, index) => {
      try {
        const message = decodeRow(type, bytes, rowSchema.plan !== null);
        if (kind === 'plain') {
          plain.push(convertRow(rowSchema, message, true));
          return;
        }
        const changeType = presentValue(message, CHANGE_TYPE);
        if (changeType !== 'UPSERT' && changeType !== 'DELETE') {
          // "The _CHANGE_TYPE pseudocolumn only accepts the values UPSERT and DELETE" (change-data-capture page).
          throw new ValueError(
            `Invalid value for ${CHANGE_TYPE}: '${String(changeType ?? '')}'. Only UPSERT and DELETE are accepted.`,
          );
        }
        const sequence = presentValue(message, CHANGE_SEQUENCE_NUMBER);
        if (sequence === undefined && sequenceRequired) {
          throw new ValueError(`Missing required field: ${CHANGE_SEQUENCE_NUMBER}.`);
        }
        if (sequence !== undefined && !isValidSequence(String(sequence))) {
          throw new ValueError(
            `Invalid ${CHANGE_SEQUENCE_NUMBER} '${String(sequence)}': expected up to four '/'-separated sections of 1 to 16 hexadecimal digits.`,
          );
        }
        const row = convertRow(rowSchema, message, changeType === 'UPSERT');
        changes.push({
          type: changeType as ChangeType,
          sequence: sequence === undefined ? null : String(sequence),
          row,
        });
      } catch (err) {
        if (!(err instanceof ValueError)) throw err;
        rowErrors.push({ index: String(index), code: 'FIELDS_ERROR', message: err.message });
      }
    });
    if (rowErrors.length > 0) {
      return reject(
        Code.INVALID_ARGUMENT,
        'Errors found while processing rows. Please refer to the row_errors field for details. The list may not be complete because of the size limitations.',
        rowErrors,
      );
    }

    const offset = stream.rowCount;
    if (kind === 'cdc') this.store.applyChanges(stream.ref, changes);
    else if (stream.type === 'PENDING') stream.pendingRows.push(...plain);
    else this.store.appendRows(stream.ref, plain);
    stream.rowCount += rows.length;
    connection.kind = kind;
    // "The offset will not be set if appending using default streams" (storage.proto, AppendResult.offset).
    const appendResult = streamName.endsWith('/_default') ? {} : { offset: { value: String(offset) } };
    return { appendResult, writeStream: streamName, ...(updatedSchema ? { updatedSchema } : {}) };
  }
}

/** google.rpc.Status detail carrying a google.cloud.bigquery.storage.v1.StorageError. */
function storageErrorDetail(
  code: number,
  entity: string,
  message: string,
): { type_url: string; value: Buffer } {
  const type = storageErrorType();
  const value = Buffer.from(type.encode(type.fromObject({ code, entity, errorMessage: message })).finish());
  return { type_url: 'type.googleapis.com/google.cloud.bigquery.storage.v1.StorageError', value };
}

let storageError: protobuf.Type | undefined;
function storageErrorType(): protobuf.Type {
  if (!storageError) {
    const root = new protobuf.Root();
    root.define('google.cloud.bigquery.storage.v1').add(
      new protobuf.Type('StorageError')
        .add(new protobuf.Field('code', 1, 'int32'))
        .add(new protobuf.Field('entity', 2, 'string'))
        .add(new protobuf.Field('errorMessage', 3, 'string')),
    );
    storageError = root.lookupType('google.cloud.bigquery.storage.v1.StorageError');
  }
  return storageError;
}

export function createWriteApiServer(store: Store, options?: WriteApiOptions): grpc.Server {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  });
  const api = new WriteApi(store, options);
  server.addService(api.service, api.implementation());
  return server;
}
