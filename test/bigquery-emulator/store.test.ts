import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { dataDirFiles, Journal, loadStore, type DataFiles } from '../../local/bigquery-emulator/journal';
import {
  compareSequences,
  DELETE_RETENTION_MS,
  parseSequence,
  Store,
} from '../../local/bigquery-emulator/store';
import {
  parseDecimal,
  parseDatetime,
  timestampFromJson,
  timestampToIso,
  ValueError,
} from '../../local/bigquery-emulator/values';
import { checkSchemaChange, normalizeSchema } from '../../local/bigquery-emulator/schema';

describe('BigQuery emulator: store and value rules', () => {
  it('a _CHANGE_SEQUENCE_NUMBER has up to four sections of 1 to 16 hex digits', () => {
    assert.deepEqual(parseSequence('FFF/B'), [0xfffn, 0xbn]);
    assert.deepEqual(parseSequence('0/0/0/ffffffffffffffff'), [0n, 0n, 0n, 0xffffffffffffffffn]);
    for (const bad of ['', 'G', '1/2/3/4/5', '1//2', '12345678901234567', ' 1', '-1']) {
      assert.equal(parseSequence(bad), null, bad);
    }
  });

  it('sequence numbers compare section by section as numbers', () => {
    assert.equal(compareSequences('A/1', '9/FFFF'), 1);
    assert.equal(compareSequences('0/F', '0/10'), -1);
    assert.equal(compareSequences('ff', 'FF'), 0);
    assert.equal(compareSequences('1', '1/0'), 0, 'a missing trailing section counts as 0');
  });

  it('NUMERIC rounds to 9 decimals (half away from zero) and rejects more than 29 integer digits', () => {
    assert.equal(parseDecimal('NUMERIC', '1.0000000005'), '1.000000001');
    assert.equal(parseDecimal('NUMERIC', '-1.0000000005'), '-1.000000001');
    assert.equal(parseDecimal('NUMERIC', '1.50'), '1.5');
    assert.equal(parseDecimal('NUMERIC', '1e3'), '1000');
    assert.equal(
      parseDecimal('NUMERIC', '99999999999999999999999999999.999999999'),
      '99999999999999999999999999999.999999999',
    );
    assert.throws(() => parseDecimal('NUMERIC', '100000000000000000000000000000'), ValueError);
    assert.throws(() => parseDecimal('NUMERIC', 'abc'), ValueError);
    assert.equal(
      parseDecimal('BIGNUMERIC', '0.00000000000000000000000000000000000001'),
      '0.00000000000000000000000000000000000001',
    );
    assert.throws(() => parseDecimal('BIGNUMERIC', '1e39'), ValueError);
  });

  it('TIMESTAMP strings and numbers convert to microseconds; DATETIME keeps civil time', () => {
    assert.equal(timestampFromJson('1970-01-01 00:00:01.5 UTC'), '1500000');
    assert.equal(timestampFromJson('1970-01-01T02:00:00+02:00'), '0');
    assert.equal(timestampFromJson(1.25), '1250000');
    assert.equal(timestampToIso('-1'), '1969-12-31T23:59:59.999999Z');
    assert.equal(parseDatetime('2024-02-29 01:02:03'), '2024-02-29T01:02:03');
    assert.throws(() => parseDatetime('2023-02-29 01:02:03'), ValueError);
  });

  it('a schema change that relaxes a nested REQUIRED field is allowed, a nested type change is not', () => {
    const before = normalizeSchema({
      fields: [{ name: 'r', type: 'RECORD', fields: [{ name: 'x', type: 'INT64', mode: 'REQUIRED' }] }],
    });
    const relaxed = normalizeSchema({
      fields: [
        {
          name: 'r',
          type: 'RECORD',
          fields: [
            { name: 'x', type: 'INTEGER' },
            { name: 'y', type: 'STRING' },
          ],
        },
      ],
    });
    checkSchemaChange(before, relaxed, 'p:d.t');
    const retyped = normalizeSchema({
      fields: [{ name: 'r', type: 'RECORD', fields: [{ name: 'x', type: 'STRING' }] }],
    });
    assert.throws(() => checkSchemaChange(before, retyped, 'p:d.t'), /Field r\.x has changed type/);
  });

  it('the state survives a toJSON/fromJSON round trip, CDC tombstones included', () => {
    const store = new Store();
    store.createDataset('p', { datasetReference: { datasetId: 'd' } });
    store.createTable('p', 'd', {
      tableReference: { tableId: 't' },
      schema: { fields: [{ name: 'id', type: 'INT64' }] },
      tableConstraints: { primaryKey: { columns: ['id'] } },
    });
    const ref = { projectId: 'p', datasetId: 'd', tableId: 't' };
    store.applyChanges(ref, [
      { type: 'UPSERT', sequence: '1', row: { id: '1' } },
      { type: 'DELETE', sequence: '5', row: { id: '2' } },
    ]);
    const copy = Store.fromJSON(JSON.parse(JSON.stringify(store)));
    copy.applyChanges(ref, [{ type: 'UPSERT', sequence: '4', row: { id: '2' } }]);
    assert.deepEqual(copy.rows(ref), [{ id: '1' }]);
  });
});

