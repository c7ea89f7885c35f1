// The stack's configuration: read once, validated once, typed from then on.
//
// `validateConfig` is a plain function (no Pulumi runtime needed) so the CLI can check a stack's
// configuration before it touches anything; `loadConfig` is the thin Pulumi-side reader used by index.ts.
// Every problem names the key (as written in Pulumi.yaml) and says what would be accepted; all problems
// of a configuration are reported together, not one per attempt.

import { MIN_JOB_MEMORY_MIB } from '../contract/node-heap';
import { TableEntry, TableNameError, parseTableEntry } from '../contract/table-name';
import { changesTableName, replicaTableName } from '../sink/names';

/** One configuration value that cannot be used; `key` is the config key as written in Pulumi.yaml. */
export interface ConfigProblem {
  key: string;
  problem: string;
}

/** The configuration cannot be used: every problem found, the first one also as `key`/`problem`. */
export class ConfigError extends Error {
  readonly key: string;
  readonly problem: string;
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[] | string, problem?: string) {
    const list = typeof problems === 'string' ? [{ key: problems, problem: problem ?? '' }] : problems;
    super(list.map((p) => `config ${p.key}: ${p.problem}`).join('\n'));
    this.name = 'ConfigError';
    this.problems = list;
    this.key = list[0]!.key;
    this.problem = list[0]!.problem;
  }
}

/**
 * A value stored encrypted in Pulumi.<stack>.yaml (`pulumi config set --secret`, written as `{secure: ...}`).
 * Only Pulumi can decrypt it; validateConfig accepts it as present and leaves its content to the program run,
 * where Pulumi hands over the decrypted value and the same checks apply.
 */
export class EncryptedValue {
  constructor(readonly ciphertext: string) {}
}

/** A source table "schema.table" and the BigQuery tables that mirror it. */
export interface SourceTable {
  schema: string;
  table: string;
  /** The entry in PostgreSQL's identifier syntax, as PGCDC_TABLES gets it (`public.customers`, `"a.b"."C"`). */
  qualified: string;
  /** BigQuery replica table (sink/names.ts): `table` for the public schema, `schema__table` otherwise, hashed when not plain. */
  replica: string;
  /** BigQuery append-only history table: `<replica>_changes`. */
  changes: string;
}

export interface JobSettings {
  /** Cloud Run task timeout, seconds. */
  timeoutSeconds: number;
  /** A run stops reading after this many seconds (PGCDC_MAX_RUN_SECONDS); must leave room before the timeout. */
  maxRunSeconds: number;
  /** Cloud Run retries per failed task. */
  maxRetries: number;
  /** Cloud Run tasks per execution (the listener is always 1: one slot, one reader). */
  taskCount: number;
  cpu: string;
  memory: string;
  /** Unix cron, interpreted in `timeZone`. */
  schedule: string;
  /** Prebuilt image reference; when set no image is built for this job. */
  image?: string;
}

/** A Secret Manager secret named by the user: `projects/P/secrets/S`, or `S` in the stack's project. */
export interface SecretRef {
  project: string;
  secretId: string;
  /** "projects/P/secrets/S". */
  id: string;
}

/** A VPC subnet named by the user: "projects/P/regions/R/subnetworks/S". */
export interface SubnetRef {
  project: string;
  region: string;
  name: string;
  id: string;
}

/** Where the database comes from (issue 12): created by the stack, an existing Cloud SQL instance, or any host. */
export type SourceConfig =
  | { mode: 'new' }
  | {
      mode: 'cloudsql';
      /** "project:region:instance". */
      connectionName: string;
      instanceProject: string;
      instanceRegion: string;
      instanceName: string;
      /** Set: reach the instance's private IP through this subnet of its VPC; unset: a PSC endpoint of ours. */
      subnet?: SubnetRef;
      adminPasswordSecret: SecretRef;
      /** Unset: the stack generates the replicator's password and keeps it in a secret of its own. */
      replicatorPasswordSecret?: SecretRef;
      /** Unset: by the instance's server CA mode, verify-full where its certificate names the host (server-ca.ts). */
      sslMode?: 'verify-ca' | 'verify-full';
      /** PEM trusted besides the CAs the instance lists (a customer-managed CA's root). */
      caCert?: string;
    }
  | {
      mode: 'host';
      host: string;
      port: number;
      /** PEM of the CA(s) the server's certificate is verified against. */
      caCert: string;
      subnet: SubnetRef;
      adminPasswordSecret: SecretRef;
      replicatorPasswordSecret: SecretRef;
      sslMode: 'verify-ca' | 'verify-full';
    };

