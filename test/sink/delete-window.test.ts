// Issue 15.2: BigQuery remembers a deleted key for CDC ordering only two days ("delete retention window of two
// days", https://cloud.google.com/bigquery/docs/change-data-capture#deleted_data_considerations). With ordered
// delivery (decision 5) a redelivered old UPSERT always comes back followed by the DELETE after it, so the key
// stays deleted however late the redelivery is. (`pgcdc failed replay` refusing old events without --force is
// covered in failed-cli.test.ts.)

import assert from 'node:assert/strict';
import type { ColumnInfo, EventBatch } from '../../contract/events';
import { runSink } from '../../sink/run';
import { batchOf, channel, event, nextCommit, rowsBy, sinkStack, SinkStack } from './support';

const COLUMNS: ColumnInfo[] = [
  { name: 'id', type: 'integer', oid: 23, key: true },
  { name: 'name', type: 'text', oid: 25, key: false },
];
const TWO_DAYS_MS = 2 * 24 * 3600_000;

describe('sink: the two-day delete window (issue 15.2)', function () {
  let stack: SinkStack;
  before(async function () {
    stack = await sinkStack();
  });
  after(async function () {
    await stack?.stopBigQuery();
  });

  it('an old UPSERT redelivered more than two days after the DELETE does not resurrect the row (ordered delivery)', async function () {
    // One message per batch: the UPSERT and the DELETE are separate writes, nothing collapses them.
    const ch = await channel(stack, { batchMessages: 1 });
    const c1 = nextCommit();
    const upsert: EventBatch = batchOf('gone', COLUMNS, [
      event('c', c1, 0, { key: { id: '1' }, after: { id: '1', name: 'old' } }),
      event('c', c1, 1, { key: { id: '2' }, after: { id: '2', name: 'kept' } }),
    ]);
    const del = batchOf('gone', COLUMNS, [
      event('d', nextCommit(), 0, { key: { id: '1' }, before: { id: '1', name: null } }),
    ]);
    const run = async () => {
      const s = await runSink(ch.config, { log: () => undefined });
      assert.equal(s.failed, 0);
      return [...(await rowsBy(ch.rest, 'gone', 'id')).keys()].sort();
    };

    await ch.publish(upsert);
    await ch.publish(del);
    assert.deepEqual(await run(), ['2']);

    // Inside the window BigQuery remembers the delete: a duplicate of the old UPSERT alone changes nothing.
    await ch.publish(upsert);
    assert.deepEqual(await run(), ['2']);

    // Past the window: Pub/Sub redelivers a key's message together with every later one of that key
    // (https://cloud.google.com/pubsub/docs/ordering), so the old UPSERT comes back followed by the DELETE.
    stack.advanceClock(TWO_DAYS_MS + 3600_000);
    await ch.publish(upsert);
    await ch.publish(del);
    assert.deepEqual(await run(), ['2'], 'the deleted row stays deleted');
    assert.equal((await rowsBy(ch.rest, 'gone', 'id')).get('2')?.name, 'kept');

    // What the window means without that order (why `pgcdc failed replay` refuses old events without --force):
    // the old UPSERT alone, past the window, brings the row back.
    stack.advanceClock(TWO_DAYS_MS + 3600_000);
    await ch.publish(upsert);
    assert.deepEqual(await run(), ['1', '2'], 'the emulator models the two-day window');
  });
});
