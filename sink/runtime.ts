// How the sink's Node process is started in its container (sink/Dockerfile sets NODE_OPTIONS to this; a test
// keeps the two equal, and bench:e2e starts the sink with it).
//
// The job runs in a 512Mi Cloud Run container (infra/config.ts `sinkMemory`). Without a cap V8 sizes its heap
// from the memory it sees and grows it lazily: bench:e2e measured 455–600 MB peak RSS for a 170,700-change
// backlog. What the sink holds live is bounded (sink/run.ts: MAX_IN_HAND_BYTES of payloads as delivered,
// about MAX_TABLE_WORKERS × BATCH_JSON_CHARS decoded; 45–85 MB of live heap measured with --trace-gc), so
// a 256 MB old space leaves room for V8 to work in. The cap alone also shrinks the young generation (V8 sizes
// it from the old space), which made scavenges frequent: --max-semi-space-size=16 restores V8's default
// 64-bit semi-space, for 3 × 16 MB more at most. Measured peak RSS with both: about 320 MB.
export const SINK_NODE_OPTIONS = '--max-old-space-size=256 --max-semi-space-size=16';
