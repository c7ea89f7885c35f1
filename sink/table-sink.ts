// Everything the sink does for one source table: keep its BigQuery tables' schemas in step with the
// source, turn events into history rows and CDC rows, fill unchanged TOAST columns, apply truncates.
//
// Write order, which the no-loss and replay arguments in sink/README.md rely on:
//   1. history rows (plain appends; every replica row has its history row first),
//   2. truncates (DELETE rows for every key the history knows before the truncate, then the table label),
//   3. replica rows (UPSERT/DELETE with _CHANGE_SEQUENCE_NUMBER = the event's seq).
// The caller acks a message only after all three resolved for it.

import { gzipSync } from 'node:zlib';
import { managedwriter } from '@google-cloud/bigquery-storage';
import type { ChangeEvent, ColumnInfo, EventBatch, Row } from '../contract/events';
import { compareSeq } from '../contract/lsn';
import { BigQueryRest, queryFiltered, TableResource } from './bigquery-rest';
import type { FailedRecord } from './failed';
import { changesTableName, fieldName, keyText, labelToSeq, replicaTableName, seqToLabel } from './names';
import { ValueError, parseTimestamptz } from './pg-text';
import { ProtoRow, RowError, StorageWriteError, TableAppender } from './storage-writer';
import {
  CHANGES_META_FIELDS,
  ColumnField,
  planColumns,
  REPLICA_META_FIELDS,
  stalenessInterval,
} from './table-schema';
import { BqType, ProtoValue, restToProto } from './type-map';

export interface SinkContext {
  rest: BigQueryRest;
  writer: managedwriter.WriterClient;
  maxStalenessMinutes: number;
  log: (line: string) => void;
}

/** One decoded Pub/Sub message of this table. */
export interface TableMessage {
  index: number;
  messageId: string;
  attributes: Record<string, string>;
  attempts?: number;
  batch: EventBatch;
}

export interface TableApplyResult {
  failed: FailedRecord[];
  /** Messages with an event whose unchanged TOAST value is not known yet: not to be acked now. */
  held: Set<number>;
  events: number;
  replicaRows: number;
  changelogRows: number;
}

const TRUNCATE_LABEL = 'pgcdc_truncate_seq';
// BigQuery: a primary key has at most 16 columns; clustering takes at most 4 columns of these types.
const MAX_KEY_COLUMNS = 16;
const CLUSTERABLE: ReadonlySet<string> = new Set([
  'STRING',
  'INT64',
  'NUMERIC',
  'BIGNUMERIC',
  'DATE',
  'DATETIME',
  'TIMESTAMP',
  'BOOL',
]);
// The run cache of last full rows per key is only an accelerator; past this size it starts over.
const MAX_CACHED_ROWS = 100_000;

/** A version of a row: its values, or null where the row ended (delete, or its key changed). */
interface Candidate {
  seq: string;
  values: ProtoRow | null;
}

interface Work {
  ev: ChangeEvent;
  msg: TableMessage;
  mapping: ColumnField[];
  values: ProtoRow;
  /** Key text of the row after the event (or of the deleted row). */
  key: string | null;
  /** Key text of the row before a primary-key change. */
  oldKey: string | null;
  /** Columns whose value the event did not carry: `unchanged`, plus any column an update left out. */
  unchanged: string[];
  replicaRename?: Map<string, string>;
  /** Whether this event's message was planned with a replica (its columns had a key). */
  hasReplica?: boolean;
  failed?: string;
  unresolved?: string;
}

export class TableSink {
  readonly replicaName: string;
  readonly changesName: string;
  private loaded = false;
  private changesMeta: TableResource | null = null;
  private replicaMeta: TableResource | null = null;
  private changes?: TableAppender;
  private replica?: TableAppender;
  private truncateSeq: string | null = null;
  private planned = new Map<
    string,
    {
      changes: ColumnField[];
      replica: ColumnField[] | null;
      keyColumns: string[];
      /** History field → replica field, where the two tables' histories made them differ. */
      replicaRename: Map<string, string>;
    }
  >();
  private maxPlannedSeq = '';
  private warnedNoKey = false;
  private readonly lastRows = new Map<string, Candidate>();

