// What the sink's integration tests share: the local stack (Pub/Sub emulator from test/support/stack.ts,
// our BigQuery emulator), a topic+subscription per test, publishing contract batches through the real
// Pub/Sub client, and reading tables back through the BigQuery REST API.

import path from 'node:path';
import { PubSub } from '@google-cloud/pubsub';
import { encodeBatch } from '../../contract/codec';
import { ENV } from '../../contract/env';
import type { ChangeEvent, ColumnInfo, Encoding, EventBatch, Row } from '../../contract/events';
import { changeSeq } from '../../contract/lsn';
import { BigQueryEmulatorOptions, startBigQueryEmulator } from '../../local/bigquery-emulator';
import { BigQueryRest } from '../../sink/bigquery-rest';
import { bigQueryClient } from '../../sink/clients';
import type { SinkConfig } from '../../sink/config';
import { SINK_NODE_OPTIONS } from '../../sink/runtime';
import { testPubSub, uniqueName } from '../support/stack';

export const PROJECT = 'pgcdc-sink-test';

export interface SinkStack {
  pubsub: PubSub;
  pubsubHost: string;
  restHost: string;
  grpcHost: string;
  /** Moves the BigQuery emulator's clock forward (delete retention, schema propagation). */
  advanceClock(ms: number): number;
  stopBigQuery(): Promise<void>;
}

