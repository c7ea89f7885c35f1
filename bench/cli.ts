// How fast `pgcdc` starts: wall time of `pgcdc --help`, `pgcdc status --env local` (against a local stack
// this script starts and stops) and, for scale, an empty `node -e ""`, each run several times as a fresh
// process. Prints the numbers; asserts nothing (speed is measured here, never in a timed unit test).
//
//   npm run bench:cli             (RUNS=10 npm run bench:cli for more runs)

import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const MAIN = path.resolve(__dirname, '..', 'cli', 'main.js');
const RUNS = Number(process.env.RUNS ?? 7);

function time(args: string[], env: NodeJS.ProcessEnv): number {
  const start = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  // status exits with its verdict (0 healthy, 13-15 otherwise); anything else means it did not run.
  if (r.status !== null && r.status > 15)
    throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

function stats(label: string, samples: number[]): void {
  const sorted = [...samples].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  console.log(
    `${label.padEnd(34)} median ${median.toFixed(0).padStart(5)} ms   min ${sorted[0].toFixed(0).padStart(5)} ms   max ${sorted[sorted.length - 1].toFixed(0).padStart(5)} ms   (${samples.length} runs)`,
  );
}

function main(): void {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgcdc-bench-cli-'));
  chmodSync(dir, 0o755); // initdb runs as the postgres user when we are root
  const env = { ...process.env, PGCDC_LOCAL_DIR: dir };
  try {
    console.log(
      `node ${process.version}, ${os.cpus().length} CPU(s), load average ${os.loadavg()[0].toFixed(2)}`,
    );
    const measure = (label: string, args: string[]) => {
      time(args, env); // warm the file cache
      stats(
        label,
        Array.from({ length: RUNS }, () => time(args, env)),
      );
    };
    measure('node -e "" (baseline)', ['-e', '']);
    measure('pgcdc --help', [MAIN, '--help']);
    measure('pgcdc status --help', [MAIN, 'status', '--help']);
    console.log('starting a local stack for status --env local …');
    execFileSync(process.execPath, [MAIN, 'local', 'up'], { env, stdio: 'ignore' });
    execFileSync(process.execPath, [MAIN, 'sql', 'init', '--env', 'local'], { env, stdio: 'ignore' });
    measure('pgcdc status --env local', [MAIN, 'status', '--env', 'local']);
    measure('pgcdc status --env local --json', [MAIN, 'status', '--env', 'local', '--json']);
  } finally {
    spawnSync(process.execPath, [MAIN, 'local', 'down', '--force', '--purge'], { env, stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