  constructor(
    private readonly ctx: SinkContext,
    readonly schema: string,
    readonly table: string,
  ) {
    this.replicaName = replicaTableName(schema, table);
    this.changesName = changesTableName(schema, table);
  }

  private tablePath(name: string): string {
    return `projects/${this.ctx.rest.project}/datasets/${this.ctx.rest.dataset}/tables/${name}`;
  }

  close(): void {
    this.changes?.close();
    this.replica?.close();
    this.changes = this.replica = undefined;
  }

  /** Makes both tables hold `columns` (creating or patching them); returns where each column goes. */
  private async prepare(columns: ColumnInfo[], seq: string) {
    const signature = JSON.stringify(columns);
    const known = this.planned.get(signature);
    if (known) return known;
    const rest = this.ctx.rest;
    if (!this.loaded) {
      this.changesMeta = await rest.getTable(this.changesName);
      this.replicaMeta = await rest.getTable(this.replicaName);
      const label = this.replicaMeta?.labels?.[TRUNCATE_LABEL];
      this.truncateSeq = label ? labelToSeq(label) : null;
      this.loaded = true;
    }
    // Only a batch newer than every one seen in this run may declare columns dropped.
    const markDropped = compareSeq(seq, this.maxPlannedSeq || '0') > 0;
    if (markDropped) this.maxPlannedSeq = seq;
    const source = `${this.schema}.${this.table}`;

    const ch = planColumns(
      this.changesMeta?.schema?.fields ?? CHANGES_META_FIELDS,
      columns,
      seq,
      markDropped,
    );
    if (!this.changesMeta) {
      this.changesMeta = await rest.createTable(this.changesName, {
        schema: { fields: ch.fields },
        description: `pgcdc: every change of ${source}, append-only (dedup by _event_id)`,
        timePartitioning: { type: 'DAY', field: '_commit_ts' },
        clustering: { fields: ['_key'] },
      });
      this.changes?.close();
      this.changes = undefined;
    } else if (ch.changed) {
      this.changesMeta = await rest.patchTable(this.changesName, { schema: { fields: ch.fields } });
      this.changes?.close();
      this.changes = undefined;
    }
    this.changes ??= await TableAppender.open(
      this.ctx.writer,
      this.tablePath(this.changesName),
      ch.fields,
      false,
    );

    const keyColumns = columns.filter((c) => c.key).map((c) => c.name);
    const keyFields = ch.mapping.filter((m) => m.column.key);
    const keyProblem =
      keyColumns.length === 0
        ? 'it has no primary key (nor replica identity columns)'
        : keyColumns.length > MAX_KEY_COLUMNS
          ? `its key has ${keyColumns.length} columns (BigQuery allows ${MAX_KEY_COLUMNS})`
          : keyFields.some((k) => k.mapping.repeated || k.mapping.bqType === 'JSON')
            ? 'a key column is an array or json, which a BigQuery primary key cannot be'
            : null;
    let replicaMapping: ColumnField[] | null = null;
    if (keyProblem) {
      if (!this.warnedNoKey) {
        this.ctx.log(`${source}: ${keyProblem}; writing its history ${this.changesName} only, no replica`);
        this.warnedNoKey = true;
      }
    } else {
      const rp = planColumns(
        this.replicaMeta?.schema?.fields ?? REPLICA_META_FIELDS,
        columns,
        seq,
        markDropped,
      );
      if (!this.replicaMeta) {
        const pk = rp.mapping.filter((m) => m.column.key);
        this.replicaMeta = await rest.createTable(this.replicaName, {
          schema: { fields: rp.fields },
          description: `pgcdc: current rows of ${source}, kept by BigQuery CDC`,
          tableConstraints: { primaryKey: { columns: pk.map((k) => k.field) } },
          clustering: {
            fields: pk
              .filter((k) => CLUSTERABLE.has(k.mapping.bqType))
              .slice(0, 4)
              .map((k) => k.field),
          },
          maxStaleness: stalenessInterval(this.ctx.maxStalenessMinutes),
        });
        if (this.replicaMeta.clustering?.fields.length === 0) delete this.replicaMeta.clustering;
        this.replica?.close();
        this.replica = undefined;
      } else if (rp.changed) {
        this.replicaMeta = await rest.patchTable(this.replicaName, { schema: { fields: rp.fields } });
        this.replica?.close();
        this.replica = undefined;
      }
      this.replica ??= await TableAppender.open(
        this.ctx.writer,
        this.tablePath(this.replicaName),
        rp.fields,
        true,
      );
      replicaMapping = rp.mapping;
    }
    // Both tables follow the same columns with the same rules, so their field names normally agree; a table
    // created later (a key added to the source) may have seen fewer type changes.
    const replicaRename = new Map<string, string>();
    for (const m of ch.mapping) {
      const r = replicaMapping?.find((x) => x.column.name === m.column.name);
      if (r && r.field !== m.field) replicaRename.set(m.field, r.field);
    }
    const plan = { changes: ch.mapping, replica: replicaMapping, keyColumns, replicaRename };
    this.planned.set(signature, plan);
    return plan;
  }