describe('BigQuery emulator: journal and snapshot', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bq-journal-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ref = { projectId: 'p', datasetId: 'd', tableId: 't' };

  function fresh(name: string): { files: DataFiles; store: Store; journal: Journal } {
    const files = dataDirFiles(path.join(dir, name));
    const store = loadStore(files);
    return { files, store, journal: new Journal(files, store) };
  }

  function seed(store: Store): void {
    store.createDataset('p', { datasetReference: { datasetId: 'd' } });
    store.createTable('p', 'd', {
      tableReference: { tableId: 't' },
      schema: { fields: [{ name: 'id', type: 'INT64' }] },
      tableConstraints: { primaryKey: { columns: ['id'] } },
    });
    store.applyChanges(ref, [{ type: 'UPSERT', sequence: '1', row: { id: '1' } }]);
  }

  it('replays the journal; a torn last line (never acknowledged) is dropped and later records still load', () => {
    const { files, store } = fresh('torn');
    seed(store);
    fs.appendFileSync(files.journal, '{"seq":99,"at":0,"op":"appendRo');
    const reloaded = loadStore(files);
    assert.deepEqual(reloaded.rows(ref), [{ id: '1' }]);
    // The torn bytes are gone, so a record appended now starts on its own line.
    const journal = new Journal(files, reloaded);
    reloaded.applyChanges(ref, [{ type: 'UPSERT', sequence: '2', row: { id: '2' } }]);
    assert.deepEqual(loadStore(files).rows(ref), [{ id: '1' }, { id: '2' }]);
    journal.close();
  });

  it('a crash between writing the snapshot and emptying the journal applies nothing twice', () => {
    const { files, store, journal } = fresh('compact');
    seed(store);
    const journalBefore = fs.readFileSync(files.journal);
    journal.compact();
    // Put the already-snapshotted records back, as if the process died right after the rename.
    fs.writeFileSync(files.journal, journalBefore);
    const reloaded = loadStore(files);
    assert.deepEqual(reloaded.rows(ref), [{ id: '1' }]);
    assert.equal(reloaded.lastSeq, store.lastSeq);
  });

  it('the emulator clock and tombstone times survive a restart', () => {
    const { files, store, journal } = fresh('clock');
    seed(store);
    store.applyChanges(ref, [{ type: 'DELETE', sequence: '5', row: { id: '1' } }]);
    store.advanceClock(DELETE_RETENTION_MS - 1000);
    const reloaded = loadStore(files);
    journal.close();
    assert.ok(reloaded.now() - Date.now() >= DELETE_RETENTION_MS - 2000);
    reloaded.applyChanges(ref, [{ type: 'UPSERT', sequence: '2', row: { id: '1' } }]);
    assert.deepEqual(reloaded.rows(ref), [], 'the delete is still inside its two-day window');
  });
});
