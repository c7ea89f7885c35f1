// How the listener's Node process is started in its container (listener/Dockerfile sets NODE_OPTIONS to this).
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
// (4 MB: more scavenges, 34.5; 16 and 32 MB: 32.6 and 33.3 with RSS 250–274 MB).
export const LISTENER_NODE_OPTIONS = '--max-old-space-size=160 --max-semi-space-size=8';
