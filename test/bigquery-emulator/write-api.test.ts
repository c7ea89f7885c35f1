import { strict as assert } from 'node:assert';
import { adapt, managedwriter } from '@google-cloud/bigquery-storage';
import { openJsonWriter, startHarness, type Harness } from './helpers';

/** Every column type pgcdc maps Postgres values to. */
const ALL_TYPES_SCHEMA = {
  fields: [
    { name: 'id', type: 'INT64', mode: 'REQUIRED' },
    { name: 'big', type: 'INT64' },
    { name: 'amount', type: 'NUMERIC' },
    { name: 'huge', type: 'BIGNUMERIC' },
    { name: 'ratio', type: 'FLOAT64' },
    { name: 'active', type: 'BOOL' },
    { name: 'name', type: 'STRING' },
    { name: 'blob', type: 'BYTES' },
    { name: 'day', type: 'DATE' },
    { name: 'at_time', type: 'TIME' },
    { name: 'local_at', type: 'DATETIME' },
    { name: 'at', type: 'TIMESTAMP' },
    { name: 'doc', type: 'JSON' },
    { name: 'tags', type: 'STRING', mode: 'REPEATED' },
    {
      name: 'address',
      type: 'RECORD',
      fields: [
        { name: 'city', type: 'STRING' },
        { name: 'zip', type: 'INT64' },
      ],
    },
  ],
};

