// Synchronous pull from the subscription: we decide when a message is acked (after BigQuery accepted
// it), keep leases alive while a batch is written, and hand back what we could not finish.
//
// Why synchronous pull and not the streaming `Subscription` of @google-cloud/pubsub: a bounded run must
// know when it has drained the subscription, and must never let the library ack or nack on its own (its
// lease manager stops extending after maxExtension and then lets messages go). With pull we hold every
// message we have until BigQuery accepted it, and the drain rule is ours (run.ts).

import { v1 } from '@google-cloud/pubsub';

export interface Inbound {
  ackId: string;
  messageId: string;
  data: Buffer;
  attributes: Record<string, string>;
  /** Set by Pub/Sub only when the subscription has a dead-letter policy. */
  attempts?: number;
  /** The publisher's ordering key (the listener uses `schema.table`), '' when none. */
  orderingKey: string;
}

export interface PullResult {
  messages: Inbound[];
  /** False when the pull ended by our deadline rather than the server's answer. */
  complete: boolean;
}

/** A Pub/Sub call failed (exit code 5 territory). */
export class PubSubError extends Error {
  override name = 'PubSubError';
}

// While we work on pulled messages we renew their lease to this many seconds, every RENEW_MS. The first
// lease is the subscription's ack deadline: a crashed sink's messages come back after it, not later.
const LEASE_SECONDS = 60;
const RENEW_MS = 10_000;
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

  /**
   * One pull of up to `maxMessages`, waiting up to `waitMs` for the first one. `returnImmediately` is left
   * false (its default): "the system may wait (for a bounded amount of time) until at least one message is
   * available, rather than returning no messages", and a pull "may return fewer than the number specified"
   * (https://cloud.google.com/pubsub/docs/reference/rpc/google.pubsub.v1#pullrequest). The wait is the
   * RPC's deadline, which the server sees (grpc-timeout) and answers before: a long deadline costs nothing
   * when messages are there, and a pull is not cut off while the server hands us messages (a pull
   * cancelled by a short client deadline can leave messages leased to nobody until their ack deadline, and
   * each such stranding counts as a delivery attempt towards the dead-letter limit).
   */
  async pull(maxMessages: number, waitMs: number): Promise<PullResult> {
    let received;
    try {
      [{ receivedMessages: received }] = await this.client.pull(
        { subscription: this.subscription, maxMessages },
        { timeout: waitMs, retry: null },
      );
    } catch (e) {
      // DEADLINE_EXCEEDED: our deadline fired before the server's answer was read (normally the server
      // answers first). Messages it was handing us may now be leased to nobody until their ack deadline:
      // so this is not an empty pull, and proves nothing about the backlog.
      if ((e as { code?: number }).code === 4) return { messages: [], complete: false };
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
        orderingKey: r.message.orderingKey ?? '',
      });
    }
    return { messages: out, complete: true };
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
