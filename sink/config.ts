// The sink job's configuration, read once from the environment (names in contract/env.ts).

import { ENV } from '../contract/env';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface SinkConfig {
  projectId: string;
  /** Full path "projects/p/subscriptions/s". */
  subscription: string;
  bigQueryProject: string;
  dataset: string;
  location?: string;
  maxStalenessMinutes: number;
  maxRunSeconds: number;
  mode: 'once' | 'continuous';
  /** Most messages pulled and written as one batch. */
  batchMessages: number;
  /**
   * How long one pull may wait for messages. A bounded run ends when a pull that started with nothing in
   * hand waited this long and got nothing (sink/README.md, "When is the subscription drained").
   */
  pullWaitSeconds: number;
  /** Full path of the dead-letter subscription: its messages are recorded in `_failed`, then acked. */
  deadLetterSubscription?: string;
  /** host:port of a Storage Write API endpoint without TLS (local emulator only). */
  bigQueryStorageEmulatorHost?: string;
}

function positiveInt(
  env: NodeJS.ProcessEnv,
  name: string,
  fallback: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0 || n > max) {
    throw new ConfigError(`${name} must be a whole number between 1 and ${max}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

function required(env: NodeJS.ProcessEnv, name: string, hint: string): string {
  const v = env[name]?.trim();
  if (!v) throw new ConfigError(`${name} is not set: ${hint}`);
  return v;
}

/** Reads and validates the sink's environment; throws ConfigError naming the variable to fix. */
export function loadSinkConfig(env: NodeJS.ProcessEnv): SinkConfig {
  const projectId = env[ENV.project]?.trim() || env.GOOGLE_CLOUD_PROJECT?.trim();
  if (!projectId)
    throw new ConfigError(`${ENV.project} (or GOOGLE_CLOUD_PROJECT) is not set: the Pub/Sub project`);
  const sub = required(
    env,
    ENV.subscription,
    'the Pub/Sub subscription to drain (name or projects/p/subscriptions/s)',
  );
  const subscription = sub.startsWith('projects/') ? sub : `projects/${projectId}/subscriptions/${sub}`;
  if (!/^projects\/[^/]+\/subscriptions\/[^/]+$/.test(subscription)) {
    throw new ConfigError(`${ENV.subscription} is not a subscription name or path: ${JSON.stringify(sub)}`);
  }
  const dataset = required(env, ENV.dataset, 'the BigQuery dataset to write');
  if (!/^[A-Za-z0-9_]{1,1024}$/.test(dataset)) {
    throw new ConfigError(
      `${ENV.dataset} may hold only letters, digits and underscores, got ${JSON.stringify(dataset)}`,
    );
  }
  const modeRaw = (env[ENV.mode] ?? 'once').trim() || 'once';
  if (modeRaw !== 'once' && modeRaw !== 'continuous') {
    throw new ConfigError(`${ENV.mode} must be "once" or "continuous", got ${JSON.stringify(modeRaw)}`);
  }
  const storageHost = env[ENV.bigQueryStorageEmulatorHost]?.trim();
  if (storageHost && !/^[^:\s]+:\d+$/.test(storageHost)) {
    throw new ConfigError(
      `${ENV.bigQueryStorageEmulatorHost} must be host:port, got ${JSON.stringify(storageHost)}`,
    );
  }
  const dl = env[ENV.deadLetterSubscription]?.trim();
  const deadLetterSubscription = dl
    ? dl.startsWith('projects/')
      ? dl
      : `projects/${projectId}/subscriptions/${dl}`
    : undefined;
  return {
    projectId,
    subscription,
    deadLetterSubscription,
    bigQueryProject: env[ENV.bigQueryProject]?.trim() || projectId,
    dataset,
    location: env[ENV.bigQueryLocation]?.trim() || undefined,
    // BigQuery accepts max_staleness up to 24 hours for CDC tables' background apply.
    maxStalenessMinutes: positiveInt(env, ENV.maxStalenessMinutes, 15, 24 * 60),
    maxRunSeconds: positiveInt(env, ENV.maxRunSeconds, 300),
    mode: modeRaw,
    batchMessages: positiveInt(env, ENV.sinkBatchMessages, 50, 1000),
    pullWaitSeconds: positiveInt(env, ENV.sinkPullWaitSeconds, 20, 600),
    bigQueryStorageEmulatorHost: storageHost || undefined,
  };
}