/** Pub/Sub emulator (shared) + a BigQuery emulator of this suite; sets the emulator variables. */
export async function sinkStack(emulator: BigQueryEmulatorOptions = {}): Promise<SinkStack> {
  const ps = await testPubSub();
  const bq = await startBigQueryEmulator(emulator);
  const saved = { pubsub: process.env.PUBSUB_EMULATOR_HOST, bigquery: process.env.BIGQUERY_EMULATOR_HOST };
  process.env.PUBSUB_EMULATOR_HOST = ps.host;
  process.env.BIGQUERY_EMULATOR_HOST = `http://${bq.restHost}`;
  return {
    // universeDomain stops gax from probing for credentials; emulatorMode keeps the client on insecure
    // gRPC despite it.
    pubsub: new PubSub({ projectId: PROJECT, universeDomain: 'googleapis.com', emulatorMode: true }),
    pubsubHost: ps.host,
    restHost: bq.restHost,
    grpcHost: bq.grpcHost,
    advanceClock: (ms) => bq.advanceClock(ms),
    async stopBigQuery() {
      await bq.stop();
      // Leave the environment as other suites of the same mocha process expect it.
      for (const [name, value] of [
        ['PUBSUB_EMULATOR_HOST', saved.pubsub],
        ['BIGQUERY_EMULATOR_HOST', saved.bigquery],
      ] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    },
  };
}

export interface Channel {
  topic: string;
  subscription: string;
  dataset: string;
  config: SinkConfig;
  rest: BigQueryRest;
  publish(batch: EventBatch, encoding?: Encoding): Promise<string>;
  publishRaw(data: Buffer, attributes?: Record<string, string>): Promise<string>;
}

/** A fresh topic, subscription and dataset name, and the sink configuration for them. */
export async function channel(stack: SinkStack, overrides: Partial<SinkConfig> = {}): Promise<Channel> {
  const topicName = uniqueName('sinkt');
  const subName = uniqueName('sinks');
  const dataset = uniqueName('ds');
  await stack.pubsub.createTopic(topicName);
  // As the stack does (decision 5): the listener publishes with one ordering key per table, and the
  // subscription delivers each key's messages in publish order.
  const topic = stack.pubsub.topic(topicName, { messageOrdering: true });
  await topic.createSubscription(subName, { ackDeadlineSeconds: 30, enableMessageOrdering: true });
  const config: SinkConfig = {
    projectId: PROJECT,
    subscription: `projects/${PROJECT}/subscriptions/${subName}`,
    bigQueryProject: PROJECT,
    dataset,
    maxStalenessMinutes: 15,
    maxRunSeconds: 60,
    mode: 'once',
    batchMessages: 20,
    // Messages are published before a test's run; the last, empty pull only has to prove the drain.
    pullWaitSeconds: 3,
    bigQueryStorageEmulatorHost: stack.grpcHost,
    ...overrides,
  };
  const rest = new BigQueryRest(bigQueryClient(config), PROJECT, dataset);
  return {
    topic: topicName,
    subscription: subName,
    dataset,
    config,
    rest,
    async publish(batch, encoding = 'json+gzip') {
      const { data, attributes } = await encodeBatch(batch, encoding);
      return topic.publishMessage({ data, attributes, orderingKey: `${batch.schema}.${batch.table}` });
    },
    publishRaw(data, attributes = {}) {
      const orderingKey =
        attributes.schema && attributes.table ? `${attributes.schema}.${attributes.table}` : '';
      return topic.publishMessage({ data, attributes, ...(orderingKey ? { orderingKey } : {}) });
    },
  };
}

/** Replica rows keyed by the given column, values as the REST API returns them. */
export async function rowsBy(
  rest: BigQueryRest,
  table: string,
  key: string,
): Promise<Map<string, Record<string, unknown>>> {
  const rows = await rest.listRows(table);
  return new Map(rows.map((r) => [String(r[key]), r]));
}

// --- building contract events ---

let lsnCounter = 0x1000000n;

/** A fresh commit LSN, increasing through the test run (so sequences increase too). */
export function nextCommit(): bigint {
  lsnCounter += 0x100n;
  return lsnCounter;
}

export function event(
  op: ChangeEvent['op'],
  commit: bigint,
  ordinal: number,
  fields: {
    key?: Row | null;
    before?: Row | null;
    after?: Row | null;
    unchanged?: string[];
    fromSource?: string[];
    superseded?: true;
  },
): ChangeEvent {
  const lsn = `${(commit >> 32n).toString(16).toUpperCase()}/${(commit & 0xffffffffn).toString(16).toUpperCase()}`;
  return {
    op,
    key: fields.key ?? null,
    before: fields.before ?? null,
    after: fields.after ?? null,
    unchanged: fields.unchanged ?? [],
    fromSource: [],
    lsn,
    commitLsn: lsn,
    xid: Number(commit & 0xffffn),
    commitTs: '2024-05-06 07:08:09.123456+00',
    seq: changeSeq(commit, ordinal),
    ...(fields.fromSource ? { fromSource: fields.fromSource } : {}),
    ...(fields.superseded ? { superseded: true as const } : {}),
  };
}

export function batchOf(
  table: string,
  columns: ColumnInfo[],
  events: ChangeEvent[],
  schema = 'public',
): EventBatch {
  return { v: 1, schema, table, columns, events };
}

/** The sink's entry point as its image runs it (tests that measure the job in a process of its own). */
export const SINK_MAIN = path.join(__dirname, '..', '..', 'sink', 'main.js');

/** An integer key and a text document: the tables the memory tests fill. */
export const ID_DOC_COLUMNS: ColumnInfo[] = [
  { name: 'id', type: 'integer', oid: 23, key: true },
  { name: 'doc', type: 'text', oid: 25, key: false },
];

/** The environment of a `sink/main.js` run on the channel: the job's, with the image's NODE_OPTIONS. */
export function sinkJobEnv(ch: Channel, pullWaitSeconds: number): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    NODE_OPTIONS: SINK_NODE_OPTIONS,
    PUBSUB_EMULATOR_HOST: process.env.PUBSUB_EMULATOR_HOST,
    BIGQUERY_EMULATOR_HOST: process.env.BIGQUERY_EMULATOR_HOST,
    [ENV.project]: ch.config.projectId,
    [ENV.subscription]: ch.config.subscription,
    [ENV.dataset]: ch.dataset,
    [ENV.sinkPullWaitSeconds]: String(pullWaitSeconds),
    [ENV.maxRunSeconds]: '800',
    [ENV.bigQueryStorageEmulatorHost]: ch.config.bigQueryStorageEmulatorHost,
  };
}
