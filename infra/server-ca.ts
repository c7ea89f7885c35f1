// TLS to a Cloud SQL instance: which CA certificates the jobs trust, and whether the server certificate
// names a host, for each server CA mode Cloud SQL offers.
//
// The three modes ("Various Certificate Authority (CA) modes for certificate signing", Cloud SQL Admin API
// IpConfiguration.serverCaMode, https://cloud.google.com/sql/docs/postgres/admin-api/rest/v1/instances#ipconfiguration):
// - GOOGLE_MANAGED_INTERNAL_CA, "Google-managed self-signed internal CA" (the per-instance CA: "an internal CA
//   dedicated to each Cloud SQL instance signs the server certificate for that instance"; also what
//   CA_MODE_UNSPECIFIED means: "It is effectively the same as GOOGLE_MANAGED_INTERNAL_CA");
// - GOOGLE_MANAGED_CAS_CA, "Google-managed regional CA part of root CA hierarchy hosted on Google Cloud's
//   Certificate Authority Service (CAS)" (the shared CA: "The subordinate server CAs in a region sign the
//   server certificates and are shared across instances in the region", "Certificate authority (CA)
//   hierarchies" in https://cloud.google.com/sql/docs/sqlserver/authorize-ssl; the PostgreSQL page
//   https://cloud.google.com/sql/docs/postgres/customer-managed-ca lists the same "internal per-instance CA,
//   Google-managed shared CA, customer-managed CA");
// - CUSTOMER_MANAGED_CAS_CA, "Customer-managed CA hosted on Google Cloud's Certificate Authority Service"
//   ("The CA can be a root CA or a subordinate CA. You also have the option to create a subordinate CA in CA
//   Service and then chain the subordinate CA to an external root CA",
//   https://cloud.google.com/sql/docs/postgres/customer-managed-ca).
import type * as gcp from '@pulumi/gcp';
import { ConfigError, type SourceConfig } from './config';

export type ServerCaMode = 'GOOGLE_MANAGED_INTERNAL_CA' | 'GOOGLE_MANAGED_CAS_CA' | 'CUSTOMER_MANAGED_CAS_CA';