  async apply(messages: TableMessage[], final: boolean): Promise<TableApplyResult> {
    const result: TableApplyResult = {
      failed: [],
      held: new Set(),
      events: 0,
      replicaRows: 0,
      changelogRows: 0,
    };
    const ordered = [...messages].sort((a, b) => compareSeq(firstSeq(a.batch), firstSeq(b.batch)));
    const work: Work[] = [];
    for (const msg of ordered) {
      if (msg.batch.events.length === 0) continue;
      const plan = await this.prepare(msg.batch.columns, firstSeq(msg.batch));
      for (const ev of msg.batch.events) {
        const w = this.toWork(ev, msg, plan.changes, plan.keyColumns);
        w.replicaRename = plan.replicaRename;
        // Per event, not per batch: one keyless message in a pull must not skip the others' replica rows.
        w.hasReplica = plan.replica !== null;
        work.push(w);
      }
    }
    result.events = work.length;
    work.sort((a, b) => compareSeq(a.ev.seq, b.ev.seq));
    await this.fillUnchanged(work, final);

    // 1. history
    const historyWork = work.filter((w) => !w.failed && !w.unresolved);
    const historyRows = await this.appendRows(this.changes as TableAppender, historyWork, (w) => [
      this.historyRow(w),
    ]);
    result.changelogRows = historyRows;

    // 2. truncates (only meaningful with a replica)
    if (this.replica) {
      for (const w of historyWork) {
        if (
          w.ev.op === 't' &&
          !w.failed &&
          (!this.truncateSeq || compareSeq(w.ev.seq, this.truncateSeq) > 0)
        ) {
          result.replicaRows += await this.truncate(w);
        }
      }
    }

    // 3. replica
    if (this.replica) {
      const replicaWork = historyWork.filter(
        (w) =>
          w.hasReplica &&
          !w.failed &&
          w.ev.op !== 't' &&
          (!this.truncateSeq || compareSeq(w.ev.seq, this.truncateSeq) > 0),
      );
      result.replicaRows += await this.appendRows(this.replica, replicaWork, (w) => this.replicaRows(w));
      // A key change whose new row cannot be written (it goes to _failed) still ended the old key's row in
      // the source: delete it, or the replica would keep a row the source no longer has.
      const endedKeys = work.filter(
        (w) =>
          w.hasReplica &&
          w.failed &&
          !w.unresolved &&
          w.oldKey &&
          w.ev.before &&
          (!this.truncateSeq || compareSeq(w.ev.seq, this.truncateSeq) > 0),
      );
      // (Copies without the failure mark: appendRows skips failed work; the event itself stays failed.)
      result.replicaRows += await this.appendRows(
        this.replica,
        endedKeys.map((w) => ({ ...w, failed: undefined })),
        (w) => renameForReplica(w, [this.oldKeyDelete(w)]),
      );
    }

    for (const w of work) {
      if (w.unresolved) result.held.add(w.msg.index);
      else if (w.failed) result.failed.push(failedEvent(w, w.failed));
    }
    return result;
  }

