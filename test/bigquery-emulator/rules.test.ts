/**
 * The emulator refuses what BigQuery refuses, for the calls pgcdc makes. Each test names the documented rule
 * (the doc URL and quote sit beside the rule in the emulator's code and README), driven by the real clients.
 */
import { strict as assert } from 'node:assert';
import { adapt, managedwriter } from '@google-cloud/bigquery-storage';
import type { BigQuery, TableField } from '@google-cloud/bigquery';
import { startBigQueryEmulator, type RunningBigQueryEmulator } from '../../local/bigquery-emulator';
import { jsonNumberProblem } from '../../local/bigquery-emulator/values';
import { restClient, tablePath, writerClient } from './helpers';

type Row = Record<string, unknown>;

/** Opens a writer on the _default stream with a descriptor built from `fields` (as pgcdc's sink does). */
async function openWriter(
  writer: managedwriter.WriterClient,
  dataset: string,
  table: string,
  fields: TableField[],
  cdc: boolean,
): Promise<managedwriter.JSONWriter> {
  const connection = await writer.createStreamConnection({
    streamId: managedwriter.DefaultStream,
    destinationTable: tablePath(dataset, table),
  });
  // As the sink does: a connection error with no write pending would otherwise be thrown by the emitter.
  connection.onConnectionError(() => undefined);
  const storageSchema = adapt.convertBigQuerySchemaToStorageTableSchema({ fields });
  const protoDescriptor = adapt.convertStorageSchemaToProto2Descriptor(storageSchema, 'root');
  if (cdc) {
    // adapt.withChangeType()/withChangeSequenceNumber() give the pseudo-columns field numbers 991 and 992, which
    // collide with the columns of a table that has more; numbers past every column's work for any width.
    const top = fields.length + 1;
    const string = { type: 9 /* TYPE_STRING */, label: 1 /* LABEL_OPTIONAL */ };
    protoDescriptor.field!.push(
      { name: '_CHANGE_TYPE', number: top, ...string },
      { name: '_CHANGE_SEQUENCE_NUMBER', number: top + 1, ...string },
    );
  }
  return new managedwriter.JSONWriter({ connection, protoDescriptor });
}

/** The HTTP status and message of a rejected REST call. */
async function refusal(call: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await call;
  } catch (e) {
    const err = e as { code?: number; message?: string };
    return { code: Number(err.code), message: String(err.message) };
  }
  throw new Error('expected BigQuery to refuse the call');
}

