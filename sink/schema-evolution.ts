// Keeps a source table's two BigQuery tables (history and replica) in step with the source's columns:
// creates them, adds columns (new source columns, retyped columns, companions), and says where each source
// column goes. The rules for one table's fields are in table-schema.ts; this is the per-table state.

import type { ColumnInfo } from '../contract/events';
import { compareSeq } from '../contract/lsn';
import type { BigQueryRest, TableField, TableResource } from './bigquery-rest';
import { labelToSeq } from './names';
import {
  CHANGES_META_FIELDS,
  ColumnField,
  planColumns,
  REPLICA_META_FIELDS,
  stalenessInterval,
} from './table-schema';
import { TRUNCATE_LABEL } from './truncate';

// BigQuery: a primary key has at most 16 columns ("The primary key can have at most 16 columns",
// https://cloud.google.com/bigquery/docs/primary-foreign-keys); clustering takes at most 4 columns of
// these types (https://cloud.google.com/bigquery/docs/clustered-tables#limitations).
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

export interface TablePlan {
  changes: ColumnField[];
  /** Null when the table gets no replica (no key, or too many key columns). */
  replica: ColumnField[] | null;
  keyColumns: string[];
  /** History field → replica field, where the two tables' histories made them differ. */
  replicaRename: Map<string, string>;
}

export class TableSchemas {
  private loaded = false;
  private changesMeta: TableResource | null = null;
  private replicaMeta: TableResource | null = null;
  /** Sequence of the newest truncate applied to the replica (its label), if any. */
  truncateSeq: string | null = null;
  private readonly planned = new Map<string, TablePlan>();
  private maxPlannedSeq = '';
  private warnedNoKey = false;
  /** Fields that have needed a companion column (history and replica follow the same columns). */
  private readonly companions = new Set<string>();

  constructor(
    private readonly rest: BigQueryRest,
    private readonly source: string,
    readonly replicaName: string,
    readonly changesName: string,
    private readonly maxStalenessMinutes: number,
    private readonly log: (line: string) => void,
  ) {}

  /** The history table's fields now (the union of every plan of this run). */
  get changesFields(): TableField[] {
    return this.changesMeta?.schema?.fields ?? [];
  }

  /** The replica table's fields now; empty when there is no replica table. */
  get replicaFields(): TableField[] {
    return this.replicaMeta?.schema?.fields ?? [];
  }

  /** Asks for companion columns of these fields; true when a field is new (the caller plans again). */
  requestCompanions(fields: Iterable<string>): boolean {
    let added = false;
    for (const f of fields) {
      if (this.companions.has(f)) continue;
      this.companions.add(f);
      added = true;
    }
    if (added) this.planned.clear();
    return added;
  }

  /** Records the truncate label on the replica. */
  async setTruncateSeq(seq: string, label: string): Promise<void> {
    const labels = { ...(this.replicaMeta?.labels ?? {}), [TRUNCATE_LABEL]: label };
    this.replicaMeta = await this.rest.patchTable(this.replicaName, { labels });
    this.truncateSeq = seq;
  }

  /** Makes both tables hold `columns` (creating or patching them); returns where each column goes. */
  async prepare(columns: ColumnInfo[], seq: string): Promise<TablePlan> {
    const signature = JSON.stringify(columns);
    const known = this.planned.get(signature);
    if (known) return known;
    const rest = this.rest;
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

    const ch = planColumns(
      this.changesMeta?.schema?.fields ?? CHANGES_META_FIELDS,
      CHANGES_META_FIELDS,
      columns,
      seq,
      markDropped,
      this.companions,
    );
    if (!this.changesMeta) {
      this.changesMeta = await rest.createTable(this.changesName, {
        schema: { fields: ch.fields },
        description: `pgcdc: every change of ${this.source}, append-only (dedup by _event_id)`,
        timePartitioning: { type: 'DAY', field: '_commit_ts' },
        clustering: { fields: ['_key'] },
      });
    } else if (ch.changed) {
      this.changesMeta = await rest.patchTable(this.changesName, { schema: { fields: ch.fields } });
    }

    const keyColumns = columns.filter((c) => c.key).map((c) => c.name);
    const keyProblem =
      keyColumns.length === 0
        ? 'it has no primary key (nor replica identity columns)'
        : keyColumns.length > MAX_KEY_COLUMNS
          ? `its key has ${keyColumns.length} columns (BigQuery allows ${MAX_KEY_COLUMNS})`
          : null;
    let replicaMapping: ColumnField[] | null = null;
    if (keyProblem) {
      if (!this.warnedNoKey) {
        this.log(`${this.source}: ${keyProblem}; writing its history ${this.changesName} only, no replica`);
        this.warnedNoKey = true;
      }
    } else {
      const rp = planColumns(
        this.replicaMeta?.schema?.fields ?? REPLICA_META_FIELDS,
        REPLICA_META_FIELDS,
        columns,
        seq,
        markDropped,
        this.companions,
      );
      if (!this.replicaMeta) {
        const pk = rp.mapping.filter((m) => m.column.key);
        this.replicaMeta = await rest.createTable(this.replicaName, {
          schema: { fields: rp.fields },
          description: `pgcdc: current rows of ${this.source}, kept by BigQuery CDC`,
          tableConstraints: { primaryKey: { columns: pk.map((k) => k.field) } },
          clustering: {
            fields: pk
              .filter((k) => CLUSTERABLE.has(k.mapping.bqType))
              .slice(0, 4)
              .map((k) => k.field),
          },
          maxStaleness: stalenessInterval(this.maxStalenessMinutes),
        });
        if (this.replicaMeta.clustering?.fields.length === 0) delete this.replicaMeta.clustering;
      } else if (rp.changed) {
        this.replicaMeta = await rest.patchTable(this.replicaName, { schema: { fields: rp.fields } });
      }
      replicaMapping = rp.mapping;
    }
    // Both tables follow the same columns with the same rules, so their field names normally agree; a table
    // created later (a key added to the source) may have seen fewer type changes.
    const replicaRename = new Map<string, string>();
    for (const m of ch.mapping) {
      const r = replicaMapping?.find((x) => x.column.name === m.column.name);
      if (r && r.field !== m.field) replicaRename.set(m.field, r.field);
      if (r?.companion && m.companion && r.companion !== m.companion)
        replicaRename.set(m.companion, r.companion);
    }
    const plan: TablePlan = {
      changes: ch.mapping,
      replica: replicaMapping,
      keyColumns,
      replicaRename,
    };
    this.planned.set(signature, plan);
    return plan;
  }
}
