import assert from 'node:assert/strict';
import { parseArray, parseBytea, parseDate, parseTimestamptz, ValueError } from '../../sink/pg-text';
import { mapColumn, restToProto } from '../../sink/type-map';

const col = (type: string, oid = 0) => mapColumn({ type, oid });

describe('sink: Postgres → BigQuery type map', function () {
  it('integers of every width are INT64 and keep all 64 bits', function () {
    for (const t of ['smallint', 'integer', 'bigint']) assert.equal(col(t).bqType, 'INT64');
    // Exact either way: a JS number up to 15 digits, the decimal text beyond (protobufjs parses it exactly).
    assert.equal(col('bigint').convert('-9223372036854775808'), '-9223372036854775808');
    assert.equal(col('bigint').convert('9007199254740993'), '9007199254740993');
    assert.equal(col('bigint').convert('999999999999999'), 999999999999999);
    assert.equal(col('integer').convert('-42'), -42);
    assert.throws(() => col('integer').convert('4e2'), ValueError);
  });

  it('numeric within NUMERIC precision is NUMERIC, anything wider or unconstrained is BIGNUMERIC', function () {
    assert.equal(col('numeric(38,9)').bqType, 'NUMERIC');
    assert.equal(col('numeric(10,2)').bqType, 'NUMERIC');
    assert.equal(col('numeric(40,2)').bqType, 'BIGNUMERIC');
    assert.equal(col('numeric(20,12)').bqType, 'BIGNUMERIC');
    assert.equal(col('numeric').bqType, 'BIGNUMERIC');
    assert.equal(col('numeric(10,2)').convert('-0012.50'), '-12.5');
  });

  it('numeric NaN, infinities and values beyond BIGNUMERIC are refused with a reason', function () {
    for (const v of ['NaN', 'Infinity', '-Infinity', '1' + '0'.repeat(40), '0.' + '1'.repeat(39)]) {
      assert.throws(() => col('numeric').convert(v), ValueError, v);
    }
  });

  it('floats keep NaN and infinities, which BigQuery FLOAT64 holds', function () {
    const f = col('double precision');
    assert.equal(f.bqType, 'FLOAT64');
    assert.ok(Number.isNaN(f.convert('NaN') as number));
    assert.equal(f.convert('-Infinity'), -Infinity);
    assert.equal(f.convert('1.5e-7'), 1.5e-7);
  });

  it('booleans, bytea, json and text map to BOOL, BYTES, JSON and STRING', function () {
    assert.equal(col('boolean').convert('t'), true);
    assert.equal(col('boolean').convert('f'), false);
    assert.deepEqual(col('bytea').convert('\\x00ff10'), Buffer.from([0, 255, 16]));
    assert.deepEqual(parseBytea('a\\\\b\\001'), Buffer.from([0x61, 0x5c, 0x62, 1]));
    assert.equal(col('jsonb').bqType, 'JSON');
    for (const t of [
      'text',
      'character varying(255)',
      'character(3)',
      'uuid',
      'inet',
      'cidr',
      'interval',
      'money',
      'time with time zone',
      'mood',
      '"Mood"',
    ]) {
      assert.equal(col(t).bqType, 'STRING', t);
    }
    assert.equal(col('money').convert('$1,234.50'), '$1,234.50');
  });

  it('dates and timestamps keep microseconds and clamp ±infinity to the ends of BigQuery time', function () {
    assert.equal(parseDate('1970-01-02'), 1);
    assert.equal(parseDate('1969-12-31'), -1);
    assert.equal(parseDate('infinity'), parseDate('9999-12-31'));
    assert.equal(parseDate('-infinity'), parseDate('0001-01-01'));
    assert.throws(() => parseDate('0044-03-15 BC'), ValueError);
    assert.equal(parseTimestamptz('1970-01-01 00:00:01.000002+00'), 1000002);
    assert.equal(parseTimestamptz('1970-01-01 05:30:00+05:30'), 0);
    assert.equal(parseTimestamptz('2024-02-29 12:00:00.5-03'), Date.UTC(2024, 1, 29, 15) * 1000 + 500000);
    assert.equal(parseTimestamptz('infinity'), '253402300799999999');
    assert.equal(
      col('timestamp without time zone').convert('2024-01-02 03:04:05.123456'),
      '2024-01-02 03:04:05.123456',
    );
    assert.equal(col('timestamp(3) without time zone').convert('-infinity'), '0001-01-01 00:00:00');
    assert.equal(col('time without time zone').convert('23:59:59.999999'), '23:59:59.999999');
    assert.throws(() => col('time').convert('24:00:00'), ValueError);
    assert.equal(col('timestamp with time zone').bqType, 'TIMESTAMP');
  });

  it('timestamps: the fast path agrees with exact arithmetic on every shape Postgres prints', function () {
    // Exact reference: BigInt microseconds from the parts, whatever the fast path does with numbers.
    const exact = (
      y: number,
      mo: number,
      d: number,
      h: number,
      mi: number,
      s: number,
      us: number,
      off: number,
    ) => {
      const t = new Date(0);
      t.setUTCFullYear(y, mo - 1, d); // (Date.UTC would read years 0-99 as 1900-1999)
      t.setUTCHours(h, mi, s, 0);
      return (BigInt(t.getTime()) * 1000n + BigInt(us) - BigInt(off) * 1_000_000n).toString();
    };
    const pad = (n: number, w = 2) => String(n).padStart(w, '0');
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let i = 0; i < 2000; i++) {
      const y = [1, 1686, 1900, 1970, 2024, 2255, 2400, 9999][rnd(8)];
      const [mo, d, h, mi, s] = [1 + rnd(12), 1 + rnd(28), rnd(24), rnd(60), rnd(60)];
      const digits = rnd(7);
      const fracText = digits ? String(rnd(10 ** digits)).padStart(digits, '0') : '';
      const us = digits ? Number(fracText.padEnd(6, '0')) : 0;
      const oh = rnd(15);
      const om = [0, 30, 45][rnd(3)];
      const os = rnd(4) === 0 ? rnd(60) : 0;
      const sign = rnd(2) ? 1 : -1;
      const offText =
        (sign > 0 ? '+' : '-') + pad(oh) + (om || os ? `:${pad(om)}` : '') + (os ? `:${pad(os)}` : '');
      const text = `${pad(y, 4)}-${pad(mo)}-${pad(d)} ${pad(h)}:${pad(mi)}:${pad(s)}${digits ? '.' + fracText : ''}${offText}`;
      const want = exact(y, mo, d, h, mi, s, us, sign * (oh * 3600 + om * 60 + os));
      let got: string;
      try {
        got = String(parseTimestamptz(text));
      } catch (e) {
        // Only the ends of BigQuery's range (year 1 minus an offset, or past 9999) may be refused.
        assert.ok(e instanceof ValueError && (y === 1 || y === 9999), text);
        continue;
      }
      assert.equal(got, want, text);
      const local = text.slice(0, text.length - offText.length);
      assert.equal(col('timestamp').convert(local), local);
    }
    // Shapes the fast path leaves to the full parser.
    assert.equal(
      String(parseTimestamptz('2024-01-02T03:04:05+00')),
      String(parseTimestamptz('2024-01-02 03:04:05+00')),
    );
    assert.throws(() => parseTimestamptz('12024-01-02 03:04:05+00'), /outside BigQuery's range/);
    assert.throws(() => parseTimestamptz('2024-01-02 03:04:05'), /no UTC offset/);
    assert.throws(() => parseTimestamptz('2024-01-02 03:04:05.1234567+00'), ValueError);
    assert.throws(() => parseTimestamptz('0044-03-15 12:00:00+00 BC'), ValueError);
    assert.throws(() => col('timestamp').convert('2024-01-02 03:04:05.1234567'), ValueError);
  });

  it('a converter remembers its last value, never a refusal', function () {
    const ts = col('timestamp with time zone');
    assert.equal(ts.convert('1970-01-01 00:00:01+00'), 1_000_000);
    assert.equal(ts.convert('1970-01-01 00:00:01+00'), 1_000_000);
    assert.throws(() => ts.convert('soon'), ValueError);
    assert.throws(() => ts.convert('soon'), ValueError);
    assert.equal(ts.convert('1970-01-01 00:00:02+00'), 2_000_000);
  });

  it('arrays become REPEATED of their element type; NULL elements and nested arrays are refused', function () {
    const a = col('integer[]');
    assert.equal(a.bqType, 'INT64');
    assert.equal(a.repeated, true);
    assert.deepEqual(a.convert('{1,2,-3}'), [1, 2, -3]);
    assert.deepEqual(col('text[]').convert('{"a b","c\\"d",plain,"NULL"}'), ['a b', 'c"d', 'plain', 'NULL']);
    assert.deepEqual(col('text[]').convert('{}'), []);
    assert.deepEqual(col('integer[]').convert('[0:1]={5,6}'), [5, 6]);
    assert.throws(() => a.convert('{1,NULL}'), /NULL element/);
    assert.throws(() => a.convert('{{1,2},{3,4}}'), /multi-dimensional/);
    assert.deepEqual(parseArray('{"\\\\x01"}'), ['\\x01']);
    assert.deepEqual(col('bytea[]').convert('{"\\\\x01"}'), [Buffer.from([1])]);
  });

  it('a type known only by its OID still maps (pgoutput without names)', function () {
    assert.equal(mapColumn({ type: 'int8', oid: 20 }).bqType, 'INT64');
    assert.equal(mapColumn({ type: 'something', oid: 1016 }).repeated, true);
  });

  it('values read back through REST convert to what the Storage Write API takes', function () {
    assert.equal(restToProto('DATE', false, '1970-01-03'), 2);
    assert.equal(restToProto('TIMESTAMP', false, '1700000000123456'), '1700000000123456');
    assert.deepEqual(restToProto('BYTES', false, Buffer.from('hi').toString('base64')), Buffer.from('hi'));
    assert.deepEqual(restToProto('INT64', true, [{ v: '1' }, { v: '2' }]), ['1', '2']);
    assert.equal(restToProto('DATETIME', false, '2024-01-02T03:04:05.5'), '2024-01-02 03:04:05.5');
  });

  it("box[] (whose elements are separated by ';') stays its Postgres text instead of being split on commas", function () {
    const m = col('box[]', 1020);
    assert.equal(m.repeated, false);
    assert.equal(m.convert('{(1,1),(0,0);(2,2),(1,1)}'), '{(1,1),(0,0);(2,2),(1,1)}');
  });
});

