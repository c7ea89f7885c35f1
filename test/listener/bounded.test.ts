// Bounded memory (DESIGN §4.4) and bounded runs (§4.5).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { runListener } from '../../listener/run';
import { LISTENER_NODE_OPTIONS } from '../../listener/runtime';
import { createTopic, pullAll } from '../support/pubsub';
import { listenerEnv, listenerFixture } from '../support/listener';

function runListenerProcess(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.resolve(__dirname, '../../listener/main.js')], {
      // The listener runs with the container's Node options (listener/Dockerfile).
      env: { ...process.env, NODE_OPTIONS: LISTENER_NODE_OPTIONS, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('listener: bounded memory and bounded runs', function () {
  this.timeout(600_000);

  it('streams a single 1,000,000-row transaction with peak RSS under 256 MB', async () => {
    const topic = await createTopic('million');
    const f = await listenerFixture(topic, 'wal2json');
    await f.sql('CREATE TABLE big (id int PRIMARY KEY, name text, amount numeric(12,2), at timestamptz)');
    await f.sql(
      "INSERT INTO big SELECT g, 'name ' || g, g * 1.01, '2026-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, 1000000) g",
    );
    const res = await runListenerProcess(listenerEnv(f.cfg));
    assert.equal(res.code, 0, res.stderr);
    const summary = JSON.parse(res.stdout) as { changes: number; transactions: number; peakRssMb: number; seconds: number };
    assert.equal(summary.changes, 1_000_000);
    assert.ok(summary.peakRssMb < 256, `peak RSS ${summary.peakRssMb} MB`);
    console.log(`      1M-row transaction: ${summary.seconds.toFixed(1)} s, peak RSS ${summary.peakRssMb} MB`);
    // Count what arrived from the attributes (cheap) — every event of the transaction is in Pub/Sub.
    const pulled = await pullAll(topic);
    assert.equal(
      pulled.reduce((n, p) => n + Number(p.attributes.count), 0),
      1_000_000,
    );
  });

  it('stops at the time limit at a transaction boundary and the next run continues where it stopped', async () => {
    const topic = await createTopic('timelimit');
    const f = await listenerFixture(topic, 'pgoutput', { maxRunSeconds: 1 });
    await f.sql('CREATE TABLE t (id int PRIMARY KEY)');
    // Enough small transactions that one second cannot read them all.
    await f.sql(
      "DO $$ BEGIN FOR i IN 1..100000 LOOP INSERT INTO t VALUES (i); COMMIT; END LOOP; END $$",
    );
    const seen = new Set<string>();
    let runs = 0;
    let stoppedByLimit = 0;
    while (seen.size < 100000 && runs < 30) {
      const s = await runListener(f.cfg);
      runs++;
      if (s.stoppedBy === 'time-limit') stoppedByLimit++;
      for (const p of await pullAll(topic)) for (const e of p.batch.events) seen.add(e.key!.id!);
    }
    assert.equal(seen.size, 100000);
    assert.ok(stoppedByLimit >= 1, `no run hit the 1 s limit in ${runs} runs`);
  });
});
