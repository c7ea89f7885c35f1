import * as gcp from '@pulumi/gcp';
import * as pulumi from '@pulumi/pulumi';
import type { SecretHandle } from './credentials';
import { childOptions, type ComponentOptions } from './options';

export interface IdentityArgs {
  project: pulumi.Input<string>;
  namePrefix: string;
  /** What the listener publishes to. */
  topic: pulumi.Input<string>;
  /** What the sink pulls from: the change subscription and the dead-letter subscription. */
  subscription: pulumi.Input<string>;
  deadLetterSubscription: pulumi.Input<string>;
  /** Dataset the sink creates and writes tables in (and `pgcdc verify` reads through the listener job). */
  datasetId: pulumi.Input<string>;
  /** The admin password: readable by the admin job only. */
  adminSecret: SecretHandle;
  /** The replicator password: readable by the listener (it logs in with it) and the admin job (it sets it). */
  replicatorSecret: SecretHandle;
}

/**
 * One service account per role, each granted only what it needs on only the resources it touches:
 * - listener: publish to the topic, read the replicator's password, read the dataset (`verify` compares it
 *   with the source) and run BigQuery query jobs;
 * - admin: read the admin and the replicator passwords (the SQL init logs in as admin and sets the
 *   replicator's password); nothing else;
 * - sink: consume the two subscriptions, edit tables of the one dataset, run BigQuery jobs;
 * - invoker: nothing here; it gets run.invoker on the scheduled jobs (see Jobs).
 * No account holds a Cloud SQL role: the jobs connect to Postgres directly (PSC or private IP) with a
 * password, and "If you connect directly, then you don't need any IAM roles or permissions"
 * (https://cloud.google.com/sql/docs/postgres/configure-private-service-connect).
 */
export class Identity extends pulumi.ComponentResource {
  readonly listener: gcp.serviceaccount.Account;
  readonly sink: gcp.serviceaccount.Account;
  readonly admin: gcp.serviceaccount.Account;
  readonly invoker: gcp.serviceaccount.Account;
  /** Grants a job needs before it can start (Cloud Run checks secret access when the job is created). */
  readonly listenerGrants: pulumi.Resource[];
  readonly sinkGrants: pulumi.Resource[];
  readonly adminGrants: pulumi.Resource[];

  constructor(name: string, args: IdentityArgs, opts?: ComponentOptions) {
    super('pgcdc:infra:Identity', name, {}, opts);
    const child = childOptions(this, opts);
    const account = (role: string, what: string) =>
      new gcp.serviceaccount.Account(
        `${name}-${role}`,
        {
          project: args.project,
          accountId: `${args.namePrefix}-${role}`,
          displayName: `pgcdc ${role}`,
          description: what,
        },
        child,
      );
    this.listener = account('listener', 'Reads the replication slot and publishes changes to Pub/Sub');
    this.sink = account('sink', 'Drains the change subscription into BigQuery');
    this.admin = account('admin', 'Runs the SQL init, teardown and checks as the database admin');
    this.invoker = account('invoker', 'Cloud Scheduler starts the pgcdc Cloud Run jobs with this identity');

    const listenerMember = pulumi.interpolate`serviceAccount:${this.listener.email}`;
    const sinkMember = pulumi.interpolate`serviceAccount:${this.sink.email}`;
    const adminMember = pulumi.interpolate`serviceAccount:${this.admin.email}`;

    // Additive member grants (never a binding or a policy): on a secret the user owns they add our account
    // and remove only it on destroy.
    const readsSecret = (id: string, secret: SecretHandle, member: pulumi.Input<string>) =>
      new gcp.secretmanager.SecretIamMember(
        `${name}-${id}`,
        { project: secret.project, secretId: secret.id, role: 'roles/secretmanager.secretAccessor', member },
        child,
      );
    // Running a query job is a project permission in BigQuery; it gives no data access by itself.
    const runsJobs = (id: string, member: pulumi.Input<string>) =>
      new gcp.projects.IAMMember(
        `${name}-${id}`,
        { project: args.project, role: 'roles/bigquery.jobUser', member },
        child,
      );

    this.listenerGrants = [
      new gcp.pubsub.TopicIAMMember(
        `${name}-listener-publishes`,
        { project: args.project, topic: args.topic, role: 'roles/pubsub.publisher', member: listenerMember },
        child,
      ),
      readsSecret('listener-reads-replicator-password', args.replicatorSecret, listenerMember),
      // `pgcdc verify` runs as an execution of the listener job and reads the replicas it compares.
      new gcp.bigquery.DatasetIamMember(
        `${name}-listener-reads-dataset`,
        {
          project: args.project,
          datasetId: args.datasetId,
          role: 'roles/bigquery.dataViewer',
          member: listenerMember,
        },
        child,
      ),
      runsJobs('listener-runs-queries', listenerMember),
    ];

    this.adminGrants = [
      readsSecret('admin-reads-admin-password', args.adminSecret, adminMember),
      readsSecret('admin-reads-replicator-password', args.replicatorSecret, adminMember),
    ];

    this.sinkGrants = [
      new gcp.pubsub.SubscriptionIAMMember(
        `${name}-sink-consumes`,
        {
          project: args.project,
          subscription: args.subscription,
          role: 'roles/pubsub.subscriber',
          member: sinkMember,
        },
        child,
      ),
      new gcp.pubsub.SubscriptionIAMMember(
        `${name}-sink-consumes-dead-letters`,
        {
          project: args.project,
          subscription: args.deadLetterSubscription,
          role: 'roles/pubsub.subscriber',
          member: sinkMember,
        },
        child,
      ),
      // Create, evolve and write (Storage Write API) the tables of this dataset only.
      new gcp.bigquery.DatasetIamMember(
        `${name}-sink-edits-dataset`,
        {
          project: args.project,
          datasetId: args.datasetId,
          role: 'roles/bigquery.dataEditor',
          member: sinkMember,
        },
        child,
      ),
      runsJobs('sink-runs-jobs', sinkMember),
    ];

    this.registerOutputs({
      listener: this.listener.email,
      sink: this.sink.email,
      admin: this.admin.email,
      invoker: this.invoker.email,
    });
  }
}
