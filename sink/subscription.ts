// Synchronous pull from the subscription: we decide when a message is acked (after BigQuery accepted
// it), keep leases alive while a batch is written, and hand back what we could not finish.

import { v1 } from '@google-cloud/pubsub';

export interface Inbound {
  ackId: string;
  messageId: string;
  data: Buffer;
  attributes: Record<string, string>;
  /** Set by Pub/Sub only when the subscription has a dead-letter policy. */
  attempts?: number;
}

/** A Pub/Sub call failed (exit code 5 territory). */
export class PubSubError extends Error {
  override name = 'PubSubError';
}

// While we work on pulled messages we renew their lease to this many seconds, every RENEW_MS. The first
// lease is the subscription's ack deadline: a crashed sink's messages come back after it, not later.
const LEASE_SECONDS = 60;
const RENEW_MS = 10_000;
// One pull waits at most this long for messages before it counts as empty.
const PULL_WAIT_MS = 2_500;
// acknowledge / modifyAckDeadline take a bounded list of ack ids per call.
const ACK_CHUNK = 500;

export class SubscriptionReader {
  constructor(
    private readonly client: v1.SubscriberClient,
    readonly subscription: string,
  ) {}

  private async wrap<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw new PubSubError(`Pub/Sub ${what} on ${this.subscription} failed: ${(e as Error).message}`);
    }
  }

  async pull(maxMessages: number): Promise<Inbound[]> {
    let received;
    try {
      [{ receivedMessages: received }] = await this.client.pull(
        { subscription: this.subscription, maxMessages },
        { timeout: PULL_WAIT_MS, retry: null },
      );
    } catch (e) {
      // DEADLINE_EXCEEDED: nothing arrived while we waited.
      if ((e as { code?: number }).code === 4) return [];
      throw new PubSubError(`Pub/Sub pull from ${this.subscription} failed: ${(e as Error).message}`);
    }
    const out: Inbound[] = [];
    for (const r of received ?? []) {
      if (!r.ackId || !r.message) continue;
      const attrs: Record<string, string> = {};
      for (const [k, v] of Object.entries(r.message.attributes ?? {})) attrs[k] = String(v);
      const data = r.message.data;
      out.push({
        ackId: r.ackId,
        messageId: r.message.messageId ?? '',
        data:
          data === null || data === undefined ? Buffer.alloc(0) : Buffer.from(data as Uint8Array | string),
        attributes: attrs,
        attempts: r.deliveryAttempt || undefined,
      });
    }
    return out;
  }

  private async chunked(ackIds: string[], f: (ids: string[]) => Promise<unknown>): Promise<void> {
    for (let i = 0; i < ackIds.length; i += ACK_CHUNK) await f(ackIds.slice(i, i + ACK_CHUNK));
  }

  /** Keeps the messages ours for another lease period. */
  extend(messages: Inbound[]): Promise<void> {
    return this.wrap('modifyAckDeadline', () =>
      this.chunked(
        messages.map((m) => m.ackId),
        (ackIds) =>
          this.client.modifyAckDeadline({
            subscription: this.subscription,
            ackIds,
            ackDeadlineSeconds: LEASE_SECONDS,
          }),
      ),
    );
  }

  ack(messages: Inbound[]): Promise<void> {
    return this.wrap('acknowledge', () =>
      this.chunked(
        messages.map((m) => m.ackId),
        (ackIds) => this.client.acknowledge({ subscription: this.subscription, ackIds }),
      ),
    );
  }

  /** Gives messages back for prompt redelivery (best effort: an expired lease does the same later). */
  async nack(messages: Inbound[]): Promise<void> {
    try {
      await this.chunked(
        messages.map((m) => m.ackId),
        (ackIds) =>
          this.client.modifyAckDeadline({ subscription: this.subscription, ackIds, ackDeadlineSeconds: 0 }),
      );
    } catch {
      /* the lease runs out on its own */
    }
  }

  /** Renews the lease of `messages()` every interval until stopped. */
  keepLeased(messages: () => Inbound[]): { stop(): void } {
    const timer = setInterval(() => {
      const list = messages();
      if (list.length > 0) this.extend(list).catch(() => undefined);
    }, RENEW_MS);
    timer.unref();
    return { stop: () => clearInterval(timer) };
  }

  close(): Promise<void> {
    return this.client.close();
  }
}
