// Write API connections stay bounded whatever the number of tables: the pool closes the least recently
// used idle connection before opening one more, and every row still lands.

import assert from 'node:assert/strict';
import { storageWriteClient } from '../../sink/clients';
import type { TableField } from '../../sink/bigquery-rest';
import { WriterPool } from '../../sink/writer-pool';
import { channel, sinkStack, SinkStack } from './support';

const FIELDS: TableField[] = [
  { name: 'id', type: 'INT64', mode: 'NULLABLE' },
  { name: 'name', type: 'STRING', mode: 'NULLABLE' },
];

describe('sink: Write API connection pool', function () {
  let stack: SinkStack;
  before(async function () {
    stack = await sinkStack();
  });
  after(async function () {
    await stack?.stopBigQuery();
  });

  it('writing 12 tables through a pool of 3 keeps at most 3 connections open and loses no row', async function () {
    const ch = await channel(stack);
    await ch.rest.ensureDataset();
    const writer = storageWriteClient(ch.config);
    const pool = new WriterPool(writer, 3);
    const path = (t: string) => `projects/${ch.config.bigQueryProject}/datasets/${ch.dataset}/tables/${t}`;
    try {
      let most = 0;
      for (let round = 0; round < 2; round++) {
        for (let i = 0; i < 12; i++) {
          const name = `t${i}`;
          if (round === 0) await ch.rest.createTable(name, { schema: { fields: FIELDS } });
          const a = await pool.get(path(name), FIELDS, false);
          const errors = await a.append([a.encode({ id: String(round), name: `${name}-${round}` })]);
          assert.deepEqual(errors, []);
          most = Math.max(most, pool.size);
        }
      }
      assert.equal(most, 3);
      for (let i = 0; i < 12; i++) {
        const rows = await ch.rest.listRows(`t${i}`);
        assert.deepEqual(rows.map((r) => r.name).sort(), [`t${i}-0`, `t${i}-1`]);
      }
    } finally {
      pool.close();
      writer.close();
    }
  });
});