export interface Config {
  project: string;
  region: string;
  /** Prefix of every resource name, so two stacks can share a project. */
  namePrefix: string;
  timeZone: string;
  tables: SourceTable[];
  /** Tables the user allows pgcdc to set REPLICA IDENTITY FULL on (PGCDC_REPLICA_IDENTITY_FULL). */
  replicaIdentityFull: string[];
  deletionProtection: boolean;
  source: SourceConfig;
  network: { subnetCidr: string };
  database: {
    /** The new instance's settings (sourceMode new only). */
    version: string;
    majorVersion: number;
    edition: 'ENTERPRISE' | 'ENTERPRISE_PLUS';
    tier: string;
    diskSizeGb: number;
    /** Largest size (GB) the disk may grow to automatically; bounds what a stuck slot's WAL can cost. */
    diskAutoresizeLimitGb: number;
    highAvailability: boolean;
    /** Every mode: the database holding the source tables. */
    name: string;
    /** The admin login that runs the SQL init (Cloud SQL's `postgres` in sourceMode new). */
    adminUser: string;
    /** The LOGIN REPLICATION role the SQL init creates; the listener logs in as it. */
    replicationUser: string;
    slotName: string;
    publicationName: string;
    decoder: 'wal2json' | 'pgoutput';
  };
  messaging: {
    ackDeadlineSeconds: number;
    maxDeliveryAttempts: number;
    /** How long unacknowledged messages are kept, seconds. */
    retentionSeconds: number;
    minBackoffSeconds: number;
    maxBackoffSeconds: number;
  };
  warehouse: {
    datasetId: string;
    location: string;
    maxStalenessMinutes: number;
  };
  listener: JobSettings;
  sink: JobSettings;
  monitoring: {
    alertEmail?: string;
    slotLagAlertBytes: number;
    /** Alert when the database disk is fuller than this percentage. */
    diskUtilizationAlertPercent: number;
  };
}

/** Raw values as they come from Pulumi config (strings) or from a parsed YAML file (typed). */
export type RawConfig = Record<string, unknown>;

/** Every key validateConfig reads (besides gcp:project), so Pulumi.yaml can be checked against it. */
export const CONFIG_KEYS = [
  'region',
  'namePrefix',
  'timeZone',
  'tables',
  'replicaIdentityFull',
  'deletionProtection',
  'sourceMode',
  'sourceInstance',
  'sourceHost',
  'sourcePort',
  'sourceCaCert',
  'sourceSubnet',
  'sourceSslMode',
  'adminPasswordSecret',
  'replicatorPasswordSecret',
  'subnetCidr',
  'databaseVersion',
  'databaseEdition',
  'databaseTier',
  'databaseDiskSizeGb',
  'databaseDiskAutoresizeLimitGb',
  'databaseHighAvailability',
  'databaseName',
  'adminUser',
  'replicationUser',
  'slotName',
  'publicationName',
  'decoder',
  'ackDeadlineSeconds',
  'maxDeliveryAttempts',
  'messageRetentionSeconds',
  'retryMinBackoffSeconds',
  'retryMaxBackoffSeconds',
  'datasetId',
  'bigQueryLocation',
  'maxStalenessMinutes',
  'schedule',
  'sinkSchedule',
  'listenerTimeoutSeconds',
  'listenerMaxRunSeconds',
  'listenerMaxRetries',
  'listenerCpu',
  'listenerMemory',
  'listenerImage',
  'sinkTimeoutSeconds',
  'sinkMaxRunSeconds',
  'sinkMaxRetries',
  'sinkTaskCount',
  'sinkCpu',
  'sinkMemory',
  'sinkImage',
  'alertEmail',
  'slotLagAlertBytes',
  'diskUtilizationAlertPercent',
] as const;

export type ConfigKey = (typeof CONFIG_KEYS)[number] | 'gcp:project';

/** The value Pulumi.dev.yaml ships with; a real project id must replace it before `pulumi up`. */
export const PROJECT_PLACEHOLDER = 'your-gcp-project-id';

export const SOURCE_MODES = ['new', 'cloudsql', 'host'] as const;

// Google Cloud regions are "<area>-<direction><n>", e.g. us-central1, europe-west4, me-central2.
const REGION_PATTERN =
  '(?:africa|asia|australia|europe|me|northamerica|southamerica|us)-(?:central|east|north|northeast|south|southeast|southwest|west)[1-9][0-9]?';
const REGION = new RegExp(`^${REGION_PATTERN}$`);
// Project ids: 6-30 chars, lowercase letters, digits, hyphens, start with a letter, not end with a hyphen.
// Legacy domain-scoped ids ("example.com:my-project") also exist; Cloud SQL connection names carry them.
const PROJECT_ID_PATTERN = '(?:[a-z][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]';
const PROJECT_ID = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
// Cloud SQL instance ids: lowercase letters, digits, hyphens, starting with a letter, at most 98 characters.
const INSTANCE_ID_PATTERN = '[a-z][a-z0-9-]{0,96}[a-z0-9]';
const CONNECTION_NAME = new RegExp(`^(${PROJECT_ID_PATTERN}):(${REGION_PATTERN}):(${INSTANCE_ID_PATTERN})$`);
const SUBNET = new RegExp(
  `^projects/(${PROJECT_ID_PATTERN})/regions/(${REGION_PATTERN})/subnetworks/([a-z][a-z0-9-]{0,61}[a-z0-9]?)$`,
);
// Secret ids: letters, digits, hyphens, underscores, at most 255 characters.
const SECRET_ID = /^[A-Za-z0-9_-]{1,255}$/;
const SECRET_PATH = new RegExp(`^projects/(${PROJECT_ID_PATTERN}|[0-9]+)/secrets/([A-Za-z0-9_-]{1,255})$`);
// A DNS name or an IPv4 address.
const HOST =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
// Postgres role / slot / publication names we pass unquoted to SQL.
const PG_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const DATASET_ID = /^[A-Za-z0-9_]{1,1024}$/;
// Resource names are built as `${namePrefix}-listener-invoker` etc.; service account ids allow 30 chars.
const NAME_PREFIX = /^[a-z][a-z0-9-]{0,10}[a-z0-9]$|^[a-z]$/;
const CPU = /^(1|2|4|6|8)$/;
const MEMORY = /^[0-9]+(Mi|Gi)$/;
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;

