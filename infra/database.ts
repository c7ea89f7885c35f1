import * as gcp from '@pulumi/gcp';
import * as pulumi from '@pulumi/pulumi';
import type { Config } from './config';
import { childOptions, type ComponentOptions } from './options';
import { caBundle, certTexts } from './server-ca';

export interface DatabaseArgs {
  project: pulumi.Input<string>;
  region: pulumi.Input<string>;
  settings: Config['database'];
  /** Password of Cloud SQL's built-in `postgres` admin (a Pulumi secret); the admin job logs in with it. */
  adminPassword: pulumi.Input<string>;
  /** Guards the instance against `pulumi destroy` and against deletion from any other surface. */
  deletionProtection: boolean;
  labels: Record<string, string>;
}

/**
 * sourceMode new: a Cloud SQL for PostgreSQL instance created and owned by the stack, reachable only through
 * Private Service Connect, with logical decoding on, plus the application database. No database user is
 * created through the Cloud SQL API: such users join `cloudsqlsuperuser` ("All users you create using Cloud
 * SQL are created as part of the cloudsqlsuperuser role", https://cloud.google.com/sql/docs/postgres/users).
 * The admin is the built-in `postgres` (password set here); the replicator is created in SQL by the admin
 * job (`pgcdc sql init`) with LOGIN REPLICATION and nothing else.
 */
export class Database extends pulumi.ComponentResource {
  readonly instance: gcp.sql.DatabaseInstance;
  readonly database: gcp.sql.Database;
  /** "project:region:instance". */
  readonly connectionName: pulumi.Output<string>;
  /** PEM bundle of every server CA the instance lists: what PGSSLMODE=verify-ca checks the server against. */
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
      // No max_slot_wal_keep_size: "Some managed databases, such as Cloud SQL and AlloyDB for PostgreSQL,
      // don't support max_slot_wal_keep_size" (https://cloud.google.com/datastream/docs/work-with-postgresql-database-wal-log-files).
      // What a stuck slot can retain is bounded by diskAutoresizeLimit below and watched by the slot-lag
      // and disk alerts (monitoring.ts).
    ];

    this.instance = new gcp.sql.DatabaseInstance(
      `${name}-instance`,
      {
        project: args.project,
        region: args.region,
        databaseVersion: s.version,
        deletionProtection: args.deletionProtection,
        // The built-in admin's password. Cloud SQL Admin API, DatabaseInstance.rootPassword: "Initial root
        // password. Use only on creation. You must set root passwords before you can connect to PostgreSQL
        // instances." (https://cloud.google.com/sql/docs/postgres/admin-api/rest/v1/instances); the provider
        // documents it as "Initial root password. Can be updated."
        rootPassword: args.adminPassword,
        settings: {
          tier: s.tier,
          // Set explicitly: POSTGRES_16+ defaults to ENTERPRISE_PLUS, which rejects shared-core/custom tiers.
          edition: s.edition,
          availabilityType: s.highAvailability ? 'REGIONAL' : 'ZONAL',
          diskType: 'PD_SSD',
          diskSize: s.diskSizeGb,
          diskAutoresize: true,
          // "The maximum size to which storage capacity can be automatically increased. The default value is
          // 0, which specifies that there is no limit." (provider docs, settings.diskAutoresizeLimit): WAL a
          // stuck slot retains can grow the disk (and the bill) only this far.
          diskAutoresizeLimit: s.diskAutoresizeLimitGb,
          deletionProtectionEnabled: args.deletionProtection,
          backupConfiguration: {
            enabled: true,
            // REGIONAL availability requires point-in-time recovery for PostgreSQL.
            pointInTimeRecoveryEnabled: s.highAvailability,
          },
          ipConfiguration: {
            ipv4Enabled: false, // no public IP: the only way in is the PSC endpoint in our VPC
            sslMode: 'ENCRYPTED_ONLY',
            // Explicit CA mode: GOOGLE_MANAGED_INTERNAL_CA is the per-instance CA, which `serverCaCerts`
            // returns and the jobs verify against ("Specify how the server certificate's Certificate Authority
            // is hosted. Supported values are GOOGLE_MANAGED_INTERNAL_CA, GOOGLE_MANAGED_CAS_CA, and
            // CUSTOMER_MANAGED_CAS_CA", provider docs, settings.ipConfiguration.serverCaMode).
            serverCaMode: 'GOOGLE_MANAGED_INTERNAL_CA',
            pscConfigs: [{ pscEnabled: true, allowedConsumerProjects: [args.project] }],
          },
          databaseFlags: flags,
          userLabels: args.labels,
        },
      },
      // "if diskSize is set, future pulumi up calls will attempt to delete the instance in order to resize the
      // disk to the value specified in diskSize if it has been resized. To avoid this, ensure that
      // lifecycle.ignore_changes is applied to diskSize" (provider docs, settings.diskSize): the disk grows on
      // its own (diskAutoresize, e.g. WAL a slow slot keeps), which must never make an update replace it.
      { ...child, ignoreChanges: ['settings.diskSize'] },
    );

    this.database = new gcp.sql.Database(
      `${name}-db`,
      { project: args.project, instance: this.instance.name, name: s.name },
      child,
    );

    this.connectionName = this.instance.connectionName;
    this.hostName = this.instance.dnsName.apply((n) => n.replace(/\.$/, ''));
    // `serverCaCerts` is only the CA of the certificate in use; listServerCas (getCaCerts) also has the one
    // added for the next rotation, which the server presents once rotated (server-ca.ts). Read again on every
    // `pulumi up`: deploy after adding a new CA and before rotating to it (README "Troubleshooting").
    const listed = gcp.sql.getCaCertsOutput(
      { project: args.project, instance: this.instance.name },
      { parent: this },
    );
    this.serverCaCert = pulumi
      .all([this.instance.serverCaCerts, listed.certs])
      .apply(([current, all]) => caBundle(...certTexts(current), ...certTexts(all)));
    this.registerOutputs({ connectionName: this.connectionName, hostName: this.hostName });
  }
}
