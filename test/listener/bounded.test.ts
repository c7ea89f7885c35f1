// Bounded memory (DESIGN §4.4) and bounded runs (§4.5).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { runListener } from '../../listener/run';
import { LISTENER_NODE_FLAGS, LISTENER_NODE_OPTIONS } from '../../listener/runtime';
import { createTopic, pullAll } from '../support/pubsub';
import { listenerEnv, listenerFixture } from '../support/listener';

function runListenerProcess(
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [...LISTENER_NODE_FLAGS, path.resolve(__dirname, '../../listener/main.js')],
      {
        // The listener runs with the container's Node options (listener/Dockerfile).
        env: { ...process.env, NODE_OPTIONS: LISTENER_NODE_OPTIONS, ...env },
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('listener: bounded memory and bounded runs', function () {
  this.timeout(600_000);

  it('the container runs the listener with the Node options and flags the memory test uses', () => {
    const dockerfile = readFileSync(path.resolve(__dirname, '../../../listener/Dockerfile'), 'utf8');
    // The value holds a space, so the Dockerfile quotes it.
    assert.ok(
      dockerfile.split('\n').includes(`ENV NODE_OPTIONS="${LISTENER_NODE_OPTIONS}"`),
      `listener/Dockerfile sets NODE_OPTIONS to "${LISTENER_NODE_OPTIONS}"`,
    );
    const entrypoint = /^ENTRYPOINT (.*)$/m.exec(dockerfile)?.[1];
    assert.deepEqual(JSON.parse(entrypoint ?? 'null'), [
      'node',
      ...LISTENER_NODE_FLAGS,
      'dist/listener/main.js',
    ]);
  });

  it('streams a single 1,000,000-row transaction with peak RSS under 256 MB', async () => {
    const topic = await createTopic('million');
    const f = await listenerFixture(topic, 'wal2json');
    await f.sql('CREATE TABLE big (id int PRIMARY KEY, name text, amount numeric(12,2), at timestamptz)');
    await f.sql(
      "INSERT INTO big SELECT g, 'name ' || g, g * 1.01, '2026-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, 1000000) g",
    );
    const res = await runListenerProcess(listenerEnv(f.cfg));
    assert.equal(res.code, 0, res.stderr);
    const summary = JSON.parse(res.stdout) as {
      changes: number;
      transactions: number;
      peakRssMb: number;
      seconds: number;
    };
    assert.equal(summary.changes, 1_000_000);
    assert.ok(summary.peakRssMb < 256, `peak RSS ${summary.peakRssMb} MB`);
    console.log(
      `      1M-row transaction: ${summary.seconds.toFixed(1)} s, peak RSS ${summary.peakRssMb} MB`,
    );
    // Count what arrived from the attributes (cheap) — every event of the transaction is in Pub/Sub.
    const pulled = await pullAll(topic);
    assert.equal(
      pulled.reduce((n, p) => n + Number(p.attributes.count), 0),
      1_000_000,
    );
  });

  it('stops at the time limit at a transaction boundary and the next run continues where it stopped', async () => {
    const topic = await createTopic('timelimit');
    const f = await listenerFixture(topic, 'pgoutput', { maxRunSeconds: 3 });
    await f.sql('CREATE TABLE t (id int PRIMARY KEY, txn int)');
    for (let txn = 1; txn <= 10; txn++) {
      await f.sql(`INSERT INTO t SELECT g, ${txn} FROM generate_series(${txn * 100 - 99}, ${txn * 100}) g`);
    }
    const runs: { stoppedBy: string; txns: Map<string, number> }[] = [];
    const seen = new Set<string>();
    while (seen.size < 1000 && runs.length < 20) {
      // A clock that advances one second each time the listener looks: the limit falls mid-stream.
      let t = 0;
      const s = await runListener(f.cfg, { now: () => (t += 1000) });
      const txns = new Map<string, number>();
      for (const p of await pullAll(topic)) {
        for (const e of p.batch.events) {
          seen.add(e.key!.id!);
          txns.set(e.after!.txn!, (txns.get(e.after!.txn!) ?? 0) + 1);
        }
      }
      runs.push({ stoppedBy: s.stoppedBy, txns });
    }
    assert.equal(seen.size, 1000);
    assert.ok(runs.length > 2, `only ${runs.length} runs`);
    assert.ok(runs.slice(0, -1).every((r) => r.stoppedBy === 'time-limit'));
    // Every run ends at a transaction boundary: each transaction it read, it read whole.
    for (const r of runs)
      for (const [txn, n] of r.txns) assert.equal(n, 100, `transaction ${txn} split across runs`);
  });

  it('continuous mode delivers changes as they come, run after run, and stops cleanly on SIGTERM', async () => {
    const topic = await createTopic('continuous');
    const f = await listenerFixture(topic, 'wal2json');
    await f.sql('CREATE TABLE t (id int PRIMARY KEY)');
    const child = spawn(
      process.execPath,
      [...LISTENER_NODE_FLAGS, path.resolve(__dirname, '../../listener/main.js')],
      {
        env: { ...process.env, ...listenerEnv(f.cfg), PGCDC_MODE: 'continuous' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const seen = new Set<string>();
    for (let batch = 0; batch < 3; batch++) {
      await f.sql(`INSERT INTO t SELECT g FROM generate_series(${batch * 10 + 1}, ${batch * 10 + 10}) g`);
      // Generous on a loaded machine: each continuous run is a full connect/check/read/confirm cycle.
      const deadline = Date.now() + 180_000;
      while (seen.size < (batch + 1) * 10 && Date.now() < deadline) {
        for (const p of await pullAll(topic)) for (const e of p.batch.events) seen.add(e.key!.id!);
      }
      assert.equal(
        seen.size,
        (batch + 1) * 10,
        `batch ${batch} not delivered while the listener kept running`,
      );
    }
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});