  private toWork(ev: ChangeEvent, msg: TableMessage, mapping: ColumnField[], keyColumns: string[]): Work {
    const w: Work = { ev, msg, mapping, values: {}, key: null, oldKey: null, unchanged: [...ev.unchanged] };
    if (ev.op === 't') return w;
    const image: Row | null = ev.op === 'd' ? (ev.before ?? ev.key) : ev.after;
    const keySource = ev.op === 'd' ? (ev.key ?? ev.before) : (ev.after ?? ev.key);
    if (keyColumns.length > 0 && keySource) {
      w.key = keyText(keyColumns, keySource);
      if (ev.op === 'u' && ev.before && keyColumns.every((c) => c in (ev.before as Row))) {
        const old = keyText(keyColumns, ev.before);
        if (old !== w.key) w.oldKey = old;
      }
    }
    const unchanged = new Set(ev.unchanged);
    for (const m of mapping) {
      if (!image || unchanged.has(m.column.name)) continue;
      if (!(m.column.name in image)) {
        // Absent from an update's new row: not sent, so unchanged (wal2json leaves unchanged TOAST
        // values out); never NULL. Absent from a delete's old image (only the key logged): unset.
        if (ev.op === 'u') w.unchanged.push(m.column.name);
        else if (ev.op !== 'd') w.values[m.field] = m.mapping.repeated ? [] : null;
        continue;
      }
      const text = image[m.column.name];
      try {
        // NULL arrays become empty arrays: a BigQuery REPEATED column has no NULL.
        w.values[m.field] = text === null ? (m.mapping.repeated ? [] : null) : m.mapping.convert(text);
      } catch (e) {
        if (!(e instanceof ValueError)) throw e;
        w.failed = `column ${m.column.name} (${m.column.type}): ${e.message}`;
        return w;
      }
    }
    return w;
  }

  /**
   * Unchanged TOAST columns take their value from the newest earlier version of the same key: an earlier
   * event in this batch or run, else the history table (whose rows are always complete). A delete in
   * between (or none at all) leaves the value unknown: the message is held for a later attempt, and with
   * no later attempt (`final`) the event goes to `_failed` rather than nulling the column.
   */
  private async fillUnchanged(work: Work[], final: boolean): Promise<void> {
    const history = new Map<string, Candidate[]>();
    const lookupKeys = new Set<string>();
    for (const w of work) {
      if (w.ev.op !== 'u' || w.unchanged.length === 0 || w.failed) continue;
      const k = w.oldKey ?? w.key;
      if (k === null) continue;
      // Always ask the history too: a redelivered older event can have refreshed the run's cache with a
      // version older than one an earlier run already wrote there.
      lookupKeys.add(k);
    }
    if (lookupKeys.size > 0) {
      const fields = new Map((this.changesMeta?.schema?.fields ?? []).map((f) => [f.name, f]));
      const rows = await queryFiltered(this.ctx.rest, '*', this.changesName, '_key IN UNNEST(@keys)', [
        { name: 'keys', values: [...lookupKeys] },
      ]);
      for (const r of rows) {
        let values: ProtoRow | null = null;
        if (r._op !== 'd' && r._op !== 't') {
          values = {};
          for (const [name, v] of Object.entries(r)) {
            const f = fields.get(name);
            if (!f || name.startsWith('_')) continue;
            values[name] = restToProto(normalType(f.type), f.mode === 'REPEATED', v);
          }
        }
        const list = history.get(String(r._key)) ?? [];
        list.push({ seq: String(r._event_id), values });
        history.set(String(r._key), list);
      }
    }
    const batch = new Map<string, Candidate[]>();
    const remember = (key: string, c: Candidate) => {
      const list = batch.get(key) ?? [];
      list.push(c);
      batch.set(key, list);
      const prev = this.lastRows.get(key);
      if (!prev || compareSeq(prev.seq, c.seq) < 0) {
        if (this.lastRows.size >= MAX_CACHED_ROWS) this.lastRows.clear();
        this.lastRows.set(key, c);
      }
    };
    for (const w of work) {
      if (w.failed || w.ev.op === 't' || w.key === null) continue;
      if (w.ev.op === 'd') {
        remember(w.key, { seq: w.ev.seq, values: null });
        continue;
      }
      if (w.ev.op === 'u' && w.unchanged.length > 0) {
        const k = w.oldKey ?? w.key;
        const best = newestBefore(w.ev.seq, [batch.get(k), history.get(k), cachedList(this.lastRows, k)]);
        const missing = w.unchanged.filter((c) => {
          const m = w.mapping.find((x) => x.column.name === c);
          if (!m) return false; // not a column of this batch: nothing to fill
          const v = best?.values?.[m.field];
          if (v === undefined) return true;
          // After a type change the column lives in a new field (`<name>__<type>`); a version written before
          // that has NULL there and its value under the original name: unknown, not NULL.
          const original = fieldName(m.column.name);
          if (v === null && original !== m.field && (best?.values?.[original] ?? null) !== null) return true;
          w.values[m.field] = v;
          return false;
        });
        if (missing.length > 0) {
          const why =
            `unchanged TOAST column(s) ${missing.join(', ')} of key ${k}: no earlier version of the row ` +
            `in this run or in ${this.changesName}`;
          if (final) w.failed = why;
          else w.unresolved = why;
          continue;
        }
      }
      // A primary-key change ends the old key's row.
      if (w.oldKey) remember(w.oldKey, { seq: w.ev.seq, values: null });
      remember(w.key, { seq: w.ev.seq, values: w.values });
    }
  }