/** Checks every key and returns the typed configuration, or throws one ConfigError listing every bad key. */
export function validateConfig(raw: RawConfig): Config {
  const r = new Reader(raw);
  const project = r.string('gcp:project', undefined, (v) => {
    if (v === PROJECT_PLACEHOLDER)
      return `is still the placeholder "${v}": set it to your Google Cloud project id`;
    if (!PROJECT_ID.test(v))
      return `"${v}" is not a project id (6-30 lowercase letters, digits, hyphens; starts with a letter)`;
  });
  const region = r.string('region', 'us-central1', (v) =>
    REGION.test(v)
      ? undefined
      : `"${v}" is not a Google Cloud region (expected something like us-central1 or europe-west4)`,
  );
  const namePrefix = r.string('namePrefix', 'pgcdc', (v) =>
    NAME_PREFIX.test(v)
      ? undefined
      : `"${v}" must be 1-12 lowercase letters, digits or hyphens, starting with a letter`,
  );
  const timeZone = r.string('timeZone', 'Etc/UTC', (v) =>
    isTimeZone(v) ? undefined : `"${v}" is not an IANA time zone`,
  );
  const sourceTables = r.check(
    'tables',
    () => {
      const tables = r.stringList('tables', ['public.customers']);
      if (tables.length === 0)
        throw new ConfigError('tables', 'is empty: list at least one source table as "schema.table"');
      const parsed = tables.map((t) => parseSourceTable(t));
      const seen = new Map<string, string>();
      for (const t of parsed) {
        const clash = seen.get(t.replica);
        if (clash !== undefined) {
          throw new ConfigError(
            'tables',
            `"${clash}" and "${t.qualified}" would both be BigQuery table "${t.replica}"`,
          );
        }
        seen.set(t.replica, t.qualified);
      }
      return parsed;
    },
    [parseSourceTable('public.customers')],
  );
  const replicaIdentityFull = r.check(
    'replicaIdentityFull',
    () => {
      const listed = r.stringList('replicaIdentityFull', []);
      const captured = new Set(sourceTables.map((t) => t.qualified));
      return listed.map((t) => {
        const { qualified } = parseSourceTable(t, 'replicaIdentityFull');
        if (!captured.has(qualified))
          throw new ConfigError(
            'replicaIdentityFull',
            `"${t}" is not one of the captured tables (pgcdc:tables)`,
          );
        return qualified;
      });
    },
    [],
  );

  const source = sourceSettings(r, project, region);

  const databaseVersion = r.string('databaseVersion', 'POSTGRES_16', (v) => {
    const m = /^POSTGRES_(\d+)$/.exec(v);
    if (!m) return `"${v}" is not a Cloud SQL PostgreSQL version (POSTGRES_13 ... POSTGRES_18)`;
    // PostgreSQL 12 and older are past their community end of life (https://www.postgresql.org/support/versioning/).
    if (Number(m[1]) < 13) return `"${v}" is too old: use POSTGRES_13 or later`;
  });
  const edition = r.oneOf('databaseEdition', ['ENTERPRISE', 'ENTERPRISE_PLUS'] as const, 'ENTERPRISE');
  const tier = r.string('databaseTier', 'db-custom-1-3840', (v) => {
    if (!/^db-[a-z0-9-]+$/.test(v))
      return `"${v}" is not a Cloud SQL tier (e.g. db-custom-1-3840, db-g1-small)`;
    // ENTERPRISE_PLUS only runs the predefined db-perf-optimized-N-* machines (provider docs, settings.edition).
    if (edition === 'ENTERPRISE_PLUS' && !v.startsWith('db-perf-optimized-')) {
      return `"${v}" cannot run edition ENTERPRISE_PLUS: use a db-perf-optimized-N-* tier or databaseEdition ENTERPRISE`;
    }
  });
  const diskSizeGb = r.integer('databaseDiskSizeGb', 10, 10, 65536);
  const adminUser = r.string('adminUser', 'postgres', (v) => {
    const bad = pgName(v);
    if (bad) return bad;
    // The stack sets the password of Cloud SQL's built-in admin through the instance's rootPassword.
    if (source.mode === 'new' && v !== 'postgres')
      return `"${v}": with sourceMode new the admin is Cloud SQL's built-in "postgres" user (leave adminUser unset)`;
  });
  const replicationUser = r.string('replicationUser', 'pgcdc_replicator', pgName);
  if (replicationUser === adminUser)
    r.problem(
      'replicationUser',
      `"${replicationUser}" is the admin login: the replicator must be a role of its own`,
    );
  const database = {
    version: databaseVersion,
    majorVersion: Number(databaseVersion.slice('POSTGRES_'.length)) || 16,
    edition,
    tier,
    diskSizeGb,
    diskAutoresizeLimitGb: r.check(
      'databaseDiskAutoresizeLimitGb',
      () => {
        const limit = r.integer('databaseDiskAutoresizeLimitGb', 100, 10, 65536);
        if (limit < diskSizeGb)
          throw new ConfigError(
            'databaseDiskAutoresizeLimitGb',
            `${limit} is below databaseDiskSizeGb (${diskSizeGb})`,
          );
        return limit;
      },
      100,
    ),
    highAvailability: r.boolean('databaseHighAvailability', false),
    name: r.string('databaseName', 'app', pgName),
    adminUser,
    replicationUser,
    slotName: r.string('slotName', 'pgcdc_slot', pgName),
    publicationName: r.string('publicationName', 'pgcdc_pub', pgName),
    decoder: r.oneOf('decoder', ['pgoutput', 'wal2json'] as const, 'pgoutput'),
  };

  const minBackoffSeconds = r.integer('retryMinBackoffSeconds', 10, 0, 600);
  const messaging = {
    // The sink acks only after BigQuery accepted the rows, so give it Pub/Sub's longest deadline by default.
    ackDeadlineSeconds: r.integer('ackDeadlineSeconds', 600, 10, 600),
    maxDeliveryAttempts: r.integer('maxDeliveryAttempts', 10, 5, 100),
    retentionSeconds: r.integer('messageRetentionSeconds', 7 * 24 * 3600, 600, 31 * 24 * 3600),
    minBackoffSeconds,
    maxBackoffSeconds: r.integer('retryMaxBackoffSeconds', 600, minBackoffSeconds, 600),
  };

  const warehouse = {
    datasetId: r.string('datasetId', 'pgcdc', (v) =>
      DATASET_ID.test(v) ? undefined : `"${v}" may only contain letters, digits and underscores`,
    ),
    location: r.string('bigQueryLocation', region, (v) =>
      v === 'US' || v === 'EU' || REGION.test(v)
        ? undefined
        : `"${v}" is not a BigQuery location (US, EU or a region)`,
    ),
    maxStalenessMinutes: r.integer('maxStalenessMinutes', 15, 0, 24 * 60),
  };

  const schedule = r.string('schedule', '*/12 * * * *', cronProblem);
  const listener = jobSettings(r, 'listener', schedule, 'schedule');
  // One replication slot has one reader: parallel listener tasks would fight over it.
  listener.taskCount = 1;
  const sinkScheduleKey = r.has('sinkSchedule') ? 'sinkSchedule' : 'schedule';
  const sink = jobSettings(r, 'sink', r.string('sinkSchedule', schedule, cronProblem), sinkScheduleKey);
  sink.taskCount = r.integer('sinkTaskCount', 1, 1, 100);

  const monitoring = {
    alertEmail: r.optionalString('alertEmail', (v) =>
      EMAIL.test(v) ? undefined : `"${v}" is not an e-mail address`,
    ),
    slotLagAlertBytes: r.integer('slotLagAlertBytes', 1024 ** 3, 1, Number.MAX_SAFE_INTEGER),
    diskUtilizationAlertPercent: r.integer('diskUtilizationAlertPercent', 80, 10, 99),
  };

  const config: Config = {
    project,
    region,
    namePrefix,
    timeZone,
    tables: sourceTables,
    replicaIdentityFull,
    deletionProtection: r.boolean('deletionProtection', true),
    source,
    network: {
      subnetCidr: r.string('subnetCidr', '10.10.0.0/24', (v) =>
        isPrivateCidr(v, 26) ? undefined : `"${v}" must be a private IPv4 range (RFC 1918) of /26 or larger`,
      ),
    },
    database,
    messaging,
    warehouse,
    listener,
    sink,
    monitoring,
  };
  r.finish();
  return config;
}