describe('BigQuery emulator: rules BigQuery enforces', () => {
  let emulator: RunningBigQueryEmulator;
  let bigquery: BigQuery;
  let writer: managedwriter.WriterClient;
  let n = 0;
  const name = (prefix: string): string => `${prefix}_${++n}`;
  const create = (table: string, body: Record<string, unknown>): Promise<unknown> =>
    bigquery.dataset('rules').createTable(table, body);

  before(async () => {
    emulator = await startBigQueryEmulator();
    bigquery = restClient(emulator);
    writer = writerClient(emulator);
    await bigquery.createDataset('rules');
  });
  after(async () => {
    writer.close();
    await emulator.stop();
  });

  describe('primary keys (information-schema-table-constraints#limitations)', () => {
    const allowed = ['BIGNUMERIC', 'BOOL', 'DATE', 'DATETIME', 'INT64', 'NUMERIC', 'STRING', 'TIMESTAMP'];

    it('takes a key of every allowed type: BIGNUMERIC, BOOL, DATE, DATETIME, INT64, NUMERIC, STRING, TIMESTAMP', async () => {
      const fields = allowed.map((type, i) => ({ name: `k${i}`, type }));
      await create(name('pk_ok'), {
        schema: { fields },
        tableConstraints: { primaryKey: { columns: fields.map((f) => f.name) } },
      });
    });

    for (const type of ['FLOAT64', 'BYTES', 'TIME', 'JSON', 'GEOGRAPHY']) {
      it(`refuses a ${type} primary key column`, async () => {
        const r = await refusal(
          create(name('pk_bad'), {
            schema: { fields: [{ name: 'k', type }] },
            tableConstraints: { primaryKey: { columns: ['k'] } },
          }),
        );
        assert.equal(r.code, 400);
        assert.match(r.message, /Primary key column k has type/);
      });
    }

    it('refuses a REPEATED or RECORD key column, more than 16 key columns, a missing or duplicate column, an empty list', async () => {
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [
          {
            schema: { fields: [{ name: 'k', type: 'STRING', mode: 'REPEATED' }] },
            tableConstraints: { primaryKey: { columns: ['k'] } },
          },
          /ARRAY<STRING>/,
        ],
        [
          {
            schema: { fields: [{ name: 'k', type: 'RECORD', fields: [{ name: 'x', type: 'INT64' }] }] },
            tableConstraints: { primaryKey: { columns: ['k'] } },
          },
          /type RECORD/,
        ],
        [
          {
            schema: { fields: Array.from({ length: 17 }, (_, i) => ({ name: `k${i}`, type: 'INT64' })) },
            tableConstraints: { primaryKey: { columns: Array.from({ length: 17 }, (_, i) => `k${i}`) } },
          },
          /at most 16 columns/,
        ],
        [
          {
            schema: { fields: [{ name: 'k', type: 'INT64' }] },
            tableConstraints: { primaryKey: { columns: ['nope'] } },
          },
          /does not exist/,
        ],
        [
          {
            schema: { fields: [{ name: 'k', type: 'INT64' }] },
            tableConstraints: { primaryKey: { columns: ['k', 'K'] } },
          },
          /Duplicate column/,
        ],
        [
          {
            schema: { fields: [{ name: 'k', type: 'INT64' }] },
            tableConstraints: { primaryKey: { columns: [] } },
          },
          /non-empty list/,
        ],
      ];
      for (const [body, message] of cases) {
        const r = await refusal(create(name('pk_shape'), body));
        assert.equal(r.code, 400, JSON.stringify(body));
        assert.match(r.message, message);
      }
    });
  });

  describe('column names and descriptions (schemas#column_names)', () => {
    const reserved = [
      '_TABLE_x',
      '_FILE_x',
      '_PARTITIONTIME',
      '_ROW_TIMESTAMP',
      '__ROOT__x',
      '_COLIDENTIFIER',
      '_CHANGE_TYPE',
      '_CHANGE_SEQUENCE_NUMBER',
      '_CHANGE_TIMESTAMP',
      '_partition_date',
      '_change_type',
    ];
    for (const column of reserved) {
      it(`refuses the reserved column name ${column}`, async () => {
        const r = await refusal(
          create(name('reserved'), { schema: { fields: [{ name: column, type: 'STRING' }] } }),
        );
        assert.equal(r.code, 400);
        assert.match(r.message, /reserved prefix/);
      });
    }

    it('refuses names equal up to case, on tables.insert and on tables.patch', async () => {
      const r = await refusal(
        create(name('dup'), {
          schema: {
            fields: [
              { name: 'Name', type: 'STRING' },
              { name: 'name', type: 'STRING' },
            ],
          },
        }),
      );
      assert.equal(r.code, 400);
      assert.match(r.message, /Duplicate column names/);
      const table = name('dup_patch');
      await create(table, { schema: { fields: [{ name: 'name', type: 'STRING' }] } });
      const p = await refusal(
        bigquery
          .dataset('rules')
          .table(table)
          .setMetadata({
            schema: {
              fields: [
                { name: 'name', type: 'STRING' },
                { name: 'NAME', type: 'STRING' },
              ],
            },
          }),
      );
      assert.equal(p.code, 400);
      assert.match(p.message, /Duplicate column names/);
    });

    it("takes flexible names (letters of any language, dashes, spaces, & % = + : ' < > # |) up to 300 characters", async () => {
      await create(name('flexible'), {
        schema: {
          fields: [
            { name: 'first name-ü', type: 'STRING' },
            { name: '1st', type: 'STRING' },
            { name: "a&b%c=d+e:f'g<h>i#j|k", type: 'STRING' },
            { name: 'x'.repeat(300), type: 'STRING' },
          ],
        },
      });
    });

    it('a flexible column is written through the Storage Write API by its column_name annotation (as adapt sets it)', async () => {
      const table = name('flexible_write');
      const fields: TableField[] = [
        { name: 'id', type: 'INTEGER' },
        { name: 'first name-ü', type: 'STRING' },
      ];
      await create(table, { schema: { fields } });
      const connection = await writer.createStreamConnection({
        streamId: managedwriter.DefaultStream,
        destinationTable: tablePath('rules', table),
      });
      const protoDescriptor = adapt.convertStorageSchemaToProto2Descriptor(
        adapt.convertBigQuerySchemaToStorageTableSchema({ fields }),
        'root',
      );
      const placeholder = protoDescriptor.field![1].name!;
      assert.notEqual(placeholder, 'first name-ü', 'the proto field has a placeholder name');
      const w = new managedwriter.JSONWriter({ connection, protoDescriptor });
      const res = await w.appendRows([{ id: 1, [placeholder]: 'Zoë' }] as never).getResult();
      assert.ok(!res.error, JSON.stringify(res.error));
      const [rows] = await bigquery.dataset('rules').table(table).getRows();
      assert.deepEqual(rows, [{ id: 1, 'first name-ü': 'Zoë' }]);
      w.close();
    });

    it('refuses names with . ! $ ( ) * , / ; ? @ [ \\ ] ^ ` { } ~ " and names over 300 characters', async () => {
      for (const bad of [
        'a.b',
        'a!',
        'a$',
        'a(b)',
        'a*',
        'a,b',
        'a/b',
        'a;b',
        'a?',
        'a@b',
        'a[0]',
        'a\\b',
        'a^',
        'a`',
        'a{',
        'a}',
        'a~',
        'a"',
        'x'.repeat(301),
      ]) {
        const r = await refusal(
          create(name('badname'), { schema: { fields: [{ name: bad, type: 'STRING' }] } }),
        );
        assert.equal(r.code, 400, bad);
        assert.match(r.message, /Invalid field name/);
      }
    });

    it('a column description is at most 1,024 characters', async () => {
      await create(name('desc_ok'), {
        schema: { fields: [{ name: 'a', type: 'STRING', description: 'd'.repeat(1024) }] },
      });
      const r = await refusal(
        create(name('desc_long'), {
          schema: { fields: [{ name: 'a', type: 'STRING', description: 'd'.repeat(1025) }] },
        }),
      );
      assert.equal(r.code, 400);
      assert.match(r.message, /description for field a is too long/);
    });
  });

  describe('table names (tables#table_naming)', () => {
    it('takes letters, marks, numbers, connectors, dashes and spaces up to 1,024 UTF-8 bytes; refuses other characters and longer names', async () => {
      await create('table 01', { schema: 'a:string' });
      await create('étudiant-01', { schema: 'a:string' });
      await create('é'.repeat(512), { schema: 'a:string' });
      for (const bad of ['a.b', 'a$b', 'é'.repeat(513)]) {
        const r = await refusal(create(bad, { schema: 'a:string' }));
        assert.equal(r.code, 400, bad);
        assert.match(r.message, /Invalid table ID/);
      }
    });
  });

  describe('clustering (clustered-tables#limitations) and maxStaleness (tables resource)', () => {
    it('refuses more than 4 clustering columns, a FLOAT64, JSON or REPEATED one, and a missing one', async () => {
      const fields = [
        ...['a', 'b', 'c', 'd', 'e'].map((n) => ({ name: n, type: 'STRING' })),
        { name: 'f', type: 'FLOAT64' },
        { name: 'j', type: 'JSON' },
        { name: 'r', type: 'STRING', mode: 'REPEATED' },
      ];
      await create(name('cluster_ok'), { schema: { fields }, clustering: { fields: ['a', 'b', 'c', 'd'] } });
      const cases: Array<[string[], RegExp]> = [
        [['a', 'b', 'c', 'd', 'e'], /Too many clustering fields/],
        [['f'], /not supported for clustering/],
        [['j'], /not supported for clustering/],
        [['r'], /ARRAY<STRING>/],
        [['zz'], /cannot be found/],
      ];
      for (const [clustering, message] of cases) {
        const r = await refusal(
          create(name('cluster_bad'), { schema: { fields }, clustering: { fields: clustering } }),
        );
        assert.equal(r.code, 400, clustering.join());
        assert.match(r.message, message);
      }
    });

    it('maxStaleness must be an INTERVAL in its canonical Y-M D H:M:S text', async () => {
      await create(name('stale_ok'), { schema: 'a:string', maxStaleness: '0-0 0 0:15:0' });
      for (const bad of ['15 minutes', 'INTERVAL 15 MINUTE', '0:15:0', '-0-0 0 0:15:0']) {
        const r = await refusal(create(name('stale_bad'), { schema: 'a:string', maxStaleness: bad }));
        assert.equal(r.code, 400, bad);
        assert.match(r.message, /Invalid value for maxStaleness/);
      }
    });
  });

  describe('JSON values are parsed exactly (data-types#json_type, json_functions#parse_json)', () => {
    it('keeps 64-bit signed and unsigned integers and doubles that print back the same; refuses wider numbers', () => {
      for (const ok of [
        '0',
        '-9223372036854775808',
        '18446744073709551615',
        '1.5',
        '0.1',
        '1e300',
        '1.0',
        '-0',
        '123456789012345678',
      ]) {
        assert.equal(jsonNumberProblem(ok), null, ok);
      }
      for (const bad of [
        '18446744073709551616',
        '-9223372036854775809',
        '12345678901234567890123',
        '1.00000000000000000001',
        '1e400',
        '3.141592653589793238',
      ]) {
        assert.match(String(jsonNumberProblem(bad)), /loss of precision|outside the range/, bad);
      }
    });

    it('a Storage Write row whose JSON value BigQuery cannot hold exactly is a row error; the request writes nothing', async () => {
      const table = name('json');
      const fields: TableField[] = [
        { name: 'id', type: 'INTEGER' },
        { name: 'doc', type: 'JSON' },
      ];
      await create(table, { schema: { fields } });
      const w = await openWriter(writer, 'rules', table, fields, false);
      const good = await w
        .appendRows([
          { id: 1, doc: '{"n": 18446744073709551615, "x": [0.1, "12345678901234567890123"]}' },
        ] as never)
        .getResult();
      assert.ok(!good.error, JSON.stringify(good.error));
      const bad = await w
        .appendRows([
          { id: 2, doc: '{"ok": 1}' },
          { id: 3, doc: '{"n": 12345678901234567890123}' },
        ] as never)
        .getResult();
      assert.equal(bad.error?.code, 3);
      assert.deepEqual(
        bad.rowErrors?.map((e) => Number(e.index)),
        [1],
      );
      assert.match(String(bad.rowErrors?.[0].message), /loss of precision/);
      const deep = await w
        .appendRows([{ id: 4, doc: '['.repeat(501) + ']'.repeat(501) }] as never)
        .getResult();
      assert.match(String(deep.rowErrors?.[0].message), /nesting is deeper than 500/);
      const [rows] = await bigquery.dataset('rules').table(table).getRows();
      assert.deepEqual(
        rows.map((r) => Number(r.id)),
        [1],
      );
      w.close();
    });
  });

  describe('ARRAY elements cannot be NULL (data-types#array_nulls)', () => {
    it('insertAll refuses a NULL array element', async () => {
      const table = name('arrays');
      await create(table, { schema: { fields: [{ name: 'tags', type: 'STRING', mode: 'REPEATED' }] } });
      const failure = await bigquery
        .dataset('rules')
        .table(table)
        .insert([{ tags: ['a', null] }])
        .then(
          () => undefined,
          (e: { name?: string; errors?: unknown }) => e,
        );
      assert.equal(failure?.name, 'PartialFailureError');
      assert.match(JSON.stringify(failure?.errors), /Null value in repeated field: tags/);
      const [rows] = await bigquery.dataset('rules').table(table).getRows();
      assert.equal(rows.length, 0);
    });
  });

  describe('CDC limits (change-data-capture#limitations)', () => {
    it('a CDC table cannot have more than 2,000 top-level columns: CDC writes and later widening are refused', async () => {
      const wide = name('wide');
      const fields: TableField[] = [
        { name: 'id', type: 'INTEGER' },
        ...Array.from({ length: 2000 }, (_, i) => ({ name: `c${i}`, type: 'STRING' })),
      ];
      await create(wide, { schema: { fields }, tableConstraints: { primaryKey: { columns: ['id'] } } });
      const w = await openWriter(writer, 'rules', wide, fields, true);
      const res = await w
        .appendRows([{ id: 1, _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '1' }] as never)
        .getResult();
      assert.equal(res.error?.code, 3);
      assert.match(String(res.error?.message), /cannot have more than 2000/);
      w.close();

      const narrow = name('narrow');
      const few: TableField[] = [
        { name: 'id', type: 'INTEGER' },
        { name: 'c0', type: 'STRING' },
      ];
      await create(narrow, {
        schema: { fields: few },
        tableConstraints: { primaryKey: { columns: ['id'] } },
      });
      const w2 = await openWriter(writer, 'rules', narrow, few, true);
      const ok = await w2
        .appendRows([{ id: 1, _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '1' }] as never)
        .getResult();
      assert.ok(!ok.error, JSON.stringify(ok.error));
      w2.close();
      const r = await refusal(bigquery.dataset('rules').table(narrow).setMetadata({ schema: { fields } }));
      assert.equal(r.code, 400);
      assert.match(r.message, /tables with active CDC cannot have more than 2000/);
    });

    it('mixing CDC and plain rows on one connection fails with "The given value is not a valid CHANGE_TYPE"', async () => {
      const table = name('mixed');
      const fields: TableField[] = [{ name: 'id', type: 'INTEGER' }];
      await create(table, { schema: { fields }, tableConstraints: { primaryKey: { columns: ['id'] } } });
      const connection = await writer.createStreamConnection({
        streamId: managedwriter.DefaultStream,
        destinationTable: tablePath('rules', table),
      });
      const storageSchema = adapt.convertBigQuerySchemaToStorageTableSchema({ fields });
      const cdc = new managedwriter.Writer({
        connection,
        protoDescriptor: adapt.convertStorageSchemaToProto2Descriptor(
          storageSchema,
          'root',
          adapt.withChangeType(),
        ),
      });
      const plain = new managedwriter.JSONWriter({
        connection,
        protoDescriptor: adapt.convertStorageSchemaToProto2Descriptor(storageSchema, 'root'),
      });
      const cdcRow = new managedwriter.JSONWriter({
        connection,
        protoDescriptor: adapt.convertStorageSchemaToProto2Descriptor(
          storageSchema,
          'root',
          adapt.withChangeType(),
        ),
      });
      void cdc;
      const first = await cdcRow.appendRows([{ id: 1, _CHANGE_TYPE: 'UPSERT' }] as never).getResult();
      assert.ok(!first.error, JSON.stringify(first.error));
      const second = await plain.appendRows([{ id: 2 }] as never).getResult();
      assert.match(String(second.error?.message), /The given value is not a valid CHANGE_TYPE/);
      connection.close();
    });

    it('no mutating DML on a table with active CDC (and the emulator runs no DML anywhere)', async () => {
      const table = name('nodml');
      const fields: TableField[] = [{ name: 'id', type: 'INTEGER' }];
      await create(table, { schema: { fields }, tableConstraints: { primaryKey: { columns: ['id'] } } });
      const w = await openWriter(writer, 'rules', table, fields, true);
      await w
        .appendRows([{ id: 1, _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '1' }] as never)
        .getResult();
      w.close();
      for (const sql of [
        `DELETE FROM \`pgcdc-test.rules.${table}\` WHERE id = 1`,
        `UPDATE rules.${table} SET id = 2 WHERE true`,
        `MERGE \`rules.${table}\` t USING (SELECT 1 AS id) s ON t.id = s.id WHEN MATCHED THEN DELETE`,
      ]) {
        const r = await refusal(bigquery.query(sql));
        assert.match(r.message, /not supported on tables with active CDC/, sql);
      }
      const plain = name('plain');
      await create(plain, { schema: 'id:integer' });
      const r = await refusal(bigquery.query(`DELETE FROM rules.${plain} WHERE true`));
      assert.match(r.message, /does not run DML/);
    });
  });

  describe('insertAll limits (quotas#streaming_inserts)', () => {
    it('refuses a request over 10 MB', async () => {
      const table = name('big');
      await create(table, { schema: 'a:string' });
      const r = await refusal(
        bigquery
          .dataset('rules')
          .table(table)
          .insert([{ a: 'x'.repeat(10 * 1024 * 1024 + 1) }]),
      );
      assert.equal(r.code, 400);
      assert.match(r.message, /Request payload size exceeds the limit: 10485760 bytes/);
    });

    it('refuses a request of more than 50,000 rows', async () => {
      const table = name('many');
      await create(table, { schema: 'a:integer' });
      const rows = Array.from({ length: 50_001 }, (_, i) => ({ a: i }));
      const r = await refusal(bigquery.dataset('rules').table(table).insert(rows, { raw: false }));
      assert.match(r.message, /Too many rows in the request: 50001/);
    });
  });
});

