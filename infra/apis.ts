import * as gcp from '@pulumi/gcp';
import * as pulumi from '@pulumi/pulumi';

/** The Google APIs the stack uses. A fresh project has almost none of them enabled. */
export const REQUIRED_APIS = [
  'artifactregistry.googleapis.com',
  'bigquery.googleapis.com',
  'bigquerystorage.googleapis.com', // the sink writes through the Storage Write API
  'cloudresourcemanager.googleapis.com', // project-level IAM bindings
  'cloudscheduler.googleapis.com',
  'compute.googleapis.com',
  'dns.googleapis.com',
  'iam.googleapis.com',
  'logging.googleapis.com',
  'monitoring.googleapis.com',
  'pubsub.googleapis.com',
  'run.googleapis.com',
  'secretmanager.googleapis.com',
  'sqladmin.googleapis.com', // also what the Cloud SQL connector calls for certificates
] as const;

export interface ProjectApisArgs {
  project: string;
}

/** Enables the APIs; every other component waits for it. */
export class ProjectApis extends pulumi.ComponentResource {
  /** One resource per API: pass them as `waitFor` to the other components. */
  readonly services: gcp.projects.Service[];

  constructor(name: string, args: ProjectApisArgs, opts?: pulumi.ComponentResourceOptions) {
    super('pgcdc:infra:ProjectApis', name, {}, opts);
    this.services = REQUIRED_APIS.map(
      (api) =>
        new gcp.projects.Service(
          `${name}-${api.split('.')[0]}`,
          {
            project: args.project,
            service: api,
            // Other stacks or people may use the same APIs in this project: never switch them off on destroy.
            disableOnDestroy: false,
            disableDependentServices: false,
          },
          { parent: this },
        ),
    );
    this.registerOutputs({});
  }
}
