// The stack's configuration: read once, validated once, typed from then on.
//
// `validateConfig` is a plain function (no Pulumi runtime needed) so the CLI can check a stack's
// configuration before it touches anything; `loadConfig` is the thin Pulumi-side reader used by index.ts.
// Every error names the key (as written in Pulumi.yaml) and says what would be accepted.

/** A configuration value that cannot be used; `key` is the config key as written in Pulumi.yaml. */
export class ConfigError extends Error {
  constructor(
    readonly key: string,
    readonly problem: string,
  ) {
    super(`config ${key}: ${problem}`);
    this.name = 'ConfigError';
  }
}

/** A source table "schema.table" and the BigQuery tables that mirror it. */
export interface SourceTable {
  schema: string;
  table: string;
  /** "schema.table", as wal2json's add-tables and the CLI spell it. */
  qualified: string;
  /** BigQuery replica table: `table` for the public schema, `schema__table` otherwise. */
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

export interface Config {
  project: string;
  region: string;
  /** Prefix of every resource name, so two stacks can share a project. */
  namePrefix: string;
  timeZone: string;
  tables: SourceTable[];
  deletionProtection: boolean;
  network: { subnetCidr: string };
  database: {
    version: string;
    majorVersion: number;
    edition: 'ENTERPRISE' | 'ENTERPRISE_PLUS';
    tier: string;
    diskSizeGb: number;
    highAvailability: boolean;
    name: string;
    replicationUser: string;
    /** max_slot_wal_keep_size in MB; undefined = unlimited (Postgres default). */
    maxSlotWalKeepSizeMb?: number;
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
  'deletionProtection',
  'subnetCidr',
  'databaseVersion',
  'databaseEdition',
  'databaseTier',
  'databaseDiskSizeGb',
  'databaseHighAvailability',
  'databaseName',
  'replicationUser',
  'maxSlotWalKeepSizeMb',
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

// Google Cloud regions are "<area>-<direction><n>", e.g. us-central1, europe-west4, me-central2.
const REGION =
  /^(africa|asia|australia|europe|me|northamerica|southamerica|us)-(central|east|north|northeast|south|southeast|southwest|west)[1-9][0-9]?$/;
// Project ids: 6-30 chars, lowercase letters, digits, hyphens, start with a letter, not end with a hyphen.
const PROJECT_ID = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
// Unquoted identifiers we can carry into BigQuery table names unchanged (BigQuery has no `$`).
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
// Postgres role / slot / publication names we pass unquoted to SQL.
const PG_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const DATASET_ID = /^[A-Za-z0-9_]{1,1024}$/;
// Resource names are built as `${namePrefix}-listener-invoker` etc.; service account ids allow 30 chars.
const NAME_PREFIX = /^[a-z][a-z0-9-]{0,10}[a-z0-9]$|^[a-z]$/;
const CPU = /^(1|2|4|6|8)$/;
const MEMORY = /^[0-9]+(Mi|Gi)$/;
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;

/** Checks every key and returns the typed configuration, or throws a ConfigError naming the first bad key. */
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
  const tables = r.stringList('tables', ['public.customers']);
  if (tables.length === 0)
    throw new ConfigError('tables', 'is empty: list at least one source table as "schema.table"');
  const sourceTables = tables.map((t) => parseSourceTable(t));
  const seen = new Map<string, string>();
  for (const t of sourceTables) {
    const clash = seen.get(t.replica);
    if (clash !== undefined) {
      throw new ConfigError(
        'tables',
        `"${clash}" and "${t.qualified}" would both be BigQuery table "${t.replica}"`,
      );
    }
    seen.set(t.replica, t.qualified);
  }

  const databaseVersion = r.string('databaseVersion', 'POSTGRES_16', (v) => {
    const m = /^POSTGRES_(\d+)$/.exec(v);
    if (!m) return `"${v}" is not a Cloud SQL PostgreSQL version (POSTGRES_13 ... POSTGRES_18)`;
    // 13 is the first version with max_slot_wal_keep_size, which bounds what a stuck slot can retain.
    if (Number(m[1]) < 13)
      return `"${v}" is too old: PostgreSQL 13 or later is needed for max_slot_wal_keep_size`;
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
  const database = {
    version: databaseVersion,
    majorVersion: Number(databaseVersion.slice('POSTGRES_'.length)),
    edition,
    tier,
    diskSizeGb: r.integer('databaseDiskSizeGb', 10, 10, 65536),
    highAvailability: r.boolean('databaseHighAvailability', false),
    name: r.string('databaseName', 'app', pgName),
    replicationUser: r.string('replicationUser', 'pgcdc_replicator', pgName),
    maxSlotWalKeepSizeMb: r.optionalInteger('maxSlotWalKeepSizeMb', 1024, 2_147_483_647),
    slotName: r.string('slotName', 'pgcdc_slot', pgName),
    publicationName: r.string('publicationName', 'pgcdc_pub', pgName),
    decoder: r.oneOf('decoder', ['wal2json', 'pgoutput'] as const, 'wal2json'),
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
  const listener = jobSettings(r, 'listener', schedule);
  // One replication slot has one reader: parallel listener tasks would fight over it.
  listener.taskCount = 1;
  const sink = jobSettings(r, 'sink', r.string('sinkSchedule', schedule, cronProblem));
  sink.taskCount = r.integer('sinkTaskCount', 1, 1, 100);

  const monitoring = {
    alertEmail: r.optionalString('alertEmail', (v) =>
      EMAIL.test(v) ? undefined : `"${v}" is not an e-mail address`,
    ),
    slotLagAlertBytes: r.integer('slotLagAlertBytes', 1024 ** 3, 1, Number.MAX_SAFE_INTEGER),
    diskUtilizationAlertPercent: r.integer('diskUtilizationAlertPercent', 80, 10, 99),
  };

  return {
    project,
    region,
    namePrefix,
    timeZone,
    tables: sourceTables,
    deletionProtection: r.boolean('deletionProtection', true),
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
}

function jobSettings(r: Reader, job: 'listener' | 'sink', schedule: string): JobSettings {
  const timeoutSeconds = r.integer(`${job}TimeoutSeconds` as ConfigKey, 900, 60, 24 * 3600);
  // A run needs time after its reading window to publish/write what it read and to shut down cleanly.
  const maxRunSeconds = r.integer(`${job}MaxRunSeconds` as ConfigKey, 300, 10, timeoutSeconds - 60);
  return {
    timeoutSeconds,
    maxRunSeconds,
    maxRetries: r.integer(`${job}MaxRetries` as ConfigKey, 1, 0, 10),
    taskCount: 1,
    cpu: r.string(`${job}Cpu` as ConfigKey, '1', (v) =>
      CPU.test(v) ? undefined : `"${v}" must be 1, 2, 4, 6 or 8`,
    ),
    memory: r.string(`${job}Memory` as ConfigKey, '512Mi', (v) =>
      MEMORY.test(v) ? undefined : `"${v}" must be a size like 512Mi or 2Gi`,
    ),
    schedule,
    image: r.optionalString(`${job}Image` as ConfigKey, (v) =>
      /^[a-z0-9.-]+(:[0-9]+)?\/[^\s]+$/.test(v)
        ? undefined
        : `"${v}" is not an image reference (registry/path[:tag|@digest])`,
    ),
  };
}

/** "public.customers" → its BigQuery names; throws ConfigError('tables') for anything else. */
export function parseSourceTable(qualified: string): SourceTable {
  const parts = qualified.split('.');
  if (parts.length !== 2) {
    throw new ConfigError(
      'tables',
      `"${qualified}" must be written "schema.table" (e.g. public.${qualified})`,
    );
  }
  const [schema, table] = parts as [string, string];
  for (const part of [schema, table]) {
    if (!IDENTIFIER.test(part)) {
      throw new ConfigError(
        'tables',
        `"${qualified}": "${part}" must be an unquoted identifier (letters, digits, underscores; at most 63 characters)`,
      );
    }
  }
  const replica = schema === 'public' ? table : `${schema}__${table}`;
  return { schema, table, qualified, replica, changes: `${replica}_changes` };
}

/** Why a unix-cron expression (5 fields, as Cloud Scheduler reads it) is wrong, or undefined if it is fine. */
export function cronProblem(expr: string): string | undefined {
  const fields = expr.trim().split(/\s+/);
  if (fields.length !== 5) {
    return `"${expr}" must have 5 fields (minute hour day-of-month month day-of-week), e.g. "*/12 * * * *"`;
  }
  const specs: Array<[string, number, number, string[]]> = [
    ['minute', 0, 59, []],
    ['hour', 0, 23, []],
    ['day-of-month', 1, 31, []],
    ['month', 1, 12, ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC']],
    ['day-of-week', 0, 7, ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT']],
  ];
  for (let i = 0; i < 5; i++) {
    const [name, min, max, names] = specs[i]!;
    const problem = cronFieldProblem(fields[i]!, min, max, names);
    if (problem) return `"${expr}": ${name} field "${fields[i]}" ${problem}`;
  }
  return undefined;
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

/** Reads keys from a raw bag, coercing Pulumi's string values, and throws ConfigError on the first bad one. */
class Reader {
  constructor(private readonly raw: RawConfig) {}

  private get(key: ConfigKey): unknown {
    const v = this.raw[key];
    return v === '' || v === null ? undefined : v;
  }

  string(key: ConfigKey, fallback: string | undefined, check?: (v: string) => string | undefined): string {
    let v = this.get(key);
    if (v === undefined) {
      if (fallback === undefined) throw new ConfigError(key, 'is required');
      // Defaults are checked too: some depend on other keys (a default tier under ENTERPRISE_PLUS).
      v = fallback;
    }
    if (typeof v !== 'string') throw new ConfigError(key, `must be a string, got ${JSON.stringify(v)}`);
    const problem = check?.(v);
    if (problem) throw new ConfigError(key, problem);
    return v;
  }

  optionalString(key: ConfigKey, check: (v: string) => string | undefined): string | undefined {
    return this.get(key) === undefined ? undefined : this.string(key, undefined, check);
  }

  oneOf<T extends string>(key: ConfigKey, allowed: readonly T[], fallback: T): T {
    const v = this.string(key, fallback);
    if (!(allowed as readonly string[]).includes(v)) {
      throw new ConfigError(key, `"${v}" must be one of ${allowed.join(', ')}`);
    }
    return v as T;
  }

  number(key: ConfigKey, fallback: number, min: number, max: number): number {
    const v = this.get(key);
    if (v === undefined) return fallback;
    const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    if (!Number.isFinite(n)) throw new ConfigError(key, `must be a number, got ${JSON.stringify(v)}`);
    if (n < min || n > max) throw new ConfigError(key, `${n} is out of range ${min}-${max}`);
    return n;
  }

  integer(key: ConfigKey, fallback: number, min: number, max: number): number {
    const n = this.number(key, fallback, min, max);
    if (!Number.isInteger(n)) throw new ConfigError(key, `must be a whole number, got ${n}`);
    return n;
  }

  optionalInteger(key: ConfigKey, min: number, max: number): number | undefined {
    return this.get(key) === undefined ? undefined : this.integer(key, 0, min, max);
  }

  boolean(key: ConfigKey, fallback: boolean): boolean {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (typeof v === 'boolean') return v;
    if (v === 'true') return true;
    if (v === 'false') return false;
    throw new ConfigError(key, `must be true or false, got ${JSON.stringify(v)}`);
  }

  stringList(key: ConfigKey, fallback: string[]): string[] {
    let v = this.raw[key];
    if (v === undefined || v === null) return fallback;
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
