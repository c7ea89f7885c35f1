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
 * needs to move a message to the dead-letter topic (after making sure that agent exists, and giving it the
 * project role Google gives the agents it creates).
 */
export class Messaging extends pulumi.ComponentResource {
  readonly topic: gcp.pubsub.Topic;
  readonly subscription: gcp.pubsub.Subscription;
  readonly deadLetterTopic: gcp.pubsub.Topic;
  readonly deadLetterSubscription: gcp.pubsub.Subscription;
  /** Makes sure Pub/Sub's service agent exists before it is granted anything. */
  readonly pubsubAgent: gcp.projects.ServiceIdentity;

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
    // https://cloud.google.com/pubsub/docs/reference/rest/v1/projects.subscriptions#DeadLetterPolicy).
    //
    // That agent may not exist yet when a fresh project's API has just been enabled: "If an API requires a
    // service agent, then Google Cloud creates the service agent at some point after you activate and use the
    // API" and "If a service agent hasn't been created yet, then you can't grant roles to the service agent"
    // (https://cloud.google.com/iam/docs/service-agents, https://cloud.google.com/iam/docs/create-service-agents).
    // So the stack asks for it first, as `gcloud beta services identity create --service=pubsub.googleapis.com`
    // does: ServiceIdentity calls Service Usage's services.generateServiceIdentity and waits for its operation
    // (https://cloud.google.com/service-usage/docs/reference/rest/v1beta1/services/generateServiceIdentity), and
    // both grants wait for it. "Once created, this resource cannot be updated or destroyed. These actions are a
    // no-op" (provider docs, gcp.projects.ServiceIdentity): destroy leaves the agent to the project.
    // (@pulumi/gcp is built from the google-beta provider: no separate beta provider is needed.)
    this.pubsubAgent = new gcp.projects.ServiceIdentity(
      `${name}-pubsub-agent`,
      { project: args.project, service: 'pubsub.googleapis.com' },
      child,
    );
    // The grants name the agent by the address the DeadLetterPolicy reference gives, not by the resource's
    // `email` output: the provider sets that output only when the operation's response carries it ("This API
    // may not return the service identity's details, even if the relevant Google API is configured for service
    // identities", google-beta resource_project_service_identity.go), and a stack deployed before this resource
    // existed keeps exactly the grants it has.
    const agentMember = pulumi.interpolate`serviceAccount:${pubsubAgentEmail(args.projectNumber)}`;
    const agentReady = childOptions(this, opts, [this.pubsubAgent]);

    // An agent created on request does not get the project role Google gives one it creates itself: "After
    // you trigger service agent creation, you must grant the service agents the roles that they are typically
    // granted automatically. If you don't, some services might not function properly. This is because service
    // agents that are created at a user's request aren't automatically granted roles"
    // (https://cloud.google.com/iam/docs/create-service-agents). The service agents page lists for each agent
    // "The role that the service agent is granted on the project. When the service agent is created, Google
    // grants this role automatically" (https://cloud.google.com/iam/docs/service-agents); for Pub/Sub's it is
    // Cloud Pub/Sub Service Agent, roles/pubsub.serviceAgent ("Grants Cloud Pub/Sub Service Account access to
    // manage resources", https://cloud.google.com/iam/docs/roles-permissions/pubsub). Dead-lettering needs
    // only the two grants below, but the project's other uses of Pub/Sub may rely on the default role (the
    // "might not function properly" above), so the stack grants it as Google would have.
    // IAMMember is non-authoritative: it adds this one binding and leaves the rest of the project's policy.
    // retainOnDelete: Google may have granted the same binding itself (an agent it created on first use), so
    // `pulumi destroy` must not revoke it: "Pulumi will not call through to the resource provider's Delete
    // method when deleting or replacing the resource during pulumi up or pulumi destroy. As a result, the
    // resource will not be deleted from the backing cloud provider, but will be removed from the Pulumi
    // state" (https://www.pulumi.com/docs/iac/concepts/resources/options/retainondelete/).
    new gcp.projects.IAMMember(
      `${name}-pubsub-agent-role`,
      { project: args.project, role: 'roles/pubsub.serviceAgent', member: agentMember },
      { ...agentReady, retainOnDelete: true },
    );
    const agentPublishes = new gcp.pubsub.TopicIAMMember(
      `${name}-agent-publishes-dead-letters`,
      {
        project: args.project,
        topic: this.deadLetterTopic.name,
        role: 'roles/pubsub.publisher',
        member: agentMember,
      },
      agentReady,
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
      agentReady,
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

/** Pub/Sub's service agent in the project with this number (the DeadLetterPolicy reference's form). */
export function pubsubAgentEmail(projectNumber: pulumi.Input<string>): pulumi.Output<string> {
  return pulumi.interpolate`service-${projectNumber}@gcp-sa-pubsub.iam.gserviceaccount.com`;
}
