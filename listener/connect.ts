// Connecting to the database with retries, within the run's time budget.
//
// Cloud Run with Direct VPC egress can take a minute or more before the network path works:
// https://cloud.google.com/run/docs/configuring/vpc-direct-vpc ("You might experience connection
// establishment delays of a minute or more on instance startup when using Direct VPC egress. [...] This
// egress connectivity test should either implement retries [...]"). A single 15 s attempt therefore fails
// jobs that would have succeeded a little later. Only failures of the network path are retried (refused,
// timed out, unreachable, name not resolved yet, server starting up); a wrong password or database is
// reported at once.

import { Client, ClientConfig } from 'pg';

const RETRYABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  // SQLSTATE 57P03 cannot_connect_now: "the database system is starting up" (instance restart).
  '57P03',
  // SQLSTATE 53300 too_many_connections: another client may free one.
  '53300',
]);

export interface ConnectRetryOptions {
  /** Give up once this much time has passed since the first attempt (default 120 s). */
  budgetMs?: number;
  /** Or give up at this time (`now()` milliseconds: the run's deadline); wins over budgetMs. */
  deadline?: number;
  /** What is being connected, for the log ("database", "replication connection"). */
  what?: string;
  /** First pause between attempts; doubles up to maxDelayMs (defaults 1 s and 15 s). */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Called before each pause: "attempt 2 failed (ECONNREFUSED), retrying in 2 s". */
  log?: (line: string) => void;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** Whether a connection error may go away by itself (network path not ready, server restarting). */
export function isRetryableConnectError(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  if (err.code && RETRYABLE_CODES.has(err.code)) return true;
  // pg's own connect timeout ("timeout expired") and a socket closed during the handshake carry no code.
  return /connection timeout|timeout expired|Connection terminated unexpectedly/i.test(err.message ?? '');
}

/**
 * Runs `attempt` (which must build a fresh connection each time: a `pg` Client cannot connect twice) until it succeeds, it fails with an error that is not retryable, or the budget is spent
 * (then the last error is thrown). Pauses grow exponentially; the last pause is cut to fit the budget.
 */
export async function withConnectRetry<T>(
  attempt: () => Promise<T>,
  opts: ConnectRetryOptions = {},
): Promise<T> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const giveUpAt = opts.deadline ?? now() + (opts.budgetMs ?? 120_000);
  let delay = opts.initialDelayMs ?? 1000;
  const maxDelay = opts.maxDelayMs ?? 15_000;
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (e) {
      const left = giveUpAt - now();
      if (!isRetryableConnectError(e) || left <= 0) throw e;
      const pause = Math.min(delay, left);
      const msg = (e as Error).message ?? String(e);
      opts.log?.(
        `${opts.what ?? 'database'} not reachable yet (attempt ${n}: ${msg}); retrying in ${Math.ceil(pause / 1000)} s`,
      );
      await sleep(pause);
      delay = Math.min(delay * 2, maxDelay);
    }
  }
}

/** A connected `pg` Client, retried as withConnectRetry says; a failed attempt's client is discarded. */
export function connectWithRetry(config: ClientConfig, opts: ConnectRetryOptions = {}): Promise<Client> {
  return withConnectRetry(async () => {
    const client = new Client(config);
    try {
      await client.connect();
      return client;
    } catch (e) {
      await client.end().catch(() => undefined);
      throw e;
    }
  }, opts);
}
