import { heapNodeOptions, MIN_JOB_MEMORY_MIB, type HeapShape } from '../contract/node-heap';

// How the sink's Node process is started in its container. The stack sets NODE_OPTIONS to
// sinkNodeOptions(sinkMemory) on the job (infra/jobs.ts); sink/Dockerfile sets SINK_NODE_OPTIONS, the value for
// Cloud Run's 512 MiB minimum, as the image's default (a test keeps the two equal, and bench:e2e starts the sink
// with it). contract/node-heap.ts says why the cap comes from the configuration.
//
// In a 512Mi container (Cloud Run's minimum for jobs, and the default): without flags V8 sizes its heap from
// the memory it sees (4.3 GB on this project's 24 GiB machine) and grows it lazily: bench:e2e measured 455–600
// MB peak RSS for a 170,700-change backlog. What the sink holds live is bounded (sink/run.ts: MAX_IN_HAND_BYTES
// of payloads as delivered, DECODED_CHARS_BUDGET of decoded JSON plus one message per worker; 45–85 MB of live
// heap after full collections, --trace-gc), so a 256 MB old space leaves V8 room to work in. The young
// generation comes on top: V8 lets each of its three semi-spaces grow to 64 MB (heap_size_limit 448 MB with the
// old-space cap alone), so --max-semi-space-size=16 bounds the whole heap at 304 MB (measured with
// v8.getHeapStatistics()). Peak RSS with both, on bench:e2e: 300–370 MB; test/sink/bounded.test.ts drains a
// 190 MB backlog under 400 MB.
//
// A larger container gets the same share, half its memory, as old space. Those in-memory bounds are fixed
// constants, not shares of the heap, so what lies outside the heap (payloads in hand, gunzip buffers, the
// Write API's requests) does not grow with the memory, and the room left for it only grows; the larger cap
// lets V8 collect less often (the growing factor below is held back by the cap: about 20 full collections
// under the 256 MB cap against 6 under V8's 4 GB default, on the same workload).
export const SINK_HEAP: HeapShape = { oldSpaceShare: 1 / 2, semiSpaceMb: 16 };

/** NODE_OPTIONS for the sink in a container of `memoryMib` MiB (at least 512). */
export function sinkNodeOptions(memoryMib: number): string {
  return heapNodeOptions(memoryMib, SINK_HEAP);
}

/** The image's default: '--max-old-space-size=256 --max-semi-space-size=16'. */
export const SINK_NODE_OPTIONS = sinkNodeOptions(MIN_JOB_MEMORY_MIB);

// Node accepts only a listed set of V8 flags in NODE_OPTIONS (the two above are among them); this one is not
// ("--heap-growing-percent= is not allowed in NODE_OPTIONS", exit code 9), so the image gives it on the
// command line (sink/Dockerfile's ENTRYPOINT and its compile-cache warm-up; a test keeps them equal).
//
// --heap-growing-percent: after each full collection V8 sets the next collection's limit from the live size
// times a growing factor, which it picks itself (from the heap cap, the machine's memory and how fast it
// collects; small here: with the 256 MB cap the sink ran about 20 full collections on bench:e2e's workload,
// against 6 with V8's 4 GB default, and garbage collection cost it 10–25 CPU-s per million changes).
// "--heap-growing-percent (specifies heap growing factor as (1 + heap_growing_percent/100))" (`node
// --v8-options`, Node 24.22.3): 300 fixes the factor at 4 whatever the host, and V8 still clamps the limit to
// halfway between the current size and the cap (heap-controller.cc, BoundAllocationLimit), so the cap alone
// decides how big the heap may get (checked: with a 64 MB cap a run still ends in "Reached heap limit" at
// about 64 MB, with the flag as without). Measured on this project's
// 2-core machine: bench:sink (200,000 events, under these flags) 34–40 → 24–26 CPU-s/M; bench:e2e pgoutput
// sink 40–47 → 37–40 CPU-s/M, peak RSS 302–316 → 342–366 MB (the 512Mi container is 536 MB);
// test/sink/bounded.test.ts still drains its 190 MB backlog under 400 MB.
export const SINK_NODE_FLAGS: readonly string[] = ['--heap-growing-percent=300'];
