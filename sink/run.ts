// One sink run: pull a batch, write BigQuery (failed table, history, replica), ack what was written, repeat
// until the subscription is drained (two empty pulls) or the time limit (once mode), or until stopped
// (continuous mode). Nothing is acked before BigQuery accepted it; a BigQuery failure ends the run with
// the batch un-acked, and Pub/Sub redelivers it to the next run.

import { ContractError, decodeBatch } from '../contract/codec';
import { qualifiedName } from '../contract/events';
import { BigQueryApiError, BigQueryRest } from './bigquery-rest';
import { bigQueryClient, storageWriteClient, subscriberClient } from './clients';
import type { SinkConfig } from './config';
import { FailedRecord, FailedTable } from './failed';
import { StorageWriteError } from './storage-writer';
import { Inbound, PubSubError, SubscriptionReader } from './subscription';
import { TableMessage, TableSink } from './table-sink';

export interface SinkSummary {
  messages: number;
  /** Messages Pub/Sub gave up delivering (dead-letter subscription), now recorded in `_failed`. */
  deadLetters: number;
  events: number;
  replicaRows: number;
  changelogRows: number;
  failed: number;
  tables: string[];
  seconds: number;
}

/** BigQuery refused or could not be reached (exit code 6). */
export class BigQueryError extends Error {
  override name = 'BigQueryError';
}

export { PubSubError };

// Empty pulls in a row after which a bounded run counts the subscription as drained.
const EMPTY_PULLS_TO_STOP = 2;

export async function runSink(
  cfg: SinkConfig,
  opts: { log?: (line: string) => void; signal?: AbortSignal } = {},
): Promise<SinkSummary> {
  const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const started = Date.now();
  const deadline = started + cfg.maxRunSeconds * 1000;
  const summary: SinkSummary = {
    messages: 0,
    deadLetters: 0,
    events: 0,
    replicaRows: 0,
    changelogRows: 0,
    failed: 0,
    tables: [],
    seconds: 0,
  };
  const tablesSeen = new Set<string>();

  const rest = new BigQueryRest(bigQueryClient(cfg), cfg.bigQueryProject, cfg.dataset, cfg.location);
  const writer = storageWriteClient(cfg);
  const reader = new SubscriptionReader(subscriberClient(), cfg.subscription);
  const failedTable = new FailedTable(rest, writer, cfg.subscription);
  const sinks = new Map<string, TableSink>();
  const ctx = { rest, writer, maxStalenessMinutes: cfg.maxStalenessMinutes, log };
  // Messages leased by us and not yet acked: their leases are renewed until we ack or give them back.
  let inFlight: Inbound[] = [];
  let held: Inbound[] = [];
  const lease = reader.keepLeased(() => [...inFlight, ...held]);

  const processBatch = async (batch: Inbound[], final: boolean): Promise<Inbound[]> => {
    const failed: FailedRecord[] = [];
    const byTable = new Map<string, TableMessage[]>();
    batch.forEach((m, index) => {
      try {
        const decoded = decodeBatch(m.data, m.attributes);
        const name = qualifiedName(decoded.schema, decoded.table);
        const list = byTable.get(name) ?? [];
        list.push({
          index,
          messageId: m.messageId,
          attributes: m.attributes,
          attempts: m.attempts,
          batch: decoded,
        });
        byTable.set(name, list);
      } catch (e) {
        if (!(e instanceof ContractError)) throw e;
        failed.push(rawMessageFailure(m, `poison message: ${e.message}`));
      }
    });
    const heldIdx = new Set<number>();
    for (const [name, messages] of byTable) {
      let sink = sinks.get(name);
      if (!sink) {
        sink = new TableSink(ctx, messages[0].batch.schema, messages[0].batch.table);
        sinks.set(name, sink);
      }
      const r = await sink.apply(messages, final);
      tablesSeen.add(name);
      failed.push(...r.failed);
      r.held.forEach((i) => heldIdx.add(i));
      summary.events += r.events;
      summary.replicaRows += r.replicaRows;
      summary.changelogRows += r.changelogRows;
    }
    await failedTable.write(failed);
    summary.failed += failed.length;
    const done = batch.filter((_, i) => !heldIdx.has(i));
    await reader.ack(done);
    summary.messages += done.length;
    if (heldIdx.size > 0) log(`holding ${heldIdx.size} message(s) until earlier rows of their keys arrive`);
    return batch.filter((_, i) => heldIdx.has(i));
  };

  const guarded = async (batch: Inbound[], final: boolean): Promise<Inbound[]> => {
    try {
      return await processBatch(batch, final);
    } catch (e) {
      // Give the batch back at once; it was not (fully) written, so it must come again.
      await reader.nack(batch);
      throw classify(e);
    }
  };

  try {
    try {
      await rest.ensureDataset();
      await failedTable.open();
    } catch (e) {
      throw classify(e);
    }
    let empty = 0;
    let drained = false;
    while (!opts.signal?.aborted) {
      if (cfg.mode === 'once' && Date.now() >= deadline) break;
      const batch = await reader.pull(cfg.batchMessages);
      if (batch.length === 0) {
        empty += 1;
        if (held.length > 0 && cfg.mode === 'continuous') {
          // inFlight keeps their leases renewed while they are retried.
          inFlight = held;
          held = [];
          held = await guarded(inFlight, true);
          inFlight = [];
        }
        // Continuous mode never reaches the end of the run: record dead letters whenever it is idle.
        if (cfg.mode === 'continuous' && cfg.deadLetterSubscription) {
          summary.deadLetters += await recordDeadLetters(cfg, failedTable, log).catch((e: unknown) => {
            throw classify(e);
          });
        }
        if (cfg.mode === 'once' && empty >= EMPTY_PULLS_TO_STOP) {
          drained = true;
          break;
        }
        continue;
      }
      empty = 0;
      inFlight = batch;
      const stillHeld = await guarded(batch, false);
      inFlight = [];
      held.push(...stillHeld);
    }
    if (held.length > 0 && drained) {
      // Last chance for held messages: the subscription is drained and everything else landed. (Stopped by
      // the time limit or a signal, they are given back instead: the next run may bring what they lack.)
      inFlight = held;
      held = [];
      await guarded(inFlight, true);
      inFlight = [];
    }
    if (cfg.mode === 'once' && cfg.deadLetterSubscription && !opts.signal?.aborted) {
      summary.deadLetters += await recordDeadLetters(cfg, failedTable, log).catch((e: unknown) => {
        throw classify(e);
      });
    }
  } finally {
    lease.stop();
    if (held.length > 0 || inFlight.length > 0) await reader.nack([...held, ...inFlight]);
    for (const s of sinks.values()) s.close();
    failedTable.close();
    writer.close();
    await reader.close().catch(() => undefined);
  }
  summary.tables = [...tablesSeen].sort();
  summary.seconds = Math.round((Date.now() - started) / 100) / 10;
  return summary;
}

