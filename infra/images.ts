import * as docker from '@pulumi/docker';
import * as gcp from '@pulumi/gcp';
import * as pulumi from '@pulumi/pulumi';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { childOptions, type ComponentOptions } from './options';

export type JobName = 'listener' | 'sink';

export interface ImagesArgs {
  project: pulumi.Input<string>;
  region: string;
  repositoryId: string;
  /** Prebuilt image references by job; a job listed here is not built. */
  prebuilt: Partial<Record<JobName, string>>;
  labels: Record<string, string>;
}

/**
 * The Artifact Registry repository and the two job images, built from `listener/Dockerfile` and
 * `sink/Dockerfile` with the repository root as build context and pushed with the deployer's own token.
 */
export class Images extends pulumi.ComponentResource {
  readonly repository: gcp.artifactregistry.Repository;
  /** Immutable references (`...@sha256:...`) the jobs run, so a new build rolls the jobs and an old one does not. */
  readonly listenerImage: pulumi.Output<string>;
  readonly sinkImage: pulumi.Output<string>;

  constructor(name: string, args: ImagesArgs, opts?: ComponentOptions) {
    super('pgcdc:infra:Images', name, {}, opts);
    const child = childOptions(this, opts);

    this.repository = new gcp.artifactregistry.Repository(
      `${name}-repo`,
      {
        project: args.project,
        location: args.region,
        repositoryId: args.repositoryId,
        format: 'DOCKER',
        description: 'pgcdc listener and sink images',
        labels: args.labels,
        // Every build pushes a new version; without a policy they accumulate (and bill) forever. Untagged
        // versions older than 30 days are deleted, the 5 newest versions of each image are always kept (KEEP
        // wins over DELETE), and the version the jobs run is the one tagged `latest`, which an UNTAGGED
        // condition never matches. Policies apply only when cleanupPolicyDryRun is false ("If true, the cleanup
        // pipeline is prevented from deleting versions in this repository", provider docs); durations are
        // written as in the provider's own example (olderThan: "30d").
        cleanupPolicyDryRun: false,
        cleanupPolicies: [
          {
            id: 'delete-old-untagged',
            action: 'DELETE',
            condition: { tagState: 'UNTAGGED', olderThan: '30d' },
          },
          { id: 'keep-newest', action: 'KEEP', mostRecentVersions: { keepCount: 5 } },
        ],
      },
      child,
    );

    const host = `${args.region}-docker.pkg.dev`;
    const repositoryUrl = pulumi.interpolate`${host}/${this.repository.project}/${this.repository.repositoryId}`;
    // Artifact Registry takes an OAuth access token as password for the user "oauth2accesstoken".
    const token = gcp.organizations.getClientConfigOutput({ parent: this }).accessToken;
    const root = repositoryRoot();

    const image = (job: JobName): pulumi.Output<string> => {
      const prebuilt = args.prebuilt[job];
      if (prebuilt !== undefined) return pulumi.output(prebuilt);
      const built = new docker.Image(
        `${name}-${job}`,
        {
          imageName: pulumi.interpolate`${repositoryUrl}/${job}:latest`,
          build: {
            context: root.context,
            dockerfile: root.dockerfile(job),
            // Cloud Run runs linux/amd64, whatever the deployer's machine is.
            platform: 'linux/amd64',
          },
          registry: { server: host, username: 'oauth2accesstoken', password: pulumi.secret(token) },
        },
        child,
      );
      return built.repoDigest;
    };
    this.listenerImage = image('listener');
    this.sinkImage = image('sink');

    this.registerOutputs({ listenerImage: this.listenerImage, sinkImage: this.sinkImage });
  }
}

/**
 * The build context (the repository root, where Pulumi.yaml is) as a path relative to the working directory,
 * which Pulumi sets to the project directory: "." in a normal `pulumi up`, so state holds no machine paths.
 */
export function repositoryRoot(): { context: string; dockerfile: (job: JobName) => string } {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'Pulumi.yaml'))) {
    const parent = path.dirname(dir);
    if (parent === dir)
      throw new Error(`no Pulumi.yaml above ${__dirname}: cannot locate the Docker build context`);
    dir = parent;
  }
  const context = path.relative(process.cwd(), dir) || '.';
  return { context, dockerfile: (job) => path.join(context, job, 'Dockerfile') };
}
