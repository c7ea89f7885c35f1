// pgcdc failed list|replay --env <stack>: see what the sink recorded in `_failed` (errors: something is not
// in BigQuery until fixed and replayed; warnings: it landed, with a caveat) and republish records to the
// topic as they are (sink/failed-replay.ts). Local: the emulators directly. Cloud: from this machine with the
// user's credentials (BigQuery read of the dataset, Pub/Sub publish on the topic), no job involved.

import { Command, InvalidArgumentError } from 'commander';
import { PubSub } from '@google-cloud/pubsub';
import type { BigQuery } from '@google-cloud/bigquery';
import { emulatorBigQuery, emulatorPubSub } from '../../local/stack';
import { BigQueryRest } from '../../sink/bigquery-rest';
import { FailedEntry, orderingKeyOf, readFailed, replayRefusal } from '../../sink/failed-replay';
import type { CliDeps } from '../deps';
import { CliError, EXIT } from '../errors';
import { cloudContext, envOption, LOCAL_ENV, table, tableArg } from './shared';

interface Target {
  rest: BigQueryRest;
  pubsub: () => PubSub;
  topic: string;
}

async function target(deps: CliDeps, env: string): Promise<Target> {
  if (env === LOCAL_ENV) {
    const e = deps.local.read({ dir: deps.localDir });
    const bq: BigQuery = emulatorBigQuery(e);
    return {
      rest: new BigQueryRest(bq, e.project, e.dataset),
      pubsub: () => emulatorPubSub(e),
      topic: e.topic,
    };
  }
  const { outputs, clients } = await cloudContext(deps, env);
  return {
    rest: new BigQueryRest(clients.bigquery, outputs.project, outputs.dataset),
    pubsub: () => new PubSub({ projectId: outputs.project }),
    topic: outputs.topic,
  };
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('a whole number above 0');
  return n;
}

interface Filter {
  table?: string;
  messageId?: string[];
  warnings: boolean;
}

function select(entries: FailedEntry[], f: Filter): FailedEntry[] {
  // _failed names a table `schema.table`, its names joined as they are (sink/failed.ts); --table is in the
  // identifier syntax (tableArg), so it is compared by its names, in both readings of a bare upper-case part.
  const entry = f.table ? tableArg(f.table) : undefined;
  const names = entry
    ? new Set(
        [entry.name, ...(entry.asWritten ? [entry.asWritten] : [])].map((n) => `${n.schema}.${n.table}`),
      )
    : undefined;
  return entries.filter(
    (e) =>
      (f.warnings || e.severity !== 'warning') &&
      (!names || (e.table !== null && e.table !== undefined && names.has(e.table))) &&
      (!f.messageId || (e.messageId !== null && f.messageId.includes(e.messageId))),
  );
}

export function failedCommand(deps: CliDeps): Command {
  const cmd = new Command('failed').description(
    'list or replay what the sink recorded in _failed (dead letters, unwritable events, warnings)',
  );
  cmd
    .command('list')
    .description('show _failed records, newest first')
    .addOption(envOption())
    .option('--table <schema.table>', 'only records of this source table')
    .option('--errors', 'only errors (hide warnings)', false)
    .option('--limit <n>', 'show at most this many', positive, 50)
    .option('--json', 'one JSON object per record', false)
    .action(async (opts: { env: string; table?: string; errors: boolean; limit: number; json: boolean }) => {
      const t = await target(deps, opts.env);
      const entries = select(await deps.output.task('Reading _failed', () => readFailed(t.rest)), {
        table: opts.table,
        warnings: !opts.errors,
      }).slice(0, opts.limit);
      if (opts.json) {
        for (const e of entries)
          deps.output.log(JSON.stringify({ ...e, payload: undefined, payloadBytes: e.payload.length }));
        return;
      }
      if (entries.length === 0) {
        deps.output.log('_failed is empty.');
        return;
      }
      const rows = entries.map((e) => [
        e.failedAt.toISOString(),
        e.severity,
        e.table ?? '?',
        e.messageId ?? '?',
        e.reason.length > 100 ? e.reason.slice(0, 99) + '…' : e.reason,
      ]);
      for (const line of table([['failed at', 'severity', 'table', 'message', 'reason'], ...rows]))
        deps.output.log(line);
    });
  cmd
    .command('replay')
    .description(
      'republish _failed records to the topic as they are (errors only unless --warnings); events older than ' +
        "BigQuery's two-day delete window are refused without --force",
    )
    .addOption(envOption())
    .option('--table <schema.table>', 'only records of this source table')
    .option('--message-id <id...>', 'only these Pub/Sub message ids (see `failed list`)')
    .option('--warnings', 'replay warnings too', false)
    .option('--force', 'replay records the delete window check refuses', false)
    .action(
      async (opts: {
        env: string;
        table?: string;
        messageId?: string[];
        warnings: boolean;
        force: boolean;
      }) => {
        const t = await target(deps, opts.env);
        const entries = select(await deps.output.task('Reading _failed', () => readFailed(t.rest)), opts);
        const now = new Date(deps.clock.now());
        const refused: string[] = [];
        const send = entries.filter((e) => {
          const why = replayRefusal(e, now);
          if (why && !opts.force) refused.push(`${e.messageId ?? '?'}: ${why}`);
          else if (why) deps.output.log(`warning: replaying ${e.messageId ?? '?'} anyway (--force): ${why}`);
          return !why || opts.force;
        });
        const pubsub = t.pubsub();
        try {
          const topic = pubsub.topic(t.topic, { messageOrdering: true });
          await deps.output.task(`Publishing ${send.length} record(s) to ${t.topic}`, async () => {
            for (const e of send) {
              const orderingKey = orderingKeyOf(e);
              await topic.publishMessage({
                data: e.payload,
                attributes: e.attributes,
                ...(orderingKey ? { orderingKey } : {}),
              });
            }
          });
        } finally {
          await pubsub.close();
        }
        deps.output.log(
          `replayed ${send.length} record(s); the next sink run writes them. The _failed rows stay (append-only).`,
        );
        if (refused.length > 0) {
          for (const r of refused) deps.output.error(`not replayed: ${r}`);
          throw new CliError(
            `${refused.length} record(s) not replayed`,
            EXIT.failure,
            'See above; --force overrides.',
          );
        }
      },
    );
  return cmd;
}
