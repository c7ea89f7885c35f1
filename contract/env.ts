// The environment variables the listener and sink jobs read: one list, used by the jobs themselves, by the
// Pulumi stack that sets them on the Cloud Run jobs, and by the CLI that runs them locally.
//
// Database connection uses libpq's standard variables (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD,
// PGSSLMODE), which `pg` reads itself; in the cloud PGPASSWORD comes from Secret Manager.

export const ENV = {
  // --- database (besides the libpq PG* variables) ---
  /**
   * PEM of the CA(s) the server's certificate is verified against, for PGSSLMODE=verify-ca or verify-full;
   * each is a trust anchor (the Pulumi stack passes every server CA the Cloud SQL instance lists, public
   * certificates: nothing is downloaded or baked into an image). With verify-full the certificate must name
   * PGHOST; PGHOSTADDR, when set, is the address dialled instead (libpq's host/hostaddr).
   */
  sslRootCert: 'PGCDC_PG_SSL_ROOT_CERT',
  /** Logical replication slot name (default pgcdc_slot). */
  slot: 'PGCDC_SLOT',
  /**
   * Publication, needed by pgoutput and created by sql/0-init.sql (default pgcdc_pub) with the captured tables
   * that have a replica identity; <name>_inserts (insert, truncate) holds the keyless ones.
   */
  publication: 'PGCDC_PUBLICATION',
  /** "wal2json" (default) or "pgoutput". */
  decoder: 'PGCDC_DECODER',
  /**
   * Optional comma list of schema.table to capture (wal2json add-tables syntax); default: every logged table
   * present when the SQL init last ran (it grants and publishes exactly those).
   */
  tables: 'PGCDC_TABLES',

  // --- Pub/Sub ---
  /** Google Cloud project of the topic/subscription (falls back to GOOGLE_CLOUD_PROJECT). */
  project: 'PGCDC_PROJECT',
  /** Topic name or full "projects/p/topics/t" (listener). */
  topic: 'PGCDC_TOPIC',
  /** Subscription name or full path (sink). */
  subscription: 'PGCDC_SUBSCRIPTION',
  /** Dead-letter subscription name or full path (sink, optional): what Pub/Sub gave up on, to file in _failed. */
  deadLetterSubscription: 'PGCDC_DEAD_LETTER_SUBSCRIPTION',
  /** "json+gzip" (default) or "json". */
  encoding: 'PGCDC_ENCODING',
  /** Most uncompressed payload bytes per message (default 1 MiB; Pub/Sub's limit is 10 MB). */
  maxMessageBytes: 'PGCDC_MAX_MESSAGE_BYTES',
  /** Most events per message (default 2000). */
  maxEventsPerMessage: 'PGCDC_MAX_EVENTS_PER_MESSAGE',

  // --- runs ---
  /** Event JSON held unacknowledged before the listener pauses reading (memory bound; default 64 MiB). */
  maxInFlightBytes: 'PGCDC_MAX_IN_FLIGHT_BYTES',
  /**
   * The replicator role: created LOGIN REPLICATION by the SQL init (admin job modes), the role the listener
   * logs in as (there, PGUSER is the same name).
   */
  replicationUser: 'PGCDC_REPLICATION_USER',
  /** The replicator's password, which the SQL init sets (admin job modes; the listener reads PGPASSWORD). */
  replicatorPassword: 'PGCDC_REPLICATOR_PASSWORD',
  /** Admin login of the admin job modes sql-init, sql-teardown, check (Cloud SQL: postgres). */
  adminUser: 'PGCDC_ADMIN_USER',
  adminPassword: 'PGCDC_ADMIN_PASSWORD',
  /**
   * Comma list of captured schema.table the user allows the SQL init to set REPLICA IDENTITY FULL on (keyless
   * tables whose updates and deletes should be captured; each update and delete then logs the whole old row).
   */
  replicaIdentityFull: 'PGCDC_REPLICA_IDENTITY_FULL',
  /** "auto" (default): a listen run then snapshots tables never snapshotted; "off": only `snapshot` does. */
  snapshot: 'PGCDC_SNAPSHOT',
  /** Rows per snapshot chunk (default 10000). */
  snapshotChunkRows: 'PGCDC_SNAPSHOT_CHUNK_ROWS',
  /** A run stops after this many seconds even before reaching the WAL end it saw at start (default 300). */
  maxRunSeconds: 'PGCDC_MAX_RUN_SECONDS',
  /** "once" (default: one bounded run, then exit) or "continuous". */
  mode: 'PGCDC_MODE',

  // --- BigQuery (sink) ---
  /** Project of the dataset (default: the Pub/Sub project). */
  bigQueryProject: 'PGCDC_BQ_PROJECT',
  dataset: 'PGCDC_DATASET',
  /** BigQuery location of the dataset (e.g. "US", "us-central1"). */
  bigQueryLocation: 'PGCDC_BQ_LOCATION',
  /** max_staleness of replica tables, as an interval: "0-0 0 0:15:0" style or minutes (default 15). */
  maxStalenessMinutes: 'PGCDC_MAX_STALENESS_MINUTES',
  /** Most Pub/Sub messages the sink pulls and writes as one batch (default 50). */
  sinkBatchMessages: 'PGCDC_SINK_BATCH_MESSAGES',
  /** How long one sink pull waits for messages; a run ends after an empty one with nothing in hand (default 20). */
  sinkPullWaitSeconds: 'PGCDC_SINK_PULL_WAIT_SECONDS',
  /** host:port of a Storage Write API endpoint without TLS (the local emulator); unset in the cloud. */
  bigQueryStorageEmulatorHost: 'PGCDC_BQ_STORAGE_EMULATOR_HOST',
  /** host:port of the BigQuery REST endpoint without TLS; read by @google-cloud/bigquery itself. */
  bigQueryEmulatorHost: 'BIGQUERY_EMULATOR_HOST',
  /** host:port of the Pub/Sub emulator; read by @google-cloud/pubsub itself. */
  pubsubEmulatorHost: 'PUBSUB_EMULATOR_HOST',
} as const;

export type EnvName = (typeof ENV)[keyof typeof ENV];
