// The local stack's run history (<localDir>/runs.jsonl): `run-once --env local` appends, `status` reads.
// In the cloud, Cloud Run keeps this history itself (executions).

import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { ListenerSummary, SinkSummary } from './deps';

export interface LocalRun {
  at: string;
  ok: boolean;
  listener: ListenerSummary | null;
  sink: SinkSummary | null;
  error?: string;
}

function file(dir: string): string {
  return path.join(dir, 'runs.jsonl');
}

export function recordRun(dir: string, run: LocalRun): void {
  appendFileSync(file(dir), JSON.stringify(run) + '\n');
}

/** The newest `n` runs, newest first. */
export function lastRuns(dir: string, n: number): LocalRun[] {
  if (!existsSync(file(dir))) return [];
  const lines = readFileSync(file(dir), 'utf8').split('\n').filter(Boolean);
  const runs: LocalRun[] = [];
  for (const line of lines.slice(-n).reverse()) {
    try {
      runs.push(JSON.parse(line) as LocalRun);
    } catch {
      /* a torn line from a killed run */
    }
  }
  return runs;
}
