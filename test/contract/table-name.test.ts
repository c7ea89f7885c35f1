// Table lists in PostgreSQL's identifier syntax (contract/table-name.ts), as PGCDC_TABLES, the admin job's
// lists, pgcdc:tables and --table read them.

import assert from 'node:assert/strict';
import { ENV } from '../../contract/env';
import {
  formatTableName,
  parseTableEntry,
  parseTableKey,
  parseTableList,
  resolveTableEntry,
  TableNameError,
  tableKey,
} from '../../contract/table-name';
import { loadAdminConfig } from '../../listener/admin-config';
import { loadListenerConfig } from '../../listener/config';
import { ConfigError } from '../../listener/errors';
import { ConfigError as StackConfigError, parseSourceTable } from '../../infra/config';

const names = (list: string) => parseTableList(list, 'PGCDC_TABLES').map((e) => formatTableName(e.name));

describe('table names in PostgreSQL identifier syntax', () => {
  it('every name accepted before means the same table (plain names, $, digits, odd characters bare)', () => {
    assert.deepEqual(names('public.customers, sales.orders ,x_1.t$2,public.order-lines,'), [
      'public.customers',
      'sales.orders',
      'x_1.t$2',
      'public."order-lines"',
    ]);
    // Bare upper case: PostgreSQL's reading is lower case, and the exact name as written is kept too.
    const [e] = parseTableList('Sales.Orders', 'PGCDC_TABLES');
    assert.deepEqual(e!.name, { schema: 'sales', table: 'orders' });
    assert.deepEqual(e!.asWritten, { schema: 'Sales', table: 'Orders' });
    assert.equal(e!.text, 'Sales.Orders');
  });

  it('quoted parts keep periods, commas, spaces, case and doubled quotes; commas inside quotes separate nothing', () => {
    const list = parseTableList(
      '"a.b"."c.d", "Mixed Case"."x,y" ,"my.schema"."Weird ""name""", public."customers"',
      'PGCDC_TABLES',
    );
    assert.deepEqual(
      list.map((e) => e.name),
      [
        { schema: 'a.b', table: 'c.d' },
        { schema: 'Mixed Case', table: 'x,y' },
        { schema: 'my.schema', table: 'Weird "name"' },
        { schema: 'public', table: 'customers' },
      ],
    );
    assert.ok(
      list.every((e) => e.asWritten === undefined),
      'quoted names are exact',
    );
    // Texts parse back to the same entries, and keys are canonical (plain parts bare).
    assert.deepEqual(
      list.map((e) => e.text),
      ['"a.b"."c.d"', '"Mixed Case"."x,y"', '"my.schema"."Weird ""name"""', 'public.customers'],
    );
    assert.deepEqual(
      parseTableList(list.map((e) => e.text).join(','), 'x').map((e) => e.name),
      list.map((e) => e.name),
    );
    assert.equal(tableKey('a.b', 'c'), '"a.b".c');
    assert.notEqual(tableKey('a.b', 'c'), tableKey('a', 'b.c'));
    assert.deepEqual(parseTableKey('"a.b".c'), { schema: 'a.b', table: 'c' });
    assert.deepEqual(parseTableKey(' public . "T" '), { schema: 'public', table: 'T' });
  });

  it('a bare upper-case name means the exact table when it exists, else the lower-case one', () => {
    const e = parseTableEntry('public.Orders', '--table');
    assert.equal(
      resolveTableEntry(e, (k) => k === 'public."Orders"', '--table'),
      'public."Orders"',
    );
    assert.equal(
      resolveTableEntry(e, (k) => k === 'public.orders', '--table'),
      'public.orders',
    );
    assert.equal(
      resolveTableEntry(e, () => false, '--table'),
      'public.orders',
    );
    assert.equal(
      resolveTableEntry(parseTableEntry('public.orders', '--table'), () => true, '--table'),
      'public.orders',
    );
    // Quoted, or in lower case, an entry has one reading: no other table can change what it means.
    assert.equal(
      resolveTableEntry(parseTableEntry('public."Orders"', '--table'), () => true, '--table'),
      'public."Orders"',
    );
  });

  it('a bare upper-case name whose two readings both exist is refused, naming both', () => {
    const both = (k: string) => k === 'public."Orders"' || k === 'public.orders';
    assert.throws(
      () => resolveTableEntry(parseTableEntry('public.Orders', 'PGCDC_TABLES'), both, 'PGCDC_TABLES'),
      (e: unknown) =>
        e instanceof TableNameError &&
        e.message ===
          'PGCDC_TABLES: "public.Orders" could mean table public."Orders" or table public.orders, and both ' +
            'exist: write public."Orders" or public.orders, whichever is meant',
    );
    // Upper case in the schema part, the table part quoted: only the schema has two readings.
    const mixed = (k: string) => k === '"Sales"."T"' || k === 'sales."T"';
    assert.throws(() => resolveTableEntry(parseTableEntry('Sales."T"', '--table'), mixed, '--table'), {
      name: 'TableNameError',
      message:
        '--table: "Sales.\\"T\\"" could mean table "Sales"."T" or table sales."T", and both exist: ' +
        'write "Sales"."T" or sales."T", whichever is meant',
    });
  });

  it('a malformed list says what is wrong and what to write', () => {
    const bad: Array<[string, RegExp]> = [
      ['customers', /"customers" names no schema \(e\.g\. public\.customers\)/],
      ['public."orders', /double quote that is never closed/],
      ['a.b.c', /has 3 period-separated names; .* double quotes \(e\.g\. "a\.b"\.c\)/],
      ['public.my table', /space inside a name/],
      ['public.a"b', /double quote inside a bare name/],
      ['"a"b.c', /"b" after a closing double quote/],
      ['public.', /empty name after a period/],
      ['.t', /no schema name/],
      ['public.""', /empty quoted name/],
      [`public.${'x'.repeat(64)}`, /longer than 63 bytes/],
    ];
    for (const [list, message] of bad) {
      assert.throws(
        () => parseTableList(list, 'PGCDC_TABLES'),
        (e: Error) => {
          assert.match(e.message, /^PGCDC_TABLES: /);
          assert.match(e.message, message);
          assert.match(e.message, /write schema\.table; .*"my\.schema"\."Weird ""name"""/);
          return true;
        },
        list,
      );
    }
    // A good entry before a bad one: the bad one is named.
    assert.throws(() => parseTableList('"a.b".c, x', 'PGCDC_TABLES'), /"x" names no schema/);
    assert.throws(() => parseTableEntry('a.b, c.d', '--table'), /is several names/);
  });

  it('PGCDC_TABLES and the admin lists: parsed at start, kept as texts the runs resolve', () => {
    const base = { [ENV.topic]: 't', [ENV.project]: 'p' };
    const cfg = loadListenerConfig({ ...base, [ENV.tables]: '"a.b"."c.d","Mixed Case"."x,y",public.t' });
    assert.deepEqual(cfg.tables, ['"a.b"."c.d"', '"Mixed Case"."x,y"', 'public.t']);
    assert.throws(
      () => loadListenerConfig({ ...base, [ENV.tables]: 'public."unterminated' }),
      (e: Error) => e instanceof ConfigError && /^PGCDC_TABLES: .*never closed/.test(e.message),
    );
    const adminEnv = { PGUSER: 'postgres', [ENV.replicationUser]: 'pgcdc_replicator' };
    const admin = loadAdminConfig({ ...adminEnv, [ENV.tables]: '"Mixed Case"."x,y", Sales.Orders' });
    assert.deepEqual(admin.tables, ['"Mixed Case"."x,y"', 'Sales.Orders']);
    assert.throws(
      () => loadAdminConfig({ ...adminEnv, [ENV.replicaIdentityFull]: 'nokey' }),
      /^ConfigError: PGCDC_REPLICA_IDENTITY_FULL: "nokey" names no schema \(e\.g\. public\.nokey\)/,
    );
  });

  it('pgcdc:tables takes the same syntax and gives the sink’s BigQuery names', () => {
    const t = parseSourceTable('"Mixed Case"."x,y"');
    assert.equal(t.qualified, '"Mixed Case"."x,y"');
    assert.deepEqual([t.schema, t.table], ['Mixed Case', 'x,y']);
    assert.match(t.replica, /^mixed_case_x_y__h[0-9a-f]{10}$/);
    assert.throws(
      () => parseSourceTable('a.b.c'),
      (e: Error) => e instanceof StackConfigError && e.key === 'tables' && /period-separated/.test(e.problem),
    );
  });
});