/** The source-mode keys (issue 12): what each mode needs, and what it must not be given. */
function sourceSettings(r: Reader, project: string, region: string): SourceConfig {
  const mode = r.oneOf('sourceMode', SOURCE_MODES, 'new');
  const modeOnly: Record<string, readonly (typeof SOURCE_MODES)[number][]> = {
    sourceInstance: ['cloudsql'],
    sourceHost: ['host'],
    sourceCaCert: ['cloudsql', 'host'],
    sourceSubnet: ['cloudsql', 'host'],
    sourceSslMode: ['cloudsql', 'host'],
    adminPasswordSecret: ['cloudsql', 'host'],
    replicatorPasswordSecret: ['cloudsql', 'host'],
  };
  for (const [key, modes] of Object.entries(modeOnly)) {
    if (r.has(key as ConfigKey) && !modes.includes(mode)) {
      r.problem(key, `is only used with sourceMode ${modes.join(' or ')} (sourceMode is ${mode}): remove it`);
    }
  }
  if (mode === 'new') return { mode };

  const subnet = (required: boolean): SubnetRef | undefined => {
    const v = required
      ? r.string('sourceSubnet', undefined, subnetProblem(region), whatSubnet(mode))
      : r.optionalString('sourceSubnet', subnetProblem(region));
    if (v === undefined || v === '') return undefined;
    const m = SUBNET.exec(v);
    // An encrypted value passes unread: Pulumi checks it again with the plain value.
    return m ? { project: m[1]!, region: m[2]!, name: m[3]!, id: v } : undefined;
  };
  const secret = (key: 'adminPasswordSecret' | 'replicatorPasswordSecret', required: boolean) => {
    const what =
      key === 'adminPasswordSecret'
        ? 'the Secret Manager secret holding the admin password, as projects/P/secrets/S or S'
        : "the Secret Manager secret holding the replicator's password, as projects/P/secrets/S or S";
    const v = required
      ? r.string(key, undefined, secretProblem, `is required with sourceMode ${mode}: set it to ${what}`)
      : r.optionalString(key, secretProblem);
    return v === undefined || v === '' ? undefined : parseSecretRef(v, project);
  };
  const sslModes = ['verify-full', 'verify-ca'] as const;
  // cloudsql: unset means "by the instance's server CA mode", decided once the instance is read
  // (infra/server-ca.ts); host: verify-full unless the user says otherwise.
  const sslMode =
    mode === 'cloudsql' && !r.has('sourceSslMode')
      ? undefined
      : r.oneOf('sourceSslMode', sslModes, 'verify-full');
  const pem = (v: string) =>
    /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.test(v)
      ? undefined
      : 'is not a PEM certificate: paste the CA certificate(s) that signed the server certificate, ' +
        '"-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----"';

  const sameSecret = (admin?: SecretRef, replicator?: SecretRef) => {
    if (admin && replicator && admin.id !== '' && admin.id === replicator.id)
      r.problem(
        'replicatorPasswordSecret',
        `is the admin's secret (${admin.id}): the replicator needs a password of its own`,
      );
  };

  if (mode === 'cloudsql') {
    const connectionName = r.string(
      'sourceInstance',
      undefined,
      (v) =>
        CONNECTION_NAME.test(v)
          ? undefined
          : `"${v}" is not a Cloud SQL connection name: write it as project:region:instance ` +
            '(gcloud sql instances describe INSTANCE --format="value(connectionName)")',
      'is required with sourceMode cloudsql: set it to the instance connection name project:region:instance',
    );
    const m = CONNECTION_NAME.exec(connectionName);
    const s = subnet(false);
    if (m && !s && m[2] !== region && !r.isEncrypted('sourceSubnet')) {
      // A PSC endpoint must be in the region of the instance's service attachment.
      r.problem(
        'sourceInstance',
        `the instance is in ${m[2]} but region is ${region}: set pgcdc:region to ${m[2]} ` +
          '(the PSC endpoint and the jobs must be in the instance region), or reach its private IP with pgcdc:sourceSubnet',
      );
    }
    const adminPasswordSecret = secret('adminPasswordSecret', true) ?? placeholderSecret();
    const replicatorPasswordSecret = secret('replicatorPasswordSecret', false);
    sameSecret(adminPasswordSecret, replicatorPasswordSecret);
    return {
      mode,
      connectionName,
      instanceProject: m?.[1] ?? '',
      instanceRegion: m?.[2] ?? '',
      instanceName: m?.[3] ?? '',
      subnet: s,
      adminPasswordSecret,
      replicatorPasswordSecret,
      sslMode,
      caCert: r.optionalString('sourceCaCert', pem),
    };
  }

  const host = r.string(
    'sourceHost',
    undefined,
    (v) => (HOST.test(v) ? undefined : `"${v}" is not a host name or IPv4 address`),
    'is required with sourceMode host: set it to the database server name or address, reachable from sourceSubnet',
  );
  const caCert = r.string(
    'sourceCaCert',
    undefined,
    pem,
    'is required with sourceMode host: the PEM of the CA that signed the server certificate ' +
      '(pgcdc verifies the server; it never connects unverified)',
  );
  const adminPasswordSecret = secret('adminPasswordSecret', true) ?? placeholderSecret();
  const replicatorPasswordSecret = secret('replicatorPasswordSecret', true) ?? placeholderSecret();
  sameSecret(adminPasswordSecret, replicatorPasswordSecret);
  return {
    mode,
    host,
    port: r.integer('sourcePort', 5432, 1, 65535),
    caCert,
    subnet: subnet(true) ?? placeholderSubnet(),
    adminPasswordSecret,
    replicatorPasswordSecret,
    sslMode: sslMode ?? 'verify-full',
  };
}