  private historyRow(w: Work): ProtoRow {
    const ev = w.ev;
    return {
      ...w.values,
      _event_id: ev.seq,
      _op: ev.op,
      _lsn: ev.lsn,
      _commit_lsn: ev.commitLsn,
      _xid: String(ev.xid),
      _commit_ts: commitMicros(ev),
      _key: w.key,
      _unchanged: w.unchanged,
      _before: ev.before ? JSON.stringify(ev.before) : null,
    };
  }

  private replicaRows(w: Work): ProtoRow[] {
    return renameForReplica(w, this.replicaRowsByHistoryFields(w));
  }

  private replicaRowsByHistoryFields(w: Work): ProtoRow[] {
    const ev = w.ev;
    const meta = { _CHANGE_SEQUENCE_NUMBER: ev.seq };
    if (ev.op === 'd') return [{ ...this.keyValues(w, w.values), ...meta, _CHANGE_TYPE: 'DELETE' }];
    const upsert: ProtoRow = {
      ...w.values,
      _event_id: ev.seq,
      _commit_ts: commitMicros(ev),
      ...meta,
      _CHANGE_TYPE: 'UPSERT',
    };
    if (!w.oldKey || !ev.before) return [upsert];
    // A primary-key change: delete the old key, upsert the new one, both at the event's sequence.
    return [this.oldKeyDelete(w), upsert];
  }

  /** The CDC DELETE of a key-changing update's old key, at the event's sequence. */
  private oldKeyDelete(w: Work): ProtoRow {
    const old: ProtoRow = {};
    for (const m of w.mapping) {
      if (!m.column.key) continue;
      const text = w.ev.before?.[m.column.name];
      old[m.field] = text === null || text === undefined ? null : m.mapping.convert(text);
    }
    return { ...old, _CHANGE_SEQUENCE_NUMBER: w.ev.seq, _CHANGE_TYPE: 'DELETE' };
  }

  private keyValues(w: Work, values: ProtoRow): ProtoRow {
    const out: ProtoRow = {};
    for (const m of w.mapping) if (m.column.key) out[m.field] = values[m.field] ?? null;
    return out;
  }

