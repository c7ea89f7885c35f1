import * as gcp from '@pulumi/gcp';
import * as pulumi from '@pulumi/pulumi';
import { childOptions, type ComponentOptions } from './options';

export interface IdentityArgs {
  project: pulumi.Input<string>;
  namePrefix: string;
  /** What the listener publishes to. */
  topic: pulumi.Input<string>;
  /** What the sink pulls from: the change subscription and the dead-letter subscription. */
  subscription: pulumi.Input<string>;
  deadLetterSubscription: pulumi.Input<string>;
  /** Dataset the sink creates and writes tables in. */
  datasetId: pulumi.Input<string>;
  /** Secret id (projects/P/secrets/S) of the replication password, read by the listener only. */
  passwordSecretId: pulumi.Input<string>;
  /** Cloud SQL instance name, the only instance the listener may connect to. */
  instanceName: pulumi.Input<string>;
}

/**
 * One service account per role, each granted only what it needs on only the resources it touches:
 * - listener: publish to the topic, read the password secret, connect to the one Cloud SQL instance;
 * - sink: consume the two subscriptions, edit tables of the one dataset, run BigQuery jobs;
 * - invoker: nothing here; it gets run.invoker on the two Cloud Run jobs (see Jobs), and Cloud Scheduler
 *   uses its OAuth token.
 */
export class Identity extends pulumi.ComponentResource {
  readonly listener: gcp.serviceaccount.Account;
  readonly sink: gcp.serviceaccount.Account;
  readonly invoker: gcp.serviceaccount.Account;
  /** Grants a job needs before it can start (Cloud Run checks secret access when the job is created). */
  readonly listenerGrants: pulumi.Resource[];
  readonly sinkGrants: pulumi.Resource[];

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
    this.invoker = account('invoker', 'Cloud Scheduler starts the pgcdc Cloud Run jobs with this identity');

    const listenerMember = pulumi.interpolate`serviceAccount:${this.listener.email}`;
    const sinkMember = pulumi.interpolate`serviceAccount:${this.sink.email}`;

    this.listenerGrants = [
      new gcp.pubsub.TopicIAMMember(
        `${name}-listener-publishes`,
        { project: args.project, topic: args.topic, role: 'roles/pubsub.publisher', member: listenerMember },
        child,
      ),
      new gcp.secretmanager.SecretIamMember(
        `${name}-listener-reads-password`,
        {
          project: args.project,
          secretId: args.passwordSecretId,
          role: 'roles/secretmanager.secretAccessor',
          member: listenerMember,
        },
        child,
      ),
      // Cloud SQL has no instance-level IAM policy: a project binding limited by an IAM condition to our
      // instance is the narrowest grant (what the Cloud SQL connector needs to fetch certificates and dial).
      new gcp.projects.IAMMember(
        `${name}-listener-connects`,
        {
          project: args.project,
          role: 'roles/cloudsql.client',
          member: listenerMember,
          condition: {
            title: 'pgcdc instance only',
            expression: pulumi.interpolate`resource.type == "sqladmin.googleapis.com/Instance" && resource.name == "projects/${args.project}/instances/${args.instanceName}"`,
          },
        },
        child,
      ),
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
      // Running a query/DDL job is a project permission in BigQuery; it gives no data access by itself.
      new gcp.projects.IAMMember(
        `${name}-sink-runs-jobs`,
        { project: args.project, role: 'roles/bigquery.jobUser', member: sinkMember },
        child,
      ),
    ];

    this.registerOutputs({
      listener: this.listener.email,
      sink: this.sink.email,
      invoker: this.invoker.email,
    });
  }
}
