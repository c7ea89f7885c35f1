// The fast row writer (sink/row-bytes.ts) must write exactly the bytes protobufjs writes for the same message
// type and values, and decline (so protobufjs writes the row) whatever it does not handle.

import assert from 'node:assert/strict';
import * as protobuf from 'protobufjs';
import 'protobufjs/ext/descriptor';
import type { ChangeEvent, ColumnInfo } from '../../contract/events';
import { decodeEvent, TableMessage } from '../../sink/event-work';
import { historyRow } from '../../sink/history-rows';
import { replicaRows } from '../../sink/replica-rows';
import { Declined, fastFields, ProtobufField, RowBytes } from '../../sink/row-bytes';
import { ProtoRow, ProtoValue, RowEncoder } from '../../sink/storage-writer';
import { CHANGES_META_FIELDS, planColumns, REPLICA_META_FIELDS } from '../../sink/table-schema';

/** A message type with one field of each kind the writer handles, optional, required and repeated. */
const ROOT = protobuf.Root.fromJSON({
  nested: {
    // proto2, as the descriptors the Storage Write API client builds: explicit presence.
    Row: {
      edition: 'proto2',
      fields: {
        s: { type: 'string', id: 1 },
        i64: { type: 'int64', id: 2 },
        i32: { type: 'int32', id: 3 },
        d: { type: 'double', id: 4 },
        b: { type: 'bool', id: 5 },
        y: { type: 'bytes', id: 6 },
        rs: { type: 'string', id: 7, rule: 'repeated' },
        ry: { type: 'bytes', id: 8, rule: 'repeated' },
        // Field numbers past 15 and 2047 take two and three tag bytes.
        far: { type: 'string', id: 2048 },
        constructor: { type: 'string', id: 20 },
        toString: { type: 'int64', id: 21 },
      },
    },
    Req: {
      edition: 'proto2',
      fields: { must: { type: 'string', id: 1, rule: 'required' }, v: { type: 'int64', id: 2 } },
    },
  },
});
const TYPE = ROOT.lookupType('Row');
const REQUIRED = ROOT.lookupType('Req');

/** The writer's fields, read as RowEncoder reads them: after protobufjs set the type up. */
function fieldsOf(type: protobuf.Type) {
  type.setup();
  const f = fastFields(type.fieldsArray as unknown as ProtobufField[]);
  assert.ok(f, `the writer handles ${type.name}`);
  return f;
}

const STRINGS = [
  '',
  'a',
  'x'.repeat(127),
  'x'.repeat(128),
  'é',
  'é'.repeat(42),
  'é'.repeat(43),
  'y'.repeat(126) + 'é',
  '😀 emoji',
  '\u0000\u0001\u007f\u0080\u07ff\u0800\uffff',
  '\u2028 line separator',
  '中文'.repeat(5000),
  'z'.repeat(16383),
  'z'.repeat(16384),
];
const INT64S: ProtoValue[] = [
  0,
  1,
  127,
  128,
  2147483647,
  2147483648,
  4294967295,
  4294967296,
  Number.MAX_SAFE_INTEGER,
  -1,
  -2147483648,
  -4294967296,
  Number.MIN_SAFE_INTEGER,
  '0',
  '-0',
  '007',
  '9007199254740993',
  '9223372036854775807',
  '-9223372036854775808',
  '-1',
  '1714979289123456',
];
const INT32S = [0, 1, 127, 128, 2147483647, -1, -2147483648, -719162, 2932896];
const DOUBLES = [0, -0, 1.5, -2.25e-308, 5e-324, 1.7976931348623157e308, Infinity, -Infinity, NaN, 0.1];
const BYTES = [Buffer.alloc(0), Buffer.from([0, 255, 128]), Buffer.alloc(70_000, 7)];

