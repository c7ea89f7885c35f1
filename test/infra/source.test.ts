// What pgcdc says about an existing Cloud SQL instance it cannot use as is: warnings with the exact fix.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type * as gcp from '@pulumi/gcp';
import { validateConfig, type SourceConfig } from '../../infra/config';
import { caBundle } from '../../infra/server-ca';
import { cloudSqlEndpoint, cloudSqlWarnings } from '../../infra/source';
import { PROJECT, PROJECT_NUMBER, existingInstance, listedServerCas } from './harness';

const source = validateConfig({
  'gcp:project': 'my-project-123',
  sourceMode: 'cloudsql',
  sourceInstance: 'their-project:us-central1:prod-db',
  adminPasswordSecret: 'admin-pw',
}).source as Extract<SourceConfig, { mode: 'cloudsql' }>;

const withFlags = (flags: Array<{ name: string; value: string }>) =>
  ({ settings: [{ databaseFlags: flags }] }) as unknown as gcp.sql.GetDatabaseInstanceResult;

describe('an existing Cloud SQL instance', () => {
  it('with logical decoding on: nothing to say', () =>
    assert.deepEqual(
      cloudSqlWarnings(withFlags([{ name: 'cloudsql.logical_decoding', value: 'on' }]), source),
      [],
    ));
  it('with logical decoding off: says it restarts the instance and gives the command keeping its other flags', () => {
    const [warning, ...rest] = cloudSqlWarnings(
      withFlags([{ name: 'max_connections', value: '200' }]),
      source,
    );
    assert.deepEqual(rest, []);
    assert.match(warning!, /cloudsql\.logical_decoding off/);
    assert.match(warning!, /RESTARTS the instance, so pgcdc never does it/);
    // --database-flags replaces the whole list: the existing flag must be in the command.
    assert.ok(
      warning!.endsWith(
        'gcloud sql instances patch prod-db --project=their-project --database-flags=max_connections=200,cloudsql.logical_decoding=on',
      ),
      warning,
    );
  });
  it('a PSC consumer list may name our project by its number', () => {
    const instance = existingInstance() as unknown as gcp.sql.GetDatabaseInstanceResult;
    instance.settings[0]!.ipConfigurations[0]!.pscConfigs = [
      { pscEnabled: true, allowedConsumerProjects: ['987654321'] } as never,
    ];
    const endpoint = cloudSqlEndpoint(instance, [], source, 'my-project-123', '987654321');
    assert.equal(endpoint.path.kind, 'psc');
    assert.throws(
      () => cloudSqlEndpoint(instance, [], source, 'my-project-123', '111'),
      /does not allow project my-project-123/,
    );
  });
  it('every certificate of the PEM texts is trusted once, chains split, text around them dropped', () => {
    const pem = (b: string) => `-----BEGIN CERTIFICATE-----\n${b}\n-----END CERTIFICATE-----`;
    assert.equal(
      caBundle(`${pem('LEAF')}\r\n${pem('ROOT')}\n`, 'comment', undefined, '', pem('ROOT'), pem('NEXT')),
      `${pem('LEAF')}\n${pem('ROOT')}\n${pem('NEXT')}\n`,
    );
    assert.equal(caBundle(undefined, ''), '');
  });

  it('a bundle of the current and the upcoming CA verifies a server already switched to the upcoming one; the first CA alone does not', async () => {
    // Real certificates (openssl) and a real TLS handshake, as the listener verifies (rejectUnauthorized with
    // `ca` = the bundle the stack passes in PGCDC_PG_SSL_ROOT_CERT).
    const dir = mkdtempSync(path.join(tmpdir(), 'pgcdc-ca-'));
    try {
      const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
      for (const ca of ['current', 'upcoming'])
        ssl(
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-keyout',
          `${ca}.key`,
          '-out',
          `${ca}.pem`,
          '-days',
          '1',
          '-subj',
          `/CN=${ca}`,
        );
      ssl(
        'req',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        'server.key',
        '-out',
        'server.csr',
        '-subj',
        '/CN=server',
      );
      ssl(
        'x509',
        '-req',
        '-in',
        'server.csr',
        '-CA',
        'upcoming.pem',
        '-CAkey',
        'upcoming.key',
        '-CAcreateserial',
        '-out',
        'server.pem',
        '-days',
        '1',
      );
      const read = (f: string) => readFileSync(path.join(dir, f), 'utf8');
      const server = tls.createServer({ key: read('server.key'), cert: read('server.pem') }, (c) => c.end());
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as { port: number }).port;
      const handshake = (ca: string) =>
        new Promise<string>((resolve) => {
          const c = tls.connect(
            { host: '127.0.0.1', port, ca, rejectUnauthorized: true, checkServerIdentity: () => undefined },
            () => {
              resolve('verified');
              c.end();
            },
          );
          c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        });
      try {
        assert.equal(await handshake(caBundle(read('current.pem'), read('upcoming.pem'))), 'verified');
        assert.equal(await handshake(read('current.pem')), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
      } finally {
        server.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// What the data source reads for each server CA mode, and what the jobs are told to do with it.
describe('TLS to an existing Cloud SQL instance, by its server CA mode', () => {
  const PSC_NAME = 'abcdef.123456.us-central1.sql.goog';
  const PSA_NAME = 'prod-db.abcdef.us-central1.sql.goog';
  const withSubnet = validateConfig({
    'gcp:project': 'my-project-123',
    sourceMode: 'cloudsql',
    sourceInstance: 'their-project:us-central1:prod-db',
    sourceSubnet: 'projects/their-project/regions/us-central1/subnetworks/prod-jobs',
    adminPasswordSecret: 'admin-pw',
  }).source as Extract<SourceConfig, { mode: 'cloudsql' }>;

  /** The harness instance with `serverCaMode` and DNS names as the Admin API reports them. */
  function instanceWith(mode: string | undefined): gcp.sql.GetDatabaseInstanceResult {
    const instance = existingInstance() as unknown as gcp.sql.GetDatabaseInstanceResult;
    const ip = instance.settings[0]!.ipConfigurations[0]! as { serverCaMode: string };
    if (mode !== undefined) ip.serverCaMode = mode;
    (instance as { dnsNames: unknown }).dnsNames = [
      { name: `${PSC_NAME}.`, connectionType: 'PRIVATE_SERVICE_CONNECT', dnsScope: 'INSTANCE' },
      { name: `${PSA_NAME}.`, connectionType: 'PRIVATE_SERVICES_ACCESS', dnsScope: 'INSTANCE' },
    ];
    return instance;
  }
  const endpoint = (
    instance: gcp.sql.GetDatabaseInstanceResult,
    src: Extract<SourceConfig, { mode: 'cloudsql' }> = source,
    listed: Array<{ cert: string }> = listedServerCas(),
  ) => cloudSqlEndpoint(instance, listed, src, PROJECT, PROJECT_NUMBER);

  it('trusts every CA listServerCas lists: the provider’s serverCaCerts has only the one in use', () => {
    const e = endpoint(instanceWith(undefined));
    assert.equal(
      e.caCert,
      '-----BEGIN CERTIFICATE-----\nMIIcurrent\n-----END CERTIFICATE-----\n' +
        '-----BEGIN CERTIFICATE-----\nMIIupcoming\n-----END CERTIFICATE-----\n',
    );
  });

  for (const mode of [undefined, '', 'CA_MODE_UNSPECIFIED', 'GOOGLE_MANAGED_INTERNAL_CA']) {
    it(`per-instance CA (serverCaMode ${JSON.stringify(mode)}): verify-ca by default, by the PSC name or the private IP`, () => {
      const psc = endpoint(instanceWith(mode));
      assert.deepEqual(
        [psc.sslMode, psc.host, psc.hostAddr, psc.warnings],
        ['verify-ca', PSC_NAME, undefined, []],
      );
      const ip = endpoint(instanceWith(mode), withSubnet);
      assert.deepEqual([ip.sslMode, ip.host, ip.hostAddr], ['verify-ca', '10.20.0.3', undefined]);
    });
  }

  it('per-instance CA and verify-full asked: a ConfigError that says to use verify-ca or the shared CA', () => {
    for (const src of [source, withSubnet]) {
      assert.throws(
        () => endpoint(instanceWith('GOOGLE_MANAGED_INTERNAL_CA'), { ...src, sslMode: 'verify-full' }),
        (e: Error & { key?: string }) =>
          e.key === 'sourceSslMode' &&
          /names the instance \(their-project:prod-db\), not a host name/.test(e.message) &&
          /Set pgcdc:sourceSslMode to verify-ca \(or leave it unset\)/.test(e.message) &&
          /GOOGLE_MANAGED_CAS_CA/.test(e.message),
      );
    }
  });

  for (const mode of ['GOOGLE_MANAGED_CAS_CA', 'CUSTOMER_MANAGED_CAS_CA']) {
    it(`${mode}: verify-ca by default, by the PSC DNS name, with a warning that names verify-full and the name`, () => {
      const e = endpoint(instanceWith(mode));
      assert.deepEqual(
        [e.sslMode, e.host, e.hostAddr, e.warnings.length],
        ['verify-ca', PSC_NAME, undefined, 1],
      );
      assert.match(
        e.warnings[0]!,
        new RegExp(`set pgcdc:sourceSslMode to verify-full .*\\(${PSC_NAME.replace(/\./g, '\\.')}\\)`, 'i'),
      );
      const full = endpoint(instanceWith(mode), { ...source, sslMode: 'verify-full' });
      assert.deepEqual(
        [full.sslMode, full.host, full.hostAddr, full.warnings],
        ['verify-full', PSC_NAME, undefined, []],
      );
      assert.deepEqual(e.path, {
        kind: 'psc',
        serviceAttachment: 'projects/tp-producer/regions/us-central1/serviceAttachments/a-prod-db',
        dnsName: `${PSC_NAME}.`,
      });
    });
    it(`${mode}: on the private IP path, dials the IP and checks the certificate against the instance's DNS name`, () => {
      const e = endpoint(instanceWith(mode), { ...withSubnet, sslMode: 'verify-full' });
      assert.deepEqual([e.sslMode, e.host, e.hostAddr], ['verify-full', PSA_NAME, '10.20.0.3']);
      // By default (verify-ca) the IP itself, no name to check.
      const ca = endpoint(instanceWith(mode), withSubnet);
      assert.deepEqual([ca.sslMode, ca.host, ca.hostAddr], ['verify-ca', '10.20.0.3', undefined]);
    });
    it(`${mode}: verify-ca asked is kept, with a warning that the CA signs other servers too`, () => {
      const e = endpoint(instanceWith(mode), { ...source, sslMode: 'verify-ca' });
      assert.equal(e.sslMode, 'verify-ca');
      assert.equal(e.warnings.length, 1);
      assert.match(e.warnings[0]!, /verify-ca accepts any server that CA signed/);
    });
  }

  it('a CAS instance that reports no DNS name: verify-ca (with the warning), and verify-full refused', () => {
    const instance = instanceWith('GOOGLE_MANAGED_CAS_CA');
    (instance as { dnsNames: unknown[] }).dnsNames = [];
    (instance as { dnsName: string }).dnsName = '';
    const e = endpoint(instance, withSubnet);
    assert.deepEqual([e.sslMode, e.host, e.warnings.length], ['verify-ca', '10.20.0.3', 1]);
    assert.throws(
      () => endpoint(instance, { ...withSubnet, sslMode: 'verify-full' }),
      /config sourceSslMode: verify-full cannot succeed: .* reports no DNS name/,
    );
  });

  it('PSC to an instance that reports no DNS name: a ConfigError (no name for our private zone)', () => {
    const instance = instanceWith(undefined);
    (instance as { dnsNames: unknown[] }).dnsNames = [];
    (instance as { dnsName: string }).dnsName = '';
    assert.throws(
      () => endpoint(instance),
      (e: Error & { key?: string }) =>
        e.key === 'sourceInstance' &&
        /reports no DNS name for Private Service Connect/.test(e.message) &&
        /set pgcdc:sourceSubnet/.test(e.message),
    );
  });

  it('a customer-managed CA Cloud SQL lists no certificate for: a ConfigError that says how to get the pool’s roots', () => {
    const instance = instanceWith('CUSTOMER_MANAGED_CAS_CA');
    (instance.settings[0]!.ipConfigurations[0]! as { serverCaPool: string }).serverCaPool =
      'projects/their-project/locations/us-central1/caPools/db-pool';
    (instance as { serverCaCerts: unknown[] }).serverCaCerts = [];
    assert.throws(
      () => endpoint(instance, source, []),
      (e: Error & { key?: string }) =>
        e.key === 'sourceCaCert' &&
        e.message.includes(
          'gcloud privateca pools get-ca-certs db-pool --location=us-central1 --output-file=ca.pem',
        ),
    );
    const root = '-----BEGIN CERTIFICATE-----\nMIIpoolroot\n-----END CERTIFICATE-----';
    const given = endpoint(instance, { ...source, caCert: root }, []);
    assert.deepEqual([given.sslMode, given.caCert], ['verify-ca', `${root}\n`]);
  });

  it('pgcdc:sourceCaCert is trusted besides the listed CAs', () => {
    const extra = '-----BEGIN CERTIFICATE-----\nMIIextra\n-----END CERTIFICATE-----';
    const e = endpoint(instanceWith('CUSTOMER_MANAGED_CAS_CA'), { ...source, caCert: extra });
    assert.ok(
      String(e.caCert).endsWith(`MIIupcoming\n-----END CERTIFICATE-----\n${extra}\n`),
      String(e.caCert),
    );
  });

  it('no CA listed at all (per-instance CA): a ConfigError naming the command that lists them', () => {
    const instance = instanceWith(undefined);
    (instance as { serverCaCerts: unknown[] }).serverCaCerts = [];
    assert.throws(
      () => endpoint(instance, source, []),
      /config sourceCaCert: .* lists no server CA certificate.*gcloud sql ssl server-ca-certs list --instance=prod-db --project=their-project/,
    );
  });
});
