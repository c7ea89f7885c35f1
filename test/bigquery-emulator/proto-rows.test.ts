// The compiled row conversion (proto-rows.ts) must give exactly what the general path gives: protobufjs
// toObject({longs: String}) and fromProtoScalar per value. These tests run both on the same randomly
// generated rows (seeded, so a failure repeats) and compare values and errors row by row.
import { strict as assert } from 'node:assert';
import * as protobuf from 'protobufjs';
import {
  compileRowPlan,
  convertObjectRow,
  decodeWithTextLongs,
  longToString,
  scalarConverter,
} from '../../local/bigquery-emulator/proto-rows';
import { findField, normalizeSchema, type FieldSchema } from '../../local/bigquery-emulator/schema';
import { compareSequences, isValidSequence } from '../../local/bigquery-emulator/store';
import { parseDecimal } from '../../local/bigquery-emulator/values';

/** The `long` package protobufjs decodes 64-bit fields into (its types are not a dependency of ours). */
interface LongValue {
  low: number;
  high: number;
  unsigned: boolean;
  toString(): string;
}
const Long = protobuf.util.Long as unknown as {
  fromNumber(n: number): LongValue;
  fromString(s: string): LongValue;
  fromBits(low: number, high: number, unsigned?: boolean): LongValue;
};

/** xorshift32: a small seeded generator, so every run checks the same cases. */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

type Outcome = { ok: unknown } | { error: string };
function outcome(f: () => unknown): Outcome {
  try {
    return { ok: f() };
  } catch (err) {
    return { error: `${(err as Error).name}: ${(err as Error).message}` };
  }
}

const COLUMNS: FieldSchema[] = normalizeSchema({
  fields: [
    { name: 'req', type: 'STRING', mode: 'REQUIRED' },
    { name: 'i_int64', type: 'INT64' },
    { name: 'i_sint64', type: 'INT64' },
    { name: 'i_sfixed64', type: 'INT64' },
    { name: 'i_int32', type: 'INT64' },
    { name: 'i_uint32', type: 'INT64' },
    { name: 'i_sint32', type: 'INT64' },
    { name: 'i_fixed32', type: 'INT64' },
    { name: 'i_enum', type: 'INT64' },
    { name: 'ts', type: 'TIMESTAMP' },
    { name: 'ts_int32', type: 'TIMESTAMP' },
    { name: 's', type: 'STRING' },
    { name: 's_max', type: 'STRING', maxLength: '3' },
    { name: 's_enum', type: 'STRING' },
    { name: 'f', type: 'FLOAT64' },
    { name: 'f32', type: 'FLOAT64' },
    { name: 'b', type: 'BOOL' },
    { name: 'b_int', type: 'BOOL' },
    { name: 'n', type: 'NUMERIC' },
    { name: 'n_p', type: 'NUMERIC', precision: '6', scale: '2' },
    { name: 'bn', type: 'BIGNUMERIC' },
    { name: 'n_int', type: 'NUMERIC' },
    { name: 'n_double', type: 'NUMERIC' },
    { name: 'by', type: 'BYTES' },
    { name: 'by_s', type: 'BYTES' },
    { name: 'd', type: 'DATE' },
    { name: 'd_s', type: 'DATE' },
    { name: 'j', type: 'JSON' },
    { name: 'dup', type: 'INT64' },
    { name: 'rep', type: 'INT64', mode: 'REPEATED' },
    { name: 'rep_s', type: 'STRING', mode: 'REPEATED' },
    {
      name: 'rec',
      type: 'RECORD',
      fields: [
        { name: 'x', type: 'INT64', mode: 'REQUIRED' },
        { name: 'y', type: 'STRING' },
      ],
    },
    { name: 'recs', type: 'RECORD', mode: 'REPEATED', fields: [{ name: 'x', type: 'INT64' }] },
    { name: 'untouched', type: 'STRING' },
    { name: 'untouched_rep', type: 'STRING', mode: 'REPEATED' },
  ],
}).fields;

