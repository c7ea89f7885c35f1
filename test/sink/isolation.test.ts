// Issue 15.7 and 15.8: a table whose new schema the Write API does not see yet, or that BigQuery refuses
// for good, never holds back another table's messages, and loses nothing of its own.

import assert from 'node:assert/strict';
import { decodeBatch } from '../../contract/codec';
import type { ChangeEvent, ColumnInfo } from '../../contract/events';
import { appendItems, SchemaPropagatingError } from '../../sink/append';
import type { TableField } from '../../sink/bigquery-rest';
import { storageWriteClient } from '../../sink/clients';
import { runSink, SinkSummary } from '../../sink/run';
import { StorageWriteError, TableAppender } from '../../sink/storage-writer';
import { batchOf, Channel, channel, event, nextCommit, rowsBy, sinkStack, SinkStack } from './support';

const KEY: ColumnInfo = { name: 'id', type: 'integer', oid: 23, key: true };
const NAME: ColumnInfo = { name: 'name', type: 'text', oid: 25, key: false };

/** One message of `count` inserts of ids first.. with the given columns (values: `<column><id>`). */
function inserts(columns: ColumnInfo[], first: number, count: number): ChangeEvent[] {
  const commit = nextCommit();
  return Array.from({ length: count }, (_, i) => {
    const id = String(first + i);
    const after: Record<string, string> = {};
    for (const c of columns) after[c.name] = c.key ? id : `${c.name}${id}`;
    return event('c', commit, i, { key: { id }, after });
  });
}

