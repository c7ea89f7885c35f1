import * as gcp from '@pulumi/gcp';
import * as pulumi from '@pulumi/pulumi';
import type { Config } from './config';
import { childOptions, type ComponentOptions } from './options';

export interface MessagingArgs {
  project: pulumi.Input<string>;
  namePrefix: string;
  /** The project's number: Pub/Sub's service agent is service-<number>@gcp-sa-pubsub.iam.gserviceaccount.com. */
  projectNumber: pulumi.Input<string>;
  settings: Config['messaging'];
  labels: Record<string, string>;
}

/**
 * The change topic and the sink's subscription, with retries and a dead-letter topic (and a subscription
 * on it, so dead letters are kept until someone reads them), plus the grants Pub/Sub's own service agent
 * needs to move a message to the dead-letter topic.
 */
export class Messaging extends pulumi.ComponentResource {
  readonly topic: gcp.pubsub.Topic;
  readonly subscription: gcp.pubsub.Subscription;
  readonly deadLetterTopic: gcp.pubsub.Topic;
  readonly deadLetterSubscription: gcp.pubsub.Subscription;

  constructor(name: string, args: MessagingArgs, opts?: ComponentOptions) {
    super('pgcdc:infra:Messaging', name, {}, opts);
    const child = childOptions(this, opts);
    const s = args.settings;
    const retention = `${s.retentionSeconds}s`;
    // An empty ttl means "never expire": a subscription is deleted after 31 idle days by default, and a
    // pipeline paused for a month must not lose its backlog.
    const neverExpire = { ttl: '' };

    this.topic = new gcp.pubsub.Topic(
      `${name}-changes`,
      { project: args.project, name: `${args.namePrefix}-changes`, labels: args.labels },
      child,
    );
    this.deadLetterTopic = new gcp.pubsub.Topic(
      `${name}-dead-letter`,
      { project: args.project, name: `${args.namePrefix}-changes-dead-letter`, labels: args.labels },
      child,
    );

    // Pub/Sub forwards dead letters as its service agent, which must publish to the dead-letter topic and
    // subscribe (acknowledge) on the source subscription: "The Pub/Sub service account associated with the
    // enclosing subscription's parent project (i.e., service-{project_number}@gcp-sa-pubsub.iam.gserviceaccount.com)
    // must have permission to Publish() to this topic" (DeadLetterPolicy.dead_letter_topic,
    // https://cloud.google.com/pubsub/docs/reference/rest/v1/projects.subscriptions#DeadLetterPolicy). The agent
    // exists once the API is enabled; its address is built from the project number (no beta resource needed).
    const agentMember = pulumi.interpolate`serviceAccount:service-${args.projectNumber}@gcp-sa-pubsub.iam.gserviceaccount.com`;
    const agentPublishes = new gcp.pubsub.TopicIAMMember(
      `${name}-agent-publishes-dead-letters`,
      {
        project: args.project,
        topic: this.deadLetterTopic.name,
        role: 'roles/pubsub.publisher',
        member: agentMember,
      },
      child,
    );

    this.subscription = new gcp.pubsub.Subscription(
      `${name}-sink`,
      {
        project: args.project,
        name: `${args.namePrefix}-changes-sink`,
        topic: this.topic.id,
        // The sink acks only after BigQuery accepted the rows: give it the whole deadline.
        ackDeadlineSeconds: s.ackDeadlineSeconds,
        messageRetentionDuration: retention,
        retainAckedMessages: false,
        expirationPolicy: neverExpire,
        // The listener publishes with one ordering key per table, so a table's messages arrive in publish
        // order and a redelivery resends what followed it (BRIEF decision 5). "Message ordering is a feature
        // in Pub/Sub that lets you receive messages in your subscriber clients in the order that they were
        // published by the publisher clients"; it needs both the publisher's ordering keys and this
        // subscription setting (https://cloud.google.com/pubsub/docs/ordering). The setting cannot be changed
        // in place: changing it replaces the subscription. The dead-letter subscription stays unordered: the
        // same page says forwarding to a dead-letter topic is best effort and may not keep the order, and its
        // messages go to _failed, never to a replica.
        enableMessageOrdering: true,
        retryPolicy: { minimumBackoff: `${s.minBackoffSeconds}s`, maximumBackoff: `${s.maxBackoffSeconds}s` },
        deadLetterPolicy: {
          deadLetterTopic: this.deadLetterTopic.id,
          maxDeliveryAttempts: s.maxDeliveryAttempts,
        },
        labels: args.labels,
      },
      childOptions(this, opts, [agentPublishes]),
    );
    new gcp.pubsub.SubscriptionIAMMember(
      `${name}-agent-acks-dead-letters`,
      {
        project: args.project,
        subscription: this.subscription.name,
        role: 'roles/pubsub.subscriber',
        member: agentMember,
      },
      child,
    );

    this.deadLetterSubscription = new gcp.pubsub.Subscription(
      `${name}-dead-letter`,
      {
        project: args.project,
        name: `${args.namePrefix}-changes-dead-letter`,
        topic: this.deadLetterTopic.id,
        ackDeadlineSeconds: s.ackDeadlineSeconds,
        // Dead letters are kept as long as Pub/Sub allows, so the sink can file them in the _failed table.
        messageRetentionDuration: retention,
        expirationPolicy: neverExpire,
        labels: args.labels,
      },
      child,
    );

    this.registerOutputs({ topic: this.topic.name, subscription: this.subscription.name });
  }
}
