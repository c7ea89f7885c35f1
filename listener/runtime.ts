// How the listener's Node process is started in its container (listener/Dockerfile sets NODE_OPTIONS to this).
//
// V8 grows its heap lazily: without a cap, a run that streams a million events keeps ~300 MB of garbage
// resident even though what it holds live is bounded by PGCDC_MAX_IN_FLIGHT_BYTES. A cap makes the
// collector work within the job's memory instead (measured: 1M-row transaction under 256 MB peak RSS).
export const LISTENER_NODE_OPTIONS = '--max-old-space-size=160';
