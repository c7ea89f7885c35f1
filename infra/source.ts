// Where the jobs connect (issue 12): the host, TLS settings and network path of the source database, for
// each source mode. Only the `new` mode creates a database; `cloudsql` reads an existing instance through the
// provider's data source (gcp.sql.getDatabaseInstance, no resource: nothing can modify or delete it) and
// `host` takes what the user configured.
import type * as gcp from '@pulumi/gcp';
import type * as pulumi from '@pulumi/pulumi';
import { ConfigError, type SourceConfig, type SubnetRef } from './config';
import { caBundle } from './database';

/** How the jobs' traffic reaches the database. */
export type NetworkPath =
  /** Our VPC and subnet, a PSC endpoint to the instance's service attachment, a private zone for its DNS name. */
  | { kind: 'psc'; serviceAttachment: pulumi.Input<string>; dnsName: pulumi.Input<string> }
  /** Direct VPC egress into the user's subnet; the database is reached at its own (private) address. */
  | { kind: 'subnet'; subnet: SubnetRef };

export interface SourceEndpoint {
  host: pulumi.Input<string>;
  port: number;
  sslMode: 'verify-ca' | 'verify-full';
  /** PEM bundle the server certificate is verified against. */
  caCert: pulumi.Input<string>;
  path: NetworkPath;
  /** "project:instance" of a Cloud SQL instance whose metrics our project sees (disk alert), if any. */
  monitoredDatabaseId?: pulumi.Input<string>;
  /** "project:region:instance" for Cloud SQL sources. */
  connectionName?: pulumi.Input<string>;
}

type Instance = gcp.sql.GetDatabaseInstanceResult;

/**
 * The endpoint of an existing Cloud SQL instance, from what the data source read. Throws a ConfigError that
 * says exactly what to change when the instance cannot be reached the configured way; never proposes a
 * change pgcdc would make itself (the instance is the user's).
 * - PSC (no sourceSubnet): the instance must have PSC enabled and allow our project as a consumer.
 * - private IP (sourceSubnet set): the instance must have a PRIVATE address; the subnet must be in its VPC.
 */
export function cloudSqlEndpoint(
  instance: Instance,
  source: Extract<SourceConfig, { mode: 'cloudsql' }>,
  ourProject: string,
  ourProjectNumber: string,
): SourceEndpoint {
  const where = `the Cloud SQL instance ${source.connectionName}`;
  if (!instance.databaseVersion.startsWith('POSTGRES_')) {
    throw new ConfigError('sourceInstance', `${where} runs ${instance.databaseVersion}, not PostgreSQL`);
  }
  const ip = instance.settings?.[0]?.ipConfigurations?.[0];
  const common = {
    port: 5432,
    sslMode: source.sslMode,
    caCert: caBundle(instance.serverCaCerts),
    connectionName: instance.connectionName,
    // Cloud SQL metrics live in the instance's project; an alert policy of ours only sees our project's.
    monitoredDatabaseId:
      source.instanceProject === ourProject ? `${source.instanceProject}:${source.instanceName}` : undefined,
  };
  if (common.caCert === '') {
    throw new ConfigError(
      'sourceInstance',
      `${where} lists no server CA certificate: TLS could not be verified`,
    );
  }

  if (source.subnet) {
    const privateIp = instance.ipAddresses.find((a) => a.type === 'PRIVATE')?.ipAddress;
    if (!privateIp) {
      throw new ConfigError(
        'sourceSubnet',
        `${where} has no private IP address: unset pgcdc:sourceSubnet to connect through Private Service Connect, ` +
          'or give the instance a private IP on its VPC (https://cloud.google.com/sql/docs/postgres/configure-private-ip)',
      );
    }
    return { ...common, host: privateIp, path: { kind: 'subnet', subnet: source.subnet } };
  }

  const psc = ip?.pscConfigs?.[0];
  const allowed = psc?.allowedConsumerProjects ?? [];
  const allowsUs = allowed.includes(ourProject) || allowed.includes(ourProjectNumber);
  if (!psc?.pscEnabled || !allowsUs || !instance.pscServiceAttachmentLink) {
    // --allowed-psc-projects replaces the list: keep the projects already allowed.
    const projects = [...new Set([...allowed, ourProject])].join(',');
    const command =
      `gcloud sql instances patch ${source.instanceName} --project=${source.instanceProject} ` +
      (psc?.pscEnabled ? '' : '--enable-private-service-connect ') +
      `--allowed-psc-projects=${projects}`;
    const why = !psc?.pscEnabled
      ? 'does not have Private Service Connect enabled'
      : `does not allow project ${ourProject} as a PSC consumer (allowed: ${allowed.join(', ') || 'none'})`;
    const privateIp = instance.ipAddresses.find((a) => a.type === 'PRIVATE');
    throw new ConfigError(
      'sourceInstance',
      `${where} ${why}. pgcdc never changes your instance; to connect through PSC run: ${command} ` +
        '(https://cloud.google.com/sql/docs/postgres/configure-private-service-connect)' +
        (privateIp
          ? `, or set pgcdc:sourceSubnet to a subnet of its VPC (${ip?.privateNetwork || 'its private network'}) in ${source.instanceRegion} to use its private IP ${privateIp.ipAddress}`
          : ''),
    );
  }
  return {
    ...common,
    host: instance.dnsName.replace(/\.$/, ''),
    path: { kind: 'psc', serviceAttachment: instance.pscServiceAttachmentLink, dnsName: instance.dnsName },
  };
}

/**
 * Warnings (not errors: pgcdc check and sql init report them with the fix) about an existing instance that
 * would make the SQL init fail: logical decoding off. The command keeps the instance's other flags, since
 * `--database-flags` replaces the whole list, and says that it restarts the instance.
 */
export function cloudSqlWarnings(
  instance: Instance,
  source: Extract<SourceConfig, { mode: 'cloudsql' }>,
): string[] {
  const flags = instance.settings?.[0]?.databaseFlags ?? [];
  if (flags.some((f) => f.name === 'cloudsql.logical_decoding' && f.value === 'on')) return [];
  const keep = flags.filter((f) => f.name !== 'cloudsql.logical_decoding').map((f) => `${f.name}=${f.value}`);
  const all = [...keep, 'cloudsql.logical_decoding=on'].join(',');
  return [
    `the Cloud SQL instance ${source.connectionName} has cloudsql.logical_decoding off: pgcdc cannot create its ` +
      `slot until it is on. Setting it RESTARTS the instance, so pgcdc never does it; when you can, run: ` +
      `gcloud sql instances patch ${source.instanceName} --project=${source.instanceProject} --database-flags=${all}`,
  ];
}

/** The endpoint of a host-mode source: all from configuration. */
export function hostEndpoint(source: Extract<SourceConfig, { mode: 'host' }>): SourceEndpoint {
  return {
    host: source.host,
    port: source.port,
    sslMode: source.sslMode,
    caCert: source.caCert.trim() + '\n',
    path: { kind: 'subnet', subnet: source.subnet },
  };
}