/**
 * Messages Pub/Sub forwarded to the dead-letter topic after too many failed deliveries: recorded in `_failed`
 * with the reason and the raw payload (so they can be fixed and republished), then acked — never dropped.
 */
async function recordDeadLetters(
  cfg: SinkConfig,
  failedTable: FailedTable,
  log: (line: string) => void,
): Promise<number> {
  const reader = new SubscriptionReader(subscriberClient(), cfg.deadLetterSubscription!);
  let n = 0;
  try {
    for (;;) {
      const batch = await reader.pull(cfg.batchMessages);
      if (batch.length === 0) break;
      await failedTable.write(
        batch.map((m) =>
          rawMessageFailure(
            m,
            `dead letter: Pub/Sub stopped redelivering this message after ${m.attempts ?? 'too many'} ` +
              'failed deliveries (the sink failed on it each time; its logs say why)',
          ),
        ),
      );
      await reader.ack(batch);
      n += batch.length;
    }
  } finally {
    await reader.close().catch(() => undefined);
  }
  if (n > 0) log(`recorded ${n} dead-lettered message(s) in _failed`);
  return n;
}

/** A whole message for `_failed`: its raw payload and attributes, and the table its attributes name. */
function rawMessageFailure(m: Inbound, reason: string): FailedRecord {
  const { schema, table } = m.attributes;
  return {
    reason,
    messageId: m.messageId,
    attempts: m.attempts,
    attributes: m.attributes,
    payload: m.data,
    table: schema && table ? `${schema}.${table}` : undefined,
  };
}

function classify(e: unknown): Error {
  if (e instanceof PubSubError || e instanceof BigQueryError) return e;
  if (e instanceof StorageWriteError || e instanceof BigQueryApiError) return new BigQueryError(e.message);
  return e as Error;
}
