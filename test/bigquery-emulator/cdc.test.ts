/**
 * BigQuery CDC as https://cloud.google.com/bigquery/docs/change-data-capture documents it; each test names the
 * rule it checks.
 */
import { strict as assert } from 'node:assert';
import { adapt, managedwriter, protos } from '@google-cloud/bigquery-storage';
import { openJsonWriter, startHarness, type Harness } from './helpers';

type Row = Record<string, unknown>;

describe('BigQuery emulator: change data capture', () => {
  let h: Harness;
  let tableCount = 0;

  /** A fresh CDC table (primary key `id`) and a JSONWriter with _CHANGE_TYPE and _CHANGE_SEQUENCE_NUMBER. */
  async function cdcTable(): Promise<{ tableId: string; writer: managedwriter.JSONWriter }> {
    const tableId = `customers_${++tableCount}`;
    await h.bigquery.dataset('cdc').createTable(tableId, {
      schema: {
        fields: [
          { name: 'id', type: 'INT64', mode: 'REQUIRED' },
          { name: 'name', type: 'STRING' },
          { name: 'balance', type: 'NUMERIC' },
        ],
      },
      tableConstraints: { primaryKey: { columns: ['id'] } },
      maxStaleness: '0-0 0 0:0:0',
    });
    const writer = await openJsonWriter(h.writer, 'cdc', tableId, { changeType: true, sequence: true });
    return { tableId, writer };
  }

  async function write(writer: managedwriter.JSONWriter, rows: Row[]): Promise<void> {
    const result = await writer.appendRows(rows as never).getResult();
    assert.ok(
      !result.error,
      `append rejected: ${JSON.stringify(result.error)} ${JSON.stringify(result.rowErrors)}`,
    );
  }

  async function current(tableId: string): Promise<Row[]> {
    const [rows] = await h.bigquery.dataset('cdc').table(tableId).getRows();
    return rows.map((r) => ({ id: r.id, name: r.name })).sort((a, b) => Number(a.id) - Number(b.id));
  }

  before(async () => {
    h = await startHarness();
    await h.bigquery.createDataset('cdc');
  });
  after(async () => {
    await h.stop();
  });

  it('UPSERT replaces the whole row for its primary key and DELETE removes it', async () => {
    // Docs example: "ID 100 DELETE, 101 Tal 8000 UPSERT, 105 Izumi 6000 UPSERT".
    const { tableId, writer } = await cdcTable();
    await write(writer, [
      { id: 100, name: 'Charlie', balance: '2000', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '1' },
      { id: 101, name: 'Tal', balance: '3000', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '1' },
    ]);
    await write(writer, [
      { id: 100, _CHANGE_TYPE: 'DELETE', _CHANGE_SEQUENCE_NUMBER: '2' },
      { id: 101, name: 'Tal', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '2' },
      { id: 105, name: 'Izumi', balance: '6000', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '2' },
    ]);
    assert.deepEqual(await current(tableId), [
      { id: 101, name: 'Tal' },
      { id: 105, name: 'Izumi' },
    ]);
    const [rows] = await h.bigquery.dataset('cdc').table(tableId).getRows();
    const tal = rows.find((r) => r.id === 101)!;
    assert.equal(
      tal.balance,
      null,
      'an UPSERT replaces the entire row: columns it does not send become NULL',
    );
  });

  it('a change with a lower sequence number than the applied one for its key has no effect', async () => {
    const { tableId, writer } = await cdcTable();
    await write(writer, [{ id: 1, name: 'new', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '10' }]);
    await write(writer, [{ id: 1, name: 'old', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: 'F' }]);
    await write(writer, [{ id: 1, _CHANGE_TYPE: 'DELETE', _CHANGE_SEQUENCE_NUMBER: '2' }]);
    assert.deepEqual(await current(tableId), [{ id: 1, name: 'new' }]);
  });

  it('a delete is remembered: a late UPSERT with a lower sequence does not bring the row back', async () => {
    const { tableId, writer } = await cdcTable();
    await write(writer, [{ id: 7, name: 'v1', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '1' }]);
    await write(writer, [{ id: 7, _CHANGE_TYPE: 'DELETE', _CHANGE_SEQUENCE_NUMBER: '3' }]);
    await write(writer, [{ id: 7, name: 'v2-late', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '2' }]);
    assert.deepEqual(await current(tableId), []);
    await write(writer, [{ id: 7, name: 'v4', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '4' }]);
    assert.deepEqual(
      await current(tableId),
      [{ id: 7, name: 'v4' }],
      'a higher sequence after the delete applies',
    );
  });

  it('sequence numbers compare section by section as hexadecimal numbers ("A/1" is greater than "9/FFFF")', async () => {
    const { tableId, writer } = await cdcTable();
    await write(writer, [{ id: 1, name: 'A/1', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: 'A/1' }]);
    await write(writer, [
      { id: 1, name: '9/FFFF', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '9/FFFF' },
    ]);
    assert.deepEqual(await current(tableId), [{ id: 1, name: 'A/1' }]);
    // 0x10 > 0xF although "10" < "F" as text: sections are numbers, not strings.
    await write(writer, [{ id: 2, name: 'F', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '0/F' }]);
    await write(writer, [{ id: 2, name: '10', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '0/10' }]);
    assert.deepEqual(
      (await current(tableId)).find((r) => r.id === 2),
      { id: 2, name: '10' },
    );
  });

  it('replaying the same changes leaves the table unchanged', async () => {
    const { tableId, writer } = await cdcTable();
    const batch = [
      { id: 1, name: 'a', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '1/0' },
      { id: 2, name: 'b', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '1/1' },
      { id: 1, _CHANGE_TYPE: 'DELETE', _CHANGE_SEQUENCE_NUMBER: '1/2' },
    ];
    await write(writer, batch);
    const once = await current(tableId);
    await write(writer, batch);
    await write(writer, [...batch].reverse());
    assert.deepEqual(await current(tableId), once);
  });

  it('without sequence numbers, arrival order decides', async () => {
    const { tableId } = await cdcTable();
    const writer = await openJsonWriter(h.writer, 'cdc', tableId, { changeType: true, sequence: false });
    await write(writer, [{ id: 1, name: 'first', _CHANGE_TYPE: 'UPSERT' }]);
    await write(writer, [{ id: 1, name: 'second', _CHANGE_TYPE: 'UPSERT' }]);
    assert.deepEqual(await current(tableId), [{ id: 1, name: 'second' }]);
  });

  it('CDC writes to a table without a primary key are rejected', async () => {
    await h.bigquery
      .dataset('cdc')
      .createTable('no_key', { schema: { fields: [{ name: 'id', type: 'INT64' }] } });
    const writer = await openJsonWriter(h.writer, 'cdc', 'no_key', { changeType: true, sequence: false });
    const result = await writer.appendRows([{ id: 1, _CHANGE_TYPE: 'UPSERT' }]).getResult();
    assert.equal(result.error?.code, 3);
    assert.match(String(result.error?.message), /primary key/);
    const [rows] = await h.bigquery.dataset('cdc').table('no_key').getRows();
    assert.equal(rows.length, 0);
  });

  it('a bad row (invalid _CHANGE_TYPE or sequence format) is reported per row and nothing of the request applies', async () => {
    const { tableId, writer } = await cdcTable();
    const result = await writer
      .appendRows([
        { id: 1, name: 'ok', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '1' },
        { id: 2, name: 'bad type', _CHANGE_TYPE: 'INSERT', _CHANGE_SEQUENCE_NUMBER: '1' },
        { id: 3, name: 'bad seq', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: 'XYZ' },
        { id: 4, name: 'too many sections', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '1/2/3/4/5' },
        { id: 5, name: 'section too long', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '1'.repeat(17) },
        { id: 6, name: 'no sequence though the schema requires one', _CHANGE_TYPE: 'UPSERT' },
      ])
      .getResult();
    assert.equal(result.error?.code, 3);
    assert.deepEqual(
      result.rowErrors?.map((e) => [Number(e.index), e.code]),
      [
        [1, 'FIELDS_ERROR'],
        [2, 'FIELDS_ERROR'],
        [3, 'FIELDS_ERROR'],
        [4, 'FIELDS_ERROR'],
        [5, 'FIELDS_ERROR'],
      ],
    );
    assert.match(String(result.rowErrors![0].message), /_CHANGE_TYPE/);
    assert.match(String(result.rowErrors![1].message), /_CHANGE_SEQUENCE_NUMBER/);
    assert.deepEqual(await current(tableId), []);
  });

  it('one connection cannot mix CDC rows and plain rows', async () => {
    const { tableId } = await cdcTable();
    const connection = await h.writer.createStreamConnection({
      streamId: managedwriter.DefaultStream,
      destinationTable: `projects/pgcdc-test/datasets/cdc/tables/${tableId}`,
    });
    const schema: protos.google.cloud.bigquery.storage.v1.ITableSchema = {
      fields: [
        { name: 'id', type: 'INT64', mode: 'REQUIRED' },
        { name: 'name', type: 'STRING', mode: 'NULLABLE' },
      ],
    };
    const cdc = new managedwriter.JSONWriter({
      connection,
      protoDescriptor: adapt.convertStorageSchemaToProto2Descriptor(schema, 'root', adapt.withChangeType()),
    });
    await write(cdc, [{ id: 1, name: 'cdc', _CHANGE_TYPE: 'UPSERT' }]);
    // A second writer on the same connection whose schema has no _CHANGE_TYPE (what JSONWriter builds for
    // itself after an updated_schema): its rows are plain rows on a CDC connection.
    const plain = new managedwriter.JSONWriter({
      connection,
      protoDescriptor: adapt.convertStorageSchemaToProto2Descriptor(schema, 'root'),
    });
    const result = await plain.appendRows([{ id: 2, name: 'plain' }]).getResult();
    assert.equal(result.error?.code, 3);
    assert.match(String(result.error?.message), /cannot be mixed/);
    assert.deepEqual(await current(tableId), [{ id: 1, name: 'cdc' }]);
  });
});