// What a failed (or encrypted) ref is replaced with, so validation can go on and report every problem.
function placeholderSecret(): SecretRef {
  return { project: '', secretId: '', id: '' };
}
function placeholderSubnet(): SubnetRef {
  return { project: '', region: '', name: '', id: '' };
}

function whatSubnet(mode: string): string {
  return (
    `is required with sourceMode ${mode}: set it to the subnet the jobs join to reach the database, ` +
    'projects/P/regions/R/subnetworks/S (R must be pgcdc:region)'
  );
}

function subnetProblem(region: string): (v: string) => string | undefined {
  return (v) => {
    const m = SUBNET.exec(v);
    if (!m) return `"${v}" is not a subnet: write it as projects/P/regions/R/subnetworks/S`;
    // Direct VPC egress uses a subnet of the job's own region.
    if (m[2] !== region)
      return `"${v}" is in ${m[2]} but the jobs run in ${region}: use a subnet in ${region} or set pgcdc:region to ${m[2]}`;
  };
}

function secretProblem(v: string): string | undefined {
  return SECRET_ID.test(v) || SECRET_PATH.test(v)
    ? undefined
    : `"${v}" is not a Secret Manager secret: write projects/P/secrets/S, or S for a secret of this project`;
}

/** "projects/P/secrets/S" or "S" (in `project`) → its parts. */
export function parseSecretRef(v: string, project: string): SecretRef {
  const m = SECRET_PATH.exec(v);
  if (m) return { project: m[1]!, secretId: m[2]!, id: v };
  return { project, secretId: v, id: `projects/${project}/secrets/${v}` };
}

