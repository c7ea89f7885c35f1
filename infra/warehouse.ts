import * as gcp from '@pulumi/gcp';
import * as pulumi from '@pulumi/pulumi';
import { childOptions, type ComponentOptions } from './options';

/** BigQuery's schema of the dead-letter table (the contract in DESIGN.md), in the tables API's JSON form. */
export const FAILED_TABLE_SCHEMA = [
  { name: 'failed_at', type: 'TIMESTAMP', mode: 'REQUIRED', description: 'When the message was given up on' },
  { name: 'reason', type: 'STRING', mode: 'REQUIRED', description: 'Why it could not be applied' },
  { name: 'subscription', type: 'STRING', mode: 'NULLABLE', description: 'Subscription it was read from' },
  { name: 'message_id', type: 'STRING', mode: 'NULLABLE', description: 'Pub/Sub message id' },
  // INTEGER is the tables API's name for INT64; writing INT64 would show a diff on every refresh.
  { name: 'attempts', type: 'INTEGER', mode: 'NULLABLE', description: 'Delivery attempts so far' },
  { name: 'attributes', type: 'JSON', mode: 'NULLABLE', description: 'Pub/Sub message attributes' },
  { name: 'payload', type: 'BYTES', mode: 'NULLABLE', description: 'The raw message data' },
  { name: 'table_name', type: 'STRING', mode: 'NULLABLE', description: 'Source table, when known' },
] as const;

export const FAILED_TABLE_ID = '_failed';

export interface WarehouseArgs {
  project: pulumi.Input<string>;
  datasetId: string;
  location: string;
  /** When true, neither the dataset's contents nor the _failed table can be deleted by `pulumi destroy`. */
  deletionProtection: boolean;
  labels: Record<string, string>;
}

/**
 * The BigQuery dataset and its `_failed` table. The replica and `<table>_changes` tables are created and
 * evolved by the sink from the column types each change event carries (see infra/README.md): their schema
 * is the source's, known only at run time.
 */
export class Warehouse extends pulumi.ComponentResource {
  readonly dataset: gcp.bigquery.Dataset;
  readonly failedTable: gcp.bigquery.Table;

  constructor(name: string, args: WarehouseArgs, opts?: ComponentOptions) {
    super('pgcdc:infra:Warehouse', name, {}, opts);
    const child = childOptions(this, opts);

    this.dataset = new gcp.bigquery.Dataset(
      `${name}-dataset`,
      {
        project: args.project,
        datasetId: args.datasetId,
        location: args.location,
        description: 'PostgreSQL change data capture: replicas, change history and dead letters',
        // Tables the sink created are not Pulumi's: only drop them with the dataset when data may be lost.
        deleteContentsOnDestroy: !args.deletionProtection,
        labels: args.labels,
      },
      child,
    );

    this.failedTable = new gcp.bigquery.Table(
      `${name}-failed`,
      {
        project: args.project,
        datasetId: this.dataset.datasetId,
        tableId: FAILED_TABLE_ID,
        description: 'Messages the sink could not apply, with the reason',
        schema: JSON.stringify(FAILED_TABLE_SCHEMA),
        timePartitioning: { type: 'DAY', field: 'failed_at' },
        clusterings: ['table_name'],
        deletionProtection: args.deletionProtection,
        labels: args.labels,
      },
      child,
    );

    this.registerOutputs({ dataset: this.dataset.datasetId, failedTable: this.failedTable.tableId });
  }
}
