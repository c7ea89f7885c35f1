import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { once } from 'node:events';
import { adapt, managedwriter } from '@google-cloud/bigquery-storage';
import { restClient, tablePath, writerClient } from './helpers';

const MAIN = path.join(__dirname, '..', '..', 'local', 'bigquery-emulator', 'main.js');

interface Started {
  child: ChildProcess;
  endpoints: { restHost: string; grpcHost: string };
}

/** Starts main.js and resolves with the endpoints line it prints when ready. */
function startProcess(args: string[]): Promise<Started> {
  const child = spawn(process.execPath, [MAIN, '--rest-port', '0', '--grpc-port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const newline = out.indexOf('\n');
      if (newline >= 0) resolve({ child, endpoints: JSON.parse(out.slice(0, newline)) });
    });
    child.once('exit', (code) => reject(new Error(`emulator exited early (${code}): ${err}`)));
  });
}

async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = once(child, 'exit');
  child.kill(signal);
  const [code] = (await exited) as [number | null];
  return code;
}

describe('BigQuery emulator: main.ts process entry', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bq-emulator-'));
  const dataFile = path.join(dir, 'state.json');
  const children: ChildProcess[] = [];
  after(async () => {
    for (const child of children) await stopProcess(child);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('prints its endpoints as one JSON line, serves them, and keeps the data file across a clean stop', async () => {
    const first = await startProcess(['--data-file', dataFile]);
    children.push(first.child);
    assert.match(first.endpoints.restHost, /^127\.0\.0\.1:\d+$/);
    assert.match(first.endpoints.grpcHost, /^127\.0\.0\.1:\d+$/);
    const bigquery = restClient(first.endpoints);
    await bigquery.createDataset('persisted');
    await bigquery.dataset('persisted').createTable('t', { schema: 'a:string' });
    await bigquery
      .dataset('persisted')
      .table('t')
      .insert([{ a: 'kept' }]);
    // Acknowledged means journaled: the row is on disk before the insert call returned.
    assert.match(fs.readFileSync(`${dataFile}.journal`, 'utf8'), /kept/);
    assert.equal(await stopProcess(first.child), 0);

    const second = await startProcess(['--data-file', dataFile]);
    children.push(second.child);
    const [rows] = await restClient(second.endpoints).dataset('persisted').table('t').getRows();
    assert.deepEqual(rows, [{ a: 'kept' }]);
    assert.equal(await stopProcess(second.child), 0);
  });

  it('a SIGKILLed emulator loses no acknowledged write: CDC appends, plain appends and table changes survive', async () => {
    const dataDir = path.join(dir, 'killed');
    const first = await startProcess(['--data-dir', dataDir]);
    children.push(first.child);
    const bigquery = restClient(first.endpoints);
    await bigquery.createDataset('chaos');
    await bigquery.dataset('chaos').createTable('replica', {
      schema: {
        fields: [
          { name: 'id', type: 'INT64' },
          { name: 'v', type: 'STRING' },
        ],
      },
      tableConstraints: { primaryKey: { columns: ['id'] } },
    });
    await bigquery.dataset('chaos').createTable('log', { schema: 'id:integer,v:string' });
    const writer = writerClient(first.endpoints);
    const open = async (table: string, cdc: boolean): Promise<managedwriter.JSONWriter> => {
      const connection = await writer.createStreamConnection({
        streamId: managedwriter.DefaultStream,
        destinationTable: tablePath('chaos', table),
      });
      const storageSchema = adapt.convertBigQuerySchemaToStorageTableSchema({
        fields: [
          { name: 'id', type: 'INTEGER' },
          { name: 'v', type: 'STRING' },
        ],
      });
      const options = cdc ? [adapt.withChangeType(), adapt.withChangeSequenceNumber()] : [];
      const protoDescriptor = adapt.convertStorageSchemaToProto2Descriptor(storageSchema, 'root', ...options);
      return new managedwriter.JSONWriter({ connection, protoDescriptor });
    };
    const replica = await open('replica', true);
    const log = await open('log', false);
    const expectedReplica = new Map<number, string>();
    for (let batch = 0; batch < 20; batch++) {
      const rows = Array.from({ length: 50 }, (_, i) => {
        const id = batch * 50 + i;
        return {
          id,
          v: `v${batch}`,
          _CHANGE_TYPE: 'UPSERT',
          _CHANGE_SEQUENCE_NUMBER: (batch + 1).toString(16),
        };
      });
      const deletes =
        batch > 0
          ? [
              {
                id: (batch - 1) * 50,
                _CHANGE_TYPE: 'DELETE',
                _CHANGE_SEQUENCE_NUMBER: (batch + 1).toString(16),
              },
            ]
          : [];
      const res = await replica.appendRows([...rows, ...deletes] as never).getResult();
      assert.ok(!res.error, JSON.stringify(res.error));
      for (const r of rows) expectedReplica.set(r.id, r.v);
      for (const d of deletes) expectedReplica.delete(d.id);
      const plain = await log.appendRows(rows.map((r) => ({ id: r.id, v: r.v })) as never).getResult();
      assert.ok(!plain.error, JSON.stringify(plain.error));
    }
    await bigquery.dataset('chaos').table('log').setMetadata({ description: 'after the writes' });
    // SIGKILL: no chance to write a snapshot; only what was synced before each answer survives.
    assert.equal(await stopProcess(first.child, 'SIGKILL'), null);
    writer.close();

    const second = await startProcess(['--data-dir', dataDir]);
    children.push(second.child);
    const again = restClient(second.endpoints);
    const [replicaRows] = await again.dataset('chaos').table('replica').getRows();
    assert.deepEqual(
      new Map(replicaRows.map((r) => [Number(r.id), String(r.v)])),
      expectedReplica,
      'every acknowledged CDC change is in the replica, row by row',
    );
    const [logRows] = await again.dataset('chaos').table('log').getRows();
    assert.equal(logRows.length, 1000);
    assert.deepEqual(
      logRows.map((r) => Number(r.id)).sort((a, b) => a - b),
      Array.from({ length: 1000 }, (_, i) => i),
    );
    const [meta] = await again.dataset('chaos').table('log').getMetadata();
    assert.equal(meta.description, 'after the writes');
    // The journal keeps tombstones too: a late lower-sequence UPSERT of a deleted key still has no effect.
    const writer2 = writerClient(second.endpoints);
    try {
      const connection = await writer2.createStreamConnection({
        streamId: managedwriter.DefaultStream,
        destinationTable: tablePath('chaos', 'replica'),
      });
      const storageSchema = adapt.convertBigQuerySchemaToStorageTableSchema({
        fields: [
          { name: 'id', type: 'INTEGER' },
          { name: 'v', type: 'STRING' },
        ],
      });
      const late = new managedwriter.JSONWriter({
        connection,
        protoDescriptor: adapt.convertStorageSchemaToProto2Descriptor(
          storageSchema,
          'root',
          adapt.withChangeType(),
          adapt.withChangeSequenceNumber(),
        ),
      });
      const res = await late
        .appendRows([{ id: 0, v: 'late', _CHANGE_TYPE: 'UPSERT', _CHANGE_SEQUENCE_NUMBER: '1' }] as never)
        .getResult();
      assert.ok(!res.error);
      const [after] = await again.dataset('chaos').table('replica').getRows();
      assert.ok(!after.some((r) => Number(r.id) === 0), 'the deleted key stays deleted');
    } finally {
      writer2.close();
    }
    assert.equal(await stopProcess(second.child), 0);
  });

  it('exits non-zero with a message for a bad argument', async () => {
    const child = spawn(process.execPath, [MAIN, '--rest-port', 'abc'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let err = '';
    child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 1);
    assert.match(err, /--rest-port must be a port number/);
  });
});
