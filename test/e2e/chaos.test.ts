// End to end under chaos, for both decoders: Postgres → listener → Pub/Sub → sink processes SIGKILLed at
// random points between pull and ack → BigQuery. Old messages are published again late (out-of-order
// redelivery on top of the emulator's own redelivery order after each kill), and the replica is compared
// with the source row by row after every round.
//
// `doc` is stored out of line (STORAGE EXTERNAL, 3.2 kB: above the ~2 kB TOAST threshold, uncompressed), so
// every update that leaves it alone reaches the listener as an unchanged TOAST value, which the listener
// resolves before publishing (decision 4); the test checks such resolved updates happened.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { PubSub, v1 } from '@google-cloud/pubsub';
import { credentials } from '@grpc/grpc-js';
import { ENV } from '../../contract/env';
import { DecoderName } from '../../listener/config';
import { runListenerJob } from '../../listener/job';
import { runSink } from '../../sink/run';
import { listenerFixture, ListenerFixture } from '../support/listener';
import { channel, Channel, PROJECT, sinkStack, SinkStack } from '../sink/support';

const sinkMain = path.join(__dirname, '..', '..', 'sink', 'main.js');

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Everything published to the topic, read through a second subscription. */
async function drainTap(host: string, subscription: string) {
  const [h, p] = host.split(':');
  const client = new v1.SubscriberClient({
    servicePath: h,
    port: Number(p),
    sslCreds: credentials.createInsecure(),
  });
  const seen: { data: Buffer; attributes: Record<string, string>; orderingKey: string }[] = [];
  try {
    for (;;) {
      const [res] = await client
        .pull({ subscription, maxMessages: 500 }, { timeout: 3000, retry: null })
        .catch((e: { code?: number }) => {
          if (e.code === 4) return [{ receivedMessages: [] }];
          throw e;
        });
      const msgs = res.receivedMessages ?? [];
      if (msgs.length === 0) return seen;
      for (const m of msgs) {
        seen.push({
          data: Buffer.from(m.message!.data as Uint8Array),
          attributes: (m.message!.attributes ?? {}) as Record<string, string>,
          orderingKey: m.message!.orderingKey ?? '',
        });
      }
      await client.acknowledge({ subscription, ackIds: msgs.map((m) => m.ackId!) });
    }
  } finally {
    await client.close();
  }
}

async function historyEvents(ch: Channel): Promise<number> {
  if ((await ch.rest.getTable('items_changes')) === null) return 0;
  const rows = await ch.rest.query(
    `SELECT DISTINCT _event_id FROM \`${ch.config.bigQueryProject}.${ch.dataset}.items_changes\``,
  );
  return rows.length;
}

