// Resolving table lists in the listener (listener/catalog.ts resolveTables) and reading snapshot progress
// written under the keys used before quoted names (listener/snapshot.ts pendingSnapshots).

import assert from 'node:assert/strict';
import { Client } from 'pg';
import { ColumnInfo } from '../../contract/events';
import { emptyCatalog, resolveTables } from '../../listener/catalog';
import { ConfigError } from '../../listener/errors';
import { legacyProgressKeys, pendingSnapshots } from '../../listener/snapshot';

const cols: ColumnInfo[] = [{ name: 'id', type: 'integer', oid: 23, key: true }];

function catalogOf(tables: string[], more: { unlogged?: string[]; partitions?: [string, string[]][] } = {}) {
  const c = emptyCatalog();
  for (const t of tables) c.tables.set(t, cols);
  c.unlogged = more.unlogged ?? [];
  c.partitions = new Map(more.partitions ?? []);
  return c;
}

describe('resolveTables: table-list entries against the catalog', () => {
  it('a bare upper-case name means the exact-case table, else the folded one', () => {
    assert.deepEqual(resolveTables(['public.Orders'], catalogOf(['public."Orders"'])), ['public."Orders"']);
    assert.deepEqual(resolveTables(['public.Orders'], catalogOf(['public.orders'])), ['public.orders']);
    // Partitioned parents and unlogged tables count as tables, as resolveInDatabase counts them.
    assert.deepEqual(
      resolveTables(
        ['public.Events'],
        catalogOf(['public.orders'], { partitions: [['public."Events"', ['public.events_2026']]] }),
      ),
      ['public."Events"'],
    );
    assert.deepEqual(
      resolveTables(['public.Logs'], catalogOf(['public.customers'], { unlogged: ['public."Logs"'] })),
      ['public."Logs"'],
    );
  });

  it('refuses an entry whose exact-case and folded tables both exist (ConfigError naming both)', () => {
    for (const catalog of [
      catalogOf(['public."Orders"', 'public.orders']),
      catalogOf(['public.orders'], { unlogged: ['public."Orders"'] }),
      catalogOf(['public."Orders"'], { partitions: [['public.orders', ['public.orders_2026']]] }),
    ])
      assert.throws(
        () => resolveTables(['public.customers', 'public.Orders'], catalog),
        (e: unknown) =>
          e instanceof ConfigError &&
          e.message ===
            'PGCDC_TABLES: "public.Orders" could mean table public."Orders" or table public.orders, and both ' +
              'exist: write public."Orders" or public.orders, whichever is meant',
      );
    // Written quoted or in lower case, the same list resolves.
    const both = catalogOf(['public."Orders"', 'public.orders']);
    assert.deepEqual(resolveTables(['public."Orders"'], both), ['public."Orders"']);
    assert.deepEqual(resolveTables(['public.orders'], both), ['public.orders']);
  });
});

/** A client that answers pendingSnapshots' one query from a set of finished progress keys. */
function progressClient(done: string[]): Client {
  const query = (_text: string, params: [string[]]) =>
    Promise.resolve({
      rows: done.filter((k) => params[0].includes(k)).map((table_name) => ({ table_name })),
    });
  return { query } as unknown as Client;
}

describe('snapshot progress under pre-quoting keys', () => {
  it('a table alone under its old key is done; two tables sharing one old key get neither', async () => {
    // Only "a.b".c is captured: a.b.c can only have been its snapshot.
    assert.deepEqual(await pendingSnapshots(progressClient(['a.b.c']), ['"a.b".c']), []);
    // Both are captured: a.b.c may have been either one's, so both are snapshotted again.
    assert.deepEqual(await pendingSnapshots(progressClient(['a.b.c']), ['"a.b".c', 'a."b.c"']), [
      '"a.b".c',
      'a."b.c"',
    ]);
    // Progress under the current keys counts whatever the old keys say.
    assert.deepEqual(
      await pendingSnapshots(progressClient(['a.b.c', 'a."b.c"', 'public.Orders']), [
        '"a.b".c',
        'a."b.c"',
        'public."Orders"',
        'public.orders',
      ]),
      ['"a.b".c', 'public.orders'],
    );
  });

  it('legacyProgressKeys maps only the tables whose old key is theirs alone', () => {
    assert.deepEqual(
      [...legacyProgressKeys(['"a.b".c', 'a."b.c"', 'public."Orders"', 'public.orders', 'public."Orders"'])],
      [['public."Orders"', 'public.Orders']],
    );
  });
});
