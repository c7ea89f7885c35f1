// Test helpers around the real @google-cloud/pubsub client talking to the emulator.

import { PubSub, v1 } from '@google-cloud/pubsub';
import { credentials } from '@grpc/grpc-js';
import { decodeBatch } from '../../contract/codec';
import { ChangeEvent, EventBatch } from '../../contract/events';
import { testPubSub, uniqueName } from './stack';

export const TEST_PROJECT = 'pgcdc-test';

export interface TestTopic {
  topic: string;
  subscription: string;
  emulatorHost: string;
}

/** Points the Pub/Sub client library at the shared emulator (it reads PUBSUB_EMULATOR_HOST). */
export async function useEmulator(): Promise<string> {
  const emu = await testPubSub();
  process.env.PUBSUB_EMULATOR_HOST = emu.host;
  return emu.host;
}

export async function createTopic(prefix = 'topic'): Promise<TestTopic> {
  const emulatorHost = await useEmulator();
  const pubsub = new PubSub({ projectId: TEST_PROJECT });
  const name = uniqueName(prefix);
  const [topic] = await pubsub.createTopic(name);
  // As the stack's subscription (decision 5): each ordering key's messages in publish order.
  await topic.createSubscription(`${name}-sub`, { ackDeadlineSeconds: 60, enableMessageOrdering: true });
  await pubsub.close();
  return { topic: name, subscription: `${name}-sub`, emulatorHost };
}

export interface PulledBatch {
  batch: EventBatch;
  attributes: Record<string, string>;
}

/** Pulls and acks everything currently in the subscription (until a pull comes back empty). */
export async function pullAll(t: TestTopic): Promise<PulledBatch[]> {
  const [host, port] = t.emulatorHost.split(':');
  const client = new v1.SubscriberClient({
    servicePath: host,
    port: Number(port),
    sslCreds: credentials.createInsecure(),
  });
  const subscription = `projects/${TEST_PROJECT}/subscriptions/${t.subscription}`;
  const out: PulledBatch[] = [];
  try {
    for (;;) {
      // With ordering, a key's next messages come only after these are acked: pull, ack, pull again, until
      // a pull that waited (with nothing outstanding) gets nothing; one cut short by our deadline is retried.
      let res;
      try {
        [res] = await client.pull({ subscription, maxMessages: 1000 }, { timeout: 3000, retry: null });
      } catch (e) {
        if ((e as { code?: number }).code === 4) continue;
        throw e;
      }
      const msgs = res.receivedMessages ?? [];
      if (msgs.length === 0) break;
      for (const m of msgs) {
        const attributes = (m.message?.attributes ?? {}) as Record<string, string>;
        out.push({ batch: decodeBatch(Buffer.from(m.message!.data as Uint8Array), attributes), attributes });
      }
      await client.acknowledge({ subscription, ackIds: msgs.map((m) => m.ackId!) });
    }
  } finally {
    await client.close();
  }
  return out;
}

export interface TableEvent extends ChangeEvent {
  schema: string;
  table: string;
}

export function eventsOf(batches: PulledBatch[]): TableEvent[] {
  const all = batches.flatMap((b) =>
    b.batch.events.map((e) => ({ ...e, schema: b.batch.schema, table: b.batch.table })),
  );
  return all.sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
}
