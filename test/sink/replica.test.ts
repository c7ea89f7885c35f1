import assert from 'node:assert/strict';
import type { ColumnInfo } from '../../contract/events';
import { replicaTableName } from '../../sink/names';
import { runSink } from '../../sink/run';
import { batchOf, channel, event, nextCommit, rowsBy, sinkStack, SinkStack } from './support';

const COLUMNS: ColumnInfo[] = [
  { name: 'id', type: 'integer', oid: 23, key: true },
  { name: 'name', type: 'text', oid: 25, key: false },
  { name: 'doc', type: 'jsonb', oid: 3802, key: false },
];

describe('sink: replica and history', function () {
  let stack: SinkStack;
  const logs: string[] = [];
  const log = (l: string) => logs.push(l);

  before(async function () {
    stack = await sinkStack();
  });
  after(async function () {
    await stack?.stopBigQuery();
  });

  it('inserts, updates and deletes land in the replica and every event in the history', async function () {
    const ch = await channel(stack);
    const c1 = nextCommit();
    const c2 = nextCommit();
    await ch.publish(
      batchOf('customers', COLUMNS, [
        event('c', c1, 0, { key: { id: '1' }, after: { id: '1', name: 'ann', doc: '{"a": 1}' } }),
        event('c', c1, 1, { key: { id: '2' }, after: { id: '2', name: 'bob', doc: null } }),
      ]),
    );
    await ch.publish(
      batchOf('customers', COLUMNS, [
        event('u', c2, 0, { key: { id: '1' }, after: { id: '1', name: 'anne', doc: '{"a": 2}' } }),
        event('d', c2, 1, { key: { id: '2' }, before: { id: '2' } }),
      ]),
    );
    const summary = await runSink(ch.config, { log });
    assert.equal(summary.messages, 2);
    assert.equal(summary.events, 4);
    assert.equal(summary.failed, 0);
    assert.deepEqual(summary.tables, ['public.customers']);
    const replica = await rowsBy(ch.rest, 'customers', 'id');
    assert.deepEqual([...replica.keys()], ['1']);
    assert.equal(replica.get('1')?.name, 'anne');
    assert.deepEqual(JSON.parse(String(replica.get('1')?.doc)), { a: 2 });
    const history = await ch.rest.listRows('customers_changes');
    assert.deepEqual(history.map((r) => r._op).sort(), ['c', 'c', 'd', 'u']);
    const meta = await ch.rest.getTable('customers');
    assert.deepEqual(meta?.tableConstraints?.primaryKey?.columns, ['id']);
    assert.deepEqual(meta?.clustering?.fields, ['id']);
    assert.equal(meta?.maxStaleness, '0-0 0 0:15:0');
  });

  it('an update whose TOAST value the listener read from the source lands whole; the history flags it', async function () {
    const ch = await channel(stack);
    const big = 'x'.repeat(5000);
    const [c1, c2] = [nextCommit(), nextCommit()];
    await ch.publish(
      batchOf('docs', COLUMNS, [
        event('c', c1, 0, { key: { id: '1' }, after: { id: '1', name: 'a', doc: JSON.stringify({ big }) } }),
        event('u', c2, 0, {
          key: { id: '1' },
          after: { id: '1', name: 'b', doc: JSON.stringify({ big }) },
          fromSource: ['doc'],
        }),
      ]),
    );
    const s = await runSink(ch.config, { log });
    assert.equal(s.failed, 0);
    const row = (await rowsBy(ch.rest, 'docs', 'id')).get('1');
    assert.equal(row?.name, 'b');
    assert.deepEqual(JSON.parse(String(row?.doc)), { big });
    const history = await ch.rest.listRows('docs_changes');
    const upd = history.find((r) => r._op === 'u');
    assert.deepEqual(upd?._from_source, [{ v: 'doc' }]);
    assert.deepEqual(upd?._unchanged, []);
    assert.equal(upd?._superseded, null);
  });

  it('a superseded update is history only: the replica keeps the row until the delete that follows', async function () {
    const ch = await channel(stack);
    const [c1, c2, c3] = [nextCommit(), nextCommit(), nextCommit()];
    await ch.publish(
      batchOf('sup', COLUMNS, [
        event('c', c1, 0, { key: { id: '1' }, after: { id: '1', name: 'a', doc: '[1]' } }),
        event('c', c1, 1, { key: { id: '2' }, after: { id: '2', name: 'k', doc: '[2]' } }),
        // The listener found key 1 gone when it looked up doc: no value for it, a delete follows.
        event('u', c2, 0, {
          key: { id: '1' },
          after: { id: '1', name: 'b' },
          unchanged: ['doc'],
          superseded: true,
        }),
      ]),
    );
    const s = await runSink(ch.config, { log });
    assert.equal(s.failed, 0, 'a superseded event is no failure');
    let replica = await rowsBy(ch.rest, 'sup', 'id');
    assert.equal(replica.get('1')?.name, 'a', 'never an UPSERT with a NULLed doc');
    assert.deepEqual(JSON.parse(String(replica.get('1')?.doc)), [1]);
    await ch.publish(batchOf('sup', COLUMNS, [event('d', c3, 0, { key: { id: '1' }, before: { id: '1' } })]));
    await runSink(ch.config, { log });
    replica = await rowsBy(ch.rest, 'sup', 'id');
    assert.deepEqual([...replica.keys()], ['2']);
    const history = await ch.rest.listRows('sup_changes');
    const upd = history.find((r) => r._op === 'u');
    assert.equal(upd?._superseded, 'true');
    assert.deepEqual(upd?._unchanged, [{ v: 'doc' }]);
    assert.equal(upd?.doc, null, 'the history keeps the WAL truth: doc was not sent');
  });

  it('an update with unresolved unchanged columns (an older listener) never nulls them: history only, a warning', async function () {
    const ch = await channel(stack);
    const [c1, c2, c3] = [nextCommit(), nextCommit(), nextCommit()];
    await ch.publish(
      batchOf('old', COLUMNS, [
        event('c', c1, 0, { key: { id: '1' }, after: { id: '1', name: 'a', doc: '[1]' } }),
      ]),
    );
    await runSink(ch.config, { log });
    await ch.publish(
      batchOf('old', COLUMNS, [
        event('u', c2, 0, { key: { id: '1' }, after: { id: '1', name: 'b' }, unchanged: ['doc'] }),
        // wal2json leaves unchanged TOAST values out of `columns`: absent means not sent, never NULL.
        event('u', c3, 0, { key: { id: '1' }, after: { id: '1', name: 'c' } }),
      ]),
    );
    const s = await runSink(ch.config, { log });
    assert.equal(s.failed, 2);
    const row = (await rowsBy(ch.rest, 'old', 'id')).get('1');
    assert.equal(row?.name, 'a');
    assert.deepEqual(JSON.parse(String(row?.doc)), [1]);
    const failed = await ch.rest.listRows('_failed');
    assert.equal(failed.length, 2);
    for (const f of failed) {
      assert.match(String(f.reason), /^warning: .*column\(s\) doc unresolved/);
      assert.equal(JSON.parse(String(f.attributes)).count, '1', 'republishable: a one-event batch');
    }
    assert.equal((await ch.rest.listRows('old_changes')).length, 3);
  });

  it('a primary-key change deletes the old key and upserts the new one (superseded: deletes only)', async function () {
    const ch = await channel(stack);
    const [c1, c2, c3] = [nextCommit(), nextCommit(), nextCommit()];
    await ch.publish(
      batchOf('pk', COLUMNS, [
        event('c', c1, 0, { key: { id: '1' }, after: { id: '1', name: 'a', doc: '{"k": 1}' } }),
        event('c', c1, 1, { key: { id: '5' }, after: { id: '5', name: 'e', doc: '{"k": 5}' } }),
      ]),
    );
    await ch.publish(
      batchOf('pk', COLUMNS, [
        event('u', c2, 0, {
          key: { id: '2' },
          before: { id: '1' },
          after: { id: '2', name: 'a2', doc: '{"k": 1}' },
          fromSource: ['doc'],
        }),
        // Key 5 → 6, and 6 was gone when the listener looked it up: 5 ended here, 6 is deleted later.
        event('u', c2, 1, {
          key: { id: '6' },
          before: { id: '5' },
          after: { id: '6', name: 'e6' },
          unchanged: ['doc'],
          superseded: true,
        }),
      ]),
    );
    await runSink(ch.config, { log });
    let replica = await rowsBy(ch.rest, 'pk', 'id');
    assert.deepEqual([...replica.keys()].sort(), ['2']);
    assert.equal(replica.get('2')?.name, 'a2');
    assert.deepEqual(JSON.parse(String(replica.get('2')?.doc)), { k: 1 });
    await ch.publish(batchOf('pk', COLUMNS, [event('d', c3, 0, { key: { id: '6' }, before: { id: '6' } })]));
    await runSink(ch.config, { log });
    replica = await rowsBy(ch.rest, 'pk', 'id');
    assert.deepEqual([...replica.keys()].sort(), ['2']);
  });

  it('a truncate empties the replica, is recorded in the history, and older events arriving later have no effect', async function () {
    const ch = await channel(stack);
    const c1 = nextCommit();
    const c2 = nextCommit();
    const c3 = nextCommit();
    const c4 = nextCommit();
    await ch.publish(
      batchOf('tr', COLUMNS, [
        event('c', c1, 0, { key: { id: '1' }, after: { id: '1', name: 'a', doc: null } }),
        event('c', c1, 1, { key: { id: '2' }, after: { id: '2', name: 'b', doc: null } }),
      ]),
    );
    await runSink(ch.config, { log });
    assert.equal((await ch.rest.listRows('tr')).length, 2);
    await ch.publish(batchOf('tr', COLUMNS, [event('t', c3, 0, {})]));
    await ch.publish(
      batchOf('tr', COLUMNS, [
        event('c', c4, 0, { key: { id: '3' }, after: { id: '3', name: 'c', doc: null } }),
      ]),
    );
    await runSink(ch.config, { log });
    // Redelivered late: an insert from before the truncate.
    await ch.publish(
      batchOf('tr', COLUMNS, [
        event('c', c2, 0, { key: { id: '9' }, after: { id: '9', name: 'late', doc: null } }),
      ]),
    );
    await runSink(ch.config, { log });
    const replica = await rowsBy(ch.rest, 'tr', 'id');
    assert.deepEqual([...replica.keys()], ['3']);
    const history = await ch.rest.listRows('tr_changes');
    assert.equal(history.filter((r) => r._op === 't').length, 1);
    assert.equal(history.length, 5);
  });

  it('a table without a primary key gets the history only, and the sink says so once', async function () {
    const ch = await channel(stack);
    const cols: ColumnInfo[] = [{ name: 'msg', type: 'text', oid: 25, key: false }];
    const lines: string[] = [];
    await ch.publish(batchOf('logs', cols, [event('c', nextCommit(), 0, { after: { msg: 'one' } })]));
    await ch.publish(batchOf('logs', cols, [event('c', nextCommit(), 0, { after: { msg: 'two' } })]));
    const s = await runSink(ch.config, { log: (l) => lines.push(l) });
    assert.equal(s.replicaRows, 0);
    assert.equal(s.changelogRows, 2);
    assert.equal(await ch.rest.getTable('logs'), null);
    assert.deepEqual((await ch.rest.listRows('logs_changes')).map((r) => r.msg).sort(), ['one', 'two']);
    assert.equal(lines.filter((l) => l.includes('no primary key')).length, 1);
  });

  it('tables of another schema are named schema__table', async function () {
    const ch = await channel(stack);
    await ch.publish(
      batchOf(
        'items',
        COLUMNS,
        [event('c', nextCommit(), 0, { key: { id: '1' }, after: { id: '1', name: 'i', doc: null } })],
        'shop',
      ),
    );
    await runSink(ch.config, { log });
    assert.equal((await ch.rest.listRows('shop__items')).length, 1);
    assert.equal((await ch.rest.listRows('shop__items_changes')).length, 1);
  });

  it('a new source column is added without a restart; type changes and dropped columns show in the schema', async function () {
    const ch = await channel(stack);
    const v1: ColumnInfo[] = [
      { name: 'id', type: 'integer', oid: 23, key: true },
      { name: 'qty', type: 'integer', oid: 23, key: false },
      { name: 'old', type: 'text', oid: 25, key: false },
    ];
    const v2: ColumnInfo[] = [
      { name: 'id', type: 'integer', oid: 23, key: true },
      { name: 'qty', type: 'text', oid: 25, key: false },
      { name: 'added', type: 'date', oid: 1082, key: false },
    ];
    await ch.publish(
      batchOf('evo', v1, [
        event('c', nextCommit(), 0, { key: { id: '1' }, after: { id: '1', qty: '5', old: 'o' } }),
      ]),
    );
    await ch.publish(
      batchOf('evo', v2, [
        event('c', nextCommit(), 0, {
          key: { id: '2' },
          after: { id: '2', qty: 'many', added: '2024-01-02' },
        }),
      ]),
    );
    const s = await runSink(ch.config, { log });
    assert.equal(s.failed, 0);
    const replica = await rowsBy(ch.rest, 'evo', 'id');
    assert.equal(replica.get('1')?.qty, '5');
    assert.equal(replica.get('2')?.qty__string, 'many');
    assert.equal(replica.get('2')?.added, '2024-01-02');
    const fields = (await ch.rest.getTable('evo_changes'))?.schema?.fields ?? [];
    const byName = new Map(fields.map((f) => [f.name, f]));
    assert.match(String(byName.get('qty')?.description), /source type changed to text/);
    assert.match(String(byName.get('old')?.description), /dropped from the source/);
    assert.equal(byName.get('added')?.type, 'DATE');
  });

  it('a table that gains a primary key later gets a replica from then on, with its current column types', async function () {
    const ch = await channel(stack);
    const noKey: ColumnInfo[] = [
      { name: 'id', type: 'integer', oid: 23, key: false },
      { name: 'qty', type: 'integer', oid: 23, key: false },
    ];
    const retyped: ColumnInfo[] = [
      { name: 'id', type: 'integer', oid: 23, key: false },
      { name: 'qty', type: 'text', oid: 25, key: false },
    ];
    const keyed: ColumnInfo[] = [
      { name: 'id', type: 'integer', oid: 23, key: true },
      { name: 'qty', type: 'text', oid: 25, key: false },
    ];
    await ch.publish(
      batchOf('later', noKey, [event('c', nextCommit(), 0, { after: { id: '1', qty: '1' } })]),
    );
    await ch.publish(
      batchOf('later', retyped, [event('c', nextCommit(), 0, { after: { id: '2', qty: 'two' } })]),
    );
    await runSink(ch.config, { log });
    await ch.publish(
      batchOf('later', keyed, [
        event('c', nextCommit(), 0, { key: { id: '3' }, after: { id: '3', qty: 'three' } }),
      ]),
    );
    const s = await runSink(ch.config, { log });
    assert.equal(s.failed, 0);
    const replica = await rowsBy(ch.rest, 'later', 'id');
    assert.deepEqual([...replica.keys()], ['3']);
    assert.equal(replica.get('3')?.qty, 'three');
    const history = await ch.rest.listRows('later_changes');
    assert.equal(history.find((r) => r.id === '3')?.qty__string, 'three');
  });

  it('every common Postgres type lands with its value', async function () {
    const ch = await channel(stack);
    const cols: ColumnInfo[] = [
      ['id', 'bigint', 20],
      ['i2', 'smallint', 21],
      ['n', 'numeric(12,3)', 1700],
      ['nb', 'numeric', 1700],
      ['f', 'double precision', 701],
      ['b', 'boolean', 16],
      ['vc', 'character varying(20)', 1043],
      ['by', 'bytea', 17],
      ['d', 'date', 1082],
      ['t', 'time without time zone', 1083],
      ['ttz', 'time with time zone', 1266],
      ['ts', 'timestamp without time zone', 1114],
      ['tstz', 'timestamp with time zone', 1184],
      ['iv', 'interval', 1186],
      ['j', 'json', 114],
      ['u', 'uuid', 2950],
      ['arr', 'integer[]', 1007],
      ['tarr', 'text[]', 1009],
      ['mood', 'mood', 16500],
      ['ip', 'inet', 869],
      ['m', 'money', 790],
    ].map(([name, type, oid]) => ({
      name: name as string,
      type: type as string,
      oid: oid as number,
      key: name === 'id',
    }));
    const after = {
      id: '9223372036854775807',
      i2: '-32768',
      n: '123456789.125',
      nb: '123456789012345678901234567890.123456789012345678901234567',
      f: 'Infinity',
      b: 't',
      vc: 'héllo',
      by: '\\xdeadbeef',
      d: 'infinity',
      t: '13:14:15.123456',
      ttz: '13:14:15+02',
      ts: '2024-02-29 23:59:59.999999',
      tstz: '2024-02-29 23:59:59.999999-01',
      iv: '1 year 2 mons 3 days 04:05:06',
      j: '{"x": [1, 2]}',
      u: '0e37df36-f698-11e6-8dd4-cb9ced3df976',
      arr: '{1,2,3}',
      tarr: '{"a,b",c}',
      mood: 'happy',
      ip: '192.168.0.1/24',
      m: '$1,000.00',
    };
    await ch.publish(batchOf('types', cols, [event('c', nextCommit(), 0, { key: { id: after.id }, after })]));
    const s = await runSink(ch.config, { log });
    assert.equal(s.failed, 0);
    const row = (await ch.rest.listRows('types'))[0];
    assert.equal(row.id, '9223372036854775807');
    assert.equal(row.i2, '-32768');
    assert.equal(row.n, '123456789.125');
    assert.equal(row.nb, '123456789012345678901234567890.123456789012345678901234567');
    assert.equal(row.f, 'Infinity');
    assert.equal(row.b, 'true');
    assert.equal(row.vc, 'héllo');
    assert.equal(Buffer.from(String(row.by), 'base64').toString('hex'), 'deadbeef');
    assert.equal(row.d, '9999-12-31');
    assert.equal(row.t, '13:14:15.123456');
    assert.equal(row.ttz, '13:14:15+02');
    assert.equal(row.ts, '2024-02-29T23:59:59.999999');
    assert.equal(row.tstz, String(Date.UTC(2024, 2, 1, 0, 59, 59) * 1000 + 999999));
    assert.equal(row.iv, '1 year 2 mons 3 days 04:05:06');
    assert.deepEqual(JSON.parse(String(row.j)), { x: [1, 2] });
    assert.equal(row.u, '0e37df36-f698-11e6-8dd4-cb9ced3df976');
    assert.deepEqual(row.arr, [{ v: '1' }, { v: '2' }, { v: '3' }]);
    assert.deepEqual(row.tarr, [{ v: 'a,b' }, { v: 'c' }]);
    assert.equal(row.mood, 'happy');
    assert.equal(row.ip, '192.168.0.1/24');
    assert.equal(row.m, '$1,000.00');
  });

  it('a keyless and a keyed message of one table in one pull: the keyed rows still reach the replica', async function () {
    const keyed: ColumnInfo[] = [
      { name: 'id', type: 'integer', oid: 23, key: true },
      { name: 'name', type: 'text', oid: 25, key: false },
    ];
    const keyless = keyed.map((c) => ({ ...c, key: false }));
    const ch = await channel(stack);
    await ch.publish(
      batchOf('mix', keyless, [event('c', nextCommit(), 0, { after: { id: '1', name: 'a' } })]),
    );
    await ch.publish(
      batchOf('mix', keyed, [
        event('c', nextCommit(), 0, { key: { id: '2' }, after: { id: '2', name: 'b' } }),
      ]),
    );
    await runSink(ch.config, { log: () => undefined });
    assert.ok((await rowsBy(ch.rest, 'mix', 'id')).has('2'), 'acked without its replica row');
  });

  it('awkward names and key types BigQuery refuses still give distinct tables, columns and a replica', async function () {
    const ch = await channel(stack);
    const cols: ColumnInfo[] = [
      { name: 'k', type: 'double precision', oid: 701, key: true },
      { name: 'b', type: 'bytea', oid: 17, key: true },
      { name: 'Name', type: 'text', oid: 25, key: false },
      { name: 'name', type: 'text', oid: 25, key: false },
      { name: '_CHANGE_TYPE', type: 'text', oid: 25, key: false },
      { name: '_event_id', type: 'text', oid: 25, key: false },
      { name: 'a b', type: 'integer', oid: 23, key: false },
    ];
    const row = {
      k: '1.5',
      b: '\\x00ff',
      Name: 'upper',
      name: 'lower',
      _CHANGE_TYPE: 'ct',
      _event_id: 'mine',
      'a b': '7',
    };
    await ch.publish(
      batchOf('orders', COLUMNS, [
        event('c', nextCommit(), 0, { key: { id: '1' }, after: { id: '1', name: 'o', doc: null } }),
      ]),
    );
    await ch.publish(
      batchOf('orders_changes', cols, [
        event('c', nextCommit(), 0, { key: { k: '1.5', b: row.b }, after: row }),
      ]),
    );
    const s = await runSink(ch.config, { log });
    assert.equal(s.failed, 0);
    const tables = [...(await ch.rest.listRows('orders_changes'))];
    assert.equal(tables.length, 1, 'the history of orders holds only the orders event');
    assert.equal(tables[0].name, 'o');
    const own = (await ch.rest.listRows(replicaTableName('public', 'orders_changes')))[0];
    assert.ok(own, 'orders_changes has a replica of its own');
    const meta = await ch.rest.getTable(replicaTableName('public', 'orders_changes'));
    const byDescription = new Map(
      (meta?.schema?.fields ?? [])
        .map((f) => [/source column "(.*)"$/.exec(f.description ?? '')?.[1], f.name] as const)
        .filter(([src]) => src !== undefined),
    );
    for (const [source, value] of Object.entries(row)) {
      const field = byDescription.get(JSON.stringify(source).slice(1, -1));
      assert.ok(field, `a column for ${source}`);
      assert.equal(String(own[field]), value, `${source} kept in ${field}`);
    }
    assert.deepEqual(meta?.tableConstraints?.primaryKey?.columns, ['k', 'b']);
    assert.equal(meta?.schema?.fields?.find((f) => f.name === 'k')?.type, 'STRING');
  });
});
