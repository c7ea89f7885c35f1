import assert from 'node:assert/strict';
import { PubSub, v1 } from '@google-cloud/pubsub';
import { credentials } from '@grpc/grpc-js';
import { decodeBatch } from '../../contract/codec';
import { ChangeEvent } from '../../contract/events';
import { changeSeq } from '../../contract/lsn';
import { TableState } from '../../listener/decoders/types';
import { EventPublisher, MessageSink, OutgoingMessage, pubsubSink } from '../../listener/publisher';
import { runListener } from '../../listener/run';
import { ToastResolver } from '../../listener/toast-fill';
import { TEST_PROJECT, useEmulator } from '../support/pubsub';
import { listenerFixture } from '../support/listener';
import { uniqueName } from '../support/stack';

/** A topic with a subscription that has message ordering enabled, as the stack and local stack create it. */
async function orderedTopic(prefix: string): Promise<{ topic: string; subscription: string; host: string }> {
  const host = await useEmulator();
  const pubsub = new PubSub({ projectId: TEST_PROJECT });
  const name = uniqueName(prefix);
  const [topic] = await pubsub.createTopic(name);
  await topic.createSubscription(`${name}-sub`, { ackDeadlineSeconds: 60, enableMessageOrdering: true });
  await pubsub.close();
  return { topic: name, subscription: `${name}-sub`, host };
}

interface Pulled {
  ackId: string;
  data: Buffer;
  attributes: Record<string, string>;
  orderingKey: string;
}

function subscriber(host: string): v1.SubscriberClient {
  const [h, port] = host.split(':');
  return new v1.SubscriberClient({
    servicePath: h,
    port: Number(port),
    sslCreds: credentials.createInsecure(),
  });
}

async function pull(client: v1.SubscriberClient, subscription: string, max: number): Promise<Pulled[]> {
  const [res] = await client.pull({
    subscription: `projects/${TEST_PROJECT}/subscriptions/${subscription}`,
    maxMessages: max,
    returnImmediately: true,
  });
  return (res.receivedMessages ?? []).map((m) => ({
    ackId: m.ackId!,
    data: Buffer.from(m.message!.data as Uint8Array),
    attributes: (m.message!.attributes ?? {}) as Record<string, string>,
    orderingKey: m.message!.orderingKey ?? '',
  }));
}

async function ack(client: v1.SubscriberClient, subscription: string, msgs: Pulled[]): Promise<void> {
  if (msgs.length === 0) return;
  await client.acknowledge({
    subscription: `projects/${TEST_PROJECT}/subscriptions/${subscription}`,
    ackIds: msgs.map((m) => m.ackId),
  });
}

/** Pulls (a few at a time) and acks until `expected` messages arrived; returns them in delivery order. */
async function pullInOrder(host: string, subscription: string, expected: number): Promise<Pulled[]> {
  const client = subscriber(host);
  const out: Pulled[] = [];
  try {
    while (out.length < expected) {
      const got = await pull(client, subscription, 7);
      out.push(...got);
      await ack(client, subscription, got);
    }
  } finally {
    await client.close();
  }
  return out;
}

function event(i: number): ChangeEvent {
  return {
    op: 'c',
    key: { id: String(i) },
    before: null,
    after: { id: String(i) },
    unchanged: [],
    fromSource: [],
    lsn: '0/1',
    commitLsn: '0/1',
    xid: 1,
    commitTs: '2026-01-01 00:00:00.000000+00',
    seq: changeSeq(BigInt(i + 1) * 0x100n, 0),
  };
}

const cols = [{ name: 'id', type: 'integer', oid: 23, key: true }];
const tableA: TableState = { schema: 'public', table: 'a', columns: cols };
const tableB: TableState = { schema: 'public', table: 'b', columns: cols };

