import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { ContractError, decodeBatch, encodeBatch, encodeSerializedBatch } from '../../contract/codec';
import { EventBatch } from '../../contract/events';
import { changeSeq, compareSeq, formatLsn, parseLsn } from '../../contract/lsn';

const batch: EventBatch = {
  v: 1,
  schema: 'public',
  table: 'items',
  columns: [{ name: 'id', type: 'bigint', oid: 20, key: true }],
  events: [
    {
      op: 'c',
      key: { id: '9223372036854775807' },
      before: null,
      after: { id: '9223372036854775807' },
      unchanged: [],
      fromSource: [],
      lsn: '0/16B3748',
      commitLsn: '0/16B37A0',
      xid: 751,
      commitTs: '2026-11-25 17:39:30.363470+00',
      seq: changeSeq(parseLsn('0/16B37A0'), 0),
    },
  ],
};

describe('change-event contract', () => {
  it('LSNs round-trip between text and bigint', () => {
    for (const t of ['0/0', '0/16B3748', '16/B374D848', 'FFFFFFFF/FFFFFFFF'])
      assert.equal(formatLsn(parseLsn(t)), t);
    assert.throws(() => parseLsn('16B3748'), /not a PostgreSQL LSN/);
  });

  it('sequences order by commit LSN, then ordinal, as BigQuery compares them section by section', () => {
    const a = changeSeq(parseLsn('0/FFFF'), 9);
    const b = changeSeq(parseLsn('1/0'), 0);
    assert.ok(compareSeq(a, b) < 0 && a < b, 'fixed width makes string order agree');
    assert.equal(compareSeq('A/1', '9/FFFF'), 1);
    assert.equal(a, '000000000000FFFF/0000000000000009');
  });

  it('a batch survives encoding with and without gzip, int8 included', async () => {
    for (const enc of ['json', 'json+gzip'] as const) {
      const { data, attributes } = await encodeBatch(batch, enc);
      assert.deepEqual(decodeBatch(data, attributes), batch);
      assert.equal(attributes.count, '1');
      assert.equal(attributes.firstSeq, batch.events[0].seq);
    }
  });

  it('a gzip payload decodes with its ISIZE trailer exact or over several members, and a wrong trailer is poison', async () => {
    // The sink sizes gunzip's output buffer from the trailer (contract/codec.ts); a wrong trailer must only
    // cost a copy. Events big enough that the text passes zlib's default 16 KiB chunk.
    const big: EventBatch = {
      ...batch,
      events: Array.from({ length: 300 }, (_, i) => ({
        ...batch.events[0],
        key: { id: String(i) },
        after: { id: String(i) },
        seq: changeSeq(parseLsn('0/16B37A0'), i),
      })),
    };
    const { data, attributes } = await encodeBatch(big, 'json+gzip');
    const text = JSON.stringify(big);
    assert.ok(text.length > 64 * 1024);
    assert.equal(data.readUInt32LE(data.length - 4), Buffer.byteLength(text));
    const withSize = (n: number) => {
      const d = Buffer.from(data);
      d.writeUInt32LE(n, d.length - 4);
      return d;
    };
    // A wrong ISIZE fails gzip's own check of the trailer: a clear poison reason, not a wrong batch.
    for (const n of [0, 10, Buffer.byteLength(text) - 1, Buffer.byteLength(text) + 1, 2 ** 32 - 1]) {
      assert.throws(() => decodeBatch(withSize(n), attributes), /not valid gzip/, String(n));
    }
    assert.deepEqual(decodeBatch(withSize(Buffer.byteLength(text)), attributes), big);
    // Two members (RFC 1952 allows it; gunzip reads both): the trailer names the last one only.
    const json = Buffer.from(text);
    const half = Math.floor(json.length / 2);
    const two = Buffer.concat([gzipSync(json.subarray(0, half)), gzipSync(json.subarray(half))]);
    assert.ok(two.readUInt32LE(two.length - 4) < json.length);
    assert.deepEqual(decodeBatch(two, attributes), big);
  });

  it('pre-serialised events encode to the same payload as parsed ones', async () => {
    const a = await encodeBatch(batch, 'json');
    const { events, ...header } = batch;
    const b = await encodeSerializedBatch(
      header,
      events.map((e) => JSON.stringify(e)),
      events[0].seq,
      events[0].seq,
      'json',
    );
    assert.equal(b.data.toString(), a.data.toString());
    assert.deepEqual(b.attributes, a.attributes);
  });

  it('fromSource and superseded survive encoding; older payloads without them read as none', async () => {
    const resolved: EventBatch = {
      ...batch,
      events: [
        { ...batch.events[0], op: 'u', after: { id: '1', doc: 'v' }, fromSource: ['doc'] },
        { ...batch.events[0], op: 'u', after: { id: '2' }, unchanged: ['doc'], superseded: true },
      ],
    };
    const { data, attributes } = await encodeBatch(resolved, 'json+gzip');
    assert.deepEqual(decodeBatch(data, attributes), resolved);
    const { fromSource, ...legacy } = batch.events[0];
    assert.deepEqual(fromSource, []);
    const old = decodeBatch(Buffer.from(JSON.stringify({ ...batch, events: [legacy] })), {});
    assert.deepEqual(old.events[0].fromSource, []);
    assert.equal(old.events[0].superseded, undefined);
  });

  it('poison payloads are rejected with a reason that says what is wrong', () => {
    const bad =
      (data: string, attrs: Record<string, string> = {}) =>
      () =>
        decodeBatch(Buffer.from(data), attrs);
    assert.throws(bad('not json'), (e: Error) => e instanceof ContractError && /not JSON/.test(e.message));
    assert.throws(bad('{}', { v: '9' }), /unknown contract version/);
    assert.throws(
      bad('{"v":1,"schema":"s","table":"t","columns":[],"events":[{"op":"x"}]}'),
      /"op" must be one of/,
    );
    assert.throws(bad('{"v":1,"schema":"s","columns":[],"events":[]}'), /"table" must be a string/);
    assert.throws(bad('\u001f\u008b garbage', { encoding: 'json+gzip' }), /not valid gzip/);
    const noAfter = { ...batch, events: [{ ...batch.events[0], after: null }] };
    assert.throws(bad(JSON.stringify(noAfter)), /needs "after"/);
    const ghost = { ...batch, events: [{ ...batch.events[0], fromSource: ['doc'] }] };
    assert.throws(bad(JSON.stringify(ghost)), /"fromSource" names "doc", which "after" does not hold/);
    const notTrue = { ...batch, events: [{ ...batch.events[0], superseded: false }] };
    assert.throws(bad(JSON.stringify(notTrue)), /"superseded" must be true/);
  });
});
