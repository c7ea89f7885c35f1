// Appending rows of work items to one table, with BigQuery's failure modes sorted out:
//   - a row BigQuery rejects (rowErrors) fails only its item; the rest is sent again (BigQuery writes
//     nothing of a request with a bad row);
//   - a request refused whole (INVALID_ARGUMENT that is not a schema problem) is sent again in halves down
//     to one row, whose refusal fails only its item (e.g. one oversized row);
//   - a schema BigQuery's Write API has not caught up with (the table was just created or patched) is
//     reported as SchemaPropagatingError at once, so the caller retries that table later without stalling
//     the others;
//   - UNAVAILABLE, ABORTED and INTERNAL are retried a few times quickly ("ABORTED: Request processing is
//     aborted because of prior failures. The request can be retried if previous failure is addressed.",
//     "INTERNAL: Indicates server side error(s) that can be retried", AppendRowsResponse.error in storage.proto;
//     with several requests in flight on a connection, those behind a failed one may be aborted); a resend is
//     harmless: history rows are deduplicated by `_event_id`, replica rows ordered by their sequence number.
//     Anything else fails the run (messages are not acked).

import { AppendRow, ProtoRow, RowError, StorageWriteError } from './storage-writer';
import type { Appender } from './writer-pool';

/**
 * The Write API does not see the table's new schema yet: BigQuery documents that a schema change reaches the
 * Storage Write API only after a delay "on the order of minutes" (https://cloud.google.com/bigquery/docs/write-api,
 * schema updates; DESIGN.md §5). Right after tables.insert the default stream can answer NOT_FOUND for a
 * while too. The run loop retries that table later without stalling the others.
 */
export class SchemaPropagatingError extends Error {
  override name = 'SchemaPropagatingError';
}

const GRPC_INVALID_ARGUMENT = 3;
const GRPC_NOT_FOUND = 5;
const GRPC_ABORTED = 10;
const GRPC_INTERNAL = 13;
const GRPC_UNAVAILABLE = 14;
const RETRIED = new Set([GRPC_ABORTED, GRPC_INTERNAL, GRPC_UNAVAILABLE]);
const UNAVAILABLE_BACKOFF_MS = [500, 1000, 2000];
const MAX_ROUNDS = 5;
const YIELD_EVERY = 500;

// storage.proto, StorageError.StorageErrorCode: "SCHEMA_MISMATCH_EXTRA_FIELDS = 7: There is a schema mismatch
// and it is caused by user schema has extra field than bigquery schema."
const SCHEMA_MISMATCH_EXTRA_FIELDS = 7;

function isPropagating(e: StorageWriteError): boolean {
  return (
    e.code === GRPC_NOT_FOUND ||
    (e.code === GRPC_INVALID_ARGUMENT &&
      // The documented code when BigQuery attaches a StorageError; otherwise its message, "Input schema has
      // more fields than BigQuery schema, extra fields: '…'" (our emulator sends both).
      (e.storageCode === SCHEMA_MISMATCH_EXTRA_FIELDS || /input schema has more fields/i.test(e.message)))
  );
}

async function appendOnce(appender: Appender, rows: Uint8Array[]): Promise<RowError[]> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await appender.append(rows);
    } catch (e) {
      if (!(e instanceof StorageWriteError)) throw e;
      if (isPropagating(e)) throw new SchemaPropagatingError(e.message);
      if (e.code === undefined || !RETRIED.has(e.code) || attempt >= UNAVAILABLE_BACKOFF_MS.length) throw e;
      await new Promise((r) => setTimeout(r, UNAVAILABLE_BACKOFF_MS[attempt]));
    }
  }
}

/** A request refused whole is resent in halves, down to a single row, whose refusal becomes its error. */
async function appendSplitting(appender: Appender, rows: Uint8Array[]): Promise<RowError[]> {
  try {
    return await appendOnce(appender, rows);
  } catch (e) {
    const refused = e instanceof StorageWriteError && e.code === GRPC_INVALID_ARGUMENT && !isPropagating(e);
    if (!refused) throw e;
    if (rows.length === 1) return [{ index: 0, message: `BigQuery refused the row: ${e.message}` }];
    const mid = rows.length >> 1;
    const left = await appendSplitting(appender, rows.slice(0, mid));
    const right = await appendSplitting(appender, rows.slice(mid));
    return [...left, ...right.map((r) => ({ ...r, index: r.index + mid }))];
  }
}

export interface Failable {
  /** Set when the item cannot be written: the reason, for `_failed`. */
  failed?: string;
}

/**
 * Encodes and appends the rows of `items` (those not failed yet); marks the items whose rows BigQuery
 * rejects or that cannot be encoded. Returns the number of rows written.
 */
export async function appendItems<T extends Failable>(
  appender: Appender,
  items: T[],
  toRows: (item: T) => AppendRow[],
): Promise<number> {
  let pending = items.filter((w) => !w.failed);
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const encoded: Uint8Array[] = [];
    const owner: T[] = [];
    for (const [n, w] of pending.entries()) {
      // Encoding is synchronous: let pulls, lease renewals and other tables run between chunks, so a big
      // batch never holds the event loop past a pull's deadline.
      if (n > 0 && n % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
      try {
        for (const r of toRows(w)) {
          encoded.push(appender.encode(r));
          owner.push(w);
        }
      } catch (e) {
        if (e instanceof StorageWriteError) throw e;
        w.failed = `cannot encode the row: ${(e as Error).message}`;
      }
    }
    if (encoded.length === 0) return 0;
    const errors = await appendSplitting(appender, encoded);
    if (errors.length === 0) return encoded.length;
    for (const re of errors) {
      const w = owner[re.index];
      if (w) w.failed = `BigQuery rejected the row: ${re.message}`;
    }
    pending = pending.filter((w) => !w.failed);
  }
  throw new StorageWriteError(`BigQuery kept rejecting rows after ${MAX_ROUNDS} rounds`);
}

/** Appends rows that must all land (truncate deletes): any row error fails the call. */
export async function appendAll(appender: Appender, rows: ProtoRow[], what: string): Promise<void> {
  if (rows.length === 0) return;
  const errors = await appendOnce(
    appender,
    rows.map((r) => appender.encode(r)),
  );
  if (errors.length > 0) throw new StorageWriteError(`${what} rejected: ${errors[0].message}`);
}
