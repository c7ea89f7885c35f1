// `pgcdc failed list|replay --env local` against the emulators: dead letters recorded by the sink are listed,
// replayed to the topic as they are (with the table's ordering key), and the next sink run writes them;
// a record older than BigQuery's two-day delete window is refused unless --force.

import assert from 'node:assert/strict';
import { EXIT } from '../../cli/errors';
import { encodeBatch } from '../../contract/codec';
import type { ColumnInfo } from '../../contract/events';
import type { LocalEndpoints } from '../../local/stack';
import { runSink } from '../../sink/run';
import { harness } from '../cli/fakes';
import { batchOf, channel, event, nextCommit, PROJECT, rowsBy, sinkStack, SinkStack } from './support';

const COLUMNS: ColumnInfo[] = [
  { name: 'id', type: 'integer', oid: 23, key: true },
  { name: 'name', type: 'text', oid: 25, key: false },
];

describe('pgcdc failed list|replay (local)', function () {
  let stack: SinkStack;
  before(async function () {
    stack = await sinkStack();
  });
  after(async function () {
    await stack?.stopBigQuery();
  });

  it('lists dead letters, replays the recent one so the next run writes it, refuses the old one without --force', async function () {
    const ch = await channel(stack);
    const dlTopic = `${ch.topic}-dl`;
    const [topic] = await stack.pubsub.createTopic(dlTopic);
    await topic.createSubscription(`${dlTopic}-sub`);
    // What Pub/Sub forwards after maxDeliveryAttempts: the original messages. The harness's clock is
    // 2026-01-01 12:05 UTC: one committed an hour before, one a week before.
    const recent = event('c', nextCommit(), 0, { key: { id: '1' }, after: { id: '1', name: 'recent' } });
    recent.commitTs = '2026-01-01 11:05:00.000001+00';
    const old = event('c', nextCommit(), 0, { key: { id: '2' }, after: { id: '2', name: 'old' } });
    old.commitTs = '2025-12-25 11:05:00+00';
    for (const ev of [recent, old]) {
      const { data, attributes } = await encodeBatch(batchOf('dl', COLUMNS, [ev]), 'json+gzip');
      await topic.publishMessage({ data, attributes });
    }
    const cfg = { ...ch.config, deadLetterSubscription: `projects/${PROJECT}/subscriptions/${dlTopic}-sub` };
    assert.equal((await runSink(cfg, { log: () => undefined })).deadLetters, 2);

    const endpoints = {
      pubsubEmulatorHost: stack.pubsubHost,
      bigQueryEmulatorHost: `http://${stack.restHost}`,
      bigQueryStorageEmulatorHost: stack.grpcHost,
      project: PROJECT,
      topic: ch.topic,
      subscription: ch.subscription,
      dataset: ch.dataset,
    } as LocalEndpoints;
    const h = harness();
    h.deps.local = { ...h.deps.local, read: () => endpoints };
    try {
      assert.equal(await h.run('failed', 'list', '--env', 'local'), EXIT.ok, h.out.stderr);
      assert.match(h.out.stdout, /error +public\.dl .*dead letter/);
      assert.equal(h.out.stdout.match(/dead letter/g)?.length, 2);

      const refusedCode = await h.run('failed', 'replay', '--env', 'local');
      assert.equal(refusedCode, EXIT.failure, 'the old record is refused');
      assert.match(h.out.stderr, /committed at 2025-12-25 .*two-day delete window/);
      assert.match(h.out.stdout, /replayed 1 record/);
      await runSink(ch.config, { log: () => undefined });
      let replica = await rowsBy(ch.rest, 'dl', 'id');
      assert.deepEqual([...replica.keys()], ['1']);
      assert.equal(replica.get('1')?.name, 'recent');

      assert.equal(await h.run('failed', 'replay', '--env', 'local', '--force'), EXIT.ok, h.out.stderr);
      await runSink(ch.config, { log: () => undefined });
      replica = await rowsBy(ch.rest, 'dl', 'id');
      assert.deepEqual([...replica.keys()].sort(), ['1', '2']);
    } finally {
      h.cleanup();
    }
  });
});
