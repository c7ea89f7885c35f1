import assert from 'node:assert/strict';
import { Client } from 'pg';
import { loadCatalog } from '../../listener/catalog';
import { PgOutputDecoder } from '../../listener/decoders/pgoutput';
import type { Decoded } from '../../listener/decoders/types';
import { freshDatabase, uniqueName } from '../support/stack';

describe('pgoutput: a partition created during a run', function () {
  this.timeout(120_000);

  it('of a captured partitioned table is kept, not dropped by the PGCDC_TABLES filter (its parent is listed)', async () => {
    const client = new Client(await freshDatabase('newpart'));
    await client.connect();
    const slot = uniqueName('np');
    try {
      await client.query(`CREATE TABLE m (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`);
      await client.query(
        `CREATE TABLE m_2026 PARTITION OF m FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`,
      );
      await client.query(`CREATE TABLE other (id int PRIMARY KEY)`);
      await client.query('CREATE PUBLICATION np_pub FOR TABLE m');
      await client.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
      // The run starts: its catalog knows m and m_2026; PGCDC_TABLES names the parent, expanded to m_2026.
      const catalog = await loadCatalog(client);
      const decoder = new PgOutputDecoder(catalog, 'np_pub', ['public.m_2026']);
      // During the run: a new partition (as pg_partman would make) and rows in both; `other` is not published.
      await client.query(
        `CREATE TABLE m_2027 PARTITION OF m FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')`,
      );
      await client.query(`INSERT INTO m VALUES (1, '2026-06-01'), (2, '2027-06-01')`);
      await client.query('INSERT INTO other VALUES (1)');
      const { rows } = await client.query<{ lsn: string; data: Buffer }>(
        `SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
           'proto_version', '1', 'publication_names', 'np_pub', 'messages', 'true')`,
        [slot],
      );
      const seen: string[] = [];
      for (const r of rows) {
        const [hi, lo] = r.lsn.split('/').map((x) => BigInt(`0x${x}`));
        const lsn = (hi! << 32n) | lo!;
        decoder.decode({ walStart: lsn, walEnd: lsn, data: r.data }, (d: Decoded) => {
          if (d.kind === 'change') seen.push(`${d.table.schema}.${d.table.table}`);
        });
      }
      assert.deepEqual(seen.sort(), ['public.m_2026', 'public.m_2027']);
    } finally {
      await client.query('SELECT pg_drop_replication_slot($1)', [slot]).catch(() => undefined);
      await client.end();
    }
  });
});
