// The listener's configuration, read once from the environment (as a Cloud Run Job gets it) and validated
// with messages that name the variable to fix.

import net from 'node:net';
import tls from 'node:tls';
import { ClientConfig } from 'pg';
import { ENV } from '../contract/env';
import { Encoding } from '../contract/events';
import { TableNameError, parseTableList } from '../contract/table-name';
import { ConfigError } from './errors';

export type DecoderName = 'wal2json' | 'pgoutput';

export interface ListenerConfig {
  pg: ClientConfig;
  slot: string;
  publication: string;
  decoder: DecoderName;
  /**
   * Tables to capture, as PGCDC_TABLES entries in PostgreSQL's identifier syntax (contract/table-name.ts),
   * each rewritten so it parses back the same; empty = every table. A run resolves them against the catalog
   * (listener/catalog.ts resolveTables) into table keys.
   */
  tables: string[];
  projectId: string;
  topic: string;
  encoding: Encoding;
  maxMessageBytes: number;
  maxEventsPerMessage: number;
  maxRunSeconds: number;
  /** Unacknowledged bytes in flight before reading from Postgres pauses (bounded memory, DESIGN §4.4). */
  maxInFlightBytes: number;
  /** "auto": after streaming, a run snapshots tables never snapshotted; "off": only `snapshot` does. */
  snapshot: 'auto' | 'off';
  /**
   * At most this many rows per snapshot chunk (one consistent read, one progress update); a chunk also
   * holds at most about 32 MiB of event JSON whatever its rows' width (listener/snapshot.ts).
   */
  snapshotChunkRows: number;
}

/**
 * PGCDC_SNAPSHOT_CHUNK_ROWS by default. Memory does not depend on it (the reader pauses at a byte bound:
 * test/listener/snapshot-limits.test.ts); larger chunks cost fewer per-chunk round trips (README
 * "Performance": 0.18× COPY at 10,000 rows a chunk).
 */
export const DEFAULT_SNAPSHOT_CHUNK_ROWS = 100_000;

// Pub/Sub caps a message at 10 MB and a publish request at 10 MB; stay well under after the JSON envelope.
const PUBSUB_MAX_MESSAGE_BYTES = 9 * 1024 * 1024;
const IDENTIFIER = /^[a-z_][a-z0-9_$]{0,62}$/;

