// Rows are serialised straight from the converted values (no fromObject copy) and as two halves (source
// values, then meta columns) without merging them: the bytes must decode to exactly what the old path
// (merge, fromObject, encode) produced, for every column type, NULLs, zeros, empty strings and arrays.

import assert from 'node:assert/strict';
import { adapt } from '@google-cloud/bigquery-storage';
import * as protobuf from 'protobufjs';
import 'protobufjs/ext/descriptor';
import type { ChangeEvent, ColumnInfo } from '../../contract/events';
import { compareSeq } from '../../contract/lsn';
import type { TableField } from '../../sink/bigquery-rest';
import { decodeEvent, TableMessage } from '../../sink/event-work';
import { historyRow } from '../../sink/history-rows';
import { replicaRows } from '../../sink/replica-rows';
import { ProtoRow, RowEncoder, SplitRow } from '../../sink/storage-writer';
import { CHANGES_META_FIELDS, planColumns, REPLICA_META_FIELDS } from '../../sink/table-schema';

const COLUMNS: ColumnInfo[] = [
  { name: 'id', type: 'bigint', oid: 20, key: true },
  { name: 'small', type: 'smallint', oid: 21, key: false },
  { name: 'big', type: 'bigint', oid: 20, key: false },
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
  { name: 'tags', type: 'integer[]', oid: 1007, key: false },
  { name: 'Mixed Case', type: 'text', oid: 25, key: false },
];

/** The message type as the old code built it, and its encode path (merge, fromObject, encode). */
function reference(fields: TableField[], cdc: boolean) {
  const schema = adapt.convertBigQuerySchemaToStorageTableSchema({ fields });
  const options = cdc ? [adapt.withChangeType(), adapt.withChangeSequenceNumber()] : [];
  const descriptor = adapt.convertStorageSchemaToProto2Descriptor(schema, 'root', ...options);
  const fromDescriptor = (protobuf.Type as unknown as { fromDescriptor(d: unknown): protobuf.Type })
    .fromDescriptor;
  const type = fromDescriptor(adapt.normalizeDescriptor(descriptor));
  const merged = (r: SplitRow | ProtoRow): ProtoRow =>
    r instanceof SplitRow ? { ...r.values, ...r.meta } : r;
  return {
    encode: (r: SplitRow | ProtoRow) => type.encode(type.fromObject(merged(r))).finish(),
    read: (bytes: Uint8Array) =>
      type.toObject(type.decode(bytes), { longs: String, bytes: String, defaults: false, arrays: false }),
  };
}

function event(i: number, op: ChangeEvent['op'], after: Record<string, string | null> | null): ChangeEvent {
  const seq = `0000000000000001/${i.toString(16).toUpperCase().padStart(16, '0')}`;
  return {
    op,
    key: { id: String(i) },
    before: op === 'd' || op === 'u' ? { id: String(op === 'u' ? i + 1000 : i) } : null,
    after,
    unchanged: [],
    fromSource: [],
    lsn: '0/16B3748',
    commitLsn: '0/16B37A0',
    xid: 700 + i,
    commitTs: i % 2 ? '2024-05-06 07:08:09.123456+00' : '2301-01-01 00:00:00+05:30',
    seq,
  };
}