function jobSettings(
  r: Reader,
  job: 'listener' | 'sink',
  schedule: string,
  scheduleKey: string,
): JobSettings {
  const timeoutKey = `${job}TimeoutSeconds` as ConfigKey;
  // The listener's default leaves room for 2 × its 300 s reading window plus a minute (below).
  const timeoutSeconds = r.integer(timeoutKey, job === 'listener' ? 660 : 600, 60, 24 * 3600);
  // Two executions of one job overlap when a run may last longer than the gap to the next start: for the
  // listener the second fails on the slot ("replication slot ... is active for PID ..."), for the sink it
  // doubles the work. So the task timeout must stay below the schedule's shortest interval.
  const gap = cronMinIntervalMinutes(schedule);
  if (gap !== undefined && timeoutSeconds >= gap * 60) {
    r.problem(
      timeoutKey,
      `${timeoutSeconds} s is not below the ${gap}-minute interval of ${scheduleKey} "${schedule}": ` +
        `runs would overlap; use at most ${gap * 60 - 60} or a sparser schedule`,
    );
  }
  // A run needs time after its reading window to publish/write what it read and to shut down cleanly. The
  // listener also gives a transaction it is inside at the time limit as long again before it reports it
  // stuck (listener/run.ts), so its whole run may take 2 × maxRunSeconds: the timeout must cover that plus a
  // minute, or Cloud Run kills the run before it can confirm what it published or say what is stuck.
  const maxRunLimit = Math.max(
    10,
    job === 'listener' ? Math.floor((timeoutSeconds - 60) / 2) : timeoutSeconds - 60,
  );
  const maxRunSeconds = r.integer(
    `${job}MaxRunSeconds` as ConfigKey,
    Math.min(300, maxRunLimit),
    10,
    maxRunLimit,
  );
  const cpu = r.string(`${job}Cpu` as ConfigKey, '1', (v) =>
    CPU.test(v) ? undefined : `"${v}" must be 1, 2, 4, 6 or 8`,
  );
  return {
    timeoutSeconds,
    maxRunSeconds,
    maxRetries: r.integer(`${job}MaxRetries` as ConfigKey, 1, 0, 10),
    taskCount: 1,
    cpu,
    memory: r.string(`${job}Memory` as ConfigKey, '512Mi', (v) => memoryProblem(v, cpu)),
    schedule,
    image: r.optionalString(`${job}Image` as ConfigKey, (v) =>
      /^[a-z0-9.-]+(:[0-9]+)?\/[^\s]+$/.test(v)
        ? undefined
        : `"${v}" is not an image reference (registry/path[:tag|@digest])`,
    ),
  };
}

/**
 * A job's memory limit, as Cloud Run accepts it for jobs (https://cloud.google.com/run/docs/configuring/jobs/memory-limits):
 * "The minimum amount of memory you can configure in the second generation execution environment is 512 MiB"
 * (jobs only run in it), "The maximum amount of memory you can configure is 32 gibibyte (32 Gi)", and "When
 * setting a memory limit, the following minimum CPU limits are required: More than 4 GiB 2, More than 8 GiB
 * 4, More than 16 GiB 6, More than 24 GiB 8". The jobs' heap caps follow it (infra/jobs.ts sets each job's
 * NODE_OPTIONS from it: contract/node-heap.ts); their fixed in-memory bounds are sized for the 512 MiB minimum.
 */
function memoryProblem(v: string, cpu: string): string | undefined {
  if (!MEMORY.test(v)) return `"${v}" must be a size like 512Mi or 2Gi`;
  const mib = memoryMib(v);
  if (mib < MIN_JOB_MEMORY_MIB) return `"${v}" is below Cloud Run's ${MIN_JOB_MEMORY_MIB}Mi minimum for jobs`;
  if (mib > 32 * 1024) return `"${v}" is above Cloud Run's 32Gi maximum`;
  const needed = mib > 24 * 1024 ? 8 : mib > 16 * 1024 ? 6 : mib > 8 * 1024 ? 4 : mib > 4 * 1024 ? 2 : 1;
  const cpus = Number(cpu);
  if (Number.isFinite(cpus) && cpus < needed) {
    return `"${v}" needs at least ${needed} CPUs on Cloud Run (the job's Cpu setting is ${cpu})`;
  }
  return undefined;
}

/** A memory setting ("512Mi", "2Gi") in MiB: the suffixes are binary units ("32 gibibyte (32 Gi)", same page). */
export function memoryMib(v: string): number {
  if (!MEMORY.test(v)) throw new Error(`"${v}" is not a memory size like 512Mi or 2Gi`);
  return Number(v.slice(0, -2)) * (v.endsWith('Gi') ? 1024 : 1);
}

/**
 * One table in PostgreSQL's identifier syntax (contract/table-name.ts: `schema.table`, either part
 * double-quoted, a bare part folded to lower case) → its names; throws ConfigError(key) saying what to write.
 * The BigQuery names are the sink's (sink/names.ts), for PostgreSQL's reading of the entry.
 */
