import * as gcp from '@pulumi/gcp';
import * as pulumi from '@pulumi/pulumi';
import { childOptions, type ComponentOptions } from './options';

/**
 * Fields of the summary line the listener prints on stdout after each run (`{"command":"listen",...}`,
 * listener/run.ts ListenerSummary; Cloud Run turns a JSON line into jsonPayload):
 * - lagBytes: WAL bytes the slot still retains (pg_current_wal_lsn() - confirmed_flush_lsn);
 * - stuckTransaction: null, or {xid, startLsn, changesRead, runs?} when the run hit its time limit inside a
 *   transaction it could not finish (BRIEF decision 6);
 * - slotWalStatus: pg_replication_slots.wal_status at run start ("lost": the slot can no longer be read);
 * - stoppedBy: "lookup-blocked" when the TOAST lookup of unchanged values was refused a lock
 *   (listener/toast-fill.ts): the run stopped before that change, and blockedLookup names the table
 *   ({ table, reason, attempts, sessions });
 * - snapshot.stoppedBy: "blocked" when a chunk read of the initial snapshot was refused its lock the same way
 *   (listener/snapshot.ts), snapshot.blocked naming the table like blockedLookup.
 */
export const SUMMARY_FIELDS = {
  lag: 'lagBytes',
  stuckTransaction: 'stuckTransaction',
  walStatus: 'slotWalStatus',
  stoppedBy: 'stoppedBy',
  blockedTable: 'blockedLookup.table',
  snapshotStoppedBy: 'snapshot.stoppedBy',
  blockedSnapshotTable: 'snapshot.blocked.table',
} as const;

/** The snapshot summary's `stoppedBy` when a chunk read was refused its lock (listener/snapshot.ts). */
export const SNAPSHOT_BLOCKED = 'blocked';

/** The summary's `stoppedBy` when a TOAST lookup was refused a lock (listener/run.ts ListenerSummary). */
export const LOOKUP_BLOCKED = 'lookup-blocked';

/**
 * The listener's WARNING lines about captured tables it cannot capture start with this (listener/run.ts:
 * "not captured, because unlogged tables …" and "not captured yet, because the replicator may not read them
 * (created after the last sql init) …"); each carries a `skippedTables` field. The alert matches the line,
 * not the summary's `skippedTables` array, whose emptiness a Logging query cannot test reliably. The line is
 * written at an execution's first run and whenever the set of skipped tables changes (listener/run.ts
 * SkippedTablesNotice): every scheduled execution (one run each) says it, a continuous one says it at its
 * start and on each change, not once a second. A log-match condition fires on each matching entry, so the
 * alert still fires on every such line, notified at most once per LOG_ALERT_RATE_LIMIT ("Not more than one
 * notification per period", AlertStrategy.NotificationRateLimit,
 * https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.alertPolicies).
 */
export const SKIPPED_TABLES_MESSAGE = 'not captured';

/** Not more than one notification per this period for a log-match alert (required for that condition type). */
export const LOG_ALERT_RATE_LIMIT = '3600s';

export interface MonitoringArgs {
  project: pulumi.Input<string>;
  namePrefix: string;
  listenerJobName: pulumi.Input<string>;
  sinkJobName: pulumi.Input<string>;
  adminJobName: pulumi.Input<string>;
  /** The change subscription (its dead-letter count is what we watch). */
  subscriptionName: pulumi.Input<string>;
  /** "project:instance", the cloudsql_database resource's database_id; unset when no Cloud SQL metrics are ours. */
  databaseId?: pulumi.Input<string>;
  slotLagAlertBytes: number;
  diskUtilizationAlertPercent: number;
  alertEmail?: string;
}