describe('sink: row encoding', function () {
  const seq0 = '0000000000000000/0000000000000000';
  const history = planColumns(CHANGES_META_FIELDS, CHANGES_META_FIELDS, COLUMNS, seq0, false);
  const replica = planColumns(REPLICA_META_FIELDS, REPLICA_META_FIELDS, COLUMNS, seq0, false);
  const msg = { messageId: 'm', attributes: {}, batch: {} } as unknown as TableMessage;
  const full: Record<string, string | null> = {
    id: '1',
    small: '-32768',
    big: '-9223372036854775808',
    amount: '-0012.50',
    ratio: '-Infinity',
    flag: 'f',
    note: '',
    raw: '\\x00ff',
    day: '1970-01-01',
    at: '1970-01-01 00:00:00+00',
    local: '2024-01-02 03:04:05.5',
    tod: '00:00:00',
    doc: '{"a": [1, 2.5, "x"]}',
    tags: '{0,-1,2147483647}',
    'Mixed Case': 'é',
  };
  const zeros: Record<string, string | null> = {
    ...full,
    id: '0',
    small: '0',
    big: '0',
    amount: '0',
    ratio: '0',
    flag: 'f',
    tags: '{}',
    note: '',
  };
  const nulls = Object.fromEntries(COLUMNS.map((c) => [c.name, c.key ? '2' : null]));
  const events = [
    event(1, 'c', full),
    event(2, 'c', zeros),
    event(3, 'u', { ...nulls, id: '3' }),
    event(4, 'd', null),
    event(5, 'u', { ...full, id: '5', big: '9007199254740993', at: '9999-12-31 23:59:59.999999+00' }),
  ];

  it('history rows decode the same as through fromObject, zeros and empty values included', function () {
    const encoder = new RowEncoder(history.fields, false);
    const ref = reference(history.fields, false);
    for (const ev of events) {
      const w = decodeEvent(ev, msg, history.mapping, ['id'], true, new Map());
      const row = historyRow(w);
      const got = ref.read(encoder.encode(row));
      assert.deepEqual(got, ref.read(ref.encode(row)), ev.seq);
      assert.equal(got._event_id, ev.seq);
      if (ev.seq.endsWith('2')) {
        // proto2 presence: a zero, false or empty string is a value, not NULL.
        for (const f of ['small', 'big', 'amount', 'ratio', 'flag', 'note', 'id']) assert.ok(f in got, f);
      }
    }
  });

  it('replica upserts and deletes decode the same as through fromObject', function () {
    const encoder = new RowEncoder(replica.fields, true);
    const ref = reference(replica.fields, true);
    let n = 0;
    for (const ev of events) {
      const w = decodeEvent(ev, msg, replica.mapping, ['id'], true, new Map());
      for (const row of replicaRows(w)) {
        assert.deepEqual(ref.read(encoder.encode(row)), ref.read(ref.encode(row)), ev.seq);
        n += 1;
      }
    }
    assert.equal(n, 7, 'c, c, u with a key change (delete + upsert), d, u with a key change');
  });
});

describe('sink: change sequence order', function () {
  it("compareSeq's fast path agrees with comparing the sections as numbers", function () {
    const exact = (a: string, b: string) => {
      const as = a.split('/');
      const bs = b.split('/');
      for (let i = 0; i < Math.max(as.length, bs.length); i++) {
        const x = BigInt('0x' + (as[i] ?? '0'));
        const y = BigInt('0x' + (bs[i] ?? '0'));
        if (x !== y) return x < y ? -1 : 1;
      }
      return 0;
    };
    let seed = 11;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const hex = (w: number, lower: boolean) => {
      let t = '';
      for (let i = 0; i < w; i++) t += '0123456789ABCDEF'[rnd(16)];
      return lower && rnd(2) ? t.toLowerCase() : t;
    };
    const seq = () => {
      const sections = 1 + rnd(4);
      const fixed = rnd(3) > 0;
      return Array.from({ length: sections }, () => hex(fixed ? 16 : 1 + rnd(4), !fixed)).join('/');
    };
    for (let i = 0; i < 20000; i++) {
      const a = seq();
      // Often a near neighbour (shared prefix), as consecutive events are.
      const b = rnd(2) ? a.slice(0, rnd(a.length + 1)) + seq().slice(0, a.length) : seq();
      assert.equal(compareSeq(a, b), exact(a, b), `${a} vs ${b}`);
    }
    assert.equal(compareSeq('1A/00', '190/0'), -1);
    assert.equal(compareSeq('0a', '0B'), -1);
    assert.equal(compareSeq('1', '1/0'), 0);
  });
});