describe('sink: the fast row writer', function () {
  it('writes the bytes protobufjs writes: every kind, edge values, absent and null fields, inherited names', function () {
    const fields = fieldsOf(TYPE);
    const out = new RowBytes();
    let seed = 7;
    const pick = <T>(xs: readonly T[]): T =>
      xs[((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % xs.length)];
    let checked = 0;
    for (let n = 0; n < 3000; n++) {
      const m: ProtoRow = {};
      // Each field: absent, null, or a value (for repeated ones: an array of 0–3 values).
      const maybe = (name: string, value: () => ProtoValue) => {
        const r = pick([0, 1, 2, 2, 2]);
        if (r === 1) m[name] = null;
        else if (r === 2) m[name] = value();
      };
      maybe('s', () => pick(STRINGS));
      maybe('i64', () => pick(INT64S));
      maybe('i32', () => pick(INT32S));
      maybe('d', () => pick(DOUBLES));
      maybe('b', () => pick([true, false]));
      maybe('y', () => pick(BYTES));
      maybe('rs', () => Array.from({ length: pick([0, 1, 3]) }, () => pick(STRINGS)));
      maybe('ry', () => Array.from({ length: pick([0, 2]) }, () => pick(BYTES)));
      maybe('far', () => pick(STRINGS));
      maybe('constructor', () => pick(STRINGS));
      maybe('toString', () => pick(INT64S));
      out.write(fields, m);
      const got = Buffer.from(out.finish());
      const want = Buffer.from(TYPE.encode(m).finish());
      assert.ok(got.equals(want), `row ${n}: ${JSON.stringify(m).slice(0, 300)}`);
      checked += 1;
    }
    assert.equal(checked, 3000);
  });

  it('rows written one after another stay intact, across new slabs (values larger than a slab included)', function () {
    const fields = fieldsOf(TYPE);
    const out = new RowBytes();
    const rows: { got: Uint8Array; m: ProtoRow }[] = [];
    for (let n = 0; n < 400; n++) {
      const m: ProtoRow = {
        s: n % 97 === 0 ? 'w'.repeat(3 * 1024 * 1024) : `row ${n} ${'é'.repeat(n % 50)}`,
        i64: n,
      };
      out.write(fields, m);
      rows.push({ got: out.finish(), m });
    }
    for (const { got, m } of rows) assert.ok(Buffer.from(got).equals(Buffer.from(TYPE.encode(m).finish())));
  });

  it('declines what it does not write, leaving nothing behind: the next row is intact', function () {
    const fields = fieldsOf(TYPE);
    const out = new RowBytes();
    const declined: ProtoRow[] = [
      { s: 'before', i64: 1.5 },
      { s: 'before', i64: 2 ** 60 },
      { s: 'before', i64: '12abc' },
      { s: 'before', i64: '9223372036854775808' },
      { s: 'before', i64: '-9223372036854775809' },
      { s: 'before', i32: 2147483648 },
      { s: 'before', d: '1.5' },
      { s: 'before', b: 1 },
      { s: 'before', y: 'AAEC' },
      { s: 'before', rs: 'not an array' },
      { s: 5 },
    ];
    for (const m of declined) {
      assert.throws(() => out.write(fields, m), Declined, JSON.stringify(m));
      out.abandon();
    }
    const inherited = Object.create({ s: 'from the prototype' }) as ProtoRow;
    assert.throws(() => out.write(fields, inherited), Declined);
    out.abandon();
    assert.throws(() => out.write(fieldsOf(REQUIRED), { v: 1 }), Declined, 'a required field absent');
    out.abandon();
    out.write(fields, { s: 'after' });
    assert.ok(Buffer.from(out.finish()).equals(Buffer.from(TYPE.encode({ s: 'after' }).finish())));
  });

  it('does not take message types it cannot write (packed numbers, implicit presence, floats, unsigned, nested messages)', function () {
    const not = (json: protobuf.INamespace['nested']) =>
      fastFields(
        protobuf.Root.fromJSON({ nested: json }).lookupType('T').fieldsArray as unknown as ProtobufField[],
      );
    assert.equal(
      not({ T: { edition: 'proto2', fields: { a: { type: 'int64', id: 1, rule: 'repeated' } } } }),
      null,
    );
    // proto3's implicit presence: a zero or empty value is not written, which this writer does not model.
    assert.equal(not({ T: { fields: { a: { type: 'string', id: 1 } } } }), null);
    assert.equal(not({ T: { fields: { a: { type: 'float', id: 1 } } } }), null);
    assert.equal(not({ T: { fields: { a: { type: 'uint64', id: 1 } } } }), null);
    assert.equal(not({ T: { fields: { a: { type: 'sint32', id: 1 } } } }), null);
    assert.equal(
      not({ T: { fields: { a: { type: 'N', id: 1 } } }, N: { fields: { x: { type: 'string', id: 1 } } } }),
      null,
    );
  });

  it("a table's history and replica rows: RowEncoder writes the same bytes with and without the fast writer", function () {
    const columns: ColumnInfo[] = [
      { name: 'id', type: 'bigint', oid: 20, key: true },
      { name: 'small', type: 'smallint', oid: 21, key: false },
      { name: 'amount', type: 'numeric(12,2)', oid: 1700, key: false },
      { name: 'ratio', type: 'double precision', oid: 701, key: false },
      { name: 'flag', type: 'boolean', oid: 16, key: false },
      { name: 'note', type: 'text', oid: 25, key: false },
      { name: 'raw', type: 'bytea', oid: 17, key: false },
      { name: 'day', type: 'date', oid: 1082, key: false },
      { name: 'at', type: 'timestamp with time zone', oid: 1184, key: false },
      { name: 'local', type: 'timestamp without time zone', oid: 1114, key: false },
      { name: 'tod', type: 'time without time zone', oid: 1083, key: false },
      { name: 'doc', type: 'jsonb', oid: 3802, key: false },
      { name: 'labels', type: 'text[]', oid: 1009, key: false },
      { name: 'constructor', type: 'text', oid: 25, key: false },
      { name: '__proto__', type: 'text', oid: 25, key: false },
    ];
    const seq0 = '0000000000000000/0000000000000000';
    const history = planColumns(CHANGES_META_FIELDS, CHANGES_META_FIELDS, columns, seq0, false);
    const replica = planColumns(REPLICA_META_FIELDS, REPLICA_META_FIELDS, columns, seq0, false);
    const msg = { messageId: 'm', attributes: {}, batch: {} } as unknown as TableMessage;
    const row = (i: number): Record<string, string | null> => ({
      id: String(i * 7919 - 50_000),
      small: String((i % 65536) - 32768),
      amount: `${i}.${i % 100}`,
      ratio: ['1.5', '-Infinity', 'NaN', '0', '-0', '1e-300'][i % 6],
      flag: i % 2 ? 't' : 'f',
      note: i % 5 === 0 ? null : `note ${'é😀'.repeat(i % 9)} ${i}`,
      raw: i % 3 ? '\\x00ff10' : '\\x',
      day: ['1970-01-01', '0001-01-01', '9999-12-31', '2024-02-29'][i % 4],
      at: ['1970-01-01 00:00:00+00', '2024-05-06 07:08:09.123456+02', '0001-01-01 00:00:00+00'][i % 3],
      local: '2024-01-02 03:04:05.5',
      tod: '23:59:59.999999',
      doc: i % 4 ? `{"n": ${i}, "s": "x\\u0000y"}` : null,
      labels: i % 3 ? `{a,"b c",NULL,"${'é'.repeat(i % 4)}"}` : '{}',
      constructor: i % 2 ? `c${i}` : null,
      // An own property, as JSON.parse makes it (a computed key does not call the prototype setter).
      ['__proto__']: i % 2 ? null : `p${i}`,
    });
    const events: ChangeEvent[] = [];
    for (let i = 1; i <= 300; i++) {
      const seq = `0000000000000001/${i.toString(16).toUpperCase().padStart(16, '0')}`;
      const op: ChangeEvent['op'] = i % 10 === 0 ? 'd' : i % 3 === 0 ? 'u' : 'c';
      const after = op === 'd' ? null : row(i);
      events.push({
        op,
        key: { id: row(i).id },
        before: op === 'd' ? { id: row(i).id } : op === 'u' && i % 6 === 0 ? { id: row(i + 1).id } : null,
        after,
        unchanged: [],
        fromSource: [],
        lsn: '0/16B3748',
        commitLsn: '0/16B37A0',
        xid: i % 7 === 0 ? 4294967295 : 700 + i,
        commitTs: '2024-05-06 07:08:09.123456+00',
        seq,
      });
    }
    let compared = 0;
    for (const [plan, cdc, rowsOf] of [
      [history, false, (w: ReturnType<typeof decodeEvent>) => [historyRow(w)]],
      [replica, true, replicaRows],
    ] as const) {
      const fast = new RowEncoder(plan.fields, cdc);
      const slow = new RowEncoder(plan.fields, cdc, { fast: false });
      for (const ev of events) {
        const w = decodeEvent(ev, msg, plan.mapping, ['id'], true, new Map());
        // A delete carries the key only: the column named like Object.prototype's `constructor` has no value
        // (it once had the Object function, which protobufjs wrote as its source text).
        if (ev.op === 'd') assert.ok(!Object.hasOwn(w.values, 'constructor'), ev.seq);
        // "__proto__" has a BigQuery name of its own (sink/names.ts), which holds the value.
        else
          assert.equal(
            w.values[plan.mapping.find((m) => m.column.name === '__proto__')!.field],
            ev.after!.__proto__,
          );
        for (const r of rowsOf(w)) {
          const bytes = fast.encode(r);
          // A view of the fast writer's 1 MiB slab (protobufjs hands out a Buffer of the row's size).
          assert.ok(bytes.buffer.byteLength >= 1024 * 1024, `written by the fast writer: ${ev.op} ${ev.seq}`);
          assert.ok(Buffer.from(bytes).equals(Buffer.from(slow.encode(r))), `${ev.op} ${ev.seq}`);
          compared += 1;
        }
      }
    }
    assert.ok(compared > 550, `${compared} rows compared`);
  });
});
