// What the user sees: lines on stdout, errors on stderr, and progress for anything slower than a second —
// a small spinner on a terminal, plain "…" / "done" lines otherwise (CI logs, pipes, tests).

export interface Output {
  /** True when a person is watching a terminal: spinners and confirmation prompts. */
  readonly isTTY: boolean;
  /** A line on stdout (results). */
  log(line: string): void;
  /** A line on stderr (errors, hints). */
  error(line: string): void;
  /** Text streamed as is on stdout (Pulumi's own output). */
  write(text: string): void;
  /** Text streamed as is on stderr (Pulumi's output when stdout carries --json). */
  writeError(text: string): void;
  /** Runs `fn` showing `title` as in progress, then done (with its duration) or failed. */
  task<T>(title: string, fn: () => Promise<T>): Promise<T>;
}

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

interface Stream {
  write(text: string): unknown;
  isTTY?: boolean;
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const FRAME_MS = 80;

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

/** Output on real streams (process.stdout/stderr). */
export function streamOutput(stdout: Stream, stderr: Stream, clock: Clock = systemClock): Output {
  const isTTY = !!stdout.isTTY && !!stderr.isTTY;
  // The spinner line lives on stderr; anything printed while it spins first clears it.
  let spinning: { title: string; frame: number } | undefined;
  const clearSpinner = () => {
    if (spinning) stderr.write('\r\x1b[2K');
  };
  const redraw = () => {
    if (spinning) stderr.write(`\r\x1b[2K${FRAMES[spinning.frame % FRAMES.length]} ${spinning.title}`);
  };
  const out: Output = {
    isTTY,
    log(line) {
      clearSpinner();
      stdout.write(line + '\n');
      redraw();
    },
    error(line) {
      clearSpinner();
      stderr.write(line + '\n');
      redraw();
    },
    write(text) {
      clearSpinner();
      stdout.write(text);
      redraw();
    },
    writeError(text) {
      clearSpinner();
      stderr.write(text);
      redraw();
    },
    async task(title, fn) {
      const start = clock.now();
      if (!isTTY || spinning) {
        // Plain mode (or a task inside a task): one line when it starts, one when it ends — on stderr,
        // like the spinner, so stdout carries only results (`--json` stays parseable).
        out.error(`${title}…`);
        try {
          const result = await fn();
          out.error(`${title}: done (${seconds(clock.now() - start)})`);
          return result;
        } catch (e) {
          out.error(`${title}: failed`);
          throw e;
        }
      }
      spinning = { title, frame: 0 };
      redraw();
      const timer = setInterval(() => {
        if (!spinning) return;
        spinning.frame++;
        redraw();
      }, FRAME_MS);
      timer.unref();
      const finish = (mark: string) => {
        clearInterval(timer);
        clearSpinner();
        spinning = undefined;
        stderr.write(`${mark} ${title} (${seconds(clock.now() - start)})\n`);
      };
      try {
        const result = await fn();
        finish('✔');
        return result;
      } catch (e) {
        finish('✖');
        throw e;
      }
    },
  };
  return out;
}

/** Output captured in memory: what tests assert on. Never a TTY unless asked. */
export interface BufferedOutput extends Output {
  readonly stdout: string;
  readonly stderr: string;
}

export function bufferOutput(opts: { isTTY?: boolean; clock?: Clock } = {}): BufferedOutput {
  let stdout = '';
  let stderr = '';
  const base = streamOutput(
    { write: (t: string) => (stdout += t), isTTY: opts.isTTY },
    { write: (t: string) => (stderr += t), isTTY: opts.isTTY },
    opts.clock,
  );
  return {
    ...base,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
  };
}