export function parseSourceTable(text: string, key = 'tables'): SourceTable {
  let entry: TableEntry;
  try {
    entry = parseTableEntry(text, key);
  } catch (e) {
    if (e instanceof TableNameError) throw new ConfigError(key, e.problem);
    throw e;
  }
  const { schema, table } = entry.name;
  const replica = replicaTableName(schema, table);
  return { schema, table, qualified: entry.text, replica, changes: changesTableName(schema, table) };
}

const CRON_FIELDS: Array<[string, number, number, string[]]> = [
  ['minute', 0, 59, []],
  ['hour', 0, 23, []],
  ['day-of-month', 1, 31, []],
  ['month', 1, 12, ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC']],
  ['day-of-week', 0, 7, ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT']],
];

/** Why a unix-cron expression (5 fields, as Cloud Scheduler reads it) is wrong, or undefined if it is fine. */
export function cronProblem(expr: string): string | undefined {
  const fields = expr.trim().split(/\s+/);
  if (fields.length !== 5) {
    return `"${expr}" must have 5 fields (minute hour day-of-month month day-of-week), e.g. "*/12 * * * *"`;
  }
  for (let i = 0; i < 5; i++) {
    const [name, min, max, names] = CRON_FIELDS[i]!;
    const problem = cronFieldProblem(fields[i]!, min, max, names);
    if (problem) return `"${expr}": ${name} field "${fields[i]}" ${problem}`;
  }
  return undefined;
}

/** The values a valid cron field selects ("*" → every value of its range). */
function cronFieldValues(field: string, min: number, max: number, names: string[]): Set<number> {
  const value = (s: string): number => {
    if (/^\d+$/.test(s)) return Number(s);
    const i = names.indexOf(s.toUpperCase());
    // Month names count from 1, day names from 0 (SUN).
    return names.length === 12 ? i + 1 : i;
  };
  const out = new Set<number>();
  for (const item of field.split(',')) {
    const [range, stepText] = item.split('/') as [string, string | undefined];
    const step = stepText === undefined ? 1 : Number(stepText);
    let lo = min;
    let hi = max;
    if (range !== '*') {
      const bounds = range.split('-').map(value);
      lo = bounds[0]!;
      // "a/n" (no range) runs from a to the end of the field, as in Vixie cron.
      hi = bounds.length === 2 ? bounds[1]! : stepText === undefined ? lo : max;
    }
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

/**
 * The shortest gap, in minutes, between two consecutive starts of a valid unix-cron schedule: within a day
 * (consecutive selected hour:minute pairs) and across midnight (last start of a day to the first of the
 * next, assumed possible whenever two consecutive days can both run — the conservative answer). Gaps of
 * two days or more exceed every timeout we allow. undefined when the expression is invalid.
 * Daylight-saving shifts of a non-UTC time zone can shorten one gap by up to an hour once a year; that
 * run fails with "slot busy" and the next one continues.
 */
export function cronMinIntervalMinutes(expr: string): number | undefined {
  if (cronProblem(expr) !== undefined) return undefined;
  const fields = expr.trim().split(/\s+/);
  const [minutes, hours] = [0, 1].map((i) => {
    const [, min, max, names] = CRON_FIELDS[i]!;
    return [...cronFieldValues(fields[i]!, min, max, names)].sort((a, b) => a - b);
  }) as [number[], number[]];
  const starts = hours.flatMap((h) => minutes.map((m) => h * 60 + m));
  let gap = Infinity;
  for (let i = 1; i < starts.length; i++) gap = Math.min(gap, starts[i]! - starts[i - 1]!);
  // Across midnight: the next day's first start.
  gap = Math.min(gap, starts[0]! + 24 * 60 - starts[starts.length - 1]!);
  return gap;
}

function cronFieldProblem(field: string, min: number, max: number, names: string[]): string | undefined {
  const value = (s: string): number | undefined => {
    if (/^\d+$/.test(s)) return Number(s);
    const i = names.indexOf(s.toUpperCase());
    // Month names count from 1, day names from 0 (SUN).
    return i < 0 ? undefined : names.length === 12 ? i + 1 : i;
  };
  for (const item of field.split(',')) {
    const m = /^([^/]+)(?:\/(\d+))?$/.exec(item);
    if (!m) return `is not valid (use *, n, a-b, */n, a-b/n or lists of them)`;
    const [, range, step] = m;
    if (step !== undefined && Number(step) === 0) return 'has a step of 0';
    if (range === '*') continue;
    const bounds = range!.split('-');
    if (bounds.length > 2) return `is not valid (use *, n, a-b, */n, a-b/n or lists of them)`;
    const nums = bounds.map(value);
    if (nums.some((n) => n === undefined)) return `is not a number${names.length ? ' or name' : ''}`;
    if (nums.some((n) => n! < min || n! > max)) return `is out of range ${min}-${max}`;
    if (nums.length === 2 && nums[0]! > nums[1]!) return 'has a range that runs backwards';
  }
  return undefined;
}

function pgName(v: string): string | undefined {
  return PG_NAME.test(v)
    ? undefined
    : `"${v}" must be a lowercase Postgres name (letters, digits, underscores)`;
}

function isTimeZone(v: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: v });
    return true;
  } catch {
    return false;
  }
}

function isPrivateCidr(v: string, longestPrefix: number): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(v);
  if (!m) return false;
  const [a, b, c, d, prefix] = m.slice(1).map(Number) as [number, number, number, number, number];
  if ([a, b, c, d].some((o) => o > 255) || prefix < 8 || prefix > longestPrefix) return false;
  const addr = ((a << 24) >>> 0) + (b << 16) + (c << 8) + d;
  // The address must be the network address of its range (no host bits set).
  const hostBits = 32 - prefix;
  if (addr % 2 ** hostBits !== 0) return false;
  return a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168);
}

