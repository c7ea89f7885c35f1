import { strict as assert } from 'node:assert';
import { BigQuery } from '@google-cloud/bigquery';
import { PassThroughClient } from 'google-auth-library';
import { PROJECT, startHarness, type Harness } from './helpers';

/** The error the client raised for a rejected call: its HTTP code and BigQuery reason. */
async function rejection(call: Promise<unknown>): Promise<{ code: number; reason: string; message: string }> {
  try {
    await call;
  } catch (err) {
    const e = err as { code: number; errors?: Array<{ reason: string }>; message: string };
    return { code: e.code, reason: e.errors?.[0]?.reason ?? '', message: e.message };
  }
  throw new Error('expected the call to be rejected');
}

describe('BigQuery emulator: datasets and tables over v2 REST', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h.stop();
  });

  it('creates, gets, lists and deletes a dataset; a second create is a 409 duplicate', async () => {
    const [dataset] = await h.bigquery.createDataset('lifecycle', { location: 'EU' });
    const [metadata] = await dataset.getMetadata();
    assert.deepEqual(metadata.datasetReference, { projectId: PROJECT, datasetId: 'lifecycle' });
    assert.equal(metadata.location, 'EU');
    const [datasets] = await h.bigquery.getDatasets();
    assert.ok(datasets.some((d) => d.id === 'lifecycle'));

    const duplicate = await rejection(h.bigquery.createDataset('lifecycle'));
    assert.equal(duplicate.code, 409);
    assert.equal(duplicate.reason, 'duplicate');

    await dataset.delete();
    const [exists] = await dataset.exists();
    assert.equal(exists, false);
    const missing = await rejection(dataset.getMetadata());
    assert.equal(missing.code, 404);
    assert.equal(missing.reason, 'notFound');
  });

  it('refuses to delete a dataset that still has tables unless deleteContents (force) is set', async () => {
    const [dataset] = await h.bigquery.createDataset('in_use');
    await dataset.createTable('t', { schema: { fields: [{ name: 'a', type: 'STRING' }] } });
    const inUse = await rejection(dataset.delete());
    assert.equal(inUse.code, 400);
    assert.equal(inUse.reason, 'resourceInUse');
    await dataset.delete({ force: true });
    assert.equal((await dataset.exists())[0], false);
  });

  it('keeps the table fields pgcdc sets and reports schema types with legacy names, as BigQuery does', async () => {
    const [dataset] = await h.bigquery.createDataset('tables');
    const [table] = await dataset.createTable('customers', {
      schema: {
        fields: [
          { name: 'id', type: 'INT64', mode: 'REQUIRED' },
          { name: 'name', type: 'STRING', maxLength: '40' },
          { name: 'address', type: 'STRUCT', fields: [{ name: 'city', type: 'STRING' }] },
        ],
      },
      tableConstraints: { primaryKey: { columns: ['id'] } },
      maxStaleness: '0-0 0 0:15:0',
      clustering: { fields: ['id'] },
      labels: { app: 'pgcdc' },
      description: 'replica',
    });
    const [metadata] = await table.getMetadata();
    assert.deepEqual(
      metadata.schema.fields.map((f: { name: string; type: string; mode: string }) => [
        f.name,
        f.type,
        f.mode,
      ]),
      [
        ['id', 'INTEGER', 'REQUIRED'],
        ['name', 'STRING', 'NULLABLE'],
        ['address', 'RECORD', 'NULLABLE'],
      ],
    );
    assert.equal(metadata.schema.fields[1].maxLength, '40');
    assert.deepEqual(metadata.tableConstraints, { primaryKey: { columns: ['id'] } });
    assert.equal(metadata.maxStaleness, '0-0 0 0:15:0');
    assert.deepEqual(metadata.clustering, { fields: ['id'] });
    assert.deepEqual(metadata.labels, { app: 'pgcdc' });
    assert.equal(metadata.description, 'replica');
    assert.equal(metadata.numRows, '0');
    assert.match(metadata.creationTime, /^\d+$/);
    assert.ok(metadata.etag);

    const [tables] = await dataset.getTables();
    assert.deepEqual(
      tables.map((t) => t.id),
      ['customers'],
    );
    const duplicate = await rejection(dataset.createTable('customers', { schema: 'a:string' }));
    assert.equal(duplicate.code, 409);
  });

  it('a schema patch may add a NULLABLE column and relax REQUIRED to NULLABLE', async () => {
    const [table] = await h.bigquery
      .dataset('tables')
      .createTable('evolving', { schema: { fields: [{ name: 'id', type: 'INTEGER', mode: 'REQUIRED' }] } });
    await table.setMetadata({
      schema: {
        fields: [
          { name: 'id', type: 'INTEGER', mode: 'NULLABLE' },
          { name: 'email', type: 'STRING' },
        ],
      },
    });
    const [metadata] = await table.getMetadata();
    assert.deepEqual(
      metadata.schema.fields.map((f: { name: string; mode: string }) => `${f.name}:${f.mode}`),
      ['id:NULLABLE', 'email:NULLABLE'],
    );
  });

  it('a schema patch that changes a type, drops a column or adds a REQUIRED column is rejected (400 invalid)', async () => {
    const [table] = await h.bigquery.dataset('tables').createTable('strict', {
      schema: {
        fields: [
          { name: 'id', type: 'INTEGER' },
          { name: 'note', type: 'STRING' },
        ],
      },
    });
    const typeChange = await rejection(
      table.setMetadata({
        schema: {
          fields: [
            { name: 'id', type: 'STRING' },
            { name: 'note', type: 'STRING' },
          ],
        },
      }),
    );
    assert.equal(typeChange.code, 400);
    assert.equal(typeChange.reason, 'invalid');
    assert.match(typeChange.message, /Field id has changed type from INTEGER to STRING/);

    const dropped = await rejection(
      table.setMetadata({ schema: { fields: [{ name: 'id', type: 'INTEGER' }] } }),
    );
    assert.match(dropped.message, /Field note is missing in new schema/);

    const required = await rejection(
      table.setMetadata({
        schema: {
          fields: [
            { name: 'id', type: 'INTEGER' },
            { name: 'note', type: 'STRING' },
            { name: 'must', type: 'STRING', mode: 'REQUIRED' },
          ],
        },
      }),
    );
    assert.match(required.message, /Cannot add required fields/);
    const [metadata] = await table.getMetadata();
    assert.equal(metadata.schema.fields.length, 2);
  });

  it('deletes a table; getting it afterwards is a 404', async () => {
    const [table] = await h.bigquery.dataset('tables').createTable('doomed', { schema: 'a:string' });
    await table.delete();
    const missing = await rejection(table.getMetadata());
    assert.equal(missing.code, 404);
    assert.match(missing.message, /Not found: Table/);
  });

  it('serves the BIGQUERY_EMULATOR_HOST form of the base URL (no /bigquery/v2 prefix) too', async () => {
    const previous = process.env.BIGQUERY_EMULATOR_HOST;
    process.env.BIGQUERY_EMULATOR_HOST = `http://${h.emulator.restHost}`;
    try {
      const viaEnv = new BigQuery({ projectId: PROJECT, authClient: new PassThroughClient() });
      const [datasets] = await viaEnv.getDatasets();
      assert.ok(datasets.some((d) => d.id === 'tables'));
    } finally {
      if (previous === undefined) delete process.env.BIGQUERY_EMULATOR_HOST;
      else process.env.BIGQUERY_EMULATOR_HOST = previous;
    }
  });
});
