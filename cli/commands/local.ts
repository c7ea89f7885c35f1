// pgcdc local up / down: the local stack (Postgres, Pub/Sub emulator, BigQuery emulator) in the background.

import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import type { LocalEndpoints } from '../../local/stack';
import type { CliDeps } from '../deps';
import { emulatorBacklog, ensureShadow } from '../emulator-backlog';
import { CliError, EXIT } from '../errors';
import { formatDuration, roundNumbers } from './shared';

export function printEndpoints(deps: CliDeps, e: LocalEndpoints): void {
  const rows: Array<[string, string]> = [
    ['PostgreSQL', `postgresql://${e.pg.user}@${e.pg.host}:${e.pg.port}/${e.pg.database}`],
    ['Pub/Sub emulator', `${e.pubsubEmulatorHost}  (topic ${e.topic}, subscription ${e.subscription})`],
    ['BigQuery emulator', `${e.bigQueryEmulatorHost}  (dataset ${e.project}.${e.dataset})`],
    ['BigQuery Storage', e.bigQueryStorageEmulatorHost],
  ];
  for (const [name, value] of rows) deps.output.log(`  ${name.padEnd(18)} ${value}`);
}

/**
 * Starts the local stack unless it is up, and gives each subscription the shadow `status` counts on
 * (emulator-backlog.ts): on a fresh stack nothing was published yet, so the shadow sees every message.
 */
async function startLocal(
  deps: CliDeps,
  log?: (line: string) => void,
  decoder?: 'wal2json' | 'pgoutput',
): Promise<LocalEndpoints & { alreadyUp: boolean }> {
  const e = await deps.local.up({ dir: deps.localDir, log, decoder });
  for (const subscription of [e.subscription, e.deadLetterSubscription]) {
    await ensureShadow(e.pubsubEmulatorHost, e.project, subscription, {
      complete: !e.alreadyUp,
      nowMs: deps.clock.now(),
    });
  }
  return e;
}

/** Brings the local stack up unless it already is; shared with `demo`. */
export async function ensureLocalUp(
  deps: CliDeps,
  opts: { decoder?: 'wal2json' | 'pgoutput' } = {},
): Promise<LocalEndpoints & { alreadyUp: boolean }> {
  const e = await deps.output.task(
    'Starting the local stack (PostgreSQL, Pub/Sub emulator, BigQuery emulator)',
    () => startLocal(deps, (line) => deps.output.error(`  ${line}`), opts.decoder),
  );
  deps.output.log(e.alreadyUp ? 'The local stack was already up:' : 'The local stack is up:');
  printEndpoints(deps, e);
  deps.output.log(`Endpoints written to ${path.resolve(deps.localDir, 'endpoints.json')}`);
  return e;
}

function parseDecoder(value: string): 'wal2json' | 'pgoutput' {
  if (value !== 'pgoutput' && value !== 'wal2json')
    throw new InvalidArgumentError('use pgoutput or wal2json');
  return value;
}

/**
 * What stopping the emulator would lose: it keeps no message across a restart, while the slot and the
 * snapshot progress have already moved past them (the listener confirms once Pub/Sub has a message).
 */
async function messagesAtRisk(deps: CliDeps): Promise<string[]> {
  let e: LocalEndpoints;
  try {
    e = deps.local.read({ dir: deps.localDir });
  } catch {
    // Not up (or half dead): nothing running to lose messages from; `down` cleans up what is left.
    return [];
  }
  const lines: string[] = [];
  for (const [subscription, what] of [
    [e.subscription, 'change message(s) not yet written to BigQuery'],
    [e.deadLetterSubscription, 'dead letter(s) not yet recorded in _failed'],
  ] as const) {
    const b = await emulatorBacklog(e.pubsubEmulatorHost, e.project, subscription, deps.clock.now());
    if (b.messages > 0) {
      lines.push(
        `${b.messages} ${what} in ${subscription}` +
          (b.oldestUnackedSeconds !== null ? ` (oldest ${formatDuration(b.oldestUnackedSeconds)} old)` : ''),
      );
    }
  }
  return lines;
}

export function localCommand(deps: CliDeps): Command {
  const local = new Command('local').description(
    'the local stack: PostgreSQL, Pub/Sub emulator, BigQuery emulator',
  );
  local
    .command('up')
    .description('start the local stack in the background and print its endpoints')
    .option('--json', 'print the endpoints as JSON')
    .option(
      '--decoder <name>',
      'output plugin of the local slot: pgoutput or wal2json',
      parseDecoder,
      'pgoutput',
    )
    .action(async (opts: { json?: boolean; decoder: 'wal2json' | 'pgoutput' }) => {
      if (opts.json) {
        const e = await deps.output.task('Starting the local stack', () =>
          startLocal(deps, undefined, opts.decoder),
        );
        deps.output.log(JSON.stringify(e));
        return;
      }
      await ensureLocalUp(deps, { decoder: opts.decoder });
      deps.output.log('Next: pgcdc sql init --env local');
    });
  local
    .command('down')
    .description(
      'stop the local stack (data stays in the local directory unless --purge); refuses while messages wait in the Pub/Sub emulator',
    )
    .option('--purge', 'also delete its data directory')
    .option('--force', 'stop even if messages waiting in the Pub/Sub emulator are lost')
    .option('--json', 'print what was stopped as JSON')
    .action(async (opts: { purge?: boolean; force?: boolean; json?: boolean }) => {
      const atRisk = await messagesAtRisk(deps);
      if (atRisk.length > 0 && !opts.force) {
        throw new CliError(
          `stopping the local stack now would lose ${atRisk.join(' and ')}: the Pub/Sub emulator keeps nothing across a restart, and the replication slot has already moved past them`,
          EXIT.wouldLoseMessages,
          'Run `pgcdc run-once --env local` first (the sink writes them), or pass --force to stop anyway and lose them.',
        );
      }
      if (atRisk.length > 0) deps.output.error(`--force: losing ${atRisk.join(' and ')}.`);
      const { stopped } = await deps.output.task('Stopping the local stack', () =>
        deps.local.down({ dir: deps.localDir, purge: opts.purge }),
      );
      if (opts.json) {
        deps.output.log(JSON.stringify(roundNumbers({ stopped, lost: atRisk })));
        return;
      }
      deps.output.log(
        stopped.length ? `Stopped: ${stopped.join(', ')}.` : 'The local stack was not running.',
      );
    });
  return local;
}