/**
 * Reads keys from a raw bag, coercing Pulumi's string values. A bad value is recorded (and its default used
 * so the remaining keys are still checked); `finish` throws one ConfigError with every problem.
 */
class Reader {
  private readonly problems: ConfigProblem[] = [];
  constructor(private readonly raw: RawConfig) {}

  problem(key: string, problem: string): void {
    if (!this.problems.some((p) => p.key === key && p.problem === problem))
      this.problems.push({ key, problem });
  }

  /** Runs a multi-step check; a ConfigError it throws is recorded and `fallback` returned. */
  check<T>(key: string, fn: () => T, fallback: T): T {
    try {
      return fn();
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      for (const p of e.problems) this.problem(p.key || key, p.problem);
      return fallback;
    }
  }

  finish(): void {
    if (this.problems.length > 0) throw new ConfigError(this.problems);
  }

  /** Is the key set (to anything, encrypted included)? Empty strings count as unset, as Pulumi.yaml defaults. */
  has(key: ConfigKey): boolean {
    const v = this.raw[key];
    return v !== undefined && v !== null && v !== '';
  }

  isEncrypted(key: ConfigKey): boolean {
    return this.raw[key] instanceof EncryptedValue;
  }

  private get(key: ConfigKey): unknown {
    const v = this.raw[key];
    return v === '' || v === null ? undefined : v;
  }

  string(
    key: ConfigKey,
    fallback: string | undefined,
    check?: (v: string) => string | undefined,
    missing = 'is required',
  ): string {
    let v = this.get(key);
    if (v instanceof EncryptedValue) return fallback ?? '';
    if (v === undefined) {
      if (fallback === undefined) {
        this.problem(key, missing);
        return '';
      }
      // Defaults are checked too: some depend on other keys (a default tier under ENTERPRISE_PLUS).
      v = fallback;
    }
    if (typeof v !== 'string') {
      this.problem(key, `must be a string, got ${JSON.stringify(v)}`);
      return fallback ?? '';
    }
    const problem = check?.(v);
    if (problem) {
      this.problem(key, problem);
      return fallback ?? v;
    }
    return v;
  }

  optionalString(key: ConfigKey, check: (v: string) => string | undefined): string | undefined {
    const v = this.get(key);
    return v === undefined || v instanceof EncryptedValue ? undefined : this.string(key, undefined, check);
  }

  oneOf<T extends string>(key: ConfigKey, allowed: readonly T[], fallback: T): T {
    const v = this.string(key, fallback);
    if (!(allowed as readonly string[]).includes(v)) {
      this.problem(key, `"${v}" must be one of ${allowed.join(', ')}`);
      return fallback;
    }
    return v as T;
  }

  number(key: ConfigKey, fallback: number, min: number, max: number): number {
    const v = this.get(key);
    if (v === undefined || v instanceof EncryptedValue) return fallback;
    const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    if (!Number.isFinite(n)) {
      this.problem(key, `must be a number, got ${JSON.stringify(v)}`);
      return fallback;
    }
    if (n < min || n > max) {
      this.problem(key, `${n} is out of range ${min}-${max}`);
      return fallback;
    }
    return n;
  }

  integer(key: ConfigKey, fallback: number, min: number, max: number): number {
    const n = this.number(key, fallback, min, max);
    if (!Number.isInteger(n)) {
      this.problem(key, `must be a whole number, got ${n}`);
      return fallback;
    }
    return n;
  }

  boolean(key: ConfigKey, fallback: boolean): boolean {
    const v = this.get(key);
    if (v === undefined || v instanceof EncryptedValue) return fallback;
    if (typeof v === 'boolean') return v;
    if (v === 'true') return true;
    if (v === 'false') return false;
    this.problem(key, `must be true or false, got ${JSON.stringify(v)}`);
    return fallback;
  }

  /** A list of strings; throws ConfigError (use inside `check`). */
  stringList(key: ConfigKey, fallback: string[]): string[] {
    let v = this.raw[key];
    if (v === undefined || v === null || v === '' || v instanceof EncryptedValue) return fallback;
    // Pulumi hands structured values to programs as JSON text.
    if (typeof v === 'string') {
      try {
        v = JSON.parse(v);
      } catch {
        throw new ConfigError(key, `must be a list of strings, got ${JSON.stringify(v)}`);
      }
    }
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
      throw new ConfigError(key, `must be a list of strings, got ${JSON.stringify(v)}`);
    }
    return v as string[];
  }
}

/** Reads the stack's configuration through the Pulumi runtime and validates it (index.ts calls this once). */
export function loadConfig(): Config {
  // Required lazily so the CLI can import validateConfig without loading the Pulumi runtime.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pulumi = require('@pulumi/pulumi') as typeof import('@pulumi/pulumi');
  const ours = new pulumi.Config();
  const raw: RawConfig = { 'gcp:project': new pulumi.Config('gcp').get('project') };
  for (const key of CONFIG_KEYS) raw[key] = ours.get(key);
  return validateConfig(raw);
}
