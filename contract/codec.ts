// (De)serialisation of event batches to Pub/Sub message payloads, and the validation the sink relies on
// to tell a poison message (goes to `_failed` with the reason) from a good one.

import { constants as zlibConstants, gunzipSync, gzip as gzipCb } from 'node:zlib';
import { promisify } from 'node:util';
import {
  BatchAttributes,
  ChangeEvent,
  ColumnInfo,
  CONTRACT_VERSION,
  Encoding,
  EventBatch,
  OPS,
  Row,
} from './events';
import { isChangeSeq } from './lsn';

const gzip = promisify(gzipCb);

/** Raised for a payload that does not follow the contract; `message` says what is wrong with it. */
export class ContractError extends Error {
  override name = 'ContractError';
}

export function batchAttributes(batch: EventBatch, encoding: Encoding): BatchAttributes {
  const first = batch.events[0];
  const last = batch.events[batch.events.length - 1];
  return {
    v: CONTRACT_VERSION,
    schema: batch.schema,
    table: batch.table,
    count: String(batch.events.length),
    firstSeq: first ? first.seq : '',
    lastSeq: last ? last.seq : '',
    encoding,
  };
}

/**
 * gzip on libuv's thread pool (async), so compression overlaps with decoding on the main thread; level 1
 * because Pub/Sub bills bytes but CPU time is what bounds a job's run. Each time zlib fills its output
 * chunk ("chunkSize <integer> Default: 16 * 1024", https://nodejs.org/api/zlib.html#class-options) the
 * main thread takes a callback and queues the next piece of work: an output chunk of an eighth of the input
 * holds a whole batch of event JSON (level 1 makes it 5–10% of its size) in one.
 */
function gzipPayload(json: Buffer): Promise<Buffer> {
  const chunkSize = Math.min(256 * 1024, Math.max(zlibConstants.Z_DEFAULT_CHUNK, json.length >>> 3));
  return gzip(json, { level: 1, chunkSize });
}

/** Serialise a batch (gzipPayload for json+gzip). */
export async function encodeBatch(
  batch: EventBatch,
  encoding: Encoding,
): Promise<{ data: Buffer; attributes: BatchAttributes }> {
  const json = Buffer.from(JSON.stringify(batch));
  const data = encoding === 'json+gzip' ? await gzipPayload(json) : json;
  return { data, attributes: batchAttributes(batch, encoding) };
}

/** Parse and validate a message payload; throws ContractError saying what is wrong. */
export function decodeBatch(data: Buffer, attributes: Record<string, string | undefined>): EventBatch {
  return decodeSizedBatch(data, attributes).batch;
}

/**
 * decodeBatch, also telling the payload's size as JSON text (after gunzip): what the decoded batch costs in
 * memory is proportional to it, not to the compressed bytes Pub/Sub delivered.
 */