describe('BigQuery emulator: Storage Write API plain appends', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
    const [dataset] = await h.bigquery.createDataset('writes');
    await dataset.createTable('all_types', { schema: ALL_TYPES_SCHEMA });
    await dataset.createTable('narrow', {
      schema: {
        fields: [
          { name: 'id', type: 'INT64', mode: 'REQUIRED' },
          { name: 'amount', type: 'NUMERIC' },
        ],
      },
    });
  });
  after(async () => {
    await h.stop();
  });

  it('appends on the _default stream and reads every type back through table.getRows() correctly typed', async () => {
    const writer = await openJsonWriter(h.writer, 'writes', 'all_types');
    const result = await writer
      .appendRows([
        {
          id: 1,
          big: '9223372036854775807',
          amount: '12345678901234567890.123456789',
          huge: '-123456789012345678901234567890.12345678901234567890123456789',
          ratio: 0.25,
          active: true,
          name: 'Zoë',
          blob: Buffer.from([0, 1, 254, 255]).toString('base64'), // protobufjs encodes base64 strings as bytes
          day: 19782, // 2024-02-29 as days since the epoch
          at_time: '12:34:56.789',
          local_at: '2024-02-29 12:34:56.123456',
          at: '1709210096123456', // TIMESTAMP as int64 microseconds since the epoch
          doc: '{"a":[1,2],"b":null}',
          tags: ['x', 'y'],
          address: { city: 'Paris', zip: 75001 },
        },
        { id: 2 },
      ])
      .getResult();
    assert.ok(!result.error, JSON.stringify(result.error));
    assert.deepEqual(result.rowErrors, []);

    const [rows] = await h.bigquery.dataset('writes').table('all_types').getRows({ wrapIntegers: true });
    assert.equal(rows.length, 2);
    const full = rows.find((r) => r.id.value === '1')!;
    assert.equal(full.big.value, '9223372036854775807');
    assert.equal(full.amount.toString(), '12345678901234567890.123456789');
    assert.equal(full.huge.toFixed(), '-123456789012345678901234567890.12345678901234567890123456789');
    assert.equal(full.ratio, 0.25);
    assert.equal(full.active, true);
    assert.equal(full.name, 'Zoë');
    assert.deepEqual(full.blob, Buffer.from([0, 1, 254, 255]));
    assert.equal(full.day.value, '2024-02-29');
    assert.equal(full.at_time.value, '12:34:56.789000');
    assert.equal(full.local_at.value, '2024-02-29T12:34:56.123456');
    assert.equal(full.at.value, '2024-02-29T12:34:56.123456000Z');
    assert.equal(full.doc, '{"a":[1,2],"b":null}');
    assert.deepEqual(full.tags, ['x', 'y']);
    assert.equal(full.address.city, 'Paris');
    assert.equal(full.address.zip.value, '75001');

    const sparse = rows.find((r) => r.id.value === '2')!;
    assert.equal(sparse.name, null);
    assert.equal(sparse.address, null);
    assert.deepEqual(sparse.tags, [], 'a REPEATED column without values reads back as an empty array');

    const [metadata] = await h.bigquery.dataset('writes').table('all_types').getMetadata();
    assert.equal(metadata.numRows, '2');
  });

  it('rejects the whole request when one row is bad, reporting that row in row_errors', async () => {
    const writer = await openJsonWriter(h.writer, 'writes', 'narrow');
    const result = await writer
      .appendRows([
        { id: 10, amount: '1.5' },
        { id: 11, amount: '1e40' }, // NUMERIC holds at most 29 integer digits
        { id: 12 },
      ])
      .getResult();
    assert.equal(result.error?.code, 3, 'INVALID_ARGUMENT');
    assert.equal(result.rowErrors?.length, 1);
    assert.equal(Number(result.rowErrors![0].index), 1);
    assert.equal(result.rowErrors![0].code, 'FIELDS_ERROR');
    assert.match(String(result.rowErrors![0].message), /Invalid NUMERIC value/);
    const [rows] = await h.bigquery.dataset('writes').table('narrow').getRows();
    assert.equal(rows.length, 0, 'no row of a rejected request is appended');
  });

  it('reports a missing REQUIRED value as a row error', async () => {
    const writer = await openJsonWriter(h.writer, 'writes', 'narrow');
    const result = await writer.appendRows([{ amount: '2' }]).getResult();
    assert.equal(result.error?.code, 3);
    assert.match(String(result.rowErrors![0].message), /Missing required field: id/);
  });

  it('rejects a writer schema with a field the table does not have', async () => {
    const connection = await h.writer.createStreamConnection({
      streamId: managedwriter.DefaultStream,
      destinationTable: 'projects/pgcdc-test/datasets/writes/tables/narrow',
    });
    const protoDescriptor = adapt.convertStorageSchemaToProto2Descriptor(
      {
        fields: [
          { name: 'id', type: 'INT64', mode: 'REQUIRED' },
          { name: 'surprise', type: 'STRING', mode: 'NULLABLE' },
        ],
      },
      'root',
    );
    const writer = new managedwriter.JSONWriter({ connection, protoDescriptor });
    const result = await writer.appendRows([{ id: 1, surprise: 'x' }]).getResult();
    assert.equal(result.error?.code, 3);
    assert.match(
      String(result.error?.message),
      /Input schema has more fields than BigQuery schema, extra fields: 'root.surprise'/,
    );
  });

  it('reports a table schema change to an open connection through updated_schema', async () => {
    const [table] = await h.bigquery
      .dataset('writes')
      .createTable('growing', { schema: { fields: [{ name: 'id', type: 'INT64' }] } });
    const writer = await openJsonWriter(h.writer, 'writes', 'growing');
    const first = await writer.appendRows([{ id: 1 }]).getResult();
    assert.ok(!first.updatedSchema);
    await table.setMetadata({
      schema: {
        fields: [
          { name: 'id', type: 'INT64' },
          { name: 'extra', type: 'STRING' },
        ],
      },
    });
    const second = await writer.appendRows([{ id: 2 }]).getResult();
    assert.deepEqual(
      second.updatedSchema?.fields?.map((f) => f.name),
      ['id', 'extra'],
    );
  });

  it('appends on a COMMITTED stream with offsets, and on a PENDING stream only after finalize and commit', async () => {
    const destinationTable = 'projects/pgcdc-test/datasets/writes/tables/narrow';
    const descriptor = adapt.convertStorageSchemaToProto2Descriptor(
      { fields: [{ name: 'id', type: 'INT64', mode: 'REQUIRED' }] },
      'root',
    );

    const committed = await h.writer.createStreamConnection({
      streamType: managedwriter.CommittedStream,
      destinationTable,
    });
    const cw = new managedwriter.JSONWriter({ connection: committed, protoDescriptor: descriptor });
    const r1 = await cw.appendRows([{ id: 100 }, { id: 101 }], 0).getResult();
    const r2 = await cw.appendRows([{ id: 102 }], 2).getResult();
    assert.equal(Number(r1.appendResult?.offset?.value), 0);
    assert.equal(Number(r2.appendResult?.offset?.value), 2);
    const replay = await cw.appendRows([{ id: 100 }], 0).getResult();
    assert.equal(replay.error?.code, 6, 'ALREADY_EXISTS for an offset already written');

    const pending = await h.writer.createStreamConnection({
      streamType: managedwriter.PendingStream,
      destinationTable,
    });
    const pw = new managedwriter.JSONWriter({ connection: pending, protoDescriptor: descriptor });
    await pw.appendRows([{ id: 200 }], 0).getResult();
    const count = async (): Promise<number> =>
      (await h.bigquery.dataset('writes').table('narrow').getRows())[0].length;
    const before = await count();
    assert.ok(!(await h.bigquery.dataset('writes').table('narrow').getRows())[0].some((r) => r.id === 200));
    const finalized = await pending.finalize();
    assert.equal(Number(finalized?.rowCount), 1);
    const commit = await h.writer.batchCommitWriteStream({
      parent: destinationTable,
      writeStreams: [pending.getStreamId()],
    });
    assert.ok(commit.commitTime);
    assert.equal(await count(), before + 1);
  });
});