  /**
   * BigQuery forbids DML on CDC tables, so a truncate is written as CDC: a DELETE at the truncate's
   * sequence for every key the history knows from before it (every replica row has a history row written
   * first), then the truncate's sequence goes into a table label so that older events arriving later
   * (redelivery) are not applied to the replica. Replaying a truncate repeats the same deletes.
   */
  private async truncate(w: Work): Promise<number> {
    const found = await queryFiltered(
      this.ctx.rest,
      'DISTINCT _key',
      this.changesName,
      '_key IS NOT NULL AND _event_id < @seq',
      [{ name: 'seq', value: w.ev.seq }],
    );
    const rows = [...new Set(found.map((r) => String(r._key)))].map((k) => ({ _key: k }));
    const keyMapping = w.mapping.filter((m) => m.column.key);
    const replica = this.replica as TableAppender;
    const encoded: Uint8Array[] = [];
    for (const r of rows) {
      const texts = JSON.parse(String(r._key)) as (string | null)[];
      const row: ProtoRow = { _CHANGE_TYPE: 'DELETE', _CHANGE_SEQUENCE_NUMBER: w.ev.seq };
      try {
        keyMapping.forEach(
          (m, i) => (row[m.field] = texts[i] === null ? null : m.mapping.convert(texts[i] as string)),
        );
      } catch {
        continue; // a key that never made it into the replica (its value was unwritable)
      }
      encoded.push(replica.encode(row));
    }
    const errors = await appendWithRetry(replica, encoded);
    if (errors.length > 0) throw new StorageWriteError(`truncate deletes rejected: ${errors[0].message}`);
    const labels = { ...(this.replicaMeta?.labels ?? {}), [TRUNCATE_LABEL]: seqToLabel(w.ev.seq) };
    this.replicaMeta = await this.ctx.rest.patchTable(this.replicaName, { labels });
    this.truncateSeq = w.ev.seq;
    this.ctx.log(
      `${this.schema}.${this.table}: truncate at ${w.ev.seq} deleted ${encoded.length} keys from ${this.replicaName}`,
    );
    return encoded.length;
  }