describe('sink: key columns and exact JSON', function () {
  it('key columns of types a BigQuery primary key cannot have are STRING with the Postgres text', function () {
    for (const [type, oid] of [
      ['bytea', 17],
      ['real', 700],
      ['double precision', 701],
      ['time without time zone', 1083],
      ['jsonb', 3802],
      ['integer[]', 1007],
    ] as const) {
      const m = mapColumn({ type, oid, key: true });
      assert.equal(m.bqType, 'STRING', type);
      assert.equal(m.repeated, false);
      assert.equal(m.convert('\\x0102'), '\\x0102');
    }
    assert.equal(mapColumn({ type: 'bigint', oid: 20, key: true }).bqType, 'INT64');
    assert.equal(mapColumn({ type: 'date', oid: 1082, key: true }).bqType, 'DATE');
    assert.equal(mapColumn({ type: 'bytea', oid: 17, key: false }).bqType, 'BYTES');
  });

  it('JSON numbers BigQuery cannot store exactly are refused (they go to the companion column)', function () {
    const json = mapColumn({ type: 'jsonb', oid: 3802 });
    for (const ok of [
      '{"a": 1}',
      '[1.5, -2, 0.1, 1e300]',
      '{"n": 18446744073709551615}',
      '"12345678901234567890123"',
    ])
      assert.equal(json.convert(ok), ok);
    for (const bad of ['{"a": 123456789012345678901234567890}', '[1.00000000000000000001]', '{"x": 1e400}'])
      assert.throws(() => json.convert(bad), ValueError, bad);
  });
});
