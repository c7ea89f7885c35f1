// The sink's memory does not grow with the backlog: a backlog several times the job's heap cap, written by
// `sink/main.js` run as the container runs it (NODE_OPTIONS and V8 flags of sink/runtime.ts = sink/Dockerfile), stays
// under a fixed peak RSS, and every event lands, checked row by row.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChangeEvent } from '../../contract/events';
import { SINK_NODE_FLAGS, SINK_NODE_OPTIONS } from '../../sink/runtime';
import {
  batchOf,
  channel,
  event,
  ID_DOC_COLUMNS,
  nextCommit,
  SINK_MAIN,
  sinkJobEnv,
  sinkStack,
  SinkStack,
} from './support';

const COLUMNS = ID_DOC_COLUMNS;

// 48 messages × 800 events × ~5 KB: 190 MB of event JSON (gzip makes it a few MB on Pub/Sub), about 0.75×
// the old space on its own and several times what a heap of decoded events of that size needs. The test's
// limit is what the 512Mi container must never reach.
const MESSAGES = 48;
const PER_MESSAGE = 800;
const PEAK_RSS_LIMIT_MB = 400;

function doc(id: number): string {
  return `doc ${id} ` + 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(140);
}

describe('sink: bounded memory', function () {
  this.timeout(900_000);
  let stack: SinkStack;

  before(async () => {
    stack = await sinkStack();
  });
  after(async () => {
    await stack.stopBigQuery();
  });

  it('the container runs the sink with the Node options and flags this test uses', () => {
    const dockerfile = readFileSync(path.resolve(__dirname, '../../../sink/Dockerfile'), 'utf8');
    assert.match(dockerfile, new RegExp(`^ENV NODE_OPTIONS="${SINK_NODE_OPTIONS}"$`, 'm'));
    const entrypoint = /^ENTRYPOINT (.*)$/m.exec(dockerfile)?.[1];
    assert.deepEqual(JSON.parse(entrypoint ?? 'null'), ['node', ...SINK_NODE_FLAGS, 'dist/sink/main.js']);
  });

  it(`drains a ${MESSAGES * PER_MESSAGE}-event, 190 MB backlog under ${PEAK_RSS_LIMIT_MB} MB peak RSS, every row right`, async () => {
    const ch = await channel(stack, { pullWaitSeconds: 3 });
    let id = 0;
    for (let m = 0; m < MESSAGES; m++) {
      const commit = nextCommit();
      const events: ChangeEvent[] = [];
      for (let j = 0; j < PER_MESSAGE; j++) {
        id += 1;
        const text = String(id);
        events.push(event('c', commit, j, { key: { id: text }, after: { id: text, doc: doc(id) } }));
      }
      await ch.publish(batchOf('big_docs', COLUMNS, events));
    }

    // The child's own peak RSS (getrusage's ru_maxrss, in KB on Linux), written when it exits.
    const report = path.join(os.tmpdir(), `pgcdc-sink-rss-${process.pid}-${Date.now()}.txt`);
    const probe = path.join(os.tmpdir(), `pgcdc-sink-rss-probe-${process.pid}.js`);
    writeFileSync(
      probe,
      `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(report)}, String(process.resourceUsage().maxRSS)));\n`,
    );
    const result = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [...SINK_NODE_FLAGS, '--require', probe, SINK_MAIN], {
        env: sinkJobEnv(ch, 3),
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('close', (status) => resolve({ status, stderr }));
    });
    assert.equal(result.status, 0, result.stderr);
    const peakMb = Number(readFileSync(report, 'utf8')) / 1024;
    assert.ok(peakMb < PEAK_RSS_LIMIT_MB, `sink peak RSS ${peakMb.toFixed(0)} MB`);

    const replica = await ch.rest.listRows('big_docs');
    assert.equal(replica.length, id);
    const seen = new Set<number>();
    for (const r of replica) {
      const n = Number(r.id);
      assert.equal(r.doc, doc(n), `replica row ${n}`);
      seen.add(n);
    }
    assert.equal(seen.size, id);
    const history = await ch.rest.listRows('big_docs_changes');
    assert.equal(history.length, id);
  });
});