describe('delivery order (Pub/Sub ordering keys)', () => {
  it('the emulator delivers one ordering key in publish order, and a nacked message comes again first', async () => {
    const t = await orderedTopic('order_emu');
    const sink = pubsubSink({ projectId: TEST_PROJECT, topic: t.topic });
    const acks: Promise<string>[] = [];
    try {
      for (let i = 0; i < 120; i++) {
        acks.push(
          sink.publish({
            data: Buffer.from(String(i)),
            attributes: { i: String(i) },
            orderingKey: i % 3 === 0 ? 'public.b' : 'public.a',
          }),
        );
      }
      await Promise.all(acks);
    } finally {
      await sink.close();
    }
    const got = await pullInOrder(t.host, t.subscription, 120);
    for (const key of ['public.a', 'public.b']) {
      const seen = got.filter((m) => m.orderingKey === key).map((m) => Number(m.attributes.i));
      assert.deepEqual(
        seen,
        [...seen].sort((x, y) => x - y),
        `${key} arrives in publish order`,
      );
      assert.equal(seen.length, key === 'public.b' ? 40 : 80);
    }

    // Redelivery: 1, 2, 3 pulled; 1 and 3 acked, 2 nacked. Google documents that 3 comes again after 2.
    const r = await orderedTopic('order_redeliver');
    const s2 = pubsubSink({ projectId: TEST_PROJECT, topic: r.topic });
    try {
      for (const i of [1, 2, 3]) {
        await s2.publish({ data: Buffer.from(String(i)), attributes: { i: String(i) }, orderingKey: 'k' });
      }
    } finally {
      await s2.close();
    }
    const client = subscriber(r.host);
    try {
      const first: Pulled[] = [];
      while (first.length < 3) first.push(...(await pull(client, r.subscription, 10)));
      assert.deepEqual(
        first.map((m) => m.attributes.i),
        ['1', '2', '3'],
      );
      // Ack 1, nack 2 (deadline 0), ack 3: 2 comes again, first. Google documents that 3 then follows
      // although acknowledged ("Redeliveries of a message trigger redelivery of all subsequent messages for
      // that key, even acknowledged ones"); the emulator does not model that part (observed here: it
      // redelivers only 2; acking 3 before the nack made it send 3 before 2), so tests against it cannot
      // rely on that rule, and the sink must not need it: this asserts only what both do.
      await ack(client, r.subscription, [first[0]]);
      await client.modifyAckDeadline({
        subscription: `projects/${TEST_PROJECT}/subscriptions/${r.subscription}`,
        ackIds: [first[1].ackId],
        ackDeadlineSeconds: 0,
      });
      await ack(client, r.subscription, [first[2]]);
      let again: Pulled[] = [];
      while (again.length === 0) again = await pull(client, r.subscription, 10);
      await ack(client, r.subscription, again);
      assert.equal(
        again[0].attributes.i,
        '2',
        'the nacked message is delivered again, before anything after it',
      );
    } finally {
      await client.close();
    }
  });

  it("a run publishes each table's messages with its ordering key, in sequence order", async () => {
    const t = await orderedTopic('order_run');
    const f = await listenerFixture(
      { topic: t.topic, subscription: t.subscription, emulatorHost: t.host },
      'pgoutput',
      { maxEventsPerMessage: 7 },
    );
    await f.sql('CREATE TABLE a (id int PRIMARY KEY, v text)');
    await f.sql('CREATE TABLE b (id int PRIMARY KEY, v text)');
    for (let i = 0; i < 10; i++) {
      await f.sql(`INSERT INTO a SELECT g, 'x' FROM generate_series(${i * 20 + 1}, ${i * 20 + 20}) g`);
      await f.sql(`INSERT INTO b SELECT g, 'y' FROM generate_series(${i * 9 + 1}, ${i * 9 + 9}) g`);
      await f.sql(`UPDATE a SET v = 'z' WHERE id % 20 = ${i}`);
    }
    const summary = await runListener(f.cfg);
    const got = await pullInOrder(t.host, t.subscription, summary.messages);
    for (const table of ['a', 'b']) {
      const mine = got.filter((m) => m.attributes.table === table);
      assert.ok(mine.length > 5);
      for (const m of mine) assert.equal(m.orderingKey, `public.${table}`);
      const seqs = mine.flatMap((m) => decodeBatch(m.data, m.attributes).events.map((e) => e.seq));
      assert.deepEqual(seqs, [...seqs].sort(), `${table}: events arrive in sequence order`);
    }
  });

  it('publishes one table in flush order even when an earlier message takes longer to prepare', async () => {
    const calls: OutgoingMessage[] = [];
    const sink: MessageSink = {
      publish: (m) => {
        calls.push(m);
        return Promise.resolve(String(calls.length));
      },
    };
    // The first message waits for a TOAST lookup we release only after the second was flushed.
    let release: () => void = () => undefined;
    const resolver: ToastResolver = {
      resolve: () => new Promise<void>((r) => (release = r)),
      close: () => Promise.resolve(),
    };
    const p = new EventPublisher(
      sink,
      { encoding: 'json', maxMessageBytes: 1 << 20, maxEventsPerMessage: 3 },
      resolver,
    );
    p.add(tableA, { ...event(0), op: 'u', unchanged: ['doc'] });
    p.flushAll();
    for (let i = 1; i <= 3; i++) p.add(tableA, event(i)); // a full message: flushed at once, ready first
    p.add(tableB, event(9));
    p.flushAll();
    // Table b does not wait for table a; table a's second message waits for its first.
    await new Promise<void>((r) => setImmediate(r));
    while (calls.length === 0) await new Promise<void>((r) => setImmediate(r));
    assert.deepEqual(
      calls.map((c) => c.orderingKey),
      ['public.b'],
    );
    release();
    await p.drain();
    assert.deepEqual(
      calls.map((c) => [c.orderingKey, c.attributes.firstSeq]),
      [
        ['public.b', event(9).seq],
        ['public.a', event(0).seq],
        ['public.a', event(1).seq],
      ],
    );
    assert.equal(p.failure, undefined);
  });

  it('a failed publish ends publishing for good and nothing hangs (the ordered key pauses)', async () => {
    await useEmulator();
    const sink = pubsubSink({ projectId: TEST_PROJECT, topic: uniqueName('no_such_topic') });
    const p = new EventPublisher(sink, {
      encoding: 'json+gzip',
      maxMessageBytes: 1 << 20,
      maxEventsPerMessage: 2,
    });
    try {
      for (let i = 0; i < 40; i++) p.add(i % 2 ? tableA : tableB, event(i));
      p.flushAll();
      await p.drain();
    } finally {
      await sink.close();
    }
    assert.match(String(p.failure?.message), /not found/);
    assert.equal(p.stats.messages, 0);
    assert.equal(p.confirmable, 0n);
  });
});
