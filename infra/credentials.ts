import * as gcp from '@pulumi/gcp';
import * as pulumi from '@pulumi/pulumi';
import * as random from '@pulumi/random';
import type { SecretRef, SourceConfig } from './config';
import { childOptions, type ComponentOptions } from './options';

/** A Secret Manager secret a job reads as an environment variable. */
export interface SecretHandle {
  /** The secret's project (IAM grants are made there). */
  project: pulumi.Input<string>;
  /** "projects/P/secrets/S": what SecretIamMember takes. */
  id: pulumi.Input<string>;
  /**
   * What Cloud Run's secretKeyRef.secret takes: "{secretName} if the secret is in the same project.
   * projects/{project}/secrets/{secretName} if the secret is in a different project." (provider docs).
   */
  secretKeyRef: pulumi.Input<string>;
  /** A pinned version for secrets the stack writes; "latest" for the user's own (rotated by them). */
  version: pulumi.Input<string>;
  /** True when the stack created the secret (and its value); false for a secret the user named. */
  ownedByStack: boolean;
}

export interface CredentialsArgs {
  project: string;
  namePrefix: string;
  source: SourceConfig;
  labels: Record<string, string>;
}

/**
 * The two database passwords, each in its own Secret Manager secret (BRIEF decisions 1-2):
 * - admin: the login that runs the SQL init. sourceMode new: generated here and set as Cloud SQL's built-in
 *   `postgres` password (the instance's rootPassword); cloudsql/host: the user's existing secret.
 * - replicator: the LOGIN REPLICATION role the SQL init creates with this password. Generated here unless
 *   the user names a secret (required for host, optional for cloudsql).
 * Generated passwords are letters and digits (nothing to escape in a connection string or SQL literal),
 * 32 of them ≈ 190 bits, and travel only as Pulumi secrets (encrypted in state).
 */
export class Credentials extends pulumi.ComponentResource {
  readonly admin: SecretHandle;
  readonly replicator: SecretHandle;
  /** sourceMode new only: the generated admin password, for the instance's rootPassword. */
  readonly adminPassword?: pulumi.Output<string>;

  constructor(name: string, args: CredentialsArgs, opts?: ComponentOptions) {
    super('pgcdc:infra:Credentials', name, {}, opts);
    const child = childOptions(this, opts);

    const generated = (
      role: 'admin' | 'replicator',
    ): { handle: SecretHandle; value: pulumi.Output<string> } => {
      const password = new random.RandomPassword(
        `${name}-${role}-password`,
        { length: 32, special: false },
        child,
      );
      const secret = new gcp.secretmanager.Secret(
        `${name}-${role}-password`,
        {
          project: args.project,
          secretId: `${args.namePrefix}-${role}-password`,
          replication: { auto: {} },
          labels: { ...args.labels, role },
        },
        child,
      );
      const version = new gcp.secretmanager.SecretVersion(
        `${name}-${role}-password`,
        { secret: secret.id, secretData: password.result },
        child,
      );
      return {
        handle: {
          project: args.project,
          id: secret.id,
          secretKeyRef: secret.secretId,
          version: version.version,
          ownedByStack: true,
        },
        value: password.result,
      };
    };
    const existing = (ref: SecretRef): SecretHandle => ({
      project: ref.project,
      id: ref.id,
      secretKeyRef: ref.project === args.project ? ref.secretId : ref.id,
      version: 'latest',
      ownedByStack: false,
    });

    const s = args.source;
    if (s.mode === 'new') {
      const admin = generated('admin');
      this.admin = admin.handle;
      this.adminPassword = admin.value;
    } else {
      this.admin = existing(s.adminPasswordSecret);
    }
    const replicatorRef = s.mode === 'new' ? undefined : s.replicatorPasswordSecret;
    this.replicator = replicatorRef ? existing(replicatorRef) : generated('replicator').handle;

    this.registerOutputs({ admin: this.admin.id, replicator: this.replicator.id });
  }
}
