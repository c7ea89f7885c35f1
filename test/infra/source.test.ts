// What pgcdc says about an existing Cloud SQL instance it cannot use as is: warnings with the exact fix.
import assert from 'node:assert/strict';
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
});
