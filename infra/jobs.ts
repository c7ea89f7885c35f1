import * as gcp from '@pulumi/gcp';
import * as pulumi from '@pulumi/pulumi';
import { ENV } from '../contract/env';
import type { JobSettings } from './config';
import { childOptions, type ComponentOptions } from './options';

type Env = gcp.types.input.cloudrunv2.JobTemplateTemplateContainerEnv;

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
  /** Cloud Scheduler calls the jobs' :run endpoint with an OAuth token of this account. */
  invokerServiceAccount: pulumi.Input<string>;
  /** Direct VPC egress of the listener: network, subnet and the tag the firewall rules target. */
  network: pulumi.Input<string>;
  subnetwork: pulumi.Input<string>;
  jobTag: string;
  /** Environment of the listener (database, slot, topic...), plain values; the password comes separately. */
  listenerEnv: Record<string, pulumi.Input<string>>;
  sinkEnv: Record<string, pulumi.Input<string>>;
  /** Secret Manager secret (id) and version holding PGPASSWORD. */
  passwordSecret: pulumi.Input<string>;
  passwordSecretVersion: pulumi.Input<string>;
  /** IAM grants each job's account needs before the job can be created or run. */
  listenerGrants: pulumi.Resource[];
  sinkGrants: pulumi.Resource[];
}

/**
 * The listener and sink Cloud Run Jobs and, for each, a Cloud Scheduler job that starts it on its
 * schedule by POSTing to the Cloud Run Admin API's `:run` method as the invoker account.
 */
export class Jobs extends pulumi.ComponentResource {
  readonly listener: gcp.cloudrunv2.Job;
  readonly sink: gcp.cloudrunv2.Job;
  readonly listenerSchedule: gcp.cloudscheduler.Job;
  readonly sinkSchedule: gcp.cloudscheduler.Job;
  /** Full resource names, "projects/P/locations/R/jobs/N". */
  readonly listenerJobId: pulumi.Output<string>;
  readonly sinkJobId: pulumi.Output<string>;

  constructor(name: string, args: JobsArgs, opts?: ComponentOptions) {
    super('pgcdc:infra:Jobs', name, {}, opts);

    const plainEnv = (vars: Record<string, pulumi.Input<string>>): Env[] =>
      Object.entries(vars).map(([envName, value]) => ({ name: envName, value }));

    const job = (
      role: 'listener' | 'sink',
      settings: JobSettings,
      image: pulumi.Input<string>,
      serviceAccount: pulumi.Input<string>,
      envs: Env[],
      withVpc: boolean,
      grants: pulumi.Resource[],
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
                  resources: { limits: { cpu: settings.cpu, memory: settings.memory } },
                },
              ],
              // Direct VPC egress (no connector VMs): only traffic to private ranges (the PSC endpoint) enters
              // the VPC; Google APIs are reached the usual way.
              vpcAccess: withVpc
                ? {
                    networkInterfaces: [
                      { network: args.network, subnetwork: args.subnetwork, tags: [args.jobTag] },
                    ],
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

    this.listener = job(
      'listener',
      args.listener,
      args.listenerImage,
      args.listenerServiceAccount,
      [
        ...plainEnv({ ...args.listenerEnv, ...runSettings(args.listener) }),
        // The password never appears in the job spec: Cloud Run reads this version of the secret at start.
        {
          name: 'PGPASSWORD',
          valueSource: { secretKeyRef: { secret: args.passwordSecret, version: args.passwordSecretVersion } },
        },
      ],
      true,
      args.listenerGrants,
    );
    this.sink = job(
      'sink',
      args.sink,
      args.sinkImage,
      args.sinkServiceAccount,
      plainEnv({ ...args.sinkEnv, ...runSettings(args.sink) }),
      // The sink talks only to Google APIs: it needs no VPC.
      false,
      args.sinkGrants,
    );

    this.listenerJobId = jobId(args.project, args.region, this.listener.name);
    this.sinkJobId = jobId(args.project, args.region, this.sink.name);

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

    this.registerOutputs({ listenerJobId: this.listenerJobId, sinkJobId: this.sinkJobId });
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
