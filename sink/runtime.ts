// How the sink's Node process is started in its container (sink/Dockerfile sets NODE_OPTIONS to this; a test
// keeps the two equal, and bench:e2e starts the sink with it).
//
// The job runs in a 512Mi Cloud Run container (infra/config.ts `sinkMemory`; 512 MiB is also Cloud Run's
// minimum for jobs). Without flags V8 sizes its heap from the memory it sees (4.3 GB on this project's 24 GiB
// machine) and grows it lazily: bench:e2e measured 455–600 MB peak RSS for a 170,700-change backlog. What
// the sink holds live is bounded (sink/run.ts: MAX_IN_HAND_BYTES of payloads as delivered, about
// MAX_TABLE_WORKERS × BATCH_JSON_CHARS decoded; 45–85 MB of live heap after full collections, --trace-gc), so
// a 256 MB old space leaves V8 room to work in. The young generation comes on top: V8 lets each of its three
// semi-spaces grow to 64 MB (heap_size_limit 448 MB with the old-space cap alone), so --max-semi-space-size=16
// bounds the whole heap at 304 MB (measured with v8.getHeapStatistics()). Peak RSS with both, on bench:e2e:
// 300–370 MB; test/sink/bounded.test.ts drains a 190 MB backlog under 400 MB.
export const SINK_NODE_OPTIONS = '--max-old-space-size=256 --max-semi-space-size=16';
