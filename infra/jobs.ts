import * as gcp from '@pulumi/gcp';
import * as pulumi from '@pulumi/pulumi';
import { ENV } from '../contract/env';
import { listenerNodeOptions } from '../listener/runtime';
import { sinkNodeOptions } from '../sink/runtime';
import { memoryMib, type JobSettings } from './config';
import { childOptions, type ComponentOptions } from './options';

type Env = gcp.types.input.cloudrunv2.JobTemplateTemplateContainerEnv;

/**
 * Environment of the admin-side job modes (BRIEF decision 1); the listener reads these names in its
 * sql-init / sql-teardown / check modes. (To move into contract/env.ts with the listener's side.)
 */
export const ADMIN_ENV = {
  adminUser: 'PGCDC_ADMIN_USER',
  adminPassword: 'PGCDC_ADMIN_PASSWORD',
  replicationUser: ENV.replicationUser,
  replicatorPassword: 'PGCDC_REPLICATOR_PASSWORD',
  replicaIdentityFull: 'PGCDC_REPLICA_IDENTITY_FULL',
} as const;

/** What the admin job runs when started without per-execution args: a read-only check, never a change. */
export const ADMIN_DEFAULT_ARGS = ['check'];

/** A secret handed to a job as an environment variable. */
export interface SecretEnv {
  secret: pulumi.Input<string>;
  version: pulumi.Input<string>;
}

/** Direct VPC egress of the database-facing jobs. */
export interface JobVpc {
  /**
   * Omitted for a user's subnet: "If network is not specified, it will be looked up from the subnetwork"
   * (provider docs, vpcAccess.networkInterfaces.network).
   */
  network?: pulumi.Input<string>;
  subnetwork: pulumi.Input<string>;
  tags: string[];
}

export interface JobsArgs {
  project: pulumi.Input<string>;
  region: string;
  namePrefix: string;
  timeZone: string;
  listener: JobSettings;
  sink: JobSettings;
  listenerImage: pulumi.Input<string>;
  sinkImage: pulumi.Input<string>;
  listenerServiceAccount: pulumi.Input<string>;
  sinkServiceAccount: pulumi.Input<string>;
  adminServiceAccount: pulumi.Input<string>;
  /** Cloud Scheduler calls the jobs' :run endpoint with an OAuth token of this account. */
  invokerServiceAccount: pulumi.Input<string>;
  /** How the listener and admin jobs reach the database. */
  vpc: JobVpc;
  /** Database connection shared by the listener and admin jobs (PG* host/port/db/sslmode, CA, slot...). */
  databaseEnv: Record<string, pulumi.Input<string>>;
  /** Listener-only environment (topic, replicator login, BigQuery for verify...). */
  listenerEnv: Record<string, pulumi.Input<string>>;
  sinkEnv: Record<string, pulumi.Input<string>>;
  /** Admin-only environment (ADMIN_ENV names). */
  adminEnv: Record<string, pulumi.Input<string>>;
  adminPassword: SecretEnv;
  replicatorPassword: SecretEnv;
  /** IAM grants each job's account needs before the job can be created or run. */
  listenerGrants: pulumi.Resource[];
  sinkGrants: pulumi.Resource[];
  adminGrants: pulumi.Resource[];
}

/**
 * The listener and sink Cloud Run Jobs, each started on its schedule by a Cloud Scheduler job POSTing to the
 * Cloud Run Admin API's `:run` method as the invoker account; and the admin job (no schedule), which the CLI
 * runs with per-execution container args (`sql-init`, `sql-teardown`, `check`).
 *
 * Two Google service agents work for these resources, and the stack grants neither anything: Cloud Run's
 * (service-<number>@serverless-robot-prod.iam.gserviceaccount.com) reads the image, and Cloud Scheduler's
 * (service-<number>@gcp-sa-cloudscheduler.iam.gserviceaccount.com) makes the invoker's OAuth token. Each works
 * through the role Google grants it when Google creates it ("When the service agent is created, Google Cloud
 * grants this role automatically", https://cloud.google.com/iam/docs/service-agents; for the scheduler "Don't
 * revoke the Cloud Scheduler Service Agent role (roles/cloudscheduler.serviceAgent) from the Cloud Scheduler
 * service agent on your project. Doing so results in 403 responses to endpoints requiring authentication",
 * https://cloud.google.com/scheduler/docs/http-target-auth). So, unlike Pub/Sub's agent (messaging.ts), they are
 * not created through ServiceIdentity: "service agents that are created at a user's request aren't
 * automatically granted roles" (https://cloud.google.com/iam/docs/create-service-agents), and asking first could
 * leave them without the roles they work by. The image is in this project's repository (images.ts); a prebuilt
 * image from another project's registry needs the Cloud Run agent granted there by its owner: "If your
 * repositories are in a different project, you must grant Artifact Registry Reader permissions to the Cloud Run
 * Service Agent" (https://cloud.google.com/artifact-registry/docs/integrate-cloud-run).
 */
