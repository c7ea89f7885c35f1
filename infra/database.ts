import * as gcp from '@pulumi/gcp';
import * as pulumi from '@pulumi/pulumi';
import * as random from '@pulumi/random';
import type { Config } from './config';
import { childOptions, type ComponentOptions } from './options';

export interface DatabaseArgs {
  project: pulumi.Input<string>;
  region: pulumi.Input<string>;
  settings: Config['database'];
  /** Guards the instance against `pulumi destroy` and against deletion from any other surface. */
  deletionProtection: boolean;
  labels: Record<string, string>;
}

/**
 * Cloud SQL for PostgreSQL, reachable only through Private Service Connect, with logical decoding on,
 * plus the application database and the replication user whose password lives only in Secret Manager.
 */
export class Database extends pulumi.ComponentResource {
  readonly instance: gcp.sql.DatabaseInstance;
  readonly database: gcp.sql.Database;
  readonly replicationUser: gcp.sql.User;
  /** The Secret Manager secret holding the replication user's password. */
  readonly passwordSecret: gcp.secretmanager.Secret;
  readonly passwordSecretVersion: gcp.secretmanager.SecretVersion;
  /** "project:region:instance", what the Cloud SQL connector dials. */
  readonly connectionName: pulumi.Output<string>;
  /** PEM of the instance's server CA: what PGSSLMODE=verify-ca checks the server against. */
  readonly serverCaCert: pulumi.Output<string>;
  /** The instance's PSC DNS name without the trailing dot, usable as PGHOST. */
  readonly hostName: pulumi.Output<string>;

  constructor(name: string, args: DatabaseArgs, opts?: ComponentOptions) {
    super('pgcdc:infra:Database', name, {}, opts);
    const child = childOptions(this, opts);
    const s = args.settings;

    const flags: gcp.types.input.sql.DatabaseInstanceSettingsDatabaseFlag[] = [
      // wal_level=logical and the wal2json/pgoutput plugins (Cloud SQL's documented switch).
      { name: 'cloudsql.logical_decoding', value: 'on' },
      // Lets service accounts log in with IAM tokens instead of passwords.
      { name: 'cloudsql.iam_authentication', value: 'on' },
    ];
    if (s.maxSlotWalKeepSizeMb !== undefined) {
      // A slot whose reader is stuck may retain at most this much WAL; past it Postgres invalidates the
      // slot instead of filling the disk (the pipeline then needs a new snapshot, which beats an outage).
      flags.push({ name: 'max_slot_wal_keep_size', value: String(s.maxSlotWalKeepSizeMb) });
    }

    this.instance = new gcp.sql.DatabaseInstance(
      `${name}-instance`,
      {
        project: args.project,
        region: args.region,
        databaseVersion: s.version,
        deletionProtection: args.deletionProtection,
        settings: {
          tier: s.tier,
          // Set explicitly: POSTGRES_16+ defaults to ENTERPRISE_PLUS, which rejects shared-core/custom tiers.
          edition: s.edition,
          availabilityType: s.highAvailability ? 'REGIONAL' : 'ZONAL',
          diskType: 'PD_SSD',
          diskSize: s.diskSizeGb,
          diskAutoresize: true,
          deletionProtectionEnabled: args.deletionProtection,
          backupConfiguration: {
            enabled: true,
            // REGIONAL availability requires point-in-time recovery for PostgreSQL.
            pointInTimeRecoveryEnabled: s.highAvailability,
          },
          ipConfiguration: {
            ipv4Enabled: false, // no public IP: the only way in is the PSC endpoint in our VPC
            sslMode: 'ENCRYPTED_ONLY',
            pscConfigs: [{ pscEnabled: true, allowedConsumerProjects: [args.project] }],
          },
          databaseFlags: flags,
          userLabels: args.labels,
        },
      },
      child,
    );

    this.database = new gcp.sql.Database(
      `${name}-db`,
      { project: args.project, instance: this.instance.name, name: s.name },
      child,
    );

    // Letters and digits only: nothing to escape in a libpq connection string or a shell. 32 of them ≈ 190 bits.
    const password = new random.RandomPassword(
      `${name}-replication-password`,
      { length: 32, special: false },
      child,
    );

    this.replicationUser = new gcp.sql.User(
      `${name}-replication-user`,
      {
        project: args.project,
        instance: this.instance.name,
        name: s.replicationUser,
        password: password.result,
        // Postgres refuses to drop a role that owns a slot or a publication; the instance's deletion removes it.
        deletionPolicy: 'ABANDON',
      },
      child,
    );

    this.passwordSecret = new gcp.secretmanager.Secret(
      `${name}-replication-password`,
      {
        project: args.project,
        secretId: pulumi.interpolate`${this.instance.name}-${s.replicationUser}`,
        replication: { auto: {} },
        labels: args.labels,
      },
      child,
    );
    this.passwordSecretVersion = new gcp.secretmanager.SecretVersion(
      `${name}-replication-password`,
      { secret: this.passwordSecret.id, secretData: password.result },
      child,
    );

    this.connectionName = this.instance.connectionName;
    this.hostName = this.instance.dnsName.apply((n) => n.replace(/\.$/, ''));
    this.serverCaCert = this.instance.serverCaCerts.apply((certs) => certs?.[0]?.cert ?? '');
    this.registerOutputs({ connectionName: this.connectionName, hostName: this.hostName });
  }
}