/** A sink process, SIGKILLed once the history holds `atEvents` distinct events (unless it ends first). */
async function killedSink(ch: Channel, atEvents: number, batch: number): Promise<boolean> {
  const child = spawn(process.execPath, [sinkMain], {
    env: {
      PATH: process.env.PATH,
      PUBSUB_EMULATOR_HOST: process.env.PUBSUB_EMULATOR_HOST,
      BIGQUERY_EMULATOR_HOST: process.env.BIGQUERY_EMULATOR_HOST,
      [ENV.project]: ch.config.projectId,
      [ENV.subscription]: ch.config.subscription,
      [ENV.dataset]: ch.dataset,
      [ENV.sinkBatchMessages]: String(batch),
      [ENV.sinkPullWaitSeconds]: '3',
      [ENV.bigQueryStorageEmulatorHost]: ch.config.bigQueryStorageEmulatorHost,
    },
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let ended = false;
  void exited.then(() => (ended = true));
  try {
    while (!ended && (await historyEvents(ch)) < atEvents) await new Promise((r) => setTimeout(r, 50));
    if (ended) return false;
    child.kill('SIGKILL');
    await exited;
    return true;
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

async function mismatch(f: ListenerFixture, ch: Channel): Promise<string | null> {
  const source = await f.sql('SELECT id::text, v, doc, n::text FROM items');
  if ((await ch.rest.getTable('items')) === null) return 'no replica yet';
  const replica = new Map((await ch.rest.listRows('items')).map((r) => [String(r.id), r]));
  if (replica.size !== source.length) return `${replica.size} replica rows, ${source.length} source rows`;
  for (const row of source) {
    const got = replica.get(String(row.id));
    if (!got) return `row ${row.id} missing`;
    for (const col of ['v', 'doc', 'n']) {
      if ((got[col] ?? null) !== (row[col] ?? null))
        return `${row.id}.${col}: ${String(got[col])} ≠ ${String(row[col])}`;
    }
  }
  return null;
}

/** SQL for a 3,200-character doc derived from `seed` (above the TOAST threshold; EXTERNAL keeps it whole). */
function bigDoc(seed: string): string {
  return `repeat(md5(${seed}), 100)`;
}

/** History events whose `doc` the listener read from the source (it was an unchanged TOAST value). */
async function resolvedDocs(ch: Channel): Promise<number> {
  const rows = await ch.rest.listRows('items_changes');
  // REST gives a REPEATED STRING as [{ v: 'doc' }, …].
  const cells = (v: unknown) => (Array.isArray(v) ? (v as { v?: unknown }[]).map((c) => c?.v) : []);
  return rows.filter((r) => cells(r._from_source).includes('doc')).length;
}

async function workload(f: ListenerFixture, rnd: () => number, r: number): Promise<void> {
  const base = r * 1000;
  await f.sql(
    `INSERT INTO items SELECT g, 'v' || g, ${bigDoc('g::text')}, g FROM generate_series(${base + 1}, ${base + 120}) g`,
  );
  for (let i = 0; i < 25; i++) {
    const pick = Math.floor(rnd() * 4);
    if (pick === 0)
      await f.sql(
        `UPDATE items SET v = md5(random()::text) WHERE id IN (SELECT id FROM items ORDER BY random() LIMIT 3)`,
      );
    else if (pick === 1)
      await f.sql(
        `UPDATE items SET doc = ${bigDoc('random()::text')}, n = n + 1 WHERE id IN (SELECT id FROM items ORDER BY random() LIMIT 2)`,
      );
    else if (pick === 2)
      await f.sql(
        // Not onto a key already taken: a row moved earlier in the round and inserted again (base + 7 below)
        // would collide in the workload itself.
        `UPDATE items SET id = id + 100000 WHERE id IN (SELECT id FROM items i WHERE id < 100000
           AND NOT EXISTS (SELECT 1 FROM items j WHERE j.id = i.id + 100000) ORDER BY random() LIMIT 2)`,
      );
    else await f.sql('DELETE FROM items WHERE id IN (SELECT id FROM items ORDER BY random() LIMIT 3)');
  }
  // A row deleted and inserted again with the same key in one round.
  await f.sql(`DELETE FROM items WHERE id = ${base + 7}`);
  await f.sql(`INSERT INTO items VALUES (${base + 7}, 'again', ${bigDoc("'again'")}, 7)`);
}

for (const decoder of ['pgoutput', 'wal2json'] as DecoderName[]) {
  describe(`end to end with ${decoder} under chaos: sink SIGKILLs and out-of-order redelivery`, function () {
    this.timeout(900_000);
    let stack: SinkStack;
    before(async () => {
      stack = await sinkStack();
    });
    after(async () => {
      await stack?.stopBigQuery();
    });

    it('after every round of kills and late replays the replica equals the source row by row', async () => {
      const rnd = prng(decoder === 'pgoutput' ? 101 : 202);
      const ch = await channel(stack, { batchMessages: 5 });
      const pubsub = new PubSub({ projectId: PROJECT, universeDomain: 'googleapis.com', emulatorMode: true });
      const tapName = `${ch.subscription}-tap`;
      await pubsub.topic(ch.topic).createSubscription(tapName);
      const f = await listenerFixture(
        { topic: ch.topic, subscription: ch.subscription, emulatorHost: stack.pubsubHost },
        decoder,
        { projectId: PROJECT, maxEventsPerMessage: 20 },
        async (sql) => {
          await sql('CREATE TABLE items (id int PRIMARY KEY, v text, doc text, n int)');
          // Out of line and uncompressed: every row's doc is a TOAST pointer in the WAL.
          await sql('ALTER TABLE items ALTER COLUMN doc SET STORAGE EXTERNAL');
        },
      );
      const seen: Awaited<ReturnType<typeof drainTap>> = [];
      let kills = 0;
      try {
        for (let r = 1; r <= 3; r++) {
          await workload(f, rnd, r);
          await runListenerJob(f.cfg);
          seen.push(...(await drainTap(stack.pubsubHost, `projects/${PROJECT}/subscriptions/${tapName}`)));
          // Late copies of old messages (this and earlier rounds), in a shuffled order.
          const late = seen.filter(() => rnd() < 0.3).sort(() => rnd() - 0.5);
          const topic = pubsub.topic(ch.topic, { messageOrdering: true });
          for (const m of late) {
            await topic.publishMessage({
              data: m.data,
              attributes: m.attributes,
              ...(m.orderingKey ? { orderingKey: m.orderingKey } : {}),
            });
          }
          const before = await historyEvents(ch);
          for (let k = 0; k < 2; k++) {
            if (await killedSink(ch, before + 1 + Math.floor(rnd() * 150), 1 + Math.floor(rnd() * 5)))
              kills += 1;
          }
          // Reruns until the replica is right: what the killed sinks held comes back when its lease ends.
          let wrong: string | null = 'not checked';
          for (let n = 0; n < 60 && wrong !== null; n++) {
            const s = await runSink(ch.config, { log: () => undefined });
            assert.equal(s.failed, 0);
            wrong = await mismatch(f, ch);
          }
          assert.equal(wrong, null, `round ${r}`);
        }
      } finally {
        await pubsub.close();
      }
      assert.ok(kills >= 2, `sinks killed mid-run: ${kills}`);
      const resolved = await resolvedDocs(ch);
      assert.ok(resolved > 10, `updates whose unchanged TOAST doc the listener resolved: ${resolved}`);
      assert.ok(Number((await f.sql('SELECT count(*)::int AS n FROM items'))[0].n) > 200);
    });
  });
}
