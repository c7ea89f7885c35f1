import { heapNodeOptions, MIN_JOB_MEMORY_MIB, type HeapShape } from '../contract/node-heap';

// How the listener's Node process is started in its container. The stack sets NODE_OPTIONS to
// listenerNodeOptions(listenerMemory) on the listener and admin jobs (infra/jobs.ts); listener/Dockerfile sets
// LISTENER_NODE_OPTIONS, the value for Cloud Run's 512 MiB minimum, as the image's default (a test keeps the two
// equal). contract/node-heap.ts says why the cap comes from the configuration.
//
// V8 grows its heap lazily: without a cap, a run that streams a million events keeps ~300 MB of garbage
// resident even though what it holds live is bounded by PGCDC_MAX_IN_FLIGHT_BYTES. A cap makes the
// collector work within the job's memory instead (measured: 1M-row transaction under 256 MB peak RSS).
//
// The young generation needs a cap of its own. V8 grows each semi-space up to 64 MB on a busy process (Node 24;
// `v8.getHeapStatistics().heap_size_limit` is the old-space cap plus three semi-spaces), and under a 160 MB
// old-space cap that crowds the heap: measured in bench:e2e (pgoutput, 170,700 changes) with a GC log, the
// listener ran 31 full mark-compacts (1.25 s of pauses) while it held 30–100 MB live, and spent 36–42 CPU-s per
// million changes. With 8 MB semi-spaces: 13–16 full collections, 29.5–30.5 CPU-s/M and peak RSS 155–215 MB
// (4 MB: more scavenges, 34.5; 16 and 32 MB: 32.6 and 33.3 with RSS 250–274 MB). The semi-spaces stay at 8 MB
// whatever the memory.
//
// The old space is 5/16 of the container's memory: 160 MB in 512Mi. What the listener holds is bounded by
// fixed byte limits (PGCDC_MAX_IN_FLIGHT_BYTES, the snapshot's chunk and message sizes), not by shares of the
// heap, so a larger container only widens the room left outside the heap, and a larger cap lets V8 collect
// less often.
export const LISTENER_HEAP: HeapShape = { oldSpaceShare: 5 / 16, semiSpaceMb: 8 };

/** NODE_OPTIONS for the listener (and the admin job, same image) in a container of `memoryMib` MiB (at least 512). */
export function listenerNodeOptions(memoryMib: number): string {
  return heapNodeOptions(memoryMib, LISTENER_HEAP);
}

/** The image's default: '--max-old-space-size=160 --max-semi-space-size=8'. */
export const LISTENER_NODE_OPTIONS = listenerNodeOptions(MIN_JOB_MEMORY_MIB);

// Node does not accept this V8 flag in NODE_OPTIONS: the image gives it on the command line (listener/Dockerfile's
// ENTRYPOINT and compile-cache warm-up; a test keeps them equal). It fixes the factor by which V8 lets the old
// generation grow between full collections at 4 (V8 picks a small one under a small cap), still bounded by the
// cap; sink/runtime.ts says more. Measured in bench:e2e on this project's 2-core machine (2 runs each): listener CPU-s per million
// changes, wal2json 32.7 / 29.2 → 29.3 / 23.8, pgoutput 23.7 / 24.1 → 20.6 / 21.5; peak RSS 165–226 → 221–268 MB.
// test/listener/bounded.test.ts's 1M-row transaction: 212 MB (168 MB without), snapshot-limits' wide rows: 219 MB
// (176–188 MB without), both under the tests' 256 MB.
export const LISTENER_NODE_FLAGS: readonly string[] = ['--heap-growing-percent=300'];