function intVar(env: NodeJS.ProcessEnv, name: string, dflt: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name}=${JSON.stringify(raw)} must be a whole number from ${min} to ${max}`);
  }
  return n;
}

/**
 * The TLS options for a verifying PGSSLMODE, with what libpq means by it: "If the parameter sslmode is set to
 * verify-ca, libpq will verify that the server is trustworthy by checking the certificate chain up to a
 * trusted certificate authority (CA). If sslmode is set to verify-full, libpq will also verify that the server
 * host name matches its certificate" (https://www.postgresql.org/docs/current/libpq-ssl.html).
 * - `ca` replaces Node's default roots, and every certificate in it is a trust anchor, even one that is not
 *   self-signed: Node's `allowPartialTrustChain` "Treat intermediate (non-self-signed) certificates in the
 *   trust CA certificate list as trusted" (https://nodejs.org/api/tls.html#tlscreatesecurecontextoptions).
 *   The stack passes exactly the CAs the server's certificate is issued under, and a customer-managed Cloud
 *   SQL CA may be a subordinate whose root is elsewhere ("chain the subordinate CA to an external root CA",
 *   https://cloud.google.com/sql/docs/postgres/customer-managed-ca); libpq would want that root as well.
 * - verify-full checks `name` whatever address is dialled (PGHOSTADDR): it is sent as SNI (pg sets
 *   `servername` only from a host that is not an IP) and checked with Node's own `tls.checkServerIdentity`,
 *   which matches DNS names, wildcards and IP addresses against the certificate's subject alternative names.
 * - verify-ca checks the chain only (Cloud SQL's per-instance CA certificates name the instance as
 *   "project:instance", not a host).
 */
export function verifyingTls(
  sslmode: 'verify-ca' | 'verify-full',
  name: string,
  ca: string | undefined,
): tls.ConnectionOptions {
  return {
    rejectUnauthorized: true,
    ...(ca ? { ca, allowPartialTrustChain: true } : {}),
    ...(sslmode === 'verify-ca'
      ? { checkServerIdentity: () => undefined }
      : {
          // SNI is a host name, never an IP address (RFC 6066 section 3).
          ...(net.isIP(name) === 0 ? { servername: name } : {}),
          checkServerIdentity: (_dialled: string, cert: tls.PeerCertificate) =>
            tls.checkServerIdentity(name, cert),
        }),
  };
}

/** Build a pg config from libpq-style variables; `pg` itself reads PG* too, we make it explicit and checked. */
export function pgConfigFromEnv(env: NodeJS.ProcessEnv): ClientConfig {
  const port = intVar(env, 'PGPORT', 5432, 1, 65535);
  const sslmode = env.PGSSLMODE ?? 'prefer';
  const known = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'];
  if (!known.includes(sslmode))
    throw new ConfigError(`PGSSLMODE=${sslmode} is not one of ${known.join(', ')}`);
  const host = env.PGHOST || '127.0.0.1';
  // libpq's hostaddr: "If both host and hostaddr are specified, the value for hostaddr gives the server network
  // address. The value for host is ignored unless the authentication method requires it, in which case it will
  // be used as the host name" (https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-HOSTADDR):
  // the stack sets it on Cloud SQL's private IP path, where verify-full checks the instance's DNS name.
  const hostAddr = env.PGHOSTADDR || undefined;
  if (hostAddr !== undefined && net.isIP(hostAddr) === 0)
    throw new ConfigError(`PGHOSTADDR=${hostAddr} must be a numeric IP address (PGHOST holds the host name)`);
  let ssl: ClientConfig['ssl'];
  if (sslmode === 'require' || sslmode === 'no-verify') ssl = { rejectUnauthorized: false };
  else if (sslmode === 'verify-ca' || sslmode === 'verify-full')
    ssl = verifyingTls(sslmode, host, env[ENV.sslRootCert] || undefined);
  return {
    host: hostAddr ?? host,
    port,
    database: env.PGDATABASE ?? 'postgres',
    user: env.PGUSER ?? 'postgres',
    password: env.PGPASSWORD,
    ssl,
    application_name: 'pgcdc-listener',
    connectionTimeoutMillis: intVar(env, 'PGCONNECT_TIMEOUT', 15, 1, 600) * 1000,
  };
}

/**
 * A comma list of tables in PostgreSQL's identifier syntax (`schema.table`, either part double-quoted),
 * checked now so that a malformed list fails at start with what to write; returns each entry's text.
 */
export function tableListVar(env: NodeJS.ProcessEnv, name: string): string[] {
  try {
    return parseTableList(env[name] ?? '', name).map((e) => e.text);
  } catch (e) {
    if (e instanceof TableNameError) throw new ConfigError(e.message);
    throw e;
  }
}

function snapshotMode(raw: string | undefined): 'auto' | 'off' {
  const v = raw || 'auto';
  if (v !== 'auto' && v !== 'off') throw new ConfigError(`${ENV.snapshot}=${v} must be "auto" or "off"`);
  return v;
}

/**
 * The session settings every value the listener reads is printed with: the sink parses dates, times and
 * intervals in these styles, whatever the server's or the role's defaults are.
 */
export function withOutputSettings(pg: ClientConfig): ClientConfig {
  const settings = '-c DateStyle=ISO,MDY -c IntervalStyle=postgres';
  return { ...pg, options: pg.options ? `${pg.options} ${settings}` : settings };
}

export function loadListenerConfig(env: NodeJS.ProcessEnv): ListenerConfig {
  const slot = env[ENV.slot] || 'pgcdc_slot';
  if (!IDENTIFIER.test(slot)) {
    throw new ConfigError(
      `${ENV.slot}=${slot}: slot names are lower-case letters, digits and _ (at most 63)`,
    );
  }
  const publication = env[ENV.publication] || 'pgcdc_pub';
  if (!IDENTIFIER.test(publication))
    throw new ConfigError(`${ENV.publication}=${publication} is not a valid name`);
  // pgoutput by default: built into PostgreSQL, keeps NaN/Infinity, carries each change's own schema
  // (README "Decoders"); wal2json stays fully supported.
  const decoder = (env[ENV.decoder] || 'pgoutput') as DecoderName;
  if (decoder !== 'wal2json' && decoder !== 'pgoutput') {
    throw new ConfigError(`${ENV.decoder}=${decoder} must be "wal2json" or "pgoutput"`);
  }
  const tables = tableListVar(env, ENV.tables);
  const projectId = env[ENV.project] || env.GOOGLE_CLOUD_PROJECT || env.GCLOUD_PROJECT || '';
  const topic = env[ENV.topic] || '';
  const fullTopic = /^projects\/([^/]+)\/topics\/([^/]+)$/.exec(topic);
  if (!topic)
    throw new ConfigError(`${ENV.topic} is required: the Pub/Sub topic to publish change events to`);
  if (!projectId && !fullTopic) {
    throw new ConfigError(
      `${ENV.project} (or GOOGLE_CLOUD_PROJECT) is required unless ${ENV.topic} is a full path`,
    );
  }
  const encoding = (env[ENV.encoding] || 'json+gzip') as Encoding;
  if (encoding !== 'json' && encoding !== 'json+gzip') {
    throw new ConfigError(`${ENV.encoding}=${encoding} must be "json" or "json+gzip"`);
  }
  return {
    pg: pgConfigFromEnv(env),
    slot,
    publication,
    decoder,
    tables,
    projectId: fullTopic ? fullTopic[1] : projectId,
    topic: fullTopic ? fullTopic[2] : topic,
    encoding,
    maxMessageBytes: intVar(env, ENV.maxMessageBytes, 1024 * 1024, 1024, PUBSUB_MAX_MESSAGE_BYTES),
    maxEventsPerMessage: intVar(env, ENV.maxEventsPerMessage, 2000, 1, 100_000),
    maxRunSeconds: intVar(env, ENV.maxRunSeconds, 300, 1, 24 * 3600),
    maxInFlightBytes: intVar(env, ENV.maxInFlightBytes, 64 * 1024 * 1024, 1024 * 1024, 2 ** 31),
    snapshot: snapshotMode(env[ENV.snapshot]),
    snapshotChunkRows: intVar(env, ENV.snapshotChunkRows, DEFAULT_SNAPSHOT_CHUNK_ROWS, 1, 1_000_000),
  };
}
