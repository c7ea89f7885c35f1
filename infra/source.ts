// Where the jobs connect (issue 12): the host, TLS settings and network path of the source database, for
// each source mode. Only the `new` mode creates a database; `cloudsql` reads an existing instance through the
// provider's data source (gcp.sql.getDatabaseInstance, no resource: nothing can modify or delete it) and
// `host` takes what the user configured.
import type * as gcp from '@pulumi/gcp';
import type * as pulumi from '@pulumi/pulumi';
import { ConfigError, type SourceConfig, type SubnetRef } from './config';
import { caBundle, cloudSqlTls, instanceDnsName } from './server-ca';

/** How the jobs' traffic reaches the database. */
export type NetworkPath =
  /** Our VPC and subnet, a PSC endpoint to the instance's service attachment, a private zone for its DNS name. */
  | { kind: 'psc'; serviceAttachment: pulumi.Input<string>; dnsName: pulumi.Input<string> }
  /** Direct VPC egress into the user's subnet; the database is reached at its own (private) address. */
  | { kind: 'subnet'; subnet: SubnetRef };

export interface SourceEndpoint {
  /** PGHOST: what the jobs connect to, and with verify-full the name the server certificate must carry. */
  host: pulumi.Input<string>;
  /** PGHOSTADDR: the address to connect to when it is not `host` (libpq's host/hostaddr pair). */
  hostAddr?: string;
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
 * The endpoint of an existing Cloud SQL instance, from what the data sources read (the instance, and the CA
 * certificates listServerCas returns). Throws a ConfigError that says exactly what to change when the
 * instance cannot be reached the configured way; never proposes a change pgcdc would make itself (the
 * instance is the user's).
 * - PSC (no sourceSubnet): the instance must have PSC enabled and allow our project as a consumer.
 * - private IP (sourceSubnet set): the instance must have a PRIVATE address; the subnet must be in its VPC.
 * TLS (server-ca.ts): verify-full where the server certificate names the host, verify-ca otherwise.
 */
export function cloudSqlEndpoint(
  instance: Instance,
  listedCas: ReadonlyArray<{ cert?: string }>,
  source: Extract<SourceConfig, { mode: 'cloudsql' }>,
  ourProject: string,
  ourProjectNumber: string,
): SourceEndpoint & { warnings: string[] } {
  const where = `the Cloud SQL instance ${source.connectionName}`;
  if (!instance.databaseVersion.startsWith('POSTGRES_')) {
    throw new ConfigError('sourceInstance', `${where} runs ${instance.databaseVersion}, not PostgreSQL`);
  }
  const ip = instance.settings?.[0]?.ipConfigurations?.[0];
  const common = {
    port: 5432,
    connectionName: instance.connectionName,
    // Cloud SQL metrics live in the instance's project; an alert policy of ours only sees our project's.
    monitoredDatabaseId:
      source.instanceProject === ourProject ? `${source.instanceProject}:${source.instanceName}` : undefined,
  };
  if (source.subnet) {
    const privateIp = instance.ipAddresses.find((a) => a.type === 'PRIVATE')?.ipAddress;
    if (!privateIp) {
      throw new ConfigError(
        'sourceSubnet',
        `${where} has no private IP address: unset pgcdc:sourceSubnet to connect through Private Service Connect, ` +
          'or give the instance a private IP on its VPC (https://cloud.google.com/sql/docs/postgres/configure-private-ip)',
      );
    }
    const { certificateName, ...tls } = cloudSqlTls(instance, listedCas, source, 'subnet');
    // verify-full on the private IP path: connect to the IP, check the certificate against the instance's DNS
    // name (libpq: "If both host and hostaddr are specified, the value for hostaddr gives the server network
    // address. The value for host is ignored unless the authentication method requires it, in which case it
    // will be used as the host name", https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-HOSTADDR).
    const addressing = certificateName ? { host: certificateName, hostAddr: privateIp } : { host: privateIp };
    return { ...common, ...tls, ...addressing, path: { kind: 'subnet', subnet: source.subnet } };
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
  const { certificateName, ...tls } = cloudSqlTls(instance, listedCas, source, 'psc');
  // The jobs dial the name our private zone resolves to the PSC endpoint; with verify-full it is also the name
  // the certificate is checked against (pg sends it as SNI: listener/config.ts).
  const host = certificateName ?? instanceDnsName(instance, 'PRIVATE_SERVICE_CONNECT');
  if (!host) {
    // Our private zone is made for this name (network.ts): without one there is nothing to resolve.
    throw new ConfigError(
      'sourceInstance',
      `${where} reports no DNS name for Private Service Connect (dnsNames, dnsName), so the jobs have no ` +
        'name to resolve to the PSC endpoint: set pgcdc:sourceSubnet to a subnet of its VPC to use its private IP',
    );
  }
  return {
    ...common,
    ...tls,
    host,
    path: { kind: 'psc', serviceAttachment: instance.pscServiceAttachmentLink, dnsName: `${host}.` },
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
    caCert: caBundle(source.caCert),
    path: { kind: 'subnet', subnet: source.subnet },
  };
}
