import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { once } from 'node:events';
import { restClient } from './helpers';

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

async function stopProcess(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
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

  it('prints its endpoints as one JSON line, serves them, saves changes to the data file, and exits 0 on SIGTERM', async () => {
    const { child, endpoints } = await startProcess(['--data-file', dataFile]);
    children.push(child);
    assert.match(endpoints.restHost, /^127\.0\.0\.1:\d+$/);
    assert.match(endpoints.grpcHost, /^127\.0\.0\.1:\d+$/);
    const bigquery = restClient({ ...endpoints, stop: async () => undefined });
    await bigquery.createDataset('persisted');
    await bigquery.dataset('persisted').createTable('t', { schema: 'a:string' });
    await bigquery
      .dataset('persisted')
      .table('t')
      .insert([{ a: 'kept' }]);
    // Saved shortly after the change (debounced), before any stop.
    const deadline = Date.now() + 10_000;
    while (!(fs.existsSync(dataFile) && fs.readFileSync(dataFile, 'utf8').includes('kept'))) {
      assert.ok(Date.now() < deadline, 'the data file was not written after a change');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(await stopProcess(child), 0);
  });

  it('loads the data file again at start', async () => {
    const { child, endpoints } = await startProcess(['--data-file', dataFile]);
    children.push(child);
    const bigquery = restClient({ ...endpoints, stop: async () => undefined });
    const [rows] = await bigquery.dataset('persisted').table('t').getRows();
    assert.deepEqual(rows, [{ a: 'kept' }]);
    assert.equal(await stopProcess(child), 0);
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
