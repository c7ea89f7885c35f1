// Continuous mode's loop (listener/job.ts runContinuous): after a run whose TOAST lookup the application's
// lock refused, the next run waits, doubling up to a minute, instead of queueing another lock request at
// once; a normal run resets it; SIGTERM ends a pause at once and starts no other run. The run function and
// the pause are injected: the test scripts what each run reports and records what the loop waits.

import assert from 'node:assert/strict';
import {
  CONTINUOUS_PAUSES,
  ListenerJobSummary,
  pauseAfterRun,
  runContinuous,
  stopControl,
} from '../../listener/job';
import { LOOKUP_LIMITS } from '../../listener/toast-fill';

function summary(over: Partial<ListenerJobSummary> = {}): ListenerJobSummary {
  return {
    changes: 5,
    messages: 1,
    bytes: 700,
    transactions: 2,
    firstLsn: '0/1000',
    lastLsn: '0/1100',
    confirmedLsn: '0/1100',
    lagBytes: 0,
    lastCommitTs: '2026-01-01 12:00:00+00',
    seconds: 0.4,
    stoppedBy: 'wal-end',
    peakRssMb: 80,
    slotWalStatus: 'reserved',
    stuckTransaction: null,
    skippedTables: [],
    blockedLookup: null,
    snapshot: null,
    ...over,
  };
}

const BLOCKED = summary({
  stoppedBy: 'lookup-blocked',
  changes: 1,
  blockedLookup: {
    table: 'public.docs',
    reason: 'lock-timeout',
    attempts: LOOKUP_LIMITS.lockAttempts,
    lockTimeoutMs: LOOKUP_LIMITS.lockTimeoutMs,
    statementTimeoutMs: LOOKUP_LIMITS.statementTimeoutMs,
    sessions: [],
  },
});
const BUSY = summary();
const IDLE = summary({ changes: 0, messages: 0, bytes: 0, firstLsn: null, lastLsn: null });

/** Runs the loop over scripted runs; after the last one it stops. Returns what happened, in order. */
async function drive(script: ListenerJobSummary[]) {
  const control = stopControl();
  const events: string[] = [];
  const logs: string[] = [];
  let next = 0;
  await runContinuous({
    runJob: async () => {
      const s = script[next++];
      if (next === script.length) control.stop();
      return s;
    },
    report: (s) => events.push(`run ${s.stoppedBy}${s.changes === 0 ? ' idle' : ''}`),
    stopping: control.stopping,
    pause: async (ms) => {
      events.push(`pause ${ms}`);
    },
    log: (line) => logs.push(line),
  });
  return { events, logs, runs: next };
}

describe('listener continuous mode', () => {
  it('backs off after lookup-blocked runs, doubling up to a minute, and resets on a normal run', async () => {
    const { events, logs } = await drive([
      ...Array<ListenerJobSummary>(7).fill(BLOCKED),
      BUSY,
      BLOCKED,
      IDLE,
      BUSY,
      BUSY,
    ]);
    assert.deepEqual(events, [
      'run lookup-blocked',
      'pause 2000',
      'run lookup-blocked',
      'pause 4000',
      'run lookup-blocked',
      'pause 8000',
      'run lookup-blocked',
      'pause 16000',
      'run lookup-blocked',
      'pause 32000',
      'run lookup-blocked',
      'pause 60000',
      'run lookup-blocked',
      'pause 60000',
      // A normal run with changes: the next one starts at once, and the backoff starts over.
      'run wal-end',
      'run lookup-blocked',
      'pause 2000',
      'run wal-end idle',
      'pause 1000',
      'run wal-end',
      // Stopped after the last run: no pause, no other run.
      'run wal-end',
    ]);
    assert.equal(logs[0], 'TOAST lookup blocked in 1 run(s) in a row (public.docs): next run in 2 s');
    assert.equal(logs[6], 'TOAST lookup blocked in 7 run(s) in a row (public.docs): next run in 60 s');
  });

  it('backs off after a run whose snapshot was refused its lock too, and says which table', async () => {
    const snapshotBlocked = summary({
      snapshot: {
        rows: 0,
        messages: 0,
        chunks: 0,
        tables: [],
        seconds: 3.1,
        stoppedBy: 'blocked',
        blocked: {
          table: 'public.orders',
          reason: 'lock-timeout',
          attempts: 3,
          lockTimeoutMs: 1000,
          statementTimeoutMs: 30_000,
          sessions: [],
        },
        peakRssMb: 90,
        skippedTables: [],
      },
    });
    const { events, logs } = await drive([snapshotBlocked, snapshotBlocked, BLOCKED, BUSY, BUSY]);
    assert.deepEqual(events, [
      'run wal-end',
      'pause 2000',
      'run wal-end',
      'pause 4000',
      // A blocked lookup after a blocked snapshot: still the same streak of refused locks.
      'run lookup-blocked',
      'pause 8000',
      'run wal-end',
      'run wal-end',
    ]);
    assert.equal(logs[0], 'snapshot blocked in 1 run(s) in a row (public.orders): next run in 2 s');
    assert.equal(logs[2], 'TOAST lookup blocked in 3 run(s) in a row (public.docs): next run in 8 s');
  });

  it('the pause is bounded whatever the count, and a run that found nothing still pauses briefly', () => {
    assert.equal(pauseAfterRun(BLOCKED, 1000), CONTINUOUS_PAUSES.blockedMaxMs);
    assert.equal(pauseAfterRun(BLOCKED, 1), CONTINUOUS_PAUSES.blockedFirstMs);
    assert.equal(pauseAfterRun(IDLE, 0), CONTINUOUS_PAUSES.idleMs);
    assert.equal(pauseAfterRun(BUSY, 0), 0);
  });

  it('SIGTERM during a back-off pause ends it at once and starts no other run', async () => {
    const control = stopControl();
    let runs = 0;
    let paused!: () => void;
    const pausing = new Promise<void>((r) => (paused = r));
    const loop = runContinuous({
      runJob: async () => {
        runs++;
        return BLOCKED;
      },
      report: () => undefined,
      stopping: control.stopping,
      pause: (ms) => {
        const p = control.pause(ms);
        paused();
        return p;
      },
      // An hour: if the signal did not end the pause, the test would time out.
      pauses: { ...CONTINUOUS_PAUSES, blockedFirstMs: 3_600_000 },
    });
    await pausing;
    // The loop now waits in its back-off pause; the signal, not the timer, must end it.
    control.stop();
    await loop;
    assert.equal(runs, 1);
    assert.equal(control.stopping(), true);
    // Once stopped, a pause does not wait at all.
    await control.pause(60_000);
  });
});