/** proto field name → [proto type, repeated?]; `Dup` and `dup` both write column `dup` (names ignore case). */
const PROTO_FIELDS: Array<[string, string, boolean?]> = [
  ['req', 'string'],
  ['i_int64', 'int64'],
  ['i_sint64', 'sint64'],
  ['i_sfixed64', 'sfixed64'],
  ['i_int32', 'int32'],
  ['i_uint32', 'uint32'],
  ['i_sint32', 'sint32'],
  ['i_fixed32', 'fixed32'],
  ['i_enum', 'Kind'],
  ['ts', 'int64'],
  ['ts_int32', 'int32'],
  ['s', 'string'],
  ['s_max', 'string'],
  ['s_enum', 'Kind'],
  ['f', 'double'],
  ['f32', 'float'],
  ['b', 'bool'],
  ['b_int', 'int64'],
  ['n', 'string'],
  ['n_p', 'string'],
  ['bn', 'string'],
  ['n_int', 'int64'],
  ['n_double', 'double'],
  ['by', 'bytes'],
  ['by_s', 'string'],
  ['d', 'int32'],
  ['d_s', 'string'],
  ['j', 'string'],
  ['Dup', 'int64'],
  ['dup', 'int64'],
  ['rep', 'int64', true],
  ['rep_s', 'string', true],
  ['rec', 'Rec'],
  ['recs', 'Recs', true],
];

function writerType(): protobuf.Type {
  const root = new protobuf.Root();
  const row = new protobuf.Type('Row');
  row.add(new protobuf.Enum('Kind', { ZERO: 0, ONE: 1, SEVEN: 7 }));
  row.add(
    new protobuf.Type('Rec')
      .add(new protobuf.Field('x', 1, 'int64', 'required'))
      .add(new protobuf.Field('y', 2, 'string', 'optional')),
  );
  row.add(new protobuf.Type('Recs').add(new protobuf.Field('x', 1, 'int64', 'optional')));
  PROTO_FIELDS.forEach(([name, type, repeated], i) =>
    row.add(new protobuf.Field(name, i + 1, type, repeated ? 'repeated' : 'optional')),
  );
  root.define('t').add(row);
  root.resolveAll();
  return row;
}

const DECIMAL_TEXTS = [
  '0',
  '-0',
  '-0.000',
  '007.50',
  '1.',
  '.5',
  '+1.5',
  ' 1.5',
  '1e3',
  '1.0000000005',
  '1234.5',
  '9999.99',
  '10000.00',
  '-9999.995',
  '99999999999999999999999999999.999999999',
  '100000000000000000000000000000',
  'abc',
  '',
  '1.2.3',
];
const JSON_TEXTS = ['{"a":1}', '[1, 2.5, "x"]', '{"a":1e400}', '12345678901234567890123', 'nope', 'null'];
const STRING_TEXTS = ['', 'ab', 'abc', 'abcd', '😀😀😀', '😀😀😀😀', '2024-02-29', '2023-02-29', 'UPSERT'];

/** Mostly values a writer would send for the column; one in 20 is anything of the proto type. */
function randomValue(next: () => number, type: string, field = ''): unknown {
  const pick = <T>(xs: T[]): T => xs[Math.floor(next() * xs.length)];
  const bits = (): number => Math.floor(next() * 4294967296) | 0;
  const wild = next() < 0.05;
  switch (type) {
    case 'int64':
    case 'sint64':
    case 'sfixed64': {
      if (wild) return Long.fromBits(bits(), bits());
      if (field.startsWith('ts'))
        return pick([
          Long.fromNumber(Math.floor(next() * 1.7e15)),
          Long.fromString('253402300799999999'),
          Long.fromString('-62135596800000000'),
          Long.fromString(pick(['253402300800000000', '-62135596800000001'])),
        ]);
      if (field === 'b_int') return Long.fromNumber(Math.floor(next() * 3));
      return next() < 0.5
        ? Long.fromNumber(Math.floor((next() - 0.5) * 2e6))
        : Long.fromNumber(Math.floor((next() - 0.5) * 2 ** 62));
    }
    case 'int32':
    case 'sint32':
    case 'sfixed32':
      if (field === 'd') return wild ? bits() : Math.floor((next() - 0.5) * 2e6);
      return wild || next() < 0.5 ? bits() : Math.floor((next() - 0.5) * 200);
    case 'uint32':
    case 'fixed32':
      return bits() >>> 0;
    case 'Kind':
      return pick([0, 1, 7]);
    case 'double':
      return pick([0, -0, 1.5, -2.25e-300, 1e21, 0.1 + 0.2, Number.NaN, Infinity, next() * 1e6]);
    case 'float':
      return pick([0, 1.5, 3.4e38, next()]);
    case 'bool':
      return next() < 0.5;
    case 'bytes':
      return Buffer.from(Array.from({ length: Math.floor(next() * 6) }, () => Math.floor(next() * 256)));
    default: {
      if (wild) return pick([...DECIMAL_TEXTS, ...JSON_TEXTS, ...STRING_TEXTS]);
      if (field === 'n' || field === 'n_p' || field === 'bn')
        return pick(['0', '-0.000', '007.50', '1234.5', '9999.99', '-12.3', String(next() * 1000)]);
      if (field === 'j') return pick(['{"a":1}', '[1, 2.5, "x"]', 'null', '"s"']);
      if (field === 'd_s') return pick(['2024-02-29', '1999-12-31']);
      if (field === 's_max') return pick(['', 'ab', 'abc', '😀😀😀']);
      return pick(STRING_TEXTS);
    }
  }
}