/**
 * Alerts for failed job executions, dead letters, a lagging, stuck or lost replication slot, listener errors
 * and a filling database disk.
 *
 * The listener's own reports are watched with log-match conditions (conditionMatchedLog) on its summary and
 * ERROR lines, not with a threshold on a log-based metric: an alert policy naming a log-based metric created
 * in the same `pulumi up` fails with "Error 404: Cannot find metric(s) that match type =
 * "logging.googleapis.com/user/...". If a metric was created recently, it could take up to 10 minutes to
 * become available" (hashicorp/terraform-provider-google#11102, still open), so a fresh project's first `up`
 * would fail. A log-match condition needs no metric descriptor. Log-based alert policies take exactly one
 * condition and require a notification rate limit ("Required for alert policies with a LogMatch condition",
 * AlertStrategy.notification_rate_limit, https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.alertPolicies).
 * The slot-lag log-based metric is still created, for charts; no alert depends on it.
 */
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
    ) => {
      const logBased = conditions.some((c) => c.conditionMatchedLog !== undefined);
      return new gcp.monitoring.AlertPolicy(
        `${name}-${id}`,
        {
          project: args.project,
          displayName: `pgcdc ${args.namePrefix}: ${displayName}`,
          combiner: 'OR',
          conditions,
          notificationChannels: channels,
          documentation: { content: documentation, mimeType: 'text/markdown' },
          alertStrategy: logBased
            ? { autoClose: '86400s', notificationRateLimit: { period: LOG_ALERT_RATE_LIMIT } }
            : { autoClose: '86400s' },
        },
        child,
      );
    };

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

    // The listener's summary lines, in the Logging query language (https://cloud.google.com/logging/docs/view/logging-query-language).
    const listenerLog = pulumi.interpolate`resource.type = "cloud_run_job" AND resource.labels.job_name = "${args.listenerJobName}"`;
    const summary = pulumi.interpolate`${listenerLog} AND jsonPayload.command = "listen"`;
    const logMatch = (
      displayName: string,
      filter: pulumi.Input<string>,
    ): gcp.types.input.monitoring.AlertPolicyCondition => ({
      displayName,
      conditionMatchedLog: { filter },
    });

    // Log-based metric: the listener's reported slot lag, one sample per run, for charts.
    this.slotLagMetric = new gcp.logging.Metric(
      `${name}-slot-lag`,
      {
        project: args.project,
        name: `${args.namePrefix}/slot_lag_bytes`,
        description: 'WAL bytes the replication slot retains, as reported by the listener after each run',
        filter: pulumi.interpolate`${summary} AND jsonPayload.${SUMMARY_FIELDS.lag} >= 0`,
        metricDescriptor: { metricKind: 'DELTA', valueType: 'DISTRIBUTION', unit: 'By' },
        valueExtractor: `EXTRACT(jsonPayload.${SUMMARY_FIELDS.lag})`,
        // Powers of two from 1 B to 2^40 B (1 TiB).
        bucketOptions: { exponentialBuckets: { numFiniteBuckets: 40, growthFactor: 2, scale: 1 } },
      },
      child,
    );

    this.policies = [
      policy(
        'job-failed',
        'job execution failed',
        'A listener, sink or admin execution failed. Check its logs: `gcloud run jobs executions list --job <job>`. ' +
          'Nothing is lost (the slot and the subscription keep the data) but nothing moves until runs succeed.',
        [
          jobFailed(args.listenerJobName, 'listener'),
          jobFailed(args.sinkJobName, 'sink'),
          jobFailed(args.adminJobName, 'admin'),
        ],
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
          logMatch(
            'slot lag above threshold',
            pulumi.interpolate`${summary} AND jsonPayload.${SUMMARY_FIELDS.lag} > ${args.slotLagAlertBytes}`,
          ),
        ],
      ),
      policy(
        'stuck-transaction',
        'listener stuck in a transaction',
        'A listener run hit its time limit inside a transaction it could not finish, so the slot could not ' +
          'advance past it (summary field `stuckTransaction`: xid, startLsn, changesRead). WAL is retained until ' +
          'a run gets through it: raise `listenerMaxRunSeconds` (and the timeout), or find the huge transaction.',
        [
          logMatch(
            'summary reports a stuck transaction',
            // A field test (":*") matches only when the object is there, not when the summary says null.
            pulumi.interpolate`${summary} AND jsonPayload.${SUMMARY_FIELDS.stuckTransaction}.xid:*`,
          ),
        ],
      ),
      policy(
        'slot-lost',
        'replication slot lost',
        'The replication slot was invalidated (pg_replication_slots.wal_status = lost): changes after the loss ' +
          'cannot be read from it. The listener stops with the replication-setup exit code; recreate the slot ' +
          '(`pgcdc sql teardown`, `pgcdc sql init`) and re-snapshot (`pgcdc snapshot --restart`).',
        [
          // The listener refuses a lost slot before it prints a summary: its ERROR line (listener/errors.ts
          // lostSlotError) names the state; a summary that reports it is matched too.
          logMatch(
            'slot reported lost',
            pulumi.interpolate`(${summary} AND jsonPayload.${SUMMARY_FIELDS.walStatus} = "lost") OR (${listenerLog} AND severity >= ERROR AND jsonPayload.message : "wal_status = lost")`,
          ),
        ],
      ),
      policy(
        'lookup-blocked',
        'TOAST lookup or snapshot blocked by a lock',
        'A listener run stopped because the lookup of unchanged TOAST values on a table (label `table`, summary ' +
          'field `blockedLookup`), or a chunk read of its initial snapshot (label `snapshotTable`, summary ' +
          'field `snapshot.blocked`), was refused a lock 3 times: the application holds or waits for an ACCESS ' +
          'EXCLUSIVE lock on it (ALTER TABLE, TRUNCATE, VACUUM FULL...). Nothing is lost: the run confirmed ' +
          'nothing past that change and every run retries, but the pipeline waits. The WARNING line next to the ' +
          'summary names the sessions in the way; `pgcdc status` shows them and how many runs were blocked. End ' +
          'the session (`SELECT pg_terminate_backend(pid)`) or let the migration finish.',
        [
          {
            displayName: 'summary reports stoppedBy lookup-blocked, or snapshot.stoppedBy blocked',
            conditionMatchedLog: {
              // A JSON field compared with "=": "Simple restriction: resource.type = ..." over the LogEntry's
              // fields, jsonPayload.* included (https://cloud.google.com/logging/docs/view/logging-query-language).
              // One condition, both cases: @pulumi/gcp monitoring.AlertPolicy conditionMatchedLog, "A condition
              // that checks for log messages matching given constraints. If set, no other conditions can be
              // present."
              filter: pulumi.interpolate`${summary} AND (jsonPayload.${SUMMARY_FIELDS.stoppedBy} = "${LOOKUP_BLOCKED}" OR jsonPayload.${SUMMARY_FIELDS.snapshotStoppedBy} = "${SNAPSHOT_BLOCKED}")`,
              // "Each combination of extracted values is treated as a separate rule for the purposes of
              // triggering notifications. Label keys and corresponding values can be used in notifications
              // generated by this condition" (AlertPolicy.Condition.LogMatch.label_extractors,
              // https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.alertPolicies; @pulumi/gcp
              // monitoring.AlertPolicy conditionMatchedLog.labelExtractors, the same words): one notification
              // per blocked table and rate-limit period, naming it. Same syntax as a log-based metric's
              // extractor, like the slot-lag metric's EXTRACT(jsonPayload.lagBytes) below.
              labelExtractors: {
                table: `EXTRACT(jsonPayload.${SUMMARY_FIELDS.blockedTable})`,
                snapshotTable: `EXTRACT(jsonPayload.${SUMMARY_FIELDS.blockedSnapshotTable})`,
              },
            },
          },
        ],
      ),
      policy(
        'tables-skipped',
        'captured tables not captured',
        'A listener run could not capture some of the captured tables (summary field `skippedTables`, and a ' +
          'WARNING line naming them): `not-granted`, a table created after the last `pgcdc sql init`, which ' +
          'the replicator may not read — run `pgcdc sql init` (it grants it; its rows are then snapshotted); ' +
          '`unlogged`, a table whose changes never reach the WAL — `ALTER TABLE ... SET LOGGED`, or leave it ' +
          'out of `pgcdc:tables`. Until then its replica does not change. A continuous listener writes the ' +
          'WARNING when it starts and when the set of skipped tables changes; every summary lists them.',
        [
          logMatch(
            'listener WARNING: tables not captured',
            // ":" is the has operator, a substring test on a string field: "NOT textPayload:robot ... whose
            // textPayload field doesn't contain the string robot anywhere inside it"
            // (https://cloud.google.com/logging/docs/view/logging-query-language). Only the listen run writes
            // these WARNINGs (at an execution's start and when the skipped set changes); the summary lines
            // carry no severity.
            pulumi.interpolate`${listenerLog} AND severity = WARNING AND jsonPayload.message : "${SKIPPED_TABLES_MESSAGE}"`,
          ),
        ],
      ),
      policy(
        'listener-errors',
        'listener error',
        'The listener logged an ERROR line (its failure reason: `jsonPayload.error`, `jsonPayload.message`).',
        [logMatch('listener ERROR line', pulumi.interpolate`${listenerLog} AND severity >= ERROR`)],
      ),
    ];

    if (args.databaseId !== undefined) {
      this.policies.push(
        policy(
          'disk-filling',
          'database disk filling',
          'The Cloud SQL disk is filling, often because a replication slot retains WAL. Check slot lag first; ' +
            'the disk grows on its own only up to databaseDiskAutoresizeLimitGb.',
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
      );
    }

    this.registerOutputs({});
  }
}
