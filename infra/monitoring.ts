import * as gcp from '@pulumi/gcp';
import * as pulumi from '@pulumi/pulumi';
import { childOptions, type ComponentOptions } from './options';

/**
 * The field of the summary line the listener prints on stdout after each run (`{"command":"listen",...}`,
 * listener/run.ts ListenerSummary.lagBytes): WAL bytes the slot still retains
 * (pg_current_wal_lsn() - confirmed_flush_lsn). Cloud Run turns a JSON line into jsonPayload.
 */
export const SLOT_LAG_LOG_FIELD = 'lagBytes';

export interface MonitoringArgs {
  project: pulumi.Input<string>;
  namePrefix: string;
  listenerJobName: pulumi.Input<string>;
  sinkJobName: pulumi.Input<string>;
  /** The change subscription (its dead-letter count is what we watch). */
  subscriptionName: pulumi.Input<string>;
  /** "project:instance", the cloudsql_database resource's database_id. */
  databaseId: pulumi.Input<string>;
  slotLagAlertBytes: number;
  diskUtilizationAlertPercent: number;
  alertEmail?: string;
}

/** Alerts for failed job executions, dead letters, replication slot lag and a filling database disk. */
export class Monitoring extends pulumi.ComponentResource {
  readonly policies: gcp.monitoring.AlertPolicy[];
  readonly slotLagMetric: gcp.logging.Metric;

  constructor(name: string, args: MonitoringArgs, opts?: ComponentOptions) {
    super('pgcdc:infra:Monitoring', name, {}, opts);
    const child = childOptions(this, opts);

    const channels: pulumi.Input<string>[] = [];
    if (args.alertEmail !== undefined) {
      const email = new gcp.monitoring.NotificationChannel(
        `${name}-email`,
        {
          project: args.project,
          type: 'email',
          displayName: `pgcdc ${args.namePrefix} alerts`,
          labels: { email_address: args.alertEmail },
        },
        child,
      );
      channels.push(email.name);
    }

    const policy = (
      id: string,
      displayName: string,
      documentation: string,
      conditions: gcp.types.input.monitoring.AlertPolicyCondition[],
      extraDeps: pulumi.Resource[] = [],
    ) =>
      new gcp.monitoring.AlertPolicy(
        `${name}-${id}`,
        {
          project: args.project,
          displayName: `pgcdc ${args.namePrefix}: ${displayName}`,
          combiner: 'OR',
          conditions,
          notificationChannels: channels,
          documentation: { content: documentation, mimeType: 'text/markdown' },
          alertStrategy: { autoClose: '86400s' },
        },
        childOptions(this, opts, extraDeps),
      );

    const jobFailed = (
      job: pulumi.Input<string>,
      role: string,
    ): gcp.types.input.monitoring.AlertPolicyCondition => ({
      displayName: `${role} execution failed`,
      conditionThreshold: {
        filter: pulumi.interpolate`resource.type = "cloud_run_job" AND resource.labels.job_name = "${job}" AND metric.type = "run.googleapis.com/job/completed_execution_count" AND metric.labels.result = "failed"`,
        comparison: 'COMPARISON_GT',
        thresholdValue: 0,
        duration: '0s',
        aggregations: [{ alignmentPeriod: '300s', perSeriesAligner: 'ALIGN_SUM' }],
      },
    });

    // Log-based metric: the listener's reported slot lag, one sample per run.
    this.slotLagMetric = new gcp.logging.Metric(
      `${name}-slot-lag`,
      {
        project: args.project,
        name: `${args.namePrefix}/slot_lag_bytes`,
        description: 'WAL bytes the replication slot retains, as reported by the listener after each run',
        filter: pulumi.interpolate`resource.type = "cloud_run_job" AND resource.labels.job_name = "${args.listenerJobName}" AND jsonPayload.command = "listen" AND jsonPayload.${SLOT_LAG_LOG_FIELD} >= 0`,
        metricDescriptor: { metricKind: 'DELTA', valueType: 'DISTRIBUTION', unit: 'By' },
        valueExtractor: `EXTRACT(jsonPayload.${SLOT_LAG_LOG_FIELD})`,
        // Powers of two from 1 B to 2^40 B (1 TiB).
        bucketOptions: { exponentialBuckets: { numFiniteBuckets: 40, growthFactor: 2, scale: 1 } },
      },
      child,
    );

    this.policies = [
      policy(
        'job-failed',
        'job execution failed',
        'A listener or sink execution failed. Check its logs: `gcloud run jobs executions list --job <job>`. ' +
          'Nothing is lost (the slot and the subscription keep the data) but nothing moves until runs succeed.',
        [jobFailed(args.listenerJobName, 'listener'), jobFailed(args.sinkJobName, 'sink')],
      ),
      policy(
        'dead-letters',
        'messages dead-lettered',
        'The sink failed to apply messages after the maximum delivery attempts; they are in the dead-letter ' +
          'subscription (and the `_failed` table once the sink files them). Inspect the reason and replay.',
        [
          {
            displayName: 'dead-lettered messages',
            conditionThreshold: {
              filter: pulumi.interpolate`resource.type = "pubsub_subscription" AND resource.labels.subscription_id = "${args.subscriptionName}" AND metric.type = "pubsub.googleapis.com/subscription/dead_letter_message_count"`,
              comparison: 'COMPARISON_GT',
              thresholdValue: 0,
              duration: '0s',
              aggregations: [{ alignmentPeriod: '300s', perSeriesAligner: 'ALIGN_SUM' }],
            },
          },
        ],
      ),
      policy(
        'slot-lag',
        'replication slot lag',
        'The replication slot retains more WAL than the threshold: the listener is not keeping up or not ' +
          'confirming. WAL keeps growing on the database disk until the slot is read or dropped.',
        [
          {
            displayName: 'slot lag above threshold',
            conditionThreshold: {
              filter: pulumi.interpolate`resource.type = "cloud_run_job" AND metric.type = "logging.googleapis.com/user/${this.slotLagMetric.name}"`,
              comparison: 'COMPARISON_GT',
              thresholdValue: args.slotLagAlertBytes,
              duration: '0s',
              aggregations: [{ alignmentPeriod: '900s', perSeriesAligner: 'ALIGN_PERCENTILE_99' }],
            },
          },
        ],
        [this.slotLagMetric],
      ),
      policy(
        'disk-filling',
        'database disk filling',
        'The Cloud SQL disk is filling, often because a replication slot retains WAL. Check slot lag first.',
        [
          {
            displayName: 'disk utilization high',
            conditionThreshold: {
              filter: pulumi.interpolate`resource.type = "cloudsql_database" AND resource.labels.database_id = "${args.databaseId}" AND metric.type = "cloudsql.googleapis.com/database/disk/utilization"`,
              comparison: 'COMPARISON_GT',
              // The metric is a fraction (0-1).
              thresholdValue: args.diskUtilizationAlertPercent / 100,
              duration: '600s',
              aggregations: [{ alignmentPeriod: '300s', perSeriesAligner: 'ALIGN_MEAN' }],
            },
          },
        ],
      ),
    ];

    this.registerOutputs({});
  }
}
