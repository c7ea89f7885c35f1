// What the user sees while something slow runs: a spinner on a terminal, plain lines otherwise.

import assert from 'node:assert/strict';
import { bufferOutput } from '../../cli/output';

describe('progress output', () => {
  it('outside a terminal a task prints a start line and a done line with its duration, on stderr only', async () => {
    let now = 1000;
    const out = bufferOutput({ isTTY: false, clock: { now: () => now } });
    const result = await out.task('Starting the local stack', async () => {
      now += 2500;
      return 42;
    });
    assert.equal(result, 42);
    assert.equal(out.stderr, 'Starting the local stack…\nStarting the local stack: done (2.5s)\n');
    assert.equal(out.stdout, '');
  });

  it('outside a terminal a failing task says so and passes the error on', async () => {
    const out = bufferOutput({ isTTY: false });
    await assert.rejects(
      out.task('Sink', async () => {
        throw new Error('BigQuery said no');
      }),
      /BigQuery said no/,
    );
    assert.match(out.stderr, /Sink: failed\n$/);
  });

  it('on a terminal a task shows a spinner, clears it for lines printed meanwhile, and ends with a check mark', async () => {
    let now = 0;
    const out = bufferOutput({ isTTY: true, clock: { now: () => now } });
    await out.task('Listener: slot → Pub/Sub', async () => {
      out.log('a result line');
      now += 1200;
    });
    // The spinner's first frame, cleared before the result line, redrawn after it, then the final mark.
    const clear = '\r\x1b[2K';
    assert.ok(
      out.stderr.startsWith(`${clear}⠋ Listener: slot → Pub/Sub${clear}`),
      JSON.stringify(out.stderr),
    );
    assert.match(out.stderr, /✔ Listener: slot → Pub\/Sub \(1\.2s\)\n$/);
    assert.equal(out.stdout, 'a result line\n');
  });

  it('on a terminal a failed task ends with a cross', async () => {
    const out = bufferOutput({ isTTY: true });
    await assert.rejects(out.task('Deploy', () => Promise.reject(new Error('boom'))));
    assert.match(out.stderr, /✖ Deploy \(0\.0s\)\n$/);
  });
});