export class Jobs extends pulumi.ComponentResource {
  readonly listener: gcp.cloudrunv2.Job;
  readonly sink: gcp.cloudrunv2.Job;
  readonly admin: gcp.cloudrunv2.Job;
  readonly listenerSchedule: gcp.cloudscheduler.Job;
  readonly sinkSchedule: gcp.cloudscheduler.Job;
  /** Full resource names, "projects/P/locations/R/jobs/N". */
  readonly listenerJobId: pulumi.Output<string>;
  readonly sinkJobId: pulumi.Output<string>;
  readonly adminJobId: pulumi.Output<string>;

  constructor(name: string, args: JobsArgs, opts?: ComponentOptions) {
    super('pgcdc:infra:Jobs', name, {}, opts);

    const plainEnv = (vars: Record<string, pulumi.Input<string>>): Env[] =>
      Object.entries(vars).map(([envName, value]) => ({ name: envName, value }));
    // A secret never appears in the job spec: Cloud Run reads this version of the secret at start.
    const secretEnv = (envName: string, s: SecretEnv): Env => ({
      name: envName,
      valueSource: { secretKeyRef: { secret: s.secret, version: s.version } },
    });

    const job = (
      role: 'listener' | 'sink' | 'admin',
      settings: JobSettings,
      image: pulumi.Input<string>,
      serviceAccount: pulumi.Input<string>,
      envs: Env[],
      vpc: JobVpc | undefined,
      grants: pulumi.Resource[],
      containerArgs?: string[],
    ) =>
      new gcp.cloudrunv2.Job(
        `${name}-${role}`,
        {
          project: args.project,
          location: args.region,
          name: `${args.namePrefix}-${role}`,
          // The jobs hold no data; a stack must be able to destroy them.
          deletionProtection: false,
          labels: { app: 'pgcdc', role },
          template: {
            taskCount: settings.taskCount,
            parallelism: settings.taskCount,
            template: {
              serviceAccount,
              timeout: `${settings.timeoutSeconds}s`,
              maxRetries: settings.maxRetries,
              executionEnvironment: 'EXECUTION_ENVIRONMENT_GEN2',
              containers: [
                {
                  image,
                  envs,
                  // Appended to the image's ENTRYPOINT; an execution's containerOverrides.args replace them.
                  args: containerArgs,
                  resources: { limits: { cpu: settings.cpu, memory: settings.memory } },
                },
              ],
              // Direct VPC egress (no connector VMs): only traffic to private ranges (the database) enters
              // the VPC; Google APIs are reached the usual way.
              vpcAccess: vpc
                ? {
                    networkInterfaces: [{ network: vpc.network, subnetwork: vpc.subnetwork, tags: vpc.tags }],
                    egress: 'PRIVATE_RANGES_ONLY',
                  }
                : undefined,
            },
          },
        },
        // A fixed name cannot exist twice, so a replacement must delete the old job first.
        { ...childOptions(this, opts, grants), deleteBeforeReplace: true },
      );

    const runSettings = (s: JobSettings): Record<string, string> => ({
      [ENV.maxRunSeconds]: String(s.maxRunSeconds),
      [ENV.mode]: 'once',
    });
    // The V8 heap cap follows the container's memory limit (contract/node-heap.ts; each image's Dockerfile sets
    // the value for 512Mi as its default). The job's env replaces the image's ENV of the same name, as
    // Kubernetes-style container specs do (env set in the spec "override any environment variables specified
    // in the container image", https://kubernetes.io/docs/tasks/inject-data-application/define-environment-variable-container/;
    // Cloud Run's own pages say nothing on it). Were it the other way round, the job would run with the 512Mi
    // sizing, which fits any larger container.
    const heap = (nodeOptions: (memoryMib: number) => string, s: JobSettings): Record<string, string> => ({
      NODE_OPTIONS: nodeOptions(memoryMib(s.memory)),
    });

    this.listener = job(
      'listener',
      args.listener,
      args.listenerImage,
      args.listenerServiceAccount,
      [
        ...plainEnv({
          ...args.databaseEnv,
          ...args.listenerEnv,
          ...runSettings(args.listener),
          ...heap(listenerNodeOptions, args.listener),
        }),
        // The listener logs in as the replicator (LOGIN REPLICATION + SELECT on the captured tables).
        secretEnv('PGPASSWORD', args.replicatorPassword),
      ],
      args.vpc,
      args.listenerGrants,
    );
    this.sink = job(
      'sink',
      args.sink,
      args.sinkImage,
      args.sinkServiceAccount,
      plainEnv({ ...args.sinkEnv, ...runSettings(args.sink), ...heap(sinkNodeOptions, args.sink) }),
      // The sink talks only to Google APIs: it needs no VPC.
      undefined,
      args.sinkGrants,
    );
    // The listener image in its admin modes; one attempt per execution (the CLI reports and the user reruns),
    // the listener's resources and timeout.
    this.admin = job(
      'admin',
      { ...args.listener, maxRetries: 0, taskCount: 1 },
      args.listenerImage,
      args.adminServiceAccount,
      [
        // The listener's image and memory: its heap sizing too.
        ...plainEnv({ ...args.databaseEnv, ...args.adminEnv, ...heap(listenerNodeOptions, args.listener) }),
        secretEnv(ADMIN_ENV.adminPassword, args.adminPassword),
        secretEnv(ADMIN_ENV.replicatorPassword, args.replicatorPassword),
      ],
      args.vpc,
      args.adminGrants,
      ADMIN_DEFAULT_ARGS,
    );

    this.listenerJobId = jobId(args.project, args.region, this.listener.name);
    this.sinkJobId = jobId(args.project, args.region, this.sink.name);
    this.adminJobId = jobId(args.project, args.region, this.admin.name);

    const schedule = (
      role: 'listener' | 'sink',
      target: gcp.cloudrunv2.Job,
      id: pulumi.Output<string>,
      cron: string,
    ) => {
      const mayRun = new gcp.cloudrunv2.JobIamMember(
        `${name}-${role}-invoker`,
        {
          project: args.project,
          location: args.region,
          name: target.name,
          role: 'roles/run.invoker',
          member: pulumi.interpolate`serviceAccount:${args.invokerServiceAccount}`,
        },
        childOptions(this, opts),
      );
      return new gcp.cloudscheduler.Job(
        `${name}-${role}-schedule`,
        {
          project: args.project,
          region: args.region,
          name: `${args.namePrefix}-${role}`,
          description: `Starts the ${role} Cloud Run job`,
          schedule: cron,
          timeZone: args.timeZone,
          // The :run call only starts an execution; it returns in seconds.
          attemptDeadline: '60s',
          // A missed start is not retried: the next scheduled run continues where this one would have.
          retryConfig: { retryCount: 0 },
          httpTarget: {
            httpMethod: 'POST',
            uri: runUrl(id),
            // Google APIs take OAuth access tokens (OIDC tokens are for Cloud Run services' own URLs).
            oauthToken: {
              serviceAccountEmail: args.invokerServiceAccount,
              scope: 'https://www.googleapis.com/auth/cloud-platform',
            },
          },
        },
        childOptions(this, opts, [mayRun]),
      );
    };
    this.listenerSchedule = schedule('listener', this.listener, this.listenerJobId, args.listener.schedule);
    this.sinkSchedule = schedule('sink', this.sink, this.sinkJobId, args.sink.schedule);

    this.registerOutputs({
      listenerJobId: this.listenerJobId,
      sinkJobId: this.sinkJobId,
      adminJobId: this.adminJobId,
    });
  }
}

export function jobId(
  project: pulumi.Input<string>,
  region: string,
  name: pulumi.Input<string>,
): pulumi.Output<string> {
  return pulumi.interpolate`projects/${project}/locations/${region}/jobs/${name}`;
}

/** The Cloud Run Admin API v2 method that starts an execution of a job. */
export function runUrl(jobId: pulumi.Input<string>): pulumi.Output<string> {
  return pulumi.interpolate`https://run.googleapis.com/v2/${jobId}:run`;
}
