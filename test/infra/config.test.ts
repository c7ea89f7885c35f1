// validateConfig: what a stack may be configured with, and what it says when a value is wrong.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { load } from 'js-yaml';
import {
  CONFIG_KEYS,
  ConfigError,
  PROJECT_PLACEHOLDER,
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
      rejects(
        { tables: ['customers'] },
        'tables',
        /"customers" must be written "schema.table" \(e.g. public.customers\)/,
      );
      rejects(
        { tables: '["public.customers","orders"]' },
        'tables',
        /"orders" must be written "schema.table"/,
      );
    });
    it('a table name that is not a plain identifier, or two tables that map to one BigQuery table', () => {
      rejects({ tables: ['public.order-lines'] }, 'tables', /"order-lines" must be an unquoted identifier/);
      rejects({ tables: ['a.b.c'] }, 'tables', /must be written "schema.table"/);
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
      rejects({ maxSlotWalKeepSizeMb: '100' }, 'maxSlotWalKeepSizeMb', /out of range 1024-/);
    });
    it('a run window that leaves no time before the task timeout', () => {
      rejects(
        { listenerTimeoutSeconds: '300', listenerMaxRunSeconds: '300' },
        'listenerMaxRunSeconds',
        /out of range 10-240/,
      );
    });
    it('a database the pipeline cannot use', () => {
      rejects({ databaseVersion: 'POSTGRES_12' }, 'databaseVersion', /PostgreSQL 13 or later/);
      rejects({ databaseVersion: 'MYSQL_8_0' }, 'databaseVersion', /not a Cloud SQL PostgreSQL version/);
      rejects({ databaseEdition: 'ENTERPRISE_PLUS' }, 'databaseTier', /cannot run edition ENTERPRISE_PLUS/);
      rejects({ decoder: 'test_decoding' }, 'decoder', /must be one of wal2json, pgoutput/);
      rejects({ replicationUser: 'Robert"; DROP' }, 'replicationUser', /lowercase Postgres name/);
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
      assert.equal(c.database.maxSlotWalKeepSizeMb, undefined);
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
