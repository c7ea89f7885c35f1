// How a job's V8 heap follows its container's memory limit: the stack (infra/jobs.ts) gives each job
// NODE_OPTIONS computed from the job's configured memory (`listenerMemory`, `sinkMemory`), and each image's
// Dockerfile sets the same value for Cloud Run's minimum as its default. Both jobs' runtime.ts say what
// share of memory their old space gets, and why.
//
// Why from the configuration and not from what the container sees: Node can size the old space from "a
// percentage of available system memory" (--max-old-space-size-percentage, Node 24,
// https://nodejs.org/api/cli.html#--max-old-space-size-percentagepercentage), which is the cgroup limit when
// libuv finds one ("This function currently only returns a non-zero value on Linux, based on cgroups if it is
// present", https://docs.libuv.org/en/v1.x/misc.html#c.uv_get_constrained_memory), else the machine's total.
// Cloud Run documents the limit ("Cloud Run instances that exceed their allowed memory limit are
// terminated", https://cloud.google.com/run/docs/configuring/jobs/memory-limits) but not how an instance
// shows it to the container, so a share of what Node finds could be a share of a larger VM. The
// configured limit is known exactly when the job is deployed.
//
// The semi-spaces stay at the size each job measured best: the young generation's size trades scavenges
// against RSS and does not depend on the memory (listener/runtime.ts has the measurements).

/** Cloud Run's minimum memory for jobs: "The minimum amount of memory you can configure in the second
 * generation execution environment is 512 MiB" (https://cloud.google.com/run/docs/configuring/jobs/memory-limits;
 * jobs run only there). The jobs' fixed in-memory bounds (sink/run.ts, listener/config.ts) are sized for it. */
export const MIN_JOB_MEMORY_MIB = 512;

export interface HeapShape {
  /** The old space's share of the container's memory (0 < share < 1). */
  oldSpaceShare: number;
  /** --max-semi-space-size, MiB: fixed, whatever the memory. */
  semiSpaceMb: number;
}

/**
 * NODE_OPTIONS for a job in a container of `memoryMib` MiB: an old-space cap of the job's share of it, and the
 * job's semi-space cap. Both flags are ones Node accepts in NODE_OPTIONS (https://nodejs.org/api/cli.html#node_optionsoptions:
 * "V8 options that are allowed are: ... `--max-old-space-size` ... `--max-semi-space-size`"; both in MiB). They leave the module
 * compile cache's folder and its V8 code cache valid (checked in test/infra/docker.test.ts), so the cache the
 * image build fills serves every memory size.
 */
export function heapNodeOptions(memoryMib: number, shape: HeapShape): string {
  if (!Number.isInteger(memoryMib) || memoryMib < MIN_JOB_MEMORY_MIB) {
    throw new RangeError(
      `a job's memory must be a whole number of MiB, at least Cloud Run's ${MIN_JOB_MEMORY_MIB} MiB minimum (got ${memoryMib})`,
    );
  }
  const oldSpace = Math.floor(memoryMib * shape.oldSpaceShare);
  return `--max-old-space-size=${oldSpace} --max-semi-space-size=${shape.semiSpaceMb}`;
}
