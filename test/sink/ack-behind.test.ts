// A table's batch is acked behind its next batch's writes (sink/run.ts): the ack of batch N, after its
// `_failed` records, goes out while batch N+1 is decoded and written. When N's `_failed` write fails, the run
// must ack neither N nor N+1 (nothing acked past a failure); the rerun gets both back and the outcome is
// right row by row.

import assert from 'node:assert/strict';
import type { ChangeEvent, ColumnInfo } from '../../contract/events';
import { bigQueryClient } from '../../sink/clients';
import { FAILED_FIELDS } from '../../sink/failed';
import { BATCH_JSON_CHARS, BigQueryError, runSink } from '../../sink/run';
import { FAILED_TABLE } from '../../sink/names';
import { batchOf, channel, event, nextCommit, rowsBy, sinkStack, SinkStack } from './support';

const COLUMNS: ColumnInfo[] = [
  { name: 'id', type: 'integer', oid: 23, key: true },
  { name: 'amount', type: 'numeric', oid: 1700, key: false },
  { name: 'doc', type: 'text', oid: 25, key: false },
];

// Two messages of a bit over half the batch budget each: they are two batches of the same table.
const PER_MESSAGE = 1200;
const DOC = 'x'.repeat(Math.ceil((BATCH_JSON_CHARS * 0.6) / PER_MESSAGE));

function message(first: number, nanAt?: number): ChangeEvent[] {
  const commit = nextCommit();
  const out: ChangeEvent[] = [];
  for (let j = 0; j < PER_MESSAGE; j++) {
    const id = String(first + j);
    // NaN: BigQuery NUMERIC cannot hold it, so the event is written with a companion and a `_failed` warning.
    const amount = first + j === nanAt ? 'NaN' : `${first + j}.5`;
    out.push(event('c', commit, j, { key: { id }, after: { id, amount, doc: `${id}:${DOC}` } }));
  }
  return out;
}

describe('sink: acks behind the next batch', function () {
  this.timeout(600_000);
  let stack: SinkStack;

  before(async () => {
    stack = await sinkStack();
  });
  after(async () => {
    await stack.stopBigQuery();
  });

  it('a batch whose _failed write fails is not acked, nor is the next one written meanwhile; the rerun is right row by row', async () => {
    const ch = await channel(stack, { batchMessages: 20 });
    // A `_failed` table whose `reason` is STRING(5): every `_failed` row is refused ("STRING(5) has maximum
    // length 5", as BigQuery refuses a longer value of a parameterized STRING), so the first batch with a
    // warning fails in its ack chain.
    await ch.rest.ensureDataset();
    await ch.rest.createTable(FAILED_TABLE, {
      schema: { fields: FAILED_FIELDS.map((f) => (f.name === 'reason' ? { ...f, maxLength: '5' } : f)) },
    });
    await ch.publish(batchOf('acks', COLUMNS, message(1, 7)));
    await ch.publish(batchOf('acks', COLUMNS, message(1 + PER_MESSAGE)));

    await assert.rejects(runSink(ch.config, { log: () => undefined }), (e: unknown) => {
      assert.ok(e instanceof BigQueryError, String(e));
      assert.match(e.message, /_failed table rejected rows/);
      return true;
    });

    // The table fixed (dropped: the next run creates it as the sink defines it), the rerun gets both messages.
    await bigQueryClient(ch.config).dataset(ch.dataset).table(FAILED_TABLE).delete();
    // A failed run gives back what it holds, but Pub/Sub (with ordering keys) may take a while to deliver it
    // again: rerun until both came back. Had the failed run acked either, only one would ever come back.
    let messages = 0;
    let failedRecords = 0;
    const deadline = Date.now() + 300_000;
    while (messages < 2) {
      assert.ok(Date.now() < deadline, `only ${messages} message(s) came back`);
      const s = await runSink(ch.config, { log: () => undefined });
      messages += s.messages;
      failedRecords += s.failed;
    }
    assert.equal(messages, 2, 'neither message was acked by the failed run');
    assert.equal(failedRecords, 1);

    const replica = await rowsBy(ch.rest, 'acks', 'id');
    assert.equal(replica.size, 2 * PER_MESSAGE);
    for (let n = 1; n <= 2 * PER_MESSAGE; n++) {
      const r = replica.get(String(n));
      assert.ok(r, `row ${n}`);
      assert.equal(r.doc, `${n}:${DOC}`, `row ${n}`);
      if (n === 7) {
        assert.equal(r.amount, null);
        assert.equal(r.amount__pg, 'NaN');
      } else assert.equal(r.amount, `${n}.5`, `row ${n}`);
    }
    const failed = await ch.rest.listRows(FAILED_TABLE);
    assert.equal(failed.length, 1);
    assert.match(
      String(failed[0].reason),
      /^warning: event [0-9A-F/]+: column amount \(numeric\): numeric value "NaN"/,
    );
  });
});