type Instance = gcp.sql.GetDatabaseInstanceResult;
type CloudSqlSource = Extract<SourceConfig, { mode: 'cloudsql' }>;

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Every certificate of the given PEM texts, once each, as one PEM bundle (what the jobs trust). A text may
 * hold several certificates: for CAS-based instances the API's one `serverCaCert.cert` string carries the
 * chain (the Cloud SQL Go connector reads it with `for b, rest := pem.Decode(...)`, internal/cloudsql/refresh.go,
 * GoogleCloudPlatform/cloud-sql-go-connector; "this will not be a list and will still be a single string",
 * GoogleCloudPlatform/cloud-sql-python-connector#1165).
 */
export function caBundle(...texts: ReadonlyArray<string | undefined>): string {
  const seen = new Set<string>();
  for (const text of texts) {
    for (const block of (text ?? '').match(PEM_BLOCK) ?? []) seen.add(block.replace(/\r\n/g, '\n'));
  }
  return [...seen].map((b) => `${b}\n`).join('');
}

/** The certificates of a `serverCaCerts` / getCaCerts `certs` list. */
export function certTexts(certs: ReadonlyArray<{ cert?: string }> | undefined): string[] {
  return (certs ?? []).map((c) => c.cert ?? '');
}

export function serverCaMode(instance: Instance): ServerCaMode {
  const mode = instance.settings?.[0]?.ipConfigurations?.[0]?.serverCaMode ?? '';
  if (mode === 'GOOGLE_MANAGED_CAS_CA' || mode === 'CUSTOMER_MANAGED_CAS_CA') return mode;
  // '' (older instances, older providers) and CA_MODE_UNSPECIFIED: the per-instance CA (see the header).
  return 'GOOGLE_MANAGED_INTERNAL_CA';
}

/**
 * The DNS name the server certificate of a CAS-based instance carries for a connection path, if the instance
 * has one. The connectors Google maintains check CAS instances' certificates against these names: "Find a DNS
 * name to use to validate the certificate from the dns_names field. Any name in the list may be used to
 * validate the server TLS certificate. Fall back to legacy dns_name field if necessary." (cloud-sql-go-connector
 * internal/cloudsql/refresh.go; "Now, the server's TLS certificate must contain a SAN record with the
 * instance's DNS name", cloud-sql-go-connector#954). The name for the path is preferred so that PSC connects
 * by the name our private zone resolves; `dnsName` is the fallback, as in those connectors.
 */
export function instanceDnsName(
  instance: Instance,
  connectionType: 'PRIVATE_SERVICE_CONNECT' | 'PRIVATE_SERVICES_ACCESS',
): string | undefined {
  const names = instance.dnsNames ?? [];
  const forPath = names.find(
    (n) => n.name && n.connectionType === connectionType && (n.dnsScope || 'INSTANCE') === 'INSTANCE',
  );
  const name = forPath?.name || instance.dnsName || '';
  return name ? name.replace(/\.$/, '') : undefined;
}

export interface CloudSqlTls {
  sslMode: 'verify-ca' | 'verify-full';
  /** PEM bundle the server certificate is verified against. */
  caCert: string;
  /**
   * With verify-full: the DNS name the server certificate must carry (PGHOST). On the private IP path it is
   * checked while the connection goes to the IP (PGHOSTADDR), as libpq does with host and hostaddr.
   */
  certificateName?: string;
  /** Deploy-time warnings (pulumi up prints them). */
  warnings: string[];
}

const CA_DOCS = 'https://cloud.google.com/sql/docs/postgres/authorize-ssl';

/**
 * TLS settings for an existing Cloud SQL instance reached through `path`. `listedCas` are the certificates
 * listServerCas returned (gcp.sql.getCaCerts): the provider's `serverCaCerts` holds only the instance's
 * current `serverCaCert` (terraform-provider-google sets `server_ca_cert` from
 * `[]*sqladmin.SslCert{instance.ServerCaCert}`), while listServerCas has every CA the server may present:
 * "There can be up to three CAs listed: the CA that was used to sign the certificate that is currently in use,
 * a CA that has been added but not yet used to sign a certificate, and a CA used to sign a certificate that has
 * previously rotated out" (https://cloud.google.com/sql/docs/postgres/admin-api/v1beta4/instances/listServerCas).
 *
 * verify-ca is the default in every mode; verify-full is allowed in the CAS modes, whose certificates are
 * meant to carry the instance's DNS names. No Google page says the certificate PostgreSQL presents carries
 * them on every instance, and Google's own connector does not rely on it ("there are times when the instance
 * metadata reports that an instance has a DNS name, but that DNS name does not yet appear in the SAN records
 * of the server certificate. The client should fall back to validating the hostname using the instance name in
 * the Subject.CN field", cloud-sql-go-connector internal/cloudsql/tls_verify.go): a default of verify-full
 * could fail every run of a stack that worked, so it is the user's choice, with a warning that says why to
 * make it. Per-instance CA certificates name the instance as
 * "project:instance" in their CN, not a host name ("Historically, Cloud SQL creates server certificates with
 * the instance name in the Subject.CN field in the format "my-project:my-instance" ... Thus, the Subject.CN
 * field for most Cloud SQL instances does not contain a well-formed DNS Name. This breaks standard TLS
 * hostname verification", cloud-sql-go-connector internal/cloudsql/tls_verify.go): there only verify-ca can
 * succeed, and it is still safe, since that CA signs this one instance's certificate only.
 */
export function cloudSqlTls(
  instance: Instance,
  listedCas: ReadonlyArray<{ cert?: string }>,
  source: CloudSqlSource,
  path: 'psc' | 'subnet',
): CloudSqlTls {
  const where = `the Cloud SQL instance ${source.connectionName}`;
  const mode = serverCaMode(instance);
  const caCert = caBundle(...certTexts(instance.serverCaCerts), ...certTexts(listedCas), source.caCert);
  if (caCert === '') {
    const pool = instance.settings?.[0]?.ipConfigurations?.[0]?.serverCaPool;
    throw new ConfigError(
      'sourceCaCert',
      mode === 'CUSTOMER_MANAGED_CAS_CA'
        ? `${where} uses your own CA (CUSTOMER_MANAGED_CAS_CA) and Cloud SQL lists no server CA certificate for it: ` +
            'set pgcdc:sourceCaCert to the PEM of the CA pool’s root certificates ' +
            `(gcloud privateca pools get-ca-certs ${pool ? pool.split('/').pop() : 'POOL'} --location=${source.instanceRegion} --output-file=ca.pem; ` +
            'pulumi config set pgcdc:sourceCaCert -- "$(cat ca.pem)")'
        : `${where} lists no server CA certificate, so its server could not be verified: ` +
            `run gcloud sql ssl server-ca-certs list --instance=${source.instanceName} --project=${source.instanceProject}, ` +
            `or set pgcdc:sourceCaCert to the PEM of the CA that signs its server certificate (${CA_DOCS})`,
    );
  }

  const name =
    mode === 'GOOGLE_MANAGED_INTERNAL_CA'
      ? undefined
      : instanceDnsName(instance, path === 'psc' ? 'PRIVATE_SERVICE_CONNECT' : 'PRIVATE_SERVICES_ACCESS');
  if (source.sslMode === 'verify-full' && !name) {
    throw new ConfigError(
      'sourceSslMode',
      mode === 'GOOGLE_MANAGED_INTERNAL_CA'
        ? `verify-full cannot succeed: ${where} uses the per-instance CA (GOOGLE_MANAGED_INTERNAL_CA), whose server ` +
            `certificate names the instance (${source.instanceProject}:${source.instanceName}), not a host name. ` +
            'Set pgcdc:sourceSslMode to verify-ca (or leave it unset): the certificate is still verified against the ' +
            `instance's own CA, which signs nothing else. For host name checks the instance needs the shared CA ` +
            `(server CA mode GOOGLE_MANAGED_CAS_CA, ${CA_DOCS})`
        : `verify-full cannot succeed: ${where} (${mode}) reports no DNS name for its server certificate to be ` +
            'checked against. Set pgcdc:sourceSslMode to verify-ca (or leave it unset)',
    );
  }
  const sslMode = source.sslMode ?? 'verify-ca';
  const warnings: string[] = [];
  if (sslMode === 'verify-ca' && mode !== 'GOOGLE_MANAGED_INTERNAL_CA') {
    warnings.push(
      `pgcdc:sourceSslMode is verify-ca but ${where} uses ${mode === 'GOOGLE_MANAGED_CAS_CA' ? 'the shared CA, which signs the server certificates of every instance in its region' : 'your CA pool, which may sign other servers too'}: ` +
        'verify-ca accepts any server that CA signed. Set pgcdc:sourceSslMode to verify-full to check the instance’s DNS name too' +
        (name ? ` (${name})` : '') +
        '; if the jobs then stop with ERR_TLS_CERT_ALTNAME_INVALID, its certificate does not carry that name yet: go back to verify-ca',
    );
  }
  return { sslMode, caCert, certificateName: sslMode === 'verify-full' ? name : undefined, warnings };
}
