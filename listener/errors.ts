// The listener's failures a user can act on, each with its own exit code (documented in the README).

export const EXIT = {
  ok: 0,
  other: 1,
  config: 2,
  databaseUnreachable: 3,
  replicationSetup: 4,
  pubsub: 5,
} as const;

export class ListenerError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'ListenerError';
  }
}

export class ConfigError extends ListenerError {
  constructor(message: string) {
    super(message, EXIT.config);
    this.name = 'ConfigError';
  }
}

/** Slot missing, wrong plugin, wal_level, missing REPLICATION privilege... something 0-init.sql fixes. */
export class ReplicationSetupError extends ListenerError {
  constructor(message: string) {
    super(message, EXIT.replicationSetup);
    this.name = 'ReplicationSetupError';
  }
}

export class DatabaseUnreachableError extends ListenerError {
  constructor(message: string) {
    super(message, EXIT.databaseUnreachable);
    this.name = 'DatabaseUnreachableError';
  }
}

export class PublishError extends ListenerError {
  constructor(message: string) {
    super(message, EXIT.pubsub);
    this.name = 'PublishError';
  }
}

const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'ECONNRESET',
  'EAI_AGAIN',
]);

/**
 * The slot was invalidated: the server removed WAL the slot still needed (max_slot_wal_keep_size, or a
 * slot that fell too far behind), so it can never deliver the changes in that WAL again. Only re-creating
 * the slot and sending every row again (the snapshot) brings BigQuery back in line.
 */
export function lostSlotError(slot: string, detail?: string): ReplicationSetupError {
  return new ReplicationSetupError(
    `replication slot "${slot}" has been invalidated (wal_status = lost)${detail ? `: ${detail}` : ''}. ` +
      'The server removed WAL the slot had not delivered yet, so changes made since the last successful run ' +
      'cannot be read from it any more. To recover: run `pgcdc sql init --env <env>`, which recreates the slot ' +
      'and resets the snapshot progress so every existing row is sent again. Changes made between the loss and ' +
      'the recreation come back only through that re-snapshot (a row deleted in that window stays in the ' +
      'BigQuery replica). To prevent it: run the listener more often, or raise max_slot_wal_keep_size.',
  );
}

/** OpenSSL's verification failures as Node reports them (`err.code`) when a verifying PGSSLMODE refuses the server. */
const TLS_VERIFY_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'INVALID_CA',
  'CERT_CHAIN_TOO_LONG',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
]);

/** PostgreSQL 15 says "cannot read from logical replication slot ... This slot has been invalidated"; 16+
 * says "can no longer get changes from replication slot". */
const LOST_SLOT = /can no longer get changes from replication slot|slot has been invalidated/i;

/** Turns a `pg` connection/query error into the listener error that says what to fix. */
export function classifyPgError(e: unknown, ctx: { slot: string; user?: string; host?: string }): Error {
  if (e instanceof ListenerError) return e;
  const err = e as Error & { code?: string; routine?: string; detail?: string };
  const msg = err.message ?? String(e);
  if (LOST_SLOT.test(`${msg} ${err.detail ?? ''}`)) return lostSlotError(ctx.slot, err.detail ?? msg);
  if (err.code && UNREACHABLE_CODES.has(err.code)) {
    return new DatabaseUnreachableError(
      `cannot reach the database at ${ctx.host ?? '?'}: ${msg}. Check PGHOST/PGPORT and the network path (PSC endpoint, VPC egress).`,
    );
  }
  if (err.code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new DatabaseUnreachableError(
      `the database's TLS certificate does not name the host in PGHOST (PGSSLMODE=verify-full): ${msg}. ` +
        'Cloud SQL: its certificate does not carry the instance DNS name (yet): set pgcdc:sourceSslMode to ' +
        'verify-ca and pgcdc deploy; another server: set pgcdc:sourceHost to a name its certificate carries, ' +
        'or pgcdc:sourceSslMode to verify-ca.',
    );
  }
  if (err.code && TLS_VERIFY_CODES.has(err.code)) {
    return new DatabaseUnreachableError(
      `the database's TLS certificate was refused (${err.code}): it is not signed by a CA in ` +
        'PGCDC_PG_SSL_ROOT_CERT, or has expired. Cloud SQL: after a server CA rotation, run pgcdc deploy to ' +
        'trust the CAs the instance lists now; another server: set pgcdc:sourceCaCert to the CA that signed it.',
    );
  }
  if (err.code === '42704' && /replication slot/.test(msg)) {
    return new ReplicationSetupError(
      `replication slot "${ctx.slot}" does not exist. Run the SQL init (pgcdc sql init) or create it: ` +
        `SELECT pg_create_logical_replication_slot('${ctx.slot}', 'pgoutput');`,
    );
  }
  if (err.code === '42501' && /replication/i.test(msg)) {
    return new ReplicationSetupError(
      `user "${ctx.user ?? '?'}" lacks the REPLICATION privilege: ALTER ROLE "${ctx.user ?? '?'}" WITH REPLICATION; (${msg})`,
    );
  }
  if (err.code === '28000' && /replication/i.test(msg)) {
    return new ReplicationSetupError(
      `the server refuses replication connections for user "${ctx.user ?? '?'}": ${msg}. ` +
        'Grant REPLICATION to the user and allow "replication" connections in pg_hba.conf (Cloud SQL does this for you).',
    );
  }
  if (err.code === '55000' && /wal_level/.test(msg)) {
    return new ReplicationSetupError(
      `${msg}. Set wal_level=logical (Cloud SQL: the flag cloudsql.logical_decoding=on) and restart the server.`,
    );
  }
  if (err.code === '55006' && /replication slot/.test(msg)) {
    return new ReplicationSetupError(
      `${msg}: another listener run is still reading this slot; runs must not overlap (check the scheduler interval and job timeout).`,
    );
  }
  if (err.code === '3D000' || err.code === '28P01' || err.code === '28000') {
    return new DatabaseUnreachableError(`cannot log in to the database: ${msg}`);
  }
  return err instanceof Error ? err : new Error(msg);
}