function randomRow(next: () => number): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  for (const [name, type, repeated] of PROTO_FIELDS) {
    if (next() < 0.4 && name !== 'req') continue;
    if (type === 'Rec') {
      row[name] =
        next() < 0.02 ? { y: 'no x' } : { x: randomValue(next, 'int64'), y: randomValue(next, 'string') };
    } else if (type === 'Recs') {
      row[name] = Array.from({ length: Math.floor(next() * 3) }, () => ({ x: randomValue(next, 'int64') }));
    } else if (repeated) {
      row[name] = Array.from({ length: Math.floor(next() * 3) }, () => randomValue(next, type, name));
    } else row[name] = randomValue(next, type, name);
  }
  return row;
}

describe('BigQuery emulator: compiled Storage Write row conversion', () => {
  it('prints a Long exactly as Long#toString does, signed and unsigned', () => {
    const next = random(7);
    const edges: Array<[number, number]> = [
      [0, 0],
      [-1, -1],
      [0, 0x200000],
      [-1, 0x1fffff],
      [0, -0x200000],
      [-1, -0x200001],
      [0, 0x80000000 | 0],
      [-1, 0x7fffffff],
    ];
    for (let i = 0; i < 20000; i++) {
      const [low, high] = i < edges.length ? edges[i] : [next() * 2 ** 32, next() * 2 ** 32];
      for (const unsigned of [false, true]) {
        const long = Long.fromBits(low | 0, high | 0, unsigned);
        assert.equal(longToString(long), long.toString(), `${low}/${high}/${unsigned}`);
      }
    }
  });

  it('converts random rows of every accepted proto type exactly as toObject + fromProtoScalar do', () => {
    const type = writerType();
    const plan = compileRowPlan(type, COLUMNS, (f) => f.name);
    assert.ok(plan, 'a writer schema without map fields gets a compiled plan');
    const next = random(42);
    let accepted = 0;
    let refused = 0;
    for (let i = 0; i < 1500; i++) {
      const bytes = Buffer.from(type.encode(type.fromObject(randomRow(next))).finish());
      const message = type.decode(bytes) as unknown as Record<string, unknown>;
      const textLongs = decodeWithTextLongs(type, bytes) as unknown as Record<string, unknown>;
      for (const requireAll of [true, false]) {
        const fast = outcome(() => plan!.convert(textLongs, requireAll));
        const object = type.toObject(message as unknown as protobuf.Message, {
          longs: String,
          defaults: false,
        });
        const general = outcome(() =>
          convertObjectRow(type, COLUMNS, object, requireAll, findField, (f) => f.name),
        );
        assert.deepEqual(fast, general, `row ${i} (requireAll ${requireAll}): ${JSON.stringify(object)}`);
        if ('ok' in fast) accepted++;
        else refused++;
      }
    }
    // Both outcomes must be well represented, or the comparison proves little.
    assert.ok(accepted > 300 && refused > 300, `accepted ${accepted}, refused ${refused}`);
  });

  it('decodes damaged rows as protobufjs does: the same values, or the same error', () => {
    const type = writerType();
    const plan = compileRowPlan(type, COLUMNS, (f) => f.name)!;
    const next = random(1234);
    const decode = (read: () => protobuf.Message): Outcome =>
      outcome(() => {
        try {
          return read();
        } catch (err) {
          // A missing required field leaves the message read so far; write-api.ts goes on with it.
          const partial = (err as { instance?: protobuf.Message }).instance;
          if (err instanceof protobuf.util.ProtocolError && partial) return partial;
          throw err;
        }
      });
    let damagedButRead = 0;
    for (let i = 0; i < 3000; i++) {
      const bytes = Buffer.from(type.encode(type.fromObject(randomRow(next))).finish());
      // Cut it short, flip a byte, or both.
      const cut = next() < 0.5 ? bytes.subarray(0, Math.floor(next() * bytes.length)) : Buffer.from(bytes);
      if (next() < 0.6 && cut.length > 0) cut[Math.floor(next() * cut.length)] = Math.floor(next() * 256);
      const general = decode(() => type.decode(cut));
      const fast = decode(() => decodeWithTextLongs(type, cut));
      if ('error' in general) {
        assert.deepEqual(fast, general, `row ${i}`);
        continue;
      }
      if (!('ok' in fast)) assert.fail(`row ${i}: protobufjs read it, the text-long reader: ${fast.error}`);
      damagedButRead++;
      const object = type.toObject(general.ok as protobuf.Message, { longs: String, defaults: false });
      assert.deepEqual(
        outcome(() => plan.convert(fast.ok as Record<string, unknown>, true)),
        outcome(() => convertObjectRow(type, COLUMNS, object, true, findField, (f) => f.name)),
        `row ${i}`,
      );
    }
    assert.ok(damagedButRead > 100, `only ${damagedButRead} damaged rows decoded at all`);
  });

  it('leaves writer schemas with map fields, and tables with a column named __proto__, to the general path', () => {
    const type = writerType();
    const proto = [
      ...COLUMNS,
      ...normalizeSchema({ fields: [{ name: '__proto__', type: 'STRING' }] }).fields,
    ];
    assert.equal(
      compileRowPlan(type, proto, (f) => f.name),
      null,
    );
    const withMap = new protobuf.Type('WithMap').add(new protobuf.MapField('m', 1, 'string', 'string'));
    new protobuf.Root().add(withMap).resolveAll();
    assert.equal(
      compileRowPlan(withMap, COLUMNS, (f) => f.name),
      null,
    );
  });

  it('NUMERIC and BIGNUMERIC from strings match parseDecimal, digits, scale, precision and rounding included', () => {
    const columns = normalizeSchema({
      fields: [
        { name: 'n', type: 'NUMERIC' },
        { name: 'p', type: 'NUMERIC', precision: '5', scale: '2' },
        { name: 'q', type: 'NUMERIC', precision: '12' },
        { name: 'b', type: 'BIGNUMERIC' },
        { name: 'c', type: 'BIGNUMERIC', precision: '40', scale: '10' },
      ],
    }).fields;
    const next = random(99);
    const digits = (n: number): string => Array.from({ length: n }, () => Math.floor(next() * 10)).join('');
    const texts = [...DECIMAL_TEXTS];
    for (let i = 0; i < 5000; i++) {
      const whole = digits(Math.floor(next() * 80));
      const frac = next() < 0.5 ? '' : `.${digits(1 + Math.floor(next() * 40))}`;
      texts.push(`${next() < 0.3 ? '-' : ''}${whole || '0'}${frac}`);
    }
    for (const column of columns) {
      const convert = scalarConverter(column, 'string');
      for (const text of texts) {
        assert.deepEqual(
          outcome(() => convert(text)),
          outcome(() => parseDecimal(column.type as 'NUMERIC' | 'BIGNUMERIC', text, column)),
          `${column.name} ${text}`,
        );
      }
    }
  });

  it('validates and compares _CHANGE_SEQUENCE_NUMBER text as the BigInt reading does', () => {
    const reference = (text: string): bigint[] | null =>
      text.split('/').length <= 4 && text.split('/').every((s) => /^[0-9A-Fa-f]{1,16}$/.test(s))
        ? text.split('/').map((s) => BigInt(`0x${s}`))
        : null;
    const compareReference = (a: string, b: string): number => {
      const pa = reference(a) ?? [];
      const pb = reference(b) ?? [];
      for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
        const x = pa[i] ?? 0n;
        const y = pb[i] ?? 0n;
        if (x !== y) return x < y ? -1 : 1;
      }
      return 0;
    };
    const next = random(5);
    const alphabet = '0123456789abcdefABCDEF/g ';
    const texts = [
      '',
      '/',
      '0',
      '00',
      'F',
      'f',
      '1/0',
      '0/0/0/0/0',
      '1//2',
      '12345678901234567',
      '0000000000000000a',
    ];
    for (let i = 0; i < 3000; i++) {
      // Mostly well-formed: 1 to 5 sections of 0 to 17 digits (leading zeros likely), now and then any character.
      const sections = Array.from({ length: 1 + Math.floor(next() * 5) }, () => {
        let section = '';
        const length = Math.floor(next() * 18);
        for (let j = 0; j < length; j++)
          section +=
            alphabet[Math.floor(next() * (next() < 0.97 ? (next() < 0.5 ? 2 : 22) : alphabet.length))];
        return section;
      });
      texts.push(sections.join('/'));
    }
    for (const a of texts) {
      assert.equal(isValidSequence(a), reference(a) !== null, a);
    }
    for (let i = 0; i < 20000; i++) {
      const a = texts[Math.floor(next() * texts.length)];
      const b = texts[Math.floor(next() * texts.length)];
      assert.equal(compareSequences(a, b), compareReference(a, b), `${a} vs ${b}`);
    }
  });
});
