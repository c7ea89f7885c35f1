// No loss under failure (DESIGN §4.1): a failed publish or a SIGKILL mid-run leaves the slot at or before the
// first change not acknowledged by Pub/Sub, and the next run delivers every change (duplicates allowed).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { parseLsn } from '../../contract/lsn';
import { PublishError } from '../../listener/errors';
import { MessageSink } from '../../listener/publisher';
import { pubsubSink, runListener } from '../../listener/run';
import { v1 } from '@google-cloud/pubsub';
import { credentials } from '@grpc/grpc-js';
import { TEST_PROJECT, TableEvent, TestTopic, createTopic, eventsOf, pullAll } from '../support/pubsub';
import { ListenerFixture, listenerEnv, listenerFixture } from '../support/listener';
import { confirmedFlush } from '../support/slot';

const TXNS = 40;

/** TXNS transactions of `rowsPerTxn` inserts each, ids 1..TXNS*rowsPerTxn. */
async function workload(f: ListenerFixture, rowsPerTxn: number): Promise<number> {
  await f.sql('CREATE TABLE w (id int PRIMARY KEY, v text)');
  for (let t = 0; t < TXNS; t++) {
    await f.sql(
      `INSERT INTO w SELECT g, md5(g::text) FROM generate_series(${t * rowsPerTxn + 1}, ${(t + 1) * rowsPerTxn}) g`,
    );
  }
  return TXNS * rowsPerTxn;
}

/** Checks that the two runs together delivered every row, and that duplicates come only from the re-read. */
function assertNoLoss(total: number, firstRun: TableEvent[], secondRun: TableEvent[]): void {
  const ids = new Map<string, number>();
  for (const e of [...firstRun, ...secondRun]) ids.set(e.key!.id!, (ids.get(e.key!.id!) ?? 0) + 1);
  for (let id = 1; id <= total; id++) {
    assert.ok(ids.has(String(id)), `row ${id} was never delivered`);
  }
  const duplicates = [...ids.values()].reduce((n, c) => n + c - 1, 0);
  // Every duplicate is a change re-read after the failure, never a change delivered twice by one run.
  assert.equal(new Set(secondRun.map((e) => e.seq)).size, secondRun.length);
  assert.ok(duplicates <= firstRun.length, `${duplicates} duplicates, at most ${firstRun.length} expected`);
}

describe('listener: no loss under failure', function () {
  this.timeout(300_000);

  it('a publish that fails mid-run leaves the slot before every unacknowledged change; the next run delivers them', async () => {
    const topic = await createTopic('fail_publish');
    const f = await listenerFixture(topic, 'wal2json', { maxEventsPerMessage: 100 });
    const total = await workload(f, 500);
    const real = pubsubSink(f.cfg);
    let published = 0;
    const failing: MessageSink = {
      publish: async (msg) => {
        if (++published > 60) throw new PublishError('injected: Pub/Sub unavailable');
        return real.publish(msg);
      },
    };
    await assert.rejects(runListener(f.cfg, { sink: failing }), /injected/);
    await real.close();
    const first = eventsOf(await pullAll(topic));
    assert.ok(first.length > 0 && first.length < total, `first run delivered ${first.length}`);
    const confirmed = await confirmedFlush(f.db, f.cfg.slot);
    const delivered = new Set(first.map((e) => e.seq));

    const second = await runListener(f.cfg);
    const rest = eventsOf(await pullAll(topic));
    assert.equal(second.changes, rest.length);
    // The earliest change the first run did not get acknowledged: the slot must not stand past its commit.
    const missing = rest.filter((e) => !delivered.has(e.seq));
    assert.ok(missing.length > 0);
    assert.ok(confirmed <= parseLsn(missing[0].commitLsn), 'slot confirmed past an unacknowledged change');
    assertNoLoss(total, first, rest);
  });

  it('a publish failure while reading is paused on in-flight bytes ends the run with the error, not a hang', async () => {
    const topic = await createTopic('fail_paused');
    // Tiny messages and a tiny in-flight budget: reading pauses almost at once and waits for acks.
    const f = await listenerFixture(topic, 'wal2json', { maxInFlightBytes: 20_000, maxMessageBytes: 1000 });
    await workload(f, 50);
    let published = 0;
    const failing: MessageSink = {
      publish: async () => {
        published++;
        await new Promise((r) => setTimeout(r, 200));
        throw new PublishError('injected: permission removed');
      },
    };
    await assert.rejects(runListener(f.cfg, { sink: failing }), /permission removed/);
    assert.ok(published > 0);
  });

  it('a listener killed with SIGKILL mid-run loses nothing: the next run delivers every change', async () => {
    const topic = await createTopic('sigkill');
    // A large backlog (200,000 rows) and the smallest in-flight budget: the run has to wait for Pub/Sub's
    // acknowledgements many times over, so when its first messages are visible it is far from done.
    const f = await listenerFixture(topic, 'wal2json', {
      maxEventsPerMessage: 50,
      maxInFlightBytes: 1024 * 1024,
    });
    const total = await workload(f, 5000);
    const child = spawn(process.execPath, [path.resolve(__dirname, '../../listener/main.js')], {
      env: { ...process.env, ...listenerEnv(f.cfg) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    // Kill on an observed event: the first message the listener published is in the subscription.
    await untilFirstMessage(topic, exited);
    child.kill('SIGKILL');
    assert.equal(await exited, null, `the listener had finished before it could be killed: ${stderr}`);
    const first = eventsOf(await pullAll(topic));
    assert.ok(first.length > 0 && first.length < total, `the kill came after ${first.length} of ${total}`);
    console.log(`      killed after ${first.length} of ${total} changes were published`);
    const confirmed = await confirmedFlush(f.db, f.cfg.slot);
    const delivered = new Set(first.map((e) => e.seq));

    await runListener(f.cfg);
    const rest = eventsOf(await pullAll(topic));
    const missing = rest.filter((e) => !delivered.has(e.seq));
    assert.ok(missing.length > 0);
    assert.ok(confirmed <= parseLsn(missing[0].commitLsn), 'slot confirmed past an unacknowledged change');
    assertNoLoss(total, first, rest);
  });
});

/**
 * Resolves as soon as the subscription holds at least one message (left unacknowledged, so `pullAll` gets
 * it again), rejects if the process exits first. One small pull per round: draining everything here would
 * let the listener finish meanwhile.
 */
async function untilFirstMessage(t: TestTopic, exited: Promise<number | null>): Promise<void> {
  const [host, port] = t.emulatorHost.split(':');
  const client = new v1.SubscriberClient({
    servicePath: host,
    port: Number(port),
    sslCreds: credentials.createInsecure(),
  });
  const subscription = `projects/${TEST_PROJECT}/subscriptions/${t.subscription}`;
  let gone = false;
  void exited.then(() => (gone = true));
  try {
    for (;;) {
      if (gone) throw new Error('the listener exited before publishing anything');
      const [res] = await client.pull({ subscription, maxMessages: 1, returnImmediately: true });
      const msgs = res.receivedMessages ?? [];
      if (msgs.length > 0) {
        // Make it available again at once for the collecting pull.
        await client.modifyAckDeadline({
          subscription,
          ackIds: msgs.map((m) => m.ackId!),
          ackDeadlineSeconds: 0,
        });
        return;
      }
    }
  } finally {
    await client.close();
  }
}
