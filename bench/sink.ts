// `npm run bench:sink [-- EVENTS]`: how fast the sink drains a subscription into BigQuery, on the local
// stack (Google's Pub/Sub emulator, our BigQuery emulator). Publishes EVENTS change events (default 50 000:
// 80% inserts, 15% updates, 5% deletes of a 6-column table, 1000 events a message, gzip), runs one
// bounded sink run, and prints events/s and bytes/event (Pub/Sub payload, and rows sent to BigQuery).

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PubSub } from '@google-cloud/pubsub';
import { encodeBatch } from '../contract/codec';
import type { ChangeEvent, ColumnInfo } from '../contract/events';
import { changeSeq, formatLsn } from '../contract/lsn';
import { startBigQueryEmulator } from '../local/bigquery-emulator';
import { startPubSubEmulator } from '../local/pubsub-emulator';
import { runSink } from '../sink/run';
import { writeStats } from '../sink/storage-writer';

const PROJECT = 'pgcdc-bench';
const PER_MESSAGE = 1000;

const COLUMNS: ColumnInfo[] = [
  { name: 'id', type: 'bigint', oid: 20, key: true },
  { name: 'email', type: 'character varying(255)', oid: 1043, key: false },
  { name: 'balance', type: 'numeric(12,2)', oid: 1700, key: false },
  { name: 'active', type: 'boolean', oid: 16, key: false },
  { name: 'updated_at', type: 'timestamp with time zone', oid: 1184, key: false },
  { name: 'profile', type: 'jsonb', oid: 3802, key: false },
];

function events(total: number): ChangeEvent[] {
  const out: ChangeEvent[] = [];
  let lsn = 0x16000000n;
  let live = 0;
  for (let i = 0; i < total; i++) {
    lsn += 0x80n;
    const r = i % 20;
    const op: ChangeEvent['op'] = live === 0 || r < 16 ? 'c' : r < 19 ? 'u' : 'd';
    const id = String(op === 'c' ? ++live : 1 + (i % live));
    const row = {
      id,
      email: `user${id}@example.com`,
      balance: `${i % 100000}.${String(i % 100).padStart(2, '0')}`,
      active: i % 3 === 0 ? 'f' : 't',
      updated_at: '2024-05-06 07:08:09.123456+00',
      profile: `{"plan": "p${i % 7}", "n": ${i}}`,
    };
    const text = formatLsn(lsn);
    out.push({
      op,
      key: { id },
      before: op === 'd' ? { id } : null,
      after: op === 'd' ? null : row,
      unchanged: [],
      fromSource: [],
      lsn: text,
      commitLsn: text,
      xid: 1000 + i,
      commitTs: '2024-05-06 07:08:09.123456+00',
      seq: changeSeq(lsn, 0),
    });
  }
  return out;
}

async function main(): Promise<void> {
  const total = Number(process.argv[2] ?? 50_000);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pgcdc-bench-sink-'));
  const ps = await startPubSubEmulator({ dir });
  const bq = await startBigQueryEmulator();
  try {
    process.env.PUBSUB_EMULATOR_HOST = ps.host;
    process.env.BIGQUERY_EMULATOR_HOST = `http://${bq.restHost}`;
    const pubsub = new PubSub({ projectId: PROJECT, universeDomain: 'googleapis.com', emulatorMode: true });
    const [topic] = await pubsub.createTopic('bench');
    await topic.createSubscription('bench-sink', { ackDeadlineSeconds: 60 });
    const all = events(total);
    let payloadBytes = 0;
    for (let i = 0; i < all.length; i += PER_MESSAGE) {
      const batch = {
        v: 1 as const,
        schema: 'public',
        table: 'accounts',
        columns: COLUMNS,
        events: all.slice(i, i + PER_MESSAGE),
      };
      const { data, attributes } = await encodeBatch(batch, 'json+gzip');
      payloadBytes += data.length;
      await topic.publishMessage({ data, attributes });
    }
    const started = process.hrtime.bigint();
    // Every event is one history row and one replica row: the time until BigQuery accepted them all is
    // the sink's work (the bounded run then still waits for two empty pulls before it ends).
    let writtenAt: bigint | undefined;
    const watch = setInterval(() => {
      if (writtenAt === undefined && writeStats.rows >= 2 * total) writtenAt = process.hrtime.bigint();
    }, 5);
    const summary = await runSink(
      {
        projectId: PROJECT,
        subscription: `projects/${PROJECT}/subscriptions/bench-sink`,
        bigQueryProject: PROJECT,
        dataset: 'bench',
        maxStalenessMinutes: 15,
        maxRunSeconds: 600,
        mode: 'once',
        batchMessages: 10,
        pullWaitSeconds: 3,
        bigQueryStorageEmulatorHost: bq.grpcHost,
      },
      { log: () => undefined },
    );
    clearInterval(watch);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (summary.events !== total)
      throw new Error(`expected ${total} events, the sink wrote ${summary.events}`);
    const busy = Number((writtenAt ?? process.hrtime.bigint()) - started) / 1e9;
    const result = {
      events: total,
      secondsToWrite: Number(busy.toFixed(2)),
      secondsRun: Number(seconds.toFixed(2)),
      eventsPerSecond: Math.round(total / busy),
      pubsubBytesPerEvent: Number((payloadBytes / total).toFixed(1)),
      bigQueryRows: writeStats.rows,
      bigQueryBytesPerEvent: Number((writeStats.bytes / total).toFixed(1)),
      replicaRows: summary.replicaRows,
      changelogRows: summary.changelogRows,
    };
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    await bq.stop();
    await ps.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`bench:sink failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
