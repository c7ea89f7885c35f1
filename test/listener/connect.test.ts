import assert from 'node:assert/strict';
import net from 'node:net';
import { connectWithRetry, isRetryableConnectError, withConnectRetry } from '../../listener/connect';
import { testPostgres } from '../support/stack';

/** A clock that only moves when the code under test sleeps: no real waiting, no timing dependence. */
function fakeClock() {
  let t = 0;
  const pauses: number[] = [];
  return {
    pauses,
    now: () => t,
    sleep: async (ms: number) => {
      pauses.push(ms);
      t += ms;
    },
  };
}

function failure(code: string): Error {
  return Object.assign(new Error(`connect ${code}`), { code });
}

describe('connecting with retries within the run budget (Direct VPC egress can take a minute)', () => {
  it('retries network failures with doubling pauses until the connection succeeds', async () => {
    const clock = fakeClock();
    let attempts = 0;
    const lines: string[] = [];
    const result = await withConnectRetry(
      async () => {
        attempts++;
        if (attempts < 4) throw failure(attempts % 2 ? 'ECONNREFUSED' : 'ETIMEDOUT');
        return 'connected';
      },
      { budgetMs: 60_000, initialDelayMs: 1000, maxDelayMs: 3000, ...clock, log: (l) => lines.push(l) },
    );
    assert.equal(result, 'connected');
    assert.deepEqual(clock.pauses, [1000, 2000, 3000]);
    assert.equal(lines[0], 'database not reachable yet (attempt 1: connect ECONNREFUSED); retrying in 1 s');
  });

  it('gives up with the last error once the budget is spent, the last pause cut to fit', async () => {
    const clock = fakeClock();
    await assert.rejects(
      withConnectRetry(async () => Promise.reject(failure('EHOSTUNREACH')), {
        budgetMs: 10_000,
        initialDelayMs: 4000,
        ...clock,
      }),
      /EHOSTUNREACH/,
    );
    assert.deepEqual(clock.pauses, [4000, 6000]);
  });

  it('does not retry what waiting cannot fix (wrong password, unknown database)', async () => {
    const clock = fakeClock();
    let attempts = 0;
    await assert.rejects(
      withConnectRetry(
        async () => {
          attempts++;
          throw failure('28P01');
        },
        { ...clock },
      ),
      /28P01/,
    );
    assert.equal(attempts, 1);
    assert.equal(isRetryableConnectError(failure('3D000')), false);
    assert.equal(isRetryableConnectError(failure('57P03')), true);
    assert.equal(isRetryableConnectError(new Error('timeout expired')), true);
  });

  it('reaches a real server that starts accepting after the first attempts were refused', async () => {
    const cluster = await testPostgres();
    // A port that refuses until the test forwards it to the real server, after the second refusal.
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    let forward: net.Server | undefined;
    let refusals = 0;
    const client = await connectWithRetry(
      { ...cluster.connection(), port },
      {
        budgetMs: 60_000,
        initialDelayMs: 1,
        log: () => {
          refusals++;
          if (refusals === 2)
            forward = net
              .createServer((s) => {
                const up = net.connect(cluster.port, cluster.host);
                s.pipe(up).pipe(s);
                up.on('error', () => s.destroy());
                s.on('error', () => up.destroy());
              })
              .listen(port, '127.0.0.1');
        },
        sleep: () =>
          new Promise((r) => {
            if (forward && !forward.listening) forward.once('listening', () => r());
            else setImmediate(() => r());
          }),
      },
    );
    try {
      assert.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1);
      assert.equal(refusals, 2);
    } finally {
      await client.end();
      forward?.close();
    }
  });
});