describe('BigQuery emulator: time-dependent rules on the emulator clock', () => {
  it('a DELETE is remembered for ordering two days only: after that an older UPSERT brings the row back', async () => {
    const emulator = await startBigQueryEmulator();
    const bigquery = restClient(emulator);
    const writer = writerClient(emulator);
    try {
      await bigquery.createDataset('clock');
      const fields: TableField[] = [
        { name: 'id', type: 'INTEGER' },
        { name: 'v', type: 'STRING' },
      ];
      await bigquery
        .dataset('clock')
        .createTable('t', { schema: { fields }, tableConstraints: { primaryKey: { columns: ['id'] } } });
      const w = await openWriter(writer, 'clock', 't', fields, true);
      const write = async (rows: Row[]): Promise<void> => {
        const res = await w.appendRows(rows as never).getResult();
        assert.ok(!res.error, JSON.stringify(res.error));
      };
      const ids = async (): Promise<number[]> =>
        (await bigquery.dataset('clock').table('t').getRows())[0].map((r) => Number(r.id)).sort();
      await write([
        { id: 1, v: 'a', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '1' },
        { id: 2, v: 'a', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '1' },
      ]);
      await write([
        { id: 1, _CHANGE_TYPE: 'DELETE', _CHANGE_SEQUENCE_NUMBER: 'A' },
        { id: 2, _CHANGE_TYPE: 'DELETE', _CHANGE_SEQUENCE_NUMBER: 'A' },
      ]);
      // One day later (admin endpoint over HTTP, as a test driving main.js would do it): still remembered.
      const res = await fetch(`http://${emulator.restHost}/emulator/v1/clock:advance`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ms: 24 * 3600 * 1000 }),
      });
      assert.equal(res.status, 200);
      await write([{ id: 1, v: 'old', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '5' }]);
      assert.deepEqual(await ids(), []);
      // Past two days after the delete: forgotten, the older UPSERT resurrects the row.
      emulator.advanceClock(24 * 3600 * 1000 + 1);
      await write([{ id: 2, v: 'old', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '5' }]);
      assert.deepEqual(await ids(), [2]);
      w.close();
    } finally {
      writer.close();
      await emulator.stop();
    }
  });

  it('a schema change reaches the Write API only after the propagation delay; until then new fields are refused', async () => {
    const emulator = await startBigQueryEmulator({ schemaPropagationMs: 5 * 60 * 1000 });
    const bigquery = restClient(emulator);
    const writer = writerClient(emulator);
    try {
      await bigquery.createDataset('prop');
      const before: TableField[] = [{ name: 'id', type: 'INTEGER' }];
      const after: TableField[] = [...before, { name: 'added', type: 'STRING' }];
      await bigquery.dataset('prop').createTable('t', { schema: { fields: before } });
      // A new table is writable at once.
      const old = await openWriter(writer, 'prop', 't', before, false);
      assert.ok(!(await old.appendRows([{ id: 1 }] as never).getResult()).error);
      await bigquery
        .dataset('prop')
        .table('t')
        .setMetadata({ schema: { fields: after } });
      const fresh = await openWriter(writer, 'prop', 't', after, false);
      const refused = await fresh.appendRows([{ id: 2, added: 'x' }] as never).getResult();
      assert.equal(refused.error?.code, 3);
      assert.match(
        String(refused.error?.message),
        /Input schema has more fields than BigQuery schema, extra fields: 'root.added'/,
      );
      assert.deepEqual(
        (refused.error?.details as Array<{ type_url?: string }> | undefined)?.map((d) => d.type_url),
        ['type.googleapis.com/google.cloud.bigquery.storage.v1.StorageError'],
        'the StorageError (SCHEMA_MISMATCH_EXTRA_FIELDS) rides in the status details',
      );
      // Rows in the old shape still go through meanwhile.
      assert.ok(!(await old.appendRows([{ id: 3 }] as never).getResult()).error);
      emulator.advanceClock(5 * 60 * 1000);
      const accepted = await fresh.appendRows([{ id: 4, added: 'y' }] as never).getResult();
      assert.ok(!accepted.error, JSON.stringify(accepted.error));
      const [rows] = await bigquery.dataset('prop').table('t').getRows();
      assert.deepEqual(rows.map((r) => [Number(r.id), r.added]).sort(), [
        [1, null],
        [3, null],
        [4, 'y'],
      ]);
      old.close();
      fresh.close();
    } finally {
      writer.close();
      await emulator.stop();
    }
  });

  it('concurrent Write API connections are capped per project: past the cap AppendRows fails with RESOURCE_EXHAUSTED', async () => {
    const emulator = await startBigQueryEmulator({ maxWriteConnections: 2 });
    const bigquery = restClient(emulator);
    const writer = writerClient(emulator);
    try {
      await bigquery.createDataset('conn');
      const fields: TableField[] = [{ name: 'id', type: 'INTEGER' }];
      for (const t of ['a', 'b', 'c']) await bigquery.dataset('conn').createTable(t, { schema: { fields } });
      const a = await openWriter(writer, 'conn', 'a', fields, false);
      const b = await openWriter(writer, 'conn', 'b', fields, false);
      assert.ok(!(await a.appendRows([{ id: 1 }] as never).getResult()).error);
      assert.ok(!(await b.appendRows([{ id: 1 }] as never).getResult()).error);
      const c = await openWriter(writer, 'conn', 'c', fields, false);
      const failure = await c
        .appendRows([{ id: 1 }] as never)
        .getResult()
        .then(
          (res) => res.error,
          (e: { code?: number; message?: string }) => e,
        );
      assert.equal(failure?.code, 8, JSON.stringify(failure));
      assert.match(String(failure?.message), /Exceeds 'Concurrent connections' quota/);
      // Closing an idle connection frees its place.
      a.close();
      c.close();
      let accepted = false;
      for (let attempt = 0; attempt < 50 && !accepted; attempt++) {
        const d = await openWriter(writer, 'conn', 'c', fields, false);
        const res = await d
          .appendRows([{ id: 2 }] as never)
          .getResult()
          .then(
            (r) => r,
            () => undefined,
          );
        accepted = res !== undefined && !res.error;
        d.close();
        if (!accepted) await new Promise((resolve) => setImmediate(resolve));
      }
      assert.ok(accepted, 'a connection is admitted once another one closed');
      b.close();
    } finally {
      writer.close();
      await emulator.stop();
    }
  });
});
