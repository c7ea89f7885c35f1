// Connecting to the database with retries, within the run's time budget.
//
// Cloud Run jobs reach Cloud SQL through Direct VPC egress, and Google documents that "You might experience
// connection establishment delays of a minute or more on instance startup when using Direct VPC egress"
// and that the connectivity test "should either implement retries ..."
// (https://cloud.google.com/run/docs/configuring/vpc-direct-vpc, Limitations). A run therefore retries a
// connection that failed for a network reason (or because the server is starting or full), with
// exponential backoff, until its deadline; a refusal that retrying cannot fix (password, privilege,
// missing database) fails at once.

import { Client, ClientConfig } from 'pg';

export interface RetryOptions {
  /** Stop retrying at this time (the run's deadline, in `now()` milliseconds). */
  deadline: number;
  now?: () => number;
  /** Told about each failed attempt that will be retried. */
  log?: (line: string) => void;
  /** What is being connected, for the log ("database", "replication connection"). */
  what?: string;
  /** First pause between attempts (doubles each time up to `maxDelayMs`). */
  firstDelayMs?: number;
  maxDelayMs?: number;
}

// Errors of the network path or of a server not ready yet: retrying can help.
const RETRYABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'EPIPE',
  // PostgreSQL: the database system is starting up / shutting down (Cloud SQL maintenance, restarts).
  '57P03',
  // too_many_connections: another client may free one.
  '53300',
]);

/** Whether a failed connection attempt is worth another try. */
export function isRetryableConnectError(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  if (err.code && RETRYABLE_CODES.has(err.code)) return true;
  // `pg` reports its own connect timeout (connectionTimeoutMillis) and a socket closed during the startup
  // handshake without a code.
  return /connection timeout|timeout expired|Connection terminated unexpectedly/i.test(err.message ?? '');
}

/**
 * Runs `attempt` (which must build a fresh connection each time: a `pg` Client cannot connect twice) until
 * it succeeds, fails for a reason retrying cannot fix, or the deadline leaves no time for another try; then
 * the last error is thrown.
 */
export async function withConnectRetry<T>(attempt: () => Promise<T>, opts: RetryOptions): Promise<T> {
  const now = opts.now ?? Date.now;
  const maxDelay = opts.maxDelayMs ?? 15_000;
  let delay = opts.firstDelayMs ?? 1000;
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (e) {
      if (!isRetryableConnectError(e) || now() + delay > opts.deadline) throw e;
      const msg = (e as Error).message ?? String(e);
      opts.log?.(
        `${opts.what ?? 'database'} not reachable yet (attempt ${n}: ${msg}); retrying in ${Math.round(delay / 1000)} s`,
      );
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(maxDelay, delay * 2);
    }
  }
}

/** A connected `pg` Client, retried as above (a failed client is closed and a new one made). */
export async function connectWithRetry(config: ClientConfig, opts: RetryOptions): Promise<Client> {
  return withConnectRetry(async () => {
    const c = new Client(config);
    try {
      await c.connect();
    } catch (e) {
      await c.end().catch(() => undefined);
      throw e;
    }
    return c;
  }, opts);
}
