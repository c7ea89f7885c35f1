// What pgcdc says about an existing Cloud SQL instance it cannot use as is: warnings with the exact fix.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type * as gcp from '@pulumi/gcp';
import { validateConfig, type SourceConfig } from '../../infra/config';
import { caBundle } from '../../infra/database';
import { cloudSqlEndpoint, cloudSqlWarnings } from '../../infra/source';
import { existingInstance } from './harness';

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
    const endpoint = cloudSqlEndpoint(instance, source, 'my-project-123', '987654321');
    assert.equal(endpoint.path.kind, 'psc');
    assert.throws(
      () => cloudSqlEndpoint(instance, source, 'my-project-123', '111'),
      /does not allow project my-project-123/,
    );
  });
  it('every server CA certificate is trusted, as one PEM bundle (current and upcoming during a rotation)', () => {
    assert.equal(caBundle([{ cert: 'A\n' }, { cert: 'B' }, { cert: '' }]), 'A\nB\n');
    assert.equal(caBundle(undefined), '');
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
        assert.equal(
          await handshake(caBundle([{ cert: read('current.pem') }, { cert: read('upcoming.pem') }])),
          'verified',
        );
        assert.equal(await handshake(read('current.pem')), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
      } finally {
        server.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
