// Confirmation prompts at a real pseudo-terminal: `script` gives the CLI a terminal for its output while
// stdin is redirected, fed an answer, or closed — the cases a user hits (issue 11.2).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { EXIT } from '../../cli/errors';
import { GOOD_STACK, tempProject } from './fakes';

const FIXTURE = path.resolve(__dirname, 'tty-fixture.js');

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Runs the fixture CLI under `script` (util-linux): its stdout/stderr are a pseudo-terminal. `inner` is a
 * shell redirection inside the terminal (e.g. "< /dev/null"); `feed` is what is typed at the terminal
 * (null: script's own stdin is /dev/null, so the terminal's input ends at once).
 */
function underTerminal(
  args: string[],
  opts: { project: string; inner?: string; feed: string | null },
): Promise<{ code: number | null; output: string }> {
  const command = `${shellQuote(process.execPath)} ${shellQuote(FIXTURE)} ${args.map(shellQuote).join(' ')} ${opts.inner ?? ''}`;
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      env: { ...process.env, PGCDC_FIXTURE_PROJECT: opts.project },
      stdio: [opts.feed === null ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, output }));
    if (opts.feed !== null && child.stdin) {
      // Typed once the question is on the terminal, as a person would.
      let sent = false;
      child.stdout!.on('data', () => {
        if (!sent && /\[y\/N\]|Type the stack name/.test(output)) {
          sent = true;
          child.stdin!.end(opts.feed);
        }
      });
    }
  });
}

describe('confirmation prompts at a pseudo-terminal', function () {
  let project: { dir: string; cleanup(): void };
  before(() => {
    project = tempProject({ dev: GOOD_STACK });
  });
  after(() => project.cleanup());

  it('deploy with stdin from /dev/null at a terminal refuses before previewing, non-zero, and says to pass --yes', async () => {
    const r = await underTerminal(['deploy', '--env', 'dev'], {
      project: project.dir,
      inner: '< /dev/null',
      feed: '',
    });
    assert.equal(r.code, EXIT.usage, r.output);
    assert.match(r.output, /refusing to deploy stack "dev" without confirmation \(stdin is not a terminal\)/);
    assert.match(r.output, /FIXTURE-CALLS \[\]/);
  });

  it('answering no at the terminal cancels: exit code 11 and "cancelled", only the preview ran', async () => {
    const r = await underTerminal(['deploy', '--env', 'dev'], { project: project.dir, feed: 'n\n' });
    assert.equal(r.code, EXIT.cancelled, r.output);
    assert.match(r.output, /Deploy stack "dev"\? \[y\/N\]/);
    assert.match(r.output, /error: cancelled: nothing was changed/);
    assert.match(r.output, /FIXTURE-CALLS \["preview"\]/);
  });

  it('input ending at the prompt (Ctrl-D) cancels with exit code 11', async () => {
    const r = await underTerminal(['destroy', '--env', 'dev'], { project: project.dir, feed: '\x04' });
    assert.equal(r.code, EXIT.cancelled, r.output);
    assert.match(r.output, /Type the stack name \(dev\) to destroy it:/);
    assert.match(r.output, /cancelled: no answer \(input ended\); nothing was changed/);
    assert.match(r.output, /FIXTURE-CALLS \["previewDestroy"\]/);
  });

  it('typing the stack name at the terminal lets destroy go ahead', async () => {
    const r = await underTerminal(['destroy', '--env', 'dev'], { project: project.dir, feed: 'dev\n' });
    assert.equal(r.code, EXIT.ok, r.output);
    assert.match(r.output, /FIXTURE-CALLS \["previewDestroy","destroy"\]/);
  });
});
