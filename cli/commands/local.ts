// pgcdc local up / down: the local stack (Postgres, Pub/Sub emulator, BigQuery emulator) in the background.

import { Command, InvalidArgumentError } from 'commander';
import { endpointsFile, LocalEndpoints } from '../../local/stack';
import type { CliDeps } from '../deps';

export function printEndpoints(deps: CliDeps, e: LocalEndpoints): void {
  const rows: Array<[string, string]> = [
    ['PostgreSQL', `postgresql://${e.pg.user}@${e.pg.host}:${e.pg.port}/${e.pg.database}`],
    ['Pub/Sub emulator', `${e.pubsubEmulatorHost}  (topic ${e.topic}, subscription ${e.subscription})`],
    ['BigQuery emulator', `${e.bigQueryEmulatorHost}  (dataset ${e.project}.${e.dataset})`],
    ['BigQuery Storage', e.bigQueryStorageEmulatorHost],
  ];
  for (const [name, value] of rows) deps.output.log(`  ${name.padEnd(18)} ${value}`);
}

/** Brings the local stack up unless it already is; shared with `demo`. */
export async function ensureLocalUp(
  deps: CliDeps,
  opts: { decoder?: 'wal2json' | 'pgoutput' } = {},
): Promise<LocalEndpoints & { alreadyUp: boolean }> {
  const e = await deps.output.task(
    'Starting the local stack (PostgreSQL, Pub/Sub emulator, BigQuery emulator)',
    () =>
      deps.local.up({
        dir: deps.localDir,
        decoder: opts.decoder,
        log: (line) => deps.output.error(`  ${line}`),
      }),
  );
  deps.output.log(e.alreadyUp ? 'The local stack was already up:' : 'The local stack is up:');
  printEndpoints(deps, e);
  deps.output.log(`Endpoints written to ${endpointsFile(deps.localDir)}`);
  return e;
}

function parseDecoder(value: string): 'wal2json' | 'pgoutput' {
  if (value !== 'pgoutput' && value !== 'wal2json')
    throw new InvalidArgumentError('use pgoutput or wal2json');
  return value;
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
          deps.local.up({ dir: deps.localDir, decoder: opts.decoder }),
        );
        deps.output.log(JSON.stringify(e));
        return;
      }
      await ensureLocalUp(deps, { decoder: opts.decoder });
      deps.output.log('Next: pgcdc sql init --env local');
    });
  local
    .command('down')
    .description('stop the local stack (data stays in the local directory unless --purge)')
    .option('--purge', 'also delete its data directory')
    .action(async (opts: { purge?: boolean }) => {
      const { stopped } = await deps.output.task('Stopping the local stack', () =>
        deps.local.down({ dir: deps.localDir, purge: opts.purge }),
      );
      deps.output.log(
        stopped.length ? `Stopped: ${stopped.join(', ')}.` : 'The local stack was not running.',
      );
    });
  return local;
}
