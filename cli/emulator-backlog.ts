// Counting what waits in a Pub/Sub emulator subscription without touching its deliveries.
//
// Pulling from the sink's subscription to count would be a delivery attempt: every `pgcdc status` would bring
// a waiting message closer to its dead-letter limit (issue 11.1). Pub/Sub has no peek, and the emulator has no
// metrics API, so the count is made on a *shadow*: a subscription of the same topic that nobody consumes,
// created with the stack (`pgcdc local up`), so it holds every message ever published. To count:
//   1. snapshot the real subscription. A snapshot "records the acknowledgment state of all the messages
//      within a subscription at the moment of its creation" and leaves the subscription as it is
//      (https://cloud.google.com/pubsub/docs/replay-overview);
//   2. seek the shadow to that snapshot: "you can copy the acknowledgment state of one subscription to another
//      by using seek in combination with a snapshot" (same page). The shadow then offers exactly the messages
//      the real subscription has not acknowledged — waiting or leased to a running sink;
//   3. pull the shadow (its deliveries count for nobody), delete the snapshot.
// Checked on Google's emulator (cloud-pubsub-emulator 0.8.20): seek copies the snapshot's ack set onto the
// target's own messages, so the shadow must have existed when the messages were published; a subscription
// created later counts only what was published after it (reported as `since`).
//
// The emulator speaks REST on its gRPC port (v1 paths), so this needs no client library: `pgcdc status --env
// local` stays fast.

import { randomBytes } from 'node:crypto';
import type { Backlog } from './cloud';

export interface EmulatorBacklog extends Backlog {
  /** Set when the shadow was created after the stack: only messages published since then are counted. */
  countedSince?: string;
}

/** The shadow's name for a subscription (same project and topic). */
export function shadowSubscription(subscription: string): string {
  return `${subscription}-status-shadow`;
}

// Label on a shadow created together with its stack (complete) rather than later (counts from its creation).
const COMPLETE_LABEL = 'pgcdc-complete';
// Enough to tell "a few" from "a lot" without pulling the emulator's whole backlog.
const COUNT_LIMIT = 100_000;

class EmulatorRest {
  constructor(
    private readonly host: string,
    readonly project: string,
  ) {}

  async call<T>(method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T | null> {
    const res = await fetch(`http://${this.host}/v1/projects/${this.project}/${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    if (res.status === 404) return null;
    const text = await res.text();
    if (!res.ok) throw new Error(`Pub/Sub emulator: ${method} ${path}: ${res.status} ${text.slice(0, 200)}`);
    return (text ? JSON.parse(text) : {}) as T;
  }

  full(kind: 'topics' | 'subscriptions' | 'snapshots', name: string): string {
    return `projects/${this.project}/${kind}/${name}`;
  }
}

interface SubscriptionResource {
  topic: string;
  labels?: Record<string, string>;
}

/**
 * Creates the shadow of `subscription` unless it exists. `complete`: the caller knows nothing was published
 * to the topic yet (a fresh stack), so the shadow holds every message the subscription will ever see.
 */
export async function ensureShadow(
  emulatorHost: string,
  project: string,
  subscription: string,
  opts: { complete: boolean; nowMs: number },
): Promise<void> {
  const api = new EmulatorRest(emulatorHost, project);
  const shadow = shadowSubscription(subscription);
  if (await api.call('GET', `subscriptions/${shadow}`)) return;
  const real = await api.call<SubscriptionResource>('GET', `subscriptions/${subscription}`);
  if (!real) throw new Error(`the Pub/Sub emulator has no subscription ${subscription}`);
  await api.call('PUT', `subscriptions/${shadow}`, {
    topic: real.topic,
    // As long as the real subscription keeps unacknowledged messages (its default, 7 days).
    messageRetentionDuration: '604800s',
    labels: opts.complete
      ? { [COMPLETE_LABEL]: 'true' }
      : { [COMPLETE_LABEL]: 'false', 'pgcdc-since': String(Math.floor(opts.nowMs / 1000)) },
  });
}

/**
 * Messages the subscription has not acknowledged (waiting, or leased to a consumer) and the age of the
 * oldest, counted on its shadow: the real subscription's deliveries are never touched.
 */
export async function emulatorBacklog(
  emulatorHost: string,
  project: string,
  subscription: string,
  nowMs: number,
): Promise<EmulatorBacklog> {
  const api = new EmulatorRest(emulatorHost, project);
  const shadowName = shadowSubscription(subscription);
  let shadow = await api.call<SubscriptionResource>('GET', `subscriptions/${shadowName}`);
  if (!shadow) {
    await ensureShadow(emulatorHost, project, subscription, { complete: false, nowMs });
    shadow = await api.call<SubscriptionResource>('GET', `subscriptions/${shadowName}`);
  }
  const snapshot = `pgcdc-status-${process.pid}-${randomBytes(4).toString('hex')}`;
  const created = await api.call('PUT', `snapshots/${snapshot}`, {
    subscription: api.full('subscriptions', subscription),
  });
  if (!created) throw new Error(`the Pub/Sub emulator has no subscription ${subscription}`);
  try {
    await api.call('POST', `subscriptions/${shadowName}:seek`, { snapshot: api.full('snapshots', snapshot) });
  } finally {
    await api.call('DELETE', `snapshots/${snapshot}`);
  }
  const seen = new Set<string>();
  let oldest: number | null = null;
  while (seen.size < COUNT_LIMIT) {
    const got = await api.call<{
      receivedMessages?: Array<{ message?: { messageId?: string; publishTime?: string } }>;
    }>('POST', `subscriptions/${shadowName}:pull`, { maxMessages: 1000, returnImmediately: true });
    const messages = got?.receivedMessages ?? [];
    let fresh = 0;
    for (const m of messages) {
      const id = m.message?.messageId;
      if (!id || seen.has(id)) continue;
      seen.add(id);
      fresh++;
      const t = m.message?.publishTime ? Date.parse(m.message.publishTime) : NaN;
      if (Number.isFinite(t)) oldest = oldest === null ? t : Math.min(oldest, t);
    }
    // The pulled copies stay leased on the shadow, so a pull that brings nothing new means: all counted.
    if (fresh === 0) break;
  }
  const labels = shadow?.labels ?? {};
  const since =
    labels[COMPLETE_LABEL] === 'true' || !labels['pgcdc-since']
      ? undefined
      : new Date(Number(labels['pgcdc-since']) * 1000).toISOString();
  return {
    messages: seen.size,
    oldestUnackedSeconds: oldest === null ? null : Math.max(0, Math.round((nowMs - oldest) / 1000)),
    ...(since ? { countedSince: since } : {}),
  };
}