  /**
   * Encodes and appends the rows of `items`; rows BigQuery rejects one by one mark their event failed
   * and the rest is sent again (BigQuery writes nothing of a request with a bad row).
   */
  private async appendRows(
    appender: TableAppender,
    items: Work[],
    toRows: (w: Work) => ProtoRow[],
  ): Promise<number> {
    let pending = items.filter((w) => !w.failed);
    for (let round = 0; round < 5; round++) {
      const encoded: Uint8Array[] = [];
      const owner: Work[] = [];
      for (const w of pending) {
        try {
          const rows = toRows(w).map((r) => appender.encode(r));
          for (const r of rows) {
            encoded.push(r);
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
    throw new StorageWriteError('BigQuery kept rejecting rows after 5 rounds');
  }
}

// Right after a table is created or gains columns, the Storage Write API can still answer NOT_FOUND or
// "input schema has more fields than the table" for a while (the docs speak of minutes). We wait and
// resend rather than fail the run; these backoffs add up to about 3 minutes.
// UNAVAILABLE is gRPC's "try again": a few quick retries, then the run fails and Pub/Sub redelivers.
const SCHEMA_PROPAGATION_BACKOFF_MS = [1000, 2000, 5000, 10_000, 20_000, 40_000, 60_000, 60_000];
const UNAVAILABLE_BACKOFF_MS = [500, 1000, 2000];
const GRPC_INVALID_ARGUMENT = 3;
const GRPC_NOT_FOUND = 5;
const GRPC_UNAVAILABLE = 14;

async function appendWithRetry(appender: TableAppender, rows: Uint8Array[]) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await appender.append(rows);
    } catch (e) {
      if (!(e instanceof StorageWriteError)) throw e;
      const propagating =
        e.code === GRPC_NOT_FOUND || (e.code === GRPC_INVALID_ARGUMENT && /schema/i.test(e.message));
      const backoff = propagating
        ? SCHEMA_PROPAGATION_BACKOFF_MS
        : e.code === GRPC_UNAVAILABLE
          ? UNAVAILABLE_BACKOFF_MS
          : [];
      if (attempt >= backoff.length) throw e;
      await new Promise((r) => setTimeout(r, backoff[attempt]));
    }
  }
}

/**
 * A request BigQuery refuses as a whole (not a schema still propagating) is sent again in halves, down to a
 * single row, whose refusal becomes that row's error: one oversized or otherwise unacceptable row fails its
 * event into `_failed` instead of failing every run and blocking the subscription. (A refused request wrote
 * nothing, so resending its halves duplicates nothing.)
 */
async function appendSplitting(appender: TableAppender, rows: Uint8Array[]): Promise<RowError[]> {
  try {
    return await appendWithRetry(appender, rows);
  } catch (e) {
    const refused =
      e instanceof StorageWriteError && e.code === GRPC_INVALID_ARGUMENT && !/schema/i.test(e.message);
    if (!refused) throw e;
    if (rows.length === 1) return [{ index: 0, message: `BigQuery refused the row: ${e.message}` }];
    const mid = rows.length >> 1;
    const left = await appendSplitting(appender, rows.slice(0, mid));
    const right = await appendSplitting(appender, rows.slice(mid));
    return [...left, ...right.map((r) => ({ ...r, index: r.index + mid }))];
  }
}

/** Commit time as TIMESTAMP micros; an unparsable commit time is left empty rather than failing the event. */
function commitMicros(ev: ChangeEvent): string | null {
  try {
    return parseTimestamptz(ev.commitTs);
  } catch {
    return null;
  }
}

function firstSeq(batch: EventBatch): string {
  return batch.events[0]?.seq ?? '0000000000000000/0000000000000000';
}

function normalType(t: string): BqType {
  const map: Record<string, BqType> = { INTEGER: 'INT64', FLOAT: 'FLOAT64', BOOLEAN: 'BOOL' };
  return map[t] ?? (t as BqType);
}

function cachedList(cache: Map<string, Candidate>, key: string): Candidate[] | undefined {
  const c = cache.get(key);
  return c ? [c] : undefined;
}

function newestBefore(seq: string, lists: (Candidate[] | undefined)[]): Candidate | undefined {
  let best: Candidate | undefined;
  for (const list of lists) {
    for (const c of list ?? []) {
      if (compareSeq(c.seq, seq) < 0 && (!best || compareSeq(c.seq, best.seq) > 0)) best = c;
    }
  }
  return best;
}

function failedEvent(w: Work, reason: string): FailedRecord {
  const b = w.msg.batch;
  const one: EventBatch = { v: 1, schema: b.schema, table: b.table, columns: b.columns, events: [w.ev] };
  return {
    reason: `event ${w.ev.seq}: ${reason}`,
    messageId: w.msg.messageId,
    attempts: w.msg.attempts,
    ...failedPayload(Buffer.from(JSON.stringify(one)), w.msg.attributes),
    table: `${b.schema}.${b.table}`,
  };
}

// A BigQuery row holds at most 10 MB (Storage Write API request limit): larger failed events are gzipped
// (the contract's json+gzip encoding, said in the attributes), and dropped from the row only past that.
const FAILED_PAYLOAD_GZIP_ABOVE = 1024 * 1024;
const FAILED_PAYLOAD_MAX = 8 * 1024 * 1024;

function failedPayload(
  json: Buffer,
  attributes: Record<string, string>,
): { payload: Buffer; attributes: Record<string, string> } {
  if (json.length <= FAILED_PAYLOAD_GZIP_ABOVE) return { payload: json, attributes };
  const zipped = gzipSync(json, { level: 6 });
  if (zipped.length <= FAILED_PAYLOAD_MAX) {
    return { payload: zipped, attributes: { ...attributes, pgcdc_payload_encoding: 'json+gzip' } };
  }
  return {
    payload: Buffer.alloc(0),
    attributes: {
      ...attributes,
      pgcdc_payload_omitted: `${zipped.length} bytes gzipped, over BigQuery's row limit`,
    },
  };
}

export type { ProtoValue };

/** Replica rows use the replica's field names where a retyped column was renamed in the history's. */
function renameForReplica(w: Work, rows: ProtoRow[]): ProtoRow[] {
  const rename = w.replicaRename;
  if (!rename || rename.size === 0) return rows;
  return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [rename.get(k) ?? k, v])));
}
