// The jobs' heap caps follow their containers' memory (contract/node-heap.ts): the NODE_OPTIONS the stack sets
// for a memory size, and what Node makes of them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { heapNodeOptions, MIN_JOB_MEMORY_MIB } from '../../contract/node-heap';
import { memoryMib } from '../../infra/config';
import { LISTENER_HEAP, LISTENER_NODE_OPTIONS, listenerNodeOptions } from '../../listener/runtime';
import { SINK_HEAP, SINK_NODE_OPTIONS, sinkNodeOptions } from '../../sink/runtime';

/** The flags' values, MiB. */
function parse(options: string): { oldSpace: number; semiSpace: number } {
  const m = /^--max-old-space-size=(\d+) --max-semi-space-size=(\d+)$/.exec(options);
  assert.ok(m, options);
  return { oldSpace: Number(m[1]), semiSpace: Number(m[2]) };
}

/** heap_size_limit (MiB) of a Node started with these NODE_OPTIONS; fails if Node refuses them. */
function heapLimitMib(nodeOptions: string): number {
  const r = spawnSync(
    process.execPath,
    ['-e', 'process.stdout.write(String(require("v8").getHeapStatistics().heap_size_limit))'],
    { env: { PATH: process.env.PATH, NODE_OPTIONS: nodeOptions }, encoding: 'utf8', timeout: 30_000 },
  );
  assert.equal(r.status, 0, `NODE_OPTIONS="${nodeOptions}": ${r.stderr}`);
  return Number(r.stdout) / 1024 / 1024;
}

// Cloud Run's range for jobs: 512 MiB to "32 gibibyte (32 Gi)" (https://cloud.google.com/run/docs/configuring/jobs/memory-limits).
const SIZES = ['512Mi', '768Mi', '1Gi', '2Gi', '4Gi', '8Gi', '16Gi', '32Gi'];

describe("the jobs' heap caps follow the container's memory", () => {
  it("in Cloud Run's smallest container, the caps measured for it (the images' defaults)", () => {
    assert.equal(MIN_JOB_MEMORY_MIB, 512);
    assert.equal(SINK_NODE_OPTIONS, '--max-old-space-size=256 --max-semi-space-size=16');
    assert.equal(LISTENER_NODE_OPTIONS, '--max-old-space-size=160 --max-semi-space-size=8');
  });

  it('a larger container gets a proportionally larger old space; the semi-spaces stay as measured', () => {
    assert.equal(sinkNodeOptions(2048), '--max-old-space-size=1024 --max-semi-space-size=16');
    assert.equal(listenerNodeOptions(2048), '--max-old-space-size=640 --max-semi-space-size=8');
    assert.equal(sinkNodeOptions(32 * 1024), '--max-old-space-size=16384 --max-semi-space-size=16');
    assert.equal(listenerNodeOptions(32 * 1024), '--max-old-space-size=10240 --max-semi-space-size=8');
    for (const [options, shape] of [
      [sinkNodeOptions, SINK_HEAP],
      [listenerNodeOptions, LISTENER_HEAP],
    ] as const) {
      let previous = 0;
      for (const size of SIZES) {
        const mib = memoryMib(size);
        const { oldSpace, semiSpace } = parse(options(mib));
        assert.equal(semiSpace, shape.semiSpaceMb, size);
        assert.ok(oldSpace > previous, `${size}: grows with the memory`);
        // The whole heap (old space and three semi-spaces) leaves at least as much of the container outside
        // it as in the smallest container, where the fixed in-memory bounds were measured.
        const outside = mib - oldSpace - 3 * semiSpace;
        const outsideAtMin = MIN_JOB_MEMORY_MIB - parse(options(MIN_JOB_MEMORY_MIB)).oldSpace - 3 * semiSpace;
        assert.ok(outside >= outsideAtMin, `${size}: ${outside} MiB outside the heap`);
        previous = oldSpace;
      }
    }
  });

  it('Node accepts the options in NODE_OPTIONS and caps the heap at the old space plus three semi-spaces', () => {
    for (const mib of [512, 2048, 32 * 1024]) {
      for (const options of [sinkNodeOptions(mib), listenerNodeOptions(mib)]) {
        const { oldSpace, semiSpace } = parse(options);
        assert.equal(heapLimitMib(options), oldSpace + 3 * semiSpace, options);
      }
    }
  });

  it('refuses a memory below Cloud Run’s minimum or not a whole number of MiB, saying so', () => {
    for (const bad of [256, 511, 512.5, Number.NaN]) {
      assert.throws(
        () => heapNodeOptions(bad, SINK_HEAP),
        /a job's memory must be a whole number of MiB, at least Cloud Run's 512 MiB minimum/,
      );
    }
  });

  it('reads the stack’s memory settings as Cloud Run does: Mi and Gi are powers of 1024', () => {
    assert.equal(memoryMib('512Mi'), 512);
    assert.equal(memoryMib('2Gi'), 2048);
    assert.equal(memoryMib('32Gi'), 32768);
    assert.throws(() => memoryMib('2G'), /"2G" is not a memory size like 512Mi or 2Gi/);
  });
});
