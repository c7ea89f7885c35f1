// validateConfig: what a stack may be configured with, and what it says when a value is wrong.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigInvalidError } from '../../cli/errors';
import {
  loadStackConfig,
  pulumiConfigProblems,
  readProject,
  stackConfigEntries,
} from '../../cli/stack-config';
import { load } from 'js-yaml';
import {
  CONFIG_KEYS,
  ConfigError,
  PROJECT_PLACEHOLDER,
  cronMinIntervalMinutes,
  cronProblem,
  parseSourceTable,
  validateConfig,
  type RawConfig,
} from '../../infra/config';
import { REPO_ROOT, devStackConfig } from './harness';

const minimal: RawConfig = { 'gcp:project': 'my-project-123' };

function rejects(raw: RawConfig, key: string, message: RegExp): void {
  assert.throws(
    () => validateConfig({ ...minimal, ...raw }),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
      assert.equal(e.key, key);
      assert.match(e.message, new RegExp(`^config ${key}: `));
      assert.match(e.message, message);
      return true;
    },
  );
}

describe('stack configuration', () => {
  describe('invalid values are rejected with the key and the reason', () => {
    it('a bad region', () => {
      rejects(
        { region: 'us-middle' },
        'region',
        /"us-middle" is not a Google Cloud region \(expected something like us-central1/,
      );
      rejects({ region: 'US-CENTRAL1' }, 'region', /not a Google Cloud region/);
    });
    it('a bad cron expression', () => {
      rejects({ schedule: '*/12 * * *' }, 'schedule', /must have 5 fields/);
      rejects({ schedule: 'often * * * *' }, 'schedule', /minute field "often" is not a number/);
      rejects({ schedule: '*/60x * * * *' }, 'schedule', /minute field "\*\/60x" is not valid/);
      rejects({ schedule: '0 24 * * *' }, 'schedule', /hour field "24" is out of range 0-23/);
      rejects({ sinkSchedule: '*/0 * * * *' }, 'sinkSchedule', /minute field "\*\/0" has a step of 0/);
      rejects({ sinkSchedule: '30-10 * * * *' }, 'sinkSchedule', /runs backwards/);
    });
    it('an empty table list', () => {
      rejects({ tables: [] }, 'tables', /is empty: list at least one source table as "schema.table"/);
      rejects({ tables: '[]' }, 'tables', /is empty/); // as Pulumi hands it over: JSON text
    });
    it('a table name without schema', () => {
      rejects({ tables: ['customers'] }, 'tables', /"customers" names no schema \(e.g. public.customers\)/);
      rejects({ tables: '["public.customers","orders"]' }, 'tables', /"orders" names no schema/);
    });
    it('a malformed table name says how to quote it, and two tables that map to one BigQuery table', () => {
      rejects(
        { tables: ['public."order lines'] },
        'tables',
        /double quote that is never closed: write schema\.table/,
      );
      rejects(
        { tables: ['a.b.c'] },
        'tables',
        /3 period-separated names; .*double quotes \(e\.g\. "a\.b"\.c\)/,
      );
      rejects(
        { tables: ['public.customers', 'public.customers'] },
        'tables',
        /would both be BigQuery table "customers"/,
      );
    });
    it('a missing project, or the placeholder Pulumi.dev.yaml ships with', () => {
      assert.throws(() => validateConfig({}), /^ConfigError: config gcp:project: is required$/);
      rejects({ 'gcp:project': PROJECT_PLACEHOLDER }, 'gcp:project', /still the placeholder/);
      rejects({ 'gcp:project': 'My_Project' }, 'gcp:project', /is not a project id/);
    });
    it('numbers out of range or not numbers', () => {
      rejects({ maxDeliveryAttempts: '3' }, 'maxDeliveryAttempts', /3 is out of range 5-100/);
      rejects({ ackDeadlineSeconds: 'ten' }, 'ackDeadlineSeconds', /must be a number, got "ten"/);
      rejects({ sinkTaskCount: '1.5' }, 'sinkTaskCount', /must be a whole number/);
      rejects({ databaseDiskAutoresizeLimitGb: '5' }, 'databaseDiskAutoresizeLimitGb', /out of range 10-/);
      rejects(
        { databaseDiskSizeGb: '200', databaseDiskAutoresizeLimitGb: '100' },
        'databaseDiskAutoresizeLimitGb',
        /100 is below databaseDiskSizeGb \(200\)/,
      );
    });
    it('a run window that leaves no time before the task timeout', () => {
      rejects(
        { listenerTimeoutSeconds: '300', listenerMaxRunSeconds: '300' },
        'listenerMaxRunSeconds',
        /out of range 10-120/,
      );
      // The listener may spend 2 × its window inside one long transaction, plus a minute to confirm.
      rejects(
        { listenerTimeoutSeconds: '600', listenerMaxRunSeconds: '300' },
        'listenerMaxRunSeconds',
        /out of range 10-270/,
      );
      rejects(
        { sinkTimeoutSeconds: '300', sinkMaxRunSeconds: '300' },
        'sinkMaxRunSeconds',
        /out of range 10-240/,
      );
    });
    it('a job timeout at or above the interval of its schedule (overlapping runs: "slot busy")', () => {
      // The old defaults: every 12 minutes with a 15-minute timeout.
      rejects(
        { listenerTimeoutSeconds: '900' },
        'listenerTimeoutSeconds',
        /900 s is not below the 12-minute interval of schedule "\*\/12 \* \* \* \*": runs would overlap; use at most 660/,
      );
      rejects(
        { listenerTimeoutSeconds: '720' },
        'listenerTimeoutSeconds',
        /not below the 12-minute interval/,
      );
      rejects(
        { schedule: '0,5 * * * *', listenerTimeoutSeconds: '600' },
        'listenerTimeoutSeconds',
        /not below the 5-minute interval/,
      );
      // The sink follows the listener's schedule unless it has its own.
      rejects({ sinkTimeoutSeconds: '900' }, 'sinkTimeoutSeconds', /12-minute interval of schedule/);
      rejects(
        { sinkSchedule: '*/5 * * * *' },
        'sinkTimeoutSeconds',
        /600 s is not below the 5-minute interval of sinkSchedule "\*\/5 \* \* \* \*"/,
      );
      assert.equal(
        validateConfig({ ...minimal, listenerTimeoutSeconds: '660' }).listener.timeoutSeconds,
        660,
      );
    });
    it('a database the pipeline cannot use', () => {
      rejects({ databaseVersion: 'POSTGRES_12' }, 'databaseVersion', /too old: use POSTGRES_13 or later/);
      rejects({ databaseVersion: 'MYSQL_8_0' }, 'databaseVersion', /not a Cloud SQL PostgreSQL version/);
      rejects({ databaseEdition: 'ENTERPRISE_PLUS' }, 'databaseTier', /cannot run edition ENTERPRISE_PLUS/);
      rejects({ decoder: 'test_decoding' }, 'decoder', /must be one of pgoutput, wal2json/);
      rejects(
        { adminUser: 'boss' },
        'adminUser',
        /with sourceMode new the admin is Cloud SQL's built-in "postgres"/,
      );
      rejects({ replicationUser: 'postgres' }, 'replicationUser', /is the admin login/);
      rejects(
        { replicaIdentityFull: ['public.orders'] },
        'replicaIdentityFull',
        /not one of the captured tables/,
      );
      rejects({ replicationUser: 'Robert"; DROP' }, 'replicationUser', /lowercase Postgres name/);
    });
    it("a job's memory outside what Cloud Run accepts for jobs, or too much memory for its CPUs", () => {
      rejects({ sinkMemory: '256Mi' }, 'sinkMemory', /below Cloud Run's 512Mi minimum for jobs/);
      rejects({ listenerMemory: '64Gi' }, 'listenerMemory', /above Cloud Run's 32Gi maximum/);
      rejects(
        { sinkMemory: '6Gi' },
        'sinkMemory',
        /needs at least 2 CPUs on Cloud Run \(the job's Cpu setting is 1\)/,
      );
      rejects({ listenerMemory: '10Gi', listenerCpu: '2' }, 'listenerMemory', /needs at least 4 CPUs/);
      rejects({ sinkMemory: 'lots' }, 'sinkMemory', /must be a size like 512Mi or 2Gi/);
      for (const [memory, cpu] of [
        ['512Mi', '1'],
        ['4Gi', '1'],
        ['6Gi', '2'],
        ['32Gi', '8'],
      ]) {
        const c = validateConfig({ ...minimal, sinkMemory: memory, sinkCpu: cpu });
        assert.equal(c.sink.memory, memory);
      }
    });
    it('other malformed values', () => {
      rejects({ deletionProtection: 'yes' }, 'deletionProtection', /must be true or false/);
      rejects({ timeZone: 'Mars/Olympus' }, 'timeZone', /not an IANA time zone/);
      rejects({ subnetCidr: '8.8.8.0/24' }, 'subnetCidr', /private IPv4 range/);
      rejects({ subnetCidr: '10.10.0.0/28' }, 'subnetCidr', /\/26 or larger/);
      rejects({ alertEmail: 'ops' }, 'alertEmail', /not an e-mail address/);
      rejects({ namePrefix: 'PgCdc' }, 'namePrefix', /lowercase/);
      rejects({ listenerImage: 'not an image' }, 'listenerImage', /not an image reference/);
    });
  });

  describe('valid values', () => {
    it('a project id alone gives the documented defaults', () => {
      const c = validateConfig(minimal);
      assert.equal(c.region, 'us-central1');
      assert.equal(c.listener.schedule, '*/12 * * * *');
      assert.equal(c.sink.schedule, '*/12 * * * *', 'the sink follows the listener unless told otherwise');
      assert.deepEqual(
        c.tables.map((t) => t.qualified),
        ['public.customers'],
      );
      assert.equal(c.deletionProtection, true, 'data is protected unless a stack says otherwise');
      assert.equal(c.database.decoder, 'pgoutput', 'BRIEF decision 3');
      assert.equal(c.database.adminUser, 'postgres');
      assert.equal(c.source.mode, 'new');
      assert.equal(c.database.diskAutoresizeLimitGb, 100);
      assert.ok(
        c.listener.timeoutSeconds < 12 * 60,
        'the default timeout is below the default schedule interval',
      );
      assert.ok(c.sink.timeoutSeconds < 12 * 60);
      assert.equal(c.warehouse.location, 'us-central1', 'BigQuery follows the region');
      assert.equal(c.listener.taskCount, 1);
    });
    it('values typed as Pulumi hands them over (strings, JSON text) and as YAML gives them are read alike', () => {
      const fromPulumi = validateConfig({
        ...minimal,
        tables: '["public.a","sales.b"]',
        deletionProtection: 'false',
        sinkTaskCount: '3',
      });
      const fromYaml = validateConfig({
        ...minimal,
        tables: ['public.a', 'sales.b'],
        deletionProtection: false,
        sinkTaskCount: 3,
      });
      assert.deepEqual(fromPulumi, fromYaml);
      assert.equal(fromPulumi.sink.taskCount, 3);
    });
    it('cron accepts ranges, steps, lists and names', () => {
      for (const ok of [
        '*/12 * * * *',
        '6-59/12 * * * *',
        '0 9-17 * * MON-FRI',
        '0,30 * 1 JAN,jul 0',
        '15 3 * * 7',
      ]) {
        assert.equal(cronProblem(ok), undefined, ok);
      }
    });
    it('a source table maps to its replica and change tables, schema-qualified outside public', () => {
      assert.deepEqual(parseSourceTable('public.customers'), {
        schema: 'public',
        table: 'customers',
        qualified: 'public.customers',
        replica: 'customers',
        changes: 'customers_changes',
      });
      assert.equal(parseSourceTable('sales.orders').replica, 'sales__orders');
      assert.equal(parseSourceTable('sales.orders').changes, 'sales__orders_changes');
    });
  });

  describe('Pulumi.yaml and Pulumi.dev.yaml', () => {
    type Declared = { type: string; default?: unknown; description?: string; items?: { type: string } };
    const project = load(readFileSync(path.join(REPO_ROOT, 'Pulumi.yaml'), 'utf8')) as {
      name: string;
      config: Record<string, Declared>;
    };

    it('declares every key the program reads, with a type and a description, and nothing else', () => {
      assert.equal(project.name, 'pgcdc');
      assert.deepEqual(Object.keys(project.config).sort(), [...CONFIG_KEYS].sort());
      for (const [key, decl] of Object.entries(project.config)) {
        assert.ok(['string', 'integer', 'boolean', 'array'].includes(decl.type), `${key}: type ${decl.type}`);
        assert.ok(decl.description && decl.description.length > 10, `${key}: description`);
      }
    });
    it('declares the same defaults validateConfig applies', () => {
      const fromDefaults = validateConfig(minimal);
      const declared: RawConfig = { ...minimal };
      for (const [key, decl] of Object.entries(project.config))
        if (decl.default !== undefined) declared[key] = decl.default;
      assert.deepEqual(validateConfig(declared), fromDefaults);
    });
    it('declared defaults are themselves valid values of their declared type', () => {
      for (const [key, decl] of Object.entries(project.config)) {
        if (decl.default === undefined) continue;
        const jsType = decl.type === 'integer' ? 'number' : decl.type === 'array' ? 'object' : decl.type;
        assert.equal(typeof decl.default, jsType, key);
      }
    });
    it('the dev stack sets project placeholder, region, schedule, tables and tiers, and is valid once the project is set', () => {
      const dev = load(readFileSync(path.join(REPO_ROOT, 'Pulumi.dev.yaml'), 'utf8')) as {
        config: Record<string, unknown>;
      };
      assert.equal(dev.config['gcp:project'], PROJECT_PLACEHOLDER);
      for (const key of ['region', 'schedule', 'tables', 'databaseTier'])
        assert.ok(`pgcdc:${key}` in dev.config, key);
      for (const key of Object.keys(dev.config)) {
        assert.ok(
          key === 'gcp:project' || CONFIG_KEYS.includes(key.slice('pgcdc:'.length) as never),
          `unknown key ${key}`,
        );
      }
      const raw: RawConfig = {};
      for (const [k, v] of Object.entries(devStackConfig())) raw[k.replace(/^pgcdc:/, '')] = v;
      const c = validateConfig(raw);
      assert.equal(c.listener.schedule, '*/12 * * * *');
      assert.equal(c.database.tier, 'db-g1-small');
    });
    it('the dev stack as shipped names its one missing piece: the project', () => {
      const raw: RawConfig = {};
      const dev = load(readFileSync(path.join(REPO_ROOT, 'Pulumi.dev.yaml'), 'utf8')) as {
        config: Record<string, unknown>;
      };
      for (const [k, v] of Object.entries(dev.config)) raw[k.replace(/^pgcdc:/, '')] = v;
      assert.throws(() => validateConfig(raw), /config gcp:project: is still the placeholder/);
    });
  });
});

describe('stack configuration: every problem at once', () => {
  it('reports every bad key of a configuration in one error, each with its fix', () => {
    assert.throws(
      () =>
        validateConfig({
          ...minimal,
          region: 'mars-west1',
          decoder: 'test_decoding',
          schedule: '*/5 * * * *',
          alertEmail: 'ops',
        }),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.deepEqual(
          e.problems.map((p) => p.key),
          ['region', 'decoder', 'listenerTimeoutSeconds', 'sinkTimeoutSeconds', 'alertEmail'],
        );
        assert.equal(e.key, 'region', 'the first problem is also the error key');
        assert.equal(e.message.split('\n').length, 5);
        assert.match(e.message, /^config region: "mars-west1" is not a Google Cloud region/m);
        assert.match(e.message, /^config alertEmail: "ops" is not an e-mail address$/m);
        return true;
      },
    );
  });
});

describe('source modes (sourceMode new | cloudsql | host)', () => {
  const cloudsql: RawConfig = {
    sourceMode: 'cloudsql',
    sourceInstance: 'their-project:us-central1:prod-db',
    adminPasswordSecret: 'projects/their-project/secrets/prod-db-admin',
  };
  const host: RawConfig = {
    sourceMode: 'host',
    sourceHost: 'db.internal.example.com',
    sourceCaCert: '-----BEGIN CERTIFICATE-----\nMIIfake\n-----END CERTIFICATE-----',
    sourceSubnet: 'projects/net-host/regions/us-central1/subnetworks/apps',
    adminPasswordSecret: 'db-admin',
    replicatorPasswordSecret: 'db-replicator',
  };

  it('cloudsql: the connection name is parsed, secrets resolved, TLS left to the server CA mode', () => {
    const c = validateConfig({ ...minimal, ...cloudsql });
    assert.deepEqual(c.source, {
      mode: 'cloudsql',
      connectionName: 'their-project:us-central1:prod-db',
      instanceProject: 'their-project',
      instanceRegion: 'us-central1',
      instanceName: 'prod-db',
      subnet: undefined,
      adminPasswordSecret: {
        project: 'their-project',
        secretId: 'prod-db-admin',
        id: 'projects/their-project/secrets/prod-db-admin',
      },
      replicatorPasswordSecret: undefined,
      // Unset: decided from the instance's server CA mode once it is read (infra/server-ca.ts).
      sslMode: undefined,
      caCert: undefined,
    });
  });
  it('cloudsql: sourceSslMode and sourceCaCert (a customer-managed CA’s root) are taken as given, and checked', () => {
    const root = '-----BEGIN CERTIFICATE-----\nMIIroot\n-----END CERTIFICATE-----';
    const c = validateConfig({ ...minimal, ...cloudsql, sourceSslMode: 'verify-full', sourceCaCert: root });
    assert.equal(c.source.mode, 'cloudsql');
    if (c.source.mode !== 'cloudsql') return;
    assert.deepEqual([c.source.sslMode, c.source.caCert], ['verify-full', root]);
    rejects({ ...cloudsql, sourceCaCert: 'MIIroot' }, 'sourceCaCert', /is not a PEM certificate/);
    rejects(
      { ...cloudsql, sourceSslMode: 'require' },
      'sourceSslMode',
      /must be one of verify-full, verify-ca/,
    );
  });
  it('cloudsql: a wrong connection name, a missing instance or admin secret, each says what to write', () => {
    rejects(
      { ...cloudsql, sourceInstance: 'prod-db' },
      'sourceInstance',
      /"prod-db" is not a Cloud SQL connection name: write it as project:region:instance/,
    );
    rejects(
      { ...cloudsql, sourceInstance: 'their-project/us-central1/prod-db' },
      'sourceInstance',
      /not a Cloud SQL connection name/,
    );
    rejects(
      { ...cloudsql, sourceInstance: undefined },
      'sourceInstance',
      /is required with sourceMode cloudsql/,
    );
    rejects(
      { ...cloudsql, adminPasswordSecret: undefined },
      'adminPasswordSecret',
      /is required with sourceMode cloudsql: set it to the Secret Manager secret holding the admin password/,
    );
    rejects(
      { ...cloudsql, adminPasswordSecret: 'projects/p/secret/x' },
      'adminPasswordSecret',
      /is not a Secret Manager secret: write projects\/P\/secrets\/S/,
    );
  });
  it('cloudsql through PSC: the instance region must be the stack region (a PSC endpoint is regional)', () => {
    rejects(
      { ...cloudsql, sourceInstance: 'their-project:europe-west4:prod-db' },
      'sourceInstance',
      /the instance is in europe-west4 but region is us-central1: set pgcdc:region to europe-west4/,
    );
    // Through its private IP the VPC is global: another region is fine.
    const c = validateConfig({
      ...minimal,
      ...cloudsql,
      sourceInstance: 'their-project:europe-west4:prod-db',
      sourceSubnet: 'projects/their-project/regions/us-central1/subnetworks/jobs',
    });
    assert.equal(c.source.mode === 'cloudsql' && c.source.subnet?.name, 'jobs');
  });
  it('host: every required key is named when missing, all at once', () => {
    assert.throws(
      () => validateConfig({ ...minimal, sourceMode: 'host' }),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.deepEqual(
          e.problems.map((p) => p.key).sort(),
          [
            'adminPasswordSecret',
            'replicatorPasswordSecret',
            'sourceCaCert',
            'sourceHost',
            'sourceSubnet',
          ].sort(),
        );
        assert.match(e.message, /sourceCaCert: is required with sourceMode host: the PEM of the CA/);
        assert.match(e.message, /sourceSubnet: is required with sourceMode host: set it to the subnet/);
        return true;
      },
    );
  });
  it('host: a CA that is not PEM, a subnet in another region or badly written, a bad host or port', () => {
    rejects({ ...host, sourceCaCert: 'MIIfake' }, 'sourceCaCert', /is not a PEM certificate/);
    rejects(
      { ...host, sourceSubnet: 'projects/net-host/regions/europe-west4/subnetworks/apps' },
      'sourceSubnet',
      /is in europe-west4 but the jobs run in us-central1/,
    );
    rejects(
      { ...host, sourceSubnet: 'apps' },
      'sourceSubnet',
      /write it as projects\/P\/regions\/R\/subnetworks\/S/,
    );
    rejects({ ...host, sourceHost: 'db host' }, 'sourceHost', /is not a host name or IPv4 address/);
    rejects({ ...host, sourcePort: '70000' }, 'sourcePort', /out of range 1-65535/);
    rejects({ ...host, sourceSslMode: 'require' }, 'sourceSslMode', /must be one of verify-full, verify-ca/);
    rejects(
      { ...host, replicatorPasswordSecret: 'projects/my-project-123/secrets/db-admin' },
      'replicatorPasswordSecret',
      /is the admin's secret \(projects\/my-project-123\/secrets\/db-admin\): the replicator needs a password of its own/,
    );
  });
  it('host: a complete configuration, TLS verify-full by default, secrets in the stack project when unqualified', () => {
    const c = validateConfig({ ...minimal, ...host });
    assert.equal(c.source.mode, 'host');
    if (c.source.mode !== 'host') return;
    assert.equal(c.source.sslMode, 'verify-full');
    assert.equal(c.source.port, 5432);
    assert.deepEqual(c.source.subnet, {
      project: 'net-host',
      region: 'us-central1',
      name: 'apps',
      id: 'projects/net-host/regions/us-central1/subnetworks/apps',
    });
    assert.equal(c.source.replicatorPasswordSecret.id, 'projects/my-project-123/secrets/db-replicator');
  });
  it('keys of another mode are refused, and an unknown mode lists the three', () => {
    rejects(
      { sourceInstance: 'a-project:us-central1:db' },
      'sourceInstance',
      /only used with sourceMode cloudsql \(sourceMode is new\): remove it/,
    );
    rejects(
      { ...host, sourceInstance: 'a-project:us-central1:db' },
      'sourceInstance',
      /only used with sourceMode cloudsql/,
    );
    rejects({ sourceMode: 'existing' }, 'sourceMode', /must be one of new, cloudsql, host/);
  });
});

describe('cron intervals', () => {
  it('the shortest gap between two starts, within a day and across midnight', () => {
    assert.equal(cronMinIntervalMinutes('*/12 * * * *'), 12);
    assert.equal(cronMinIntervalMinutes('6-59/12 * * * *'), 12);
    assert.equal(cronMinIntervalMinutes('0,5 * * * *'), 5);
    assert.equal(cronMinIntervalMinutes('*/7 * * * *'), 4, '56 → next hour 0');
    assert.equal(cronMinIntervalMinutes('0 9-17 * * MON-FRI'), 60);
    assert.equal(cronMinIntervalMinutes('0 1,23 * * *'), 120, '23:00 → 01:00');
    assert.equal(cronMinIntervalMinutes('30 3 * * *'), 24 * 60);
    assert.equal(cronMinIntervalMinutes('* * * * *'), 1);
    assert.equal(cronMinIntervalMinutes('not cron'), undefined);
  });
});

describe("Pulumi's own config rules, applied to every stack file of the repository", () => {
  // Pulumi stops `pulumi up` before the program runs when a project key declared without a default is not
  // set by the stack ("Stack 'dev' is missing configuration value 'x'"): sdk/go/common/workspace, mergeConfig,
  // pinned by TestStackConfigErrorsWhenMissingStackValueForConfigTypeWithNoDefault. pulumiConfigProblems
  // encodes that rule (plus: no unknown key in the pgcdc namespace).
  const stackFiles = readdirSync(REPO_ROOT).filter((f) => /^Pulumi\.[^.]+\.yaml$/.test(f));

  it('the repository has stack files to check', () => assert.ok(stackFiles.includes('Pulumi.dev.yaml')));
  for (const file of stackFiles) {
    const stack = file.slice('Pulumi.'.length, -'.yaml'.length);
    it(`${file}: every declared key without a default is set, every pgcdc: key is declared`, () => {
      assert.deepEqual(
        pulumiConfigProblems(readProject(REPO_ROOT), stack, stackConfigEntries(REPO_ROOT, stack)),
        [],
      );
    });
  }
  it('every key Pulumi.yaml declares has a default, so no stack has to set it', () => {
    const project = readProject(REPO_ROOT);
    for (const [key, decl] of Object.entries(project.config)) assert.notEqual(decl.default, undefined, key);
  });
  it('the rule itself: a typed key without default is required; a default makes it optional', () => {
    const project = {
      name: 'pgcdc',
      config: {
        values: { type: 'array', items: { type: 'string' } },
        region: { type: 'string', default: 'x' },
      },
    } as ReturnType<typeof readProject>;
    assert.deepEqual(pulumiConfigProblems(project, 'dev', {}), [
      "Stack 'dev' is missing configuration value 'values' (Pulumi.yaml declares it without a default): set pgcdc:values",
    ]);
    assert.deepEqual(pulumiConfigProblems(project, 'dev', { 'pgcdc:values': ['a'] }), []);
  });
});

describe('the CLI pre-check of a stack file (cli/stack-config.ts)', () => {
  let dir: string;
  const write = (stack: string) => {
    dir = mkdtempSync(path.join(tmpdir(), 'pgcdc-stack-'));
    copyFileSync(path.join(REPO_ROOT, 'Pulumi.yaml'), path.join(dir, 'Pulumi.yaml'));
    writeFileSync(path.join(dir, 'Pulumi.prod.yaml'), stack);
  };
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts values stored encrypted ({secure: ...}) and checks everything else', () => {
    write(
      [
        'config:',
        '  gcp:project: my-project-123',
        '  pgcdc:alertEmail:',
        '    secure: v1:AAABBBCCC',
        '  pgcdc:sourceMode: host',
        '  pgcdc:sourceHost: db.internal.example.com',
        '  pgcdc:sourceCaCert:',
        '    secure: v1:DDDEEE',
        '  pgcdc:sourceSubnet: projects/net-host/regions/us-central1/subnetworks/apps',
        '  pgcdc:adminPasswordSecret: db-admin',
        '  pgcdc:replicatorPasswordSecret: db-replicator',
        '',
      ].join('\n'),
    );
    const c = loadStackConfig(dir, 'prod', validateConfig);
    assert.equal(c.source.mode, 'host');
    assert.equal(c.monitoring.alertEmail, undefined, 'an encrypted value is not guessed at');
  });
  it('a misspelt key is reported with the key it probably means', () => {
    write(
      'config:\n  gcp:project: my-project-123\n  pgcdc:regoin: europe-west4\n  pgcdc:tabels: [public.a]\n',
    );
    assert.throws(
      () => loadStackConfig(dir, 'prod', validateConfig),
      (e: unknown) => {
        assert.ok(e instanceof ConfigInvalidError);
        assert.match(e.message, /unknown key pgcdc:regoin: did you mean pgcdc:region\?/);
        assert.match(e.message, /unknown key pgcdc:tabels: did you mean pgcdc:tables\?/);
        return true;
      },
    );
  });
  it('every problem of the file at once: unknown keys and invalid values together', () => {
    write(
      'config:\n  gcp:project: My_Project\n  pgcdc:regoin: x\n  pgcdc:decoder: test_decoding\n  pgcdc:listenerTimeoutSeconds: 900\n',
    );
    assert.throws(
      () => loadStackConfig(dir, 'prod', validateConfig),
      (e: unknown) => {
        assert.ok(e instanceof ConfigInvalidError);
        assert.match(e.message, /^Pulumi\.prod\.yaml: 4 problems:/);
        assert.match(e.message, /unknown key pgcdc:regoin/);
        assert.match(e.message, /config gcp:project: "My_Project" is not a project id/);
        assert.match(e.message, /config decoder: "test_decoding" must be one of pgoutput, wal2json/);
        assert.match(e.message, /config listenerTimeoutSeconds: 900 s is not below the 12-minute interval/);
        return true;
      },
    );
  });
});
