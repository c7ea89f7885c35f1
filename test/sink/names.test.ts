import assert from 'node:assert/strict';
import {
  changesTableName,
  companionFieldName,
  fieldName,
  replicaTableName,
  retypedFieldName,
} from '../../sink/names';
import { CHANGES_META_FIELDS, REPLICA_META_FIELDS } from '../../sink/table-schema';

// https://cloud.google.com/bigquery/docs/schemas#column_names
const RESERVED = [
  '_TABLE_',
  '_FILE_',
  '_PARTITION',
  '_ROW_TIMESTAMP',
  '__ROOT__',
  '_COLIDENTIFIER',
  '_CHANGE_TYPE',
  '_CHANGE_SEQUENCE_NUMBER',
  '_CHANGE_TIMESTAMP',
];

function legal(name: string): boolean {
  return (
    /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) &&
    name.length <= 300 &&
    !RESERVED.some((p) => name.toUpperCase().startsWith(p))
  );
}

describe('sink: BigQuery names', function () {
  const awkward = [
    'id',
    'Name',
    'name',
    'NAME',
    '_CHANGE_TYPE',
    '_change_sequence_number',
    '_PARTITIONTIME',
    '_TABLE_SUFFIX',
    '_FILE_NAME',
    '_ROW_TIMESTAMP',
    '__ROOT__',
    '_COLIDENTIFIER_x',
    '_CHANGE_TIMESTAMP',
    '_event_id',
    '_commit_ts',
    '_key',
    '_op',
    'a b',
    'a-b',
    'a_b',
    'a__b',
    'é',
    'ü',
    '1col',
    '',
    'x'.repeat(63),
    'y'.repeat(300),
    'qty__string',
    'doc__pg',
    'h0123456789',
  ];

  it('every column name maps to a legal name, distinct from every other even ignoring case', function () {
    const mapped = awkward.map(fieldName);
    for (const m of mapped) assert.ok(legal(m), `${m} is a legal BigQuery column name`);
    const lower = new Set(mapped.map((m) => m.toLowerCase()));
    assert.equal(lower.size, awkward.length);
    const meta = new Set([...CHANGES_META_FIELDS, ...REPLICA_META_FIELDS].map((f) => f.name.toLowerCase()));
    for (const m of mapped) assert.ok(!meta.has(m.toLowerCase()), `${m} is not one of our meta columns`);
  });

  it('generated columns (retyped, companion) never equal a mapped source column', function () {
    const mapped = new Set(awkward.map((n) => fieldName(n).toLowerCase()));
    for (const n of awkward) {
      assert.ok(!mapped.has(retypedFieldName(n, 'STRING', false)), `retyped ${n}`);
      assert.ok(!mapped.has(companionFieldName(fieldName(n))), `companion of ${n}`);
    }
  });

  it('the mapping depends on the name alone: the same in every run', function () {
    assert.equal(fieldName('customer_id'), 'customer_id');
    assert.equal(fieldName('Name'), fieldName('Name'));
    assert.match(fieldName('Name'), /^name__h[0-9a-f]{10}$/);
    assert.match(fieldName('_CHANGE_TYPE'), /^change_type__h[0-9a-f]{10}$/);
  });

  it('a table named like another table\u2019s history gets a replica of its own', function () {
    const names = [
      ['public', 'orders'],
      ['public', 'orders_changes'],
      ['public', 'Orders'],
      ['s', 't'],
      ['s__t', 'u'],
      ['public', 's__t'],
      ['my-schema', 't'],
      ['public', '_failed'],
    ];
    const all = names.flatMap(([s, t]) => [replicaTableName(s, t), changesTableName(s, t)]);
    assert.equal(new Set(all).size, all.length, all.join(' '));
    assert.equal(replicaTableName('public', 'orders'), 'orders');
    assert.equal(replicaTableName('s', 't'), 's__t');
    assert.notEqual(replicaTableName('public', 'orders_changes'), changesTableName('public', 'orders'));
    for (const n of all) assert.notEqual(n, '_failed');
  });
});
