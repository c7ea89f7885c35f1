import { strict as assert } from 'node:assert';
import { startHarness, type Harness } from './helpers';

describe('BigQuery emulator: tabledata.insertAll, tabledata.list paging and simple queries', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
    const [dataset] = await h.bigquery.createDataset('streaming');
    await dataset.createTable('_failed', {
      schema: {
        fields: [
          { name: 'message_id', type: 'STRING', mode: 'REQUIRED' },
          { name: 'reason', type: 'STRING' },
          { name: 'attempts', type: 'INT64' },
          { name: 'failed_at', type: 'TIMESTAMP' },
          { name: 'payload', type: 'BYTES' },
        ],
      },
    });
  });
  after(async () => {
    await h.stop();
  });

  const table = () => h.bigquery.dataset('streaming').table('_failed');

  it('drops a row whose insertId was already inserted (retry de-duplication)', async () => {
    const row = (id: string) => ({
      insertId: `ins-${id}`,
      json: {
        message_id: id,
        reason: 'bad',
        attempts: 5,
        failed_at: '2024-01-02 03:04:05.123456 UTC',
        payload: 'AAE=',
      },
    });
    await table().insert([row('m1'), row('m2')], { raw: true });
    await table().insert([row('m1'), row('m3')], { raw: true }); // m1 retried with the same insertId
    const [rows] = await table().getRows();
    assert.deepEqual(rows.map((r) => r.message_id).sort(), ['m1', 'm2', 'm3']);
    const m1 = rows.find((r) => r.message_id === 'm1')!;
    assert.equal(m1.attempts, 5);
    assert.equal(m1.failed_at.value, '2024-01-02T03:04:05.123456000Z');
    assert.deepEqual(m1.payload, Buffer.from([0, 1]));
  });

  it('fails the whole insert when a row is invalid: that row "invalid", the others "stopped"', async () => {
    const [before] = await table().getRows();
    await assert.rejects(
      table().insert([
        { message_id: 'ok', attempts: 1 },
        { reason: 'no message_id', attempts: 1 },
        { message_id: 'unknown field', nope: true },
      ]),
      (err: { name: string; errors: Array<{ errors: Array<{ reason: string; message: string }> }> }) => {
        assert.equal(err.name, 'PartialFailureError');
        assert.deepEqual(
          err.errors.map((e) => e.errors[0].reason),
          ['stopped', 'invalid', 'invalid'],
        );
        assert.match(err.errors[1].errors[0].message, /Missing required field: message_id/);
        assert.match(err.errors[2].errors[0].message, /no such field: nope/);
        return true;
      },
    );
    const [after] = await table().getRows();
    assert.equal(after.length, before.length);
  });

  it('skipInvalidRows inserts the valid rows and ignoreUnknownValues drops unknown fields', async () => {
    const [before] = await table().getRows();
    await assert.rejects(
      table().insert([{ message_id: 'kept', extra: 'ignored' }, { reason: 'missing key' }], {
        skipInvalidRows: true,
        ignoreUnknownValues: true,
      }),
    );
    const [after] = await table().getRows();
    assert.equal(after.length, before.length + 1);
    assert.ok(after.some((r) => r.message_id === 'kept'));
  });

  it('tabledata.list pages with maxResults and pageToken', async () => {
    const dataset = h.bigquery.dataset('streaming');
    const [paged] = await dataset.createTable('paged', {
      schema: { fields: [{ name: 'n', type: 'INT64' }] },
    });
    await paged.insert(Array.from({ length: 25 }, (_, n) => ({ n })));
    const [firstPage, next] = await paged.getRows({ maxResults: 10, autoPaginate: false });
    assert.equal(firstPage.length, 10);
    assert.ok(next?.pageToken);
    const [all] = await paged.getRows();
    assert.deepEqual(
      all.map((r) => r.n).sort((a, b) => a - b),
      Array.from({ length: 25 }, (_, n) => n),
    );
  });

  it('runs SELECT * and SELECT COUNT(*) over a table through BigQuery.query()', async () => {
    const [count] = await h.bigquery.query('SELECT COUNT(*) AS n FROM `pgcdc-test.streaming.paged`');
    assert.deepEqual(count, [{ n: 25 }]);
    const [rows] = await h.bigquery.query({ query: 'SELECT * FROM `pgcdc-test.streaming._failed`' });
    assert.ok(rows.some((r) => r.message_id === 'm1'));
    await assert.rejects(
      h.bigquery.query('SELECT n FROM `pgcdc-test.streaming.paged` WHERE n > 3'),
      /only runs/,
    );
  });

  it("runs the sink's lookups: WHERE col IN UNNEST(@array), IS NOT NULL, col < @param, SELECT DISTINCT", async () => {
    const [t] = await h.bigquery.dataset('streaming').createTable('lookups', {
      schema: {
        fields: [
          { name: 'k', type: 'STRING' },
          { name: 'seq', type: 'STRING' },
          { name: 'n', type: 'INT64' },
        ],
      },
    });
    await t.insert([
      { k: 'a', seq: '0001', n: 9 },
      { k: 'a', seq: '0003', n: 10 },
      { k: 'b', seq: '0002', n: 100 },
      { k: null, seq: '0000', n: 1 },
    ]);
    const from = '`pgcdc-test.streaming.lookups`';
    const [byKey] = await h.bigquery.query({
      query: `SELECT * FROM ${from} WHERE k IN UNNEST(@keys)`,
      params: { keys: ['b', 'zz'] },
    });
    assert.deepEqual(byKey, [{ k: 'b', seq: '0002', n: 100 }]);
    const [distinct] = await h.bigquery.query({
      query: `SELECT DISTINCT k FROM ${from} WHERE k IS NOT NULL AND seq < @seq`,
      params: { seq: '0003' },
    });
    assert.deepEqual(distinct.map((r) => r.k).sort(), ['a', 'b']);
    // INT64 compares as a number (10 > 9), not as text ("10" < "9").
    const [big] = await h.bigquery.query({ query: `SELECT * FROM ${from} WHERE n > @n`, params: { n: 9 } });
    assert.deepEqual(
      big.map((r) => r.n).sort((a, b) => a - b),
      [10, 100],
    );
    await assert.rejects(
      h.bigquery.query({ query: `SELECT * FROM ${from} WHERE k < @missing`, params: {} }),
      /missing/,
    );
  });
});
