// Google's Pub/Sub emulator (gcloud beta emulators pubsub start), started on a free loopback port.
//
// gcloud starts a Java child; we run it in its own process group so stopping kills the whole group, and
// wait for the emulator's own "Server started" line rather than sleeping.

import { spawn } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import { freePort, waitForPort } from './ports';
import { requirePubSubEmulator } from './prerequisites';

export interface PubSubEmulator {
  /** "127.0.0.1:PORT", the value for PUBSUB_EMULATOR_HOST. */
  host: string;
  pid: number;
  stop(): Promise<void>;
}

export interface StartPubSubOptions {
  dir: string;
  port?: number;
  /** Keep running after this process exits (the CLI's `local up`); output goes to `<dir>/pubsub.log`. */
  detached?: boolean;
  startTimeoutMs?: number;
}

export async function startPubSubEmulator(opts: StartPubSubOptions): Promise<PubSubEmulator> {
  const gcloud = requirePubSubEmulator();
  const dir = path.resolve(opts.dir);
  // gcloud writes env.yaml into the data directory and fails if it does not exist yet.
  mkdirSync(path.join(dir, 'pubsub-data'), { recursive: true });
  const port = opts.port ?? (await freePort());
  const logFile = path.join(dir, 'pubsub.log');
  const out = openSync(logFile, 'a');
  const child = spawn(
    gcloud,
    [
      'beta',
      'emulators',
      'pubsub',
      'start',
      `--host-port=127.0.0.1:${port}`,
      `--data-dir=${path.join(dir, 'pubsub-data')}`,
    ],
    {
      detached: true,
      stdio: ['ignore', out, out],
      env: { ...process.env, CLOUDSDK_CORE_DISABLE_PROMPTS: '1' },
    },
  );
  if (opts.detached) child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${gcloud}`);
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? -1));
  const stop = () => killGroup(pid);
  try {
    // The emulator prints "Server started" once it listens; the port answering is the same fact and
    // does not depend on the log wording of a given gcloud release.
    await Promise.race([
      waitForPort('127.0.0.1', port, opts.startTimeoutMs ?? 60_000),
      new Promise<never>((_, reject) => {
        const t = setInterval(() => {
          if (exited !== null) {
            clearInterval(t);
            reject(new Error(`the Pub/Sub emulator exited with code ${exited}; see ${logFile}`));
          }
        }, 100);
        t.unref();
      }),
    ]);
  } catch (e) {
    await stop();
    throw e;
  }
  return { host: `127.0.0.1:${port}`, pid, stop };
}

/** SIGTERM a process group, SIGKILL it if it is still there after a grace period. */
export async function killGroup(pid: number, graceMs = 5000): Promise<void> {
  const alive = () => {
    try {
      process.kill(-pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!alive()) return;
  try {
    process.kill(-pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (alive()) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}