export function decodeSizedBatch(
  data: Buffer,
  attributes: Record<string, string | undefined>,
): { batch: EventBatch; chars: number } {
  const encoding = attributes.encoding ?? 'json';
  if (attributes.v !== undefined && attributes.v !== CONTRACT_VERSION) {
    throw new ContractError(`unknown contract version ${JSON.stringify(attributes.v)} (this sink reads v1)`);
  }
  let text: string;
  if (encoding === 'json+gzip') {
    try {
      text = gunzipSync(data, { chunkSize: gunzipChunkSize(data) }).toString('utf8');
    } catch (e) {
      throw new ContractError(`payload is not valid gzip: ${(e as Error).message}`);
    }
  } else if (encoding === 'json') {
    text = data.toString('utf8');
  } else {
    throw new ContractError(`unknown encoding attribute ${JSON.stringify(encoding)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ContractError(`payload is not JSON: ${(e as Error).message}`);
  }
  return { batch: validateBatch(parsed), chars: text.length };
}

/**
 * A gzip payload's size once decoded, read before decoding it: a member ends with "ISIZE (Input SIZE) This
 * contains the size of the original (uncompressed) input data modulo 2^32" (RFC 1952, 2.3.1); the listener
 * writes one member per message. An estimate (a payload of several members gives its last member's size);
 * undefined for data too short to be gzip (18 bytes: header and trailer).
 */
export function gzipDecodedSize(data: Buffer): number | undefined {
  return data.length >= 18 ? data.readUInt32LE(data.length - 4) : undefined;
}

// gunzipSync writes into chunkSize-byte buffers and concatenates them unless there is one (Node's
// processChunkSync), so one buffer of the decoded size (gzipDecodedSize) saves a copy of every payload. +1: a
// buffer filled exactly makes processChunkSync allocate another. A trailer that lies fails zlib's own length
// check (a poison message, as before); a payload of several members costs the concatenation again, never
// chunks smaller than the default; the cap keeps a corrupt trailer from allocating gigabytes.
const MAX_SIZED_CHUNK = 64 * 1024 * 1024;

function gunzipChunkSize(data: Buffer): number {
  const size = (gzipDecodedSize(data) ?? 0) + 1;
  return size > MAX_SIZED_CHUNK
    ? zlibConstants.Z_DEFAULT_CHUNK
    : Math.max(zlibConstants.Z_DEFAULT_CHUNK, size);
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function requireString(o: Record<string, unknown>, field: string, where: string): string {
  const v = o[field];
  if (typeof v !== 'string') throw new ContractError(`${where}: field "${field}" must be a string`);
  return v;
}

// Validation runs for every event of every message: plain loops, no per-call allocations (the `where`
// text of an error is built only when one is thrown).

function validateRow(x: unknown, i: number, part: string): Row | null {
  if (x === null || x === undefined) return null;
  if (!isObject(x))
    throw new ContractError(`events[${i}].${part} must be an object of column values or null`);
  for (const k in x) {
    const v = x[k];
    if (v !== null && typeof v !== 'string') {
      throw new ContractError(
        `events[${i}].${part}.${k} must be the text of the value or null, got ${typeof v}`,
      );
    }
  }
  return x as Row;
}

const OP_SET: ReadonlySet<string> = new Set(OPS);

function isStringArray(x: unknown[]): boolean {
  for (let i = 0; i < x.length; i++) if (typeof x[i] !== 'string') return false;
  return true;
}

function validateColumns(x: unknown): ColumnInfo[] {
  if (!Array.isArray(x)) throw new ContractError('batch: "columns" must be an array');
  return x.map((c, i) => {
    if (!isObject(c)) throw new ContractError(`columns[${i}] must be an object`);
    const name = requireString(c, 'name', `columns[${i}]`);
    const type = requireString(c, 'type', `columns[${i}]`);
    if (typeof c.oid !== 'number') throw new ContractError(`columns[${i}]: field "oid" must be a number`);
    if (typeof c.key !== 'boolean') throw new ContractError(`columns[${i}]: field "key" must be a boolean`);
    return { name, type, oid: c.oid, key: c.key };
  });
}

function validateEvent(x: unknown, i: number): ChangeEvent {
  if (!isObject(x)) throw new ContractError(`events[${i}] must be an object`);
  const op = x.op;
  if (typeof op !== 'string' || !OP_SET.has(op)) {
    throw new ContractError(`events[${i}]: "op" must be one of ${OPS.join(', ')}, got ${JSON.stringify(op)}`);
  }
  const seq = x.seq;
  if (typeof seq !== 'string') requireString(x, 'seq', `events[${i}]`);
  if (!isChangeSeq(seq as string))
    throw new ContractError(`events[${i}]: "seq" ${JSON.stringify(seq)} is not a change sequence`);
  const unchanged = x.unchanged ?? [];
  if (!Array.isArray(unchanged) || !isStringArray(unchanged)) {
    throw new ContractError(`events[${i}]: "unchanged" must be an array of column names`);
  }
  const fromSource = x.fromSource ?? [];
  if (!Array.isArray(fromSource) || !isStringArray(fromSource)) {
    throw new ContractError(`events[${i}]: "fromSource" must be an array of column names`);
  }
  if (x.superseded !== undefined && x.superseded !== true) {
    throw new ContractError(`events[${i}]: "superseded" must be true when present`);
  }
  if (typeof x.xid !== 'number') throw new ContractError(`events[${i}]: "xid" must be a number`);
  const { lsn, commitLsn, commitTs } = x;
  if (typeof lsn !== 'string') requireString(x, 'lsn', `events[${i}]`);
  if (typeof commitLsn !== 'string') requireString(x, 'commitLsn', `events[${i}]`);
  if (typeof commitTs !== 'string') requireString(x, 'commitTs', `events[${i}]`);
  const ev: ChangeEvent = {
    op: op as ChangeEvent['op'],
    key: validateRow(x.key, i, 'key'),
    before: validateRow(x.before, i, 'before'),
    after: validateRow(x.after, i, 'after'),
    unchanged: unchanged as string[],
    fromSource: fromSource as string[],
    lsn: lsn as string,
    commitLsn: commitLsn as string,
    xid: x.xid,
    commitTs: commitTs as string,
    seq: seq as string,
  };
  if (x.superseded === true) ev.superseded = true;
  if ((ev.op === 'c' || ev.op === 'u' || ev.op === 'r') && ev.after === null) {
    throw new ContractError(`events[${i}]: op "${ev.op}" needs "after"`);
  }
  for (const c of ev.fromSource) {
    if (!ev.after || !Object.hasOwn(ev.after, c)) {
      throw new ContractError(
        `events[${i}]: "fromSource" names ${JSON.stringify(c)}, which "after" does not hold`,
      );
    }
  }
  if (ev.op === 'd' && ev.key === null && ev.before === null) {
    throw new ContractError(`events[${i}]: op "d" needs "key" or "before"`);
  }
  return ev;
}

export function validateBatch(x: unknown): EventBatch {
  if (!isObject(x)) throw new ContractError('batch must be a JSON object');
  if (x.v !== 1) throw new ContractError(`batch: unknown version ${JSON.stringify(x.v)} (this sink reads 1)`);
  const schema = requireString(x, 'schema', 'batch');
  const table = requireString(x, 'table', 'batch');
  const columns = validateColumns(x.columns);
  if (!Array.isArray(x.events)) throw new ContractError('batch: "events" must be an array');
  const events = x.events.map(validateEvent);
  return { v: 1, schema, table, columns, events };
}

/**
 * Serialise a batch whose events are already JSON text (the listener stringifies each event once, as it
 * arrives, to know its size). Produces the same bytes as encodeBatch would for the parsed events.
 */
export async function encodeSerializedBatch(
  header: Omit<EventBatch, 'events'>,
  eventJson: string[],
  firstSeq: string,
  lastSeq: string,
  encoding: Encoding,
): Promise<{ data: Buffer; attributes: BatchAttributes }> {
  const head = JSON.stringify({
    v: header.v,
    schema: header.schema,
    table: header.table,
    columns: header.columns,
  });
  const json = Buffer.from(`${head.slice(0, -1)},"events":[${eventJson.join(',')}]}`);
  const data = encoding === 'json+gzip' ? await gzipPayload(json) : json;
  return {
    data,
    attributes: {
      v: CONTRACT_VERSION,
      schema: header.schema,
      table: header.table,
      count: String(eventJson.length),
      firstSeq,
      lastSeq,
      encoding,
    },
  };
}