async function until(what: string, deadlineMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every message of the subscription was acked: a further run finds nothing. */
async function assertDrained(ch: Channel): Promise<void> {
  const again = await runSink(ch.config, { log: () => undefined });
  assert.equal(again.messages, 0, 'nothing was left un-acked');
}

describe('sink: schema propagation delay (issue 15.7)', function () {
  // BigQuery speaks of minutes; on the emulator clock, which the test moves instead of waiting.
  const PROPAGATION_MS = 10 * 60_000;
  let stack: SinkStack;
  before(async function () {
    stack = await sinkStack({ schemaPropagationMs: PROPAGATION_MS });
  });
  after(async function () {
    await stack?.stopBigQuery();
  });

  it('a write naming a column the Write API does not see yet is refused with the documented SCHEMA_MISMATCH_EXTRA_FIELDS, which the sink retries instead of failing the row', async function () {
    const ch = await channel(stack);
    await ch.rest.ensureDataset();
    const fields: TableField[] = [{ name: 'id', type: 'INT64', mode: 'NULLABLE' }];
    await ch.rest.createTable('early', { schema: { fields } });
    const grown: TableField[] = [...fields, { name: 'extra', type: 'STRING', mode: 'NULLABLE' }];
    await ch.rest.patchTable('early', { schema: { fields: grown } });
    const client = storageWriteClient(ch.config);
    const path = `projects/${ch.config.bigQueryProject}/datasets/${ch.dataset}/tables/early`;
    const appender = await TableAppender.open(client, path, grown, false);
    try {
      const row = appender.encode({ id: '1', extra: 'x' });
      const refusal = await appender.append([row]).then(
        () => assert.fail('BigQuery cannot take the new column yet'),
        (e: unknown) => e,
      );
      assert.ok(refusal instanceof StorageWriteError);
      assert.equal(refusal.code, 3, 'INVALID_ARGUMENT');
      assert.equal(refusal.storageCode, 7, 'StorageError SCHEMA_MISMATCH_EXTRA_FIELDS');
      assert.match(refusal.message, /Input schema has more fields than BigQuery schema/);
      // appendItems reports it as a propagation delay (retry later), never as the item's own failure.
      const items: { id: string; failed?: string }[] = [{ id: '1' }];
      await assert.rejects(
        appendItems(appender, items, () => [{ id: '1', extra: 'x' }]),
        SchemaPropagatingError,
      );
      assert.equal(items[0].failed, undefined);
    } finally {
      appender.close();
      client.close();
    }
    stack.advanceClock(PROPAGATION_MS);
    const laterClient = storageWriteClient(ch.config);
    const later = await TableAppender.open(laterClient, path, grown, false);
    try {
      assert.deepEqual(await later.append([later.encode({ id: '1', extra: 'x' })]), []);
    } finally {
      later.close();
      laterClient.close();
    }
    assert.deepEqual(await ch.rest.listRows('early'), [{ id: '1', extra: 'x' }]);
  });

  it('a new column is retried after the propagation window while another table keeps landing; nothing is lost', async function () {
    const ch = await channel(stack, { maxRunSeconds: 240 });
    const v1 = [KEY, NAME];
    const v2 = [KEY, NAME, { name: 'extra', type: 'text', oid: 25, key: false }];
    await ch.publish(batchOf('grow', v1, inserts(v1, 1, 3)));
    const c = nextCommit();
    await ch.publish(
      batchOf('grow', v2, [
        event('u', c, 0, { key: { id: '1' }, after: { id: '1', name: 'name1', extra: 'late1' } }),
        event('c', c, 1, { key: { id: '4' }, after: { id: '4', name: 'name4', extra: 'extra4' } }),
        event('c', c, 2, { key: { id: '5' }, after: { id: '5', name: 'name5', extra: 'extra5' } }),
      ]),
    );
    for (let m = 0; m < 5; m++) await ch.publish(batchOf('steady', v1, inserts(v1, 10 * m + 1, 2)));

    let sawPropagation!: () => void;
    const propagating = new Promise<void>((resolve) => (sawPropagation = resolve));
    const logs: string[] = [];
    const run: Promise<SinkSummary> = runSink(ch.config, {
      log: (line) => {
        logs.push(line);
        if (/grow: BigQuery's Write API does not see the new schema yet/.test(line)) sawPropagation();
      },
    });
    // Surface a failed run at once instead of waiting for the log line forever.
    await Promise.race([propagating, run.then(() => assert.fail(`run ended first: ${logs.join('\n')}`))]);

    // While `grow` waits for the window, `steady` lands and its messages are acked.
    await until('steady to land', 60_000, async () => (await ch.rest.listRows('steady')).length === 10);
    const grownEarly = await rowsBy(ch.rest, 'grow', 'id');
    assert.ok(!grownEarly.has('4'), 'the new column cannot be written inside the propagation window');
    assert.ok(
      (await ch.rest.getTable('grow'))?.schema?.fields?.some((f) => f.name === 'extra'),
      'the table already has the new column (tables.patch); only the Write API lags',
    );

    stack.advanceClock(PROPAGATION_MS);
    const s = await run;
    assert.equal(s.messages, 7, logs.join('\n'));
    assert.equal(s.givenBack, 0);
    assert.equal(s.failed, 0, 'a propagation delay is no failure');

    const grow = await rowsBy(ch.rest, 'grow', 'id');
    assert.deepEqual([...grow.keys()].sort(), ['1', '2', '3', '4', '5']);
    assert.equal(grow.get('1')?.extra, 'late1');
    assert.equal(grow.get('2')?.extra, null);
    assert.equal(grow.get('4')?.extra, 'extra4');
    assert.equal(grow.get('5')?.name, 'name5');
    assert.equal((await ch.rest.listRows('grow_changes')).length, 6);
    const steady = await rowsBy(ch.rest, 'steady', 'id');
    assert.deepEqual(
      [...steady.keys()].map(Number).sort((a, b) => a - b),
      [1, 2, 11, 12, 21, 22, 31, 32, 41, 42],
    );
    await assertDrained(ch);
  });
});

describe('sink: one table’s permanent error (issue 15.8)', function () {
  let stack: SinkStack;
  before(async function () {
    stack = await sinkStack();
  });
  after(async function () {
    await stack?.stopBigQuery();
  });

  it('a table BigQuery refuses ends in _failed with the reason; another table lands and is acked in the same run', async function () {
    // One message per batch, so the refusal comes from a table BigQuery already writes by CDC.
    const ch = await channel(stack, { batchMessages: 1 });
    // A source table grows past what a CDC table may have: "Tables with active CDC cannot have more than
    // 2,000 top-level columns" (https://cloud.google.com/bigquery/docs/change-data-capture#limitations).
    const narrow = [KEY, NAME];
    const wide = [KEY, ...Array.from({ length: 2000 }, (_, i): ColumnInfo => ({ ...NAME, name: `c${i}` }))];
    await ch.publish(batchOf('wide', narrow, inserts(narrow, 1, 1)));
    const refusedIds = [
      await ch.publish(batchOf('wide', wide, inserts(wide, 2, 1))),
      await ch.publish(batchOf('wide', wide, inserts(wide, 3, 1))),
    ];
    for (let m = 0; m < 6; m++) await ch.publish(batchOf('orders', narrow, inserts(narrow, 10 * m + 1, 2)));

    const s = await runSink(ch.config, { log: () => undefined });
    assert.equal(s.messages, 9, 'every message acked in this run');
    assert.equal(s.givenBack, 0);

    const orders = await rowsBy(ch.rest, 'orders', 'id');
    assert.equal(orders.size, 12);
    assert.equal(orders.get('51')?.name, 'name51');
    assert.deepEqual([...(await rowsBy(ch.rest, 'wide', 'id')).keys()], ['1']);

    const failed = await ch.rest.listRows('_failed');
    assert.deepEqual(failed.map((r) => String(r.message_id)).sort(), [...refusedIds].sort());
    for (const r of failed) {
      assert.match(String(r.reason), /^error: BigQuery refused the tables of public\.wide: .*2000/);
      assert.equal(r.table_name, 'public.wide');
      // Kept as published, so `pgcdc failed replay` can resend it once the table is fixed.
      const attributes = (
        typeof r.attributes === 'string' ? JSON.parse(r.attributes) : r.attributes
      ) as Record<string, string>;
      const batch = decodeBatch(Buffer.from(String(r.payload), 'base64'), attributes);
      assert.equal(batch.table, 'wide');
      assert.equal(batch.columns.length, 2001);
    }
    await assertDrained(ch);
  });
});
