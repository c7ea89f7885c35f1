import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { encodeBatch } from '../../contract/codec';
import type { ChangeEvent, ColumnInfo } from '../../contract/events';
import { ENV } from '../../contract/env';
import { startBigQueryEmulator } from '../../local/bigquery-emulator';
import { freePort } from '../../local/ports';
import { BigQueryError, runSink } from '../../sink/run';
import {
  batchOf,
  Channel,
  channel,
  event,
  nextCommit,
  PROJECT,
  rowsBy,
  sinkStack,
  SinkStack,
} from './support';

const sinkMain = path.join(__dirname, '..', '..', 'sink', 'main.js');

/**
 * Runs `sink/main.js` to its end. Asynchronously: the BigQuery emulator lives in this process and must keep
 * answering while the child runs.
 */
function runMain(env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [sinkMain], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** The environment `sink/main.js` runs with against this channel and the emulators. */
function childEnv(ch: Channel): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    PUBSUB_EMULATOR_HOST: process.env.PUBSUB_EMULATOR_HOST,
    BIGQUERY_EMULATOR_HOST: process.env.BIGQUERY_EMULATOR_HOST,
    [ENV.project]: ch.config.projectId,
    [ENV.subscription]: ch.config.subscription,
    [ENV.dataset]: ch.dataset,
    [ENV.sinkBatchMessages]: String(ch.config.batchMessages),
    [ENV.sinkPullWaitSeconds]: String(ch.config.pullWaitSeconds),
    [ENV.bigQueryStorageEmulatorHost]: ch.config.bigQueryStorageEmulatorHost,
  };
}

const COLUMNS: ColumnInfo[] = [
  { name: 'id', type: 'integer', oid: 23, key: true },
  { name: 'amount', type: 'numeric', oid: 1700, key: false },
  { name: 'tags', type: 'text[]', oid: 1009, key: false },
];

/** `count` inserts of ids first..first+count-1, `perMessage` to a message. */
function inserts(first: number, count: number, perMessage: number): ChangeEvent[][] {
  const out: ChangeEvent[][] = [];
  for (let i = 0; i < count; i += perMessage) {
    const commit = nextCommit();
    const msg: ChangeEvent[] = [];
    for (let j = i; j < Math.min(count, i + perMessage); j++) {
      const id = String(first + j);
      msg.push(event('c', commit, j - i, { key: { id }, after: { id, amount: `${j}.25`, tags: `{t${j}}` } }));
    }
    out.push(msg);
  }
  return out;
}

async function until(what: string, deadlineMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('sink: poison messages and failures', function () {
  let stack: SinkStack;
  before(async function () {
    stack = await sinkStack();
  });
  after(async function () {
    await stack?.stopBigQuery();
  });

  it('poison messages land in _failed with the raw payload and the reason; the rest lands', async function () {
    const ch = await channel(stack);
    await ch.publishRaw(Buffer.from('this is not json'), { encoding: 'json' });
    await ch.publishRaw(
      Buffer.from(JSON.stringify({ v: 2, schema: 'public', table: 'x', columns: [], events: [] })),
      {},
    );
    await ch.publishRaw(gzipSync(Buffer.from(JSON.stringify({ v: 1, schema: 'public', table: 'x' }))), {
      encoding: 'json+gzip',
    });
    await ch.publishRaw(Buffer.from('{}'), { v: '9' });
    await ch.publish(batchOf('good', COLUMNS, inserts(1, 3, 3)[0]));
    const s = await runSink(ch.config, { log: () => undefined });
    assert.equal(s.messages, 5, 'every message is acked');
    assert.equal(s.failed, 4);
    const failed = await ch.rest.listRows('_failed');
    const reasons = failed.map((r) => String(r.reason)).sort();
    assert.match(reasons.join('\n'), /payload is not JSON/);
    assert.match(reasons.join('\n'), /unknown version 2/);
    assert.match(reasons.join('\n'), /"columns" must be an array/);
    assert.match(reasons.join('\n'), /unknown contract version "9"/);
    const notJson = failed.find((r) => String(r.reason).includes('not JSON'));
    assert.equal(Buffer.from(String(notJson?.payload), 'base64').toString(), 'this is not json');
    assert.equal(notJson?.subscription, ch.config.subscription);
    assert.ok(notJson?.message_id);
    assert.equal((await ch.rest.listRows('good')).length, 3);
    // The subscription is empty: nothing is left to block it.
    const again = await runSink(ch.config, { log: () => undefined });
    assert.equal(again.messages, 0);
  });

  it('a poison message among the messages of a table (routed by its attributes, decoded in its batch) lands in _failed; its neighbours land', async function () {
    // The listener's attributes name the table, so the sink queues such messages undecoded and reads them
    // when the table's batch takes them: a bad payload, or one whose table is not the one its attributes
    // name, is found there and recorded with the batch.
    const ch = await channel(stack);
    const [first, second] = inserts(1, 6, 3);
    await ch.publish(batchOf('mixed', COLUMNS, first));
    const attrs = { v: '1', schema: 'public', table: 'mixed', encoding: 'json+gzip' };
    await ch.publishRaw(
      gzipSync(Buffer.from('{"v":1,"schema":"public","table":"mixed","columns":[],"events":[{}]}')),
      attrs,
    );
    const other = await encodeBatch(batchOf('elsewhere', COLUMNS, inserts(100, 1, 1)[0]), 'json+gzip');
    await ch.publishRaw(other.data, attrs);
    await ch.publish(batchOf('mixed', COLUMNS, second));
    const s = await runSink(ch.config, { log: () => undefined });
    assert.equal(s.messages, 4, 'every message is acked');
    assert.equal(s.failed, 2);
    const reasons = (await ch.rest.listRows('_failed')).map((r) => String(r.reason)).sort();
    assert.match(reasons[0], /poison message: events\[0\]/);
    assert.match(
      reasons[1],
      /poison message: its payload is a batch of public.elsewhere but its attributes say public.mixed/,
    );
    const replica = await rowsBy(ch.rest, 'mixed', 'id');
    assert.deepEqual([...replica.keys()].sort(), ['1', '2', '3', '4', '5', '6']);
    assert.equal(replica.get('5')?.amount, '4.25');
    assert.equal((await ch.rest.listRows('mixed_changes')).length, 6);
    assert.equal((await runSink(ch.config, { log: () => undefined })).messages, 0, 'nothing left behind');
  });

  it('a value BigQuery cannot hold stays in the replica as Postgres text in a companion column, with a warning', async function () {
    const ch = await channel(stack);
    const c = nextCommit();
    await ch.publish(
      batchOf('vals', COLUMNS, [
        event('c', c, 0, { key: { id: '1' }, after: { id: '1', amount: '1.5', tags: '{a,b}' } }),
        event('c', c, 1, { key: { id: '2' }, after: { id: '2', amount: 'NaN', tags: '{}' } }),
        event('c', c, 2, { key: { id: '3' }, after: { id: '3', amount: '2', tags: '{a,NULL}' } }),
        event('c', c, 3, { key: { id: '4' }, after: { id: '4', amount: '3', tags: null } }),
        event('c', c, 4, { key: { id: '5' }, after: { id: '5', amount: '4', tags: '{{a,b},{c,d}}' } }),
      ]),
    );
    const s = await runSink(ch.config, { log: () => undefined });
    assert.equal(s.failed, 3, 'one warning per event with a value kept as text');
    const replica = await rowsBy(ch.rest, 'vals', 'id');
    assert.deepEqual([...replica.keys()].sort(), ['1', '2', '3', '4', '5'], 'every row is in the replica');
    assert.deepEqual(replica.get('4')?.tags, []);
    assert.equal(replica.get('2')?.amount, null);
    assert.equal(replica.get('2')?.amount__pg, 'NaN');
    assert.deepEqual(replica.get('3')?.tags, []);
    assert.equal(replica.get('3')?.tags__pg, '{a,NULL}');
    assert.equal(replica.get('5')?.tags__pg, '{{a,b},{c,d}}');
    assert.equal(replica.get('1')?.amount__pg, null);
    const history = await rowsBy(ch.rest, 'vals_changes', 'id');
    assert.equal(history.get('2')?.amount__pg, 'NaN', 'the history keeps it too');
    const meta = await ch.rest.getTable('vals');
    const companion = meta?.schema?.fields?.find((f) => f.name === 'amount__pg');
    assert.match(String(companion?.description), /source column "amount"/);
    const failed = await ch.rest.listRows('_failed');
    const text = failed.map((r) => String(r.reason)).join('\n');
    assert.match(
      text,
      /warning: .*column amount \(numeric\): numeric value "NaN" cannot be held by BigQuery BIGNUMERIC/,
    );
    assert.match(text, /column tags \(text\[\]\): array has a NULL element/);
    const payload = JSON.parse(Buffer.from(String(failed[0].payload), 'base64').toString());
    assert.equal(payload.events.length, 1, 'the event is kept as a one-event contract batch');
    assert.equal(failed[0].table_name, 'public.vals');
  });

  it('a key change whose new key cannot be held still deletes the old key; the event goes to _failed', async function () {
    const cols: ColumnInfo[] = [
      { name: 'day', type: 'date', oid: 1082, key: true },
      { name: 'note', type: 'text', oid: 25, key: false },
    ];
    const ch = await channel(stack);
    const c1 = nextCommit();
    const c2 = nextCommit();
    await ch.publish(
      batchOf('moved', cols, [
        event('c', c1, 0, { key: { day: '2024-01-02' }, after: { day: '2024-01-02', note: 'a' } }),
      ]),
    );
    await runSink(ch.config, { log: () => undefined });
    await ch.publish(
      batchOf('moved', cols, [
        event('u', c2, 0, {
          key: { day: '0044-03-15 BC' },
          before: { day: '2024-01-02' },
          after: { day: '0044-03-15 BC', note: 'a' },
        }),
      ]),
    );
    const s = await runSink(ch.config, { log: () => undefined });
    assert.equal(s.failed, 1);
    // The source has no row 2024-01-02 any more, and the BC key cannot be a BigQuery DATE.
    assert.deepEqual([...(await rowsBy(ch.rest, 'moved', 'day')).keys()], []);
    const [failed] = await ch.rest.listRows('_failed');
    assert.match(String(failed.reason), /^error: .*key column day/);
    const history = await ch.rest.listRows('moved_changes');
    assert.equal(history.find((r) => r._op === 'u')?.day__pg, '0044-03-15 BC');
  });

  it('dead-lettered messages are recorded in _failed with the reason and payload, then acked', async function () {
    const ch = await channel(stack);
    const dlTopic = `${ch.topic}-dl`;
    const [topic] = await stack.pubsub.createTopic(dlTopic);
    await topic.createSubscription(`${dlTopic}-sub`);
    // What Pub/Sub forwards after maxDeliveryAttempts: the original message, attributes included.
    await topic.publishMessage({
      data: Buffer.from('payload the sink kept failing on'),
      attributes: { schema: 'public', table: 't' },
    });
    const cfg = { ...ch.config, deadLetterSubscription: `projects/${PROJECT}/subscriptions/${dlTopic}-sub` };
    const s = await runSink(cfg, { log: () => undefined });
    assert.equal(s.deadLetters, 1);
    const [row] = await ch.rest.listRows('_failed');
    assert.match(String(row.reason), /^error: dead letter: Pub\/Sub stopped redelivering/);
    assert.equal(Buffer.from(String(row.payload), 'base64').toString(), 'payload the sink kept failing on');
    assert.equal(row.table_name, 'public.t');
    assert.equal((await runSink(cfg, { log: () => undefined })).deadLetters, 0, 'acked: not recorded twice');
  });

  it('a row too large for BigQuery fails only its own event into _failed (gzipped); its neighbours land', async function () {
    const ch = await channel(stack);
    const c = nextCommit();
    // 12 MB of hex: over the 10 MB AppendRows limit as a row, about 6 MB once gzipped for _failed.
    const huge = randomBytes(6 * 1024 * 1024).toString('hex');
    await ch.publish(
      batchOf('big', COLUMNS, [
        event('c', c, 0, { key: { id: '1' }, after: { id: '1', amount: '1', tags: '{a}' } }),
        event('c', c, 1, { key: { id: '2' }, after: { id: '2', amount: '2', tags: `{${huge}}` } }),
        event('c', c, 2, { key: { id: '3' }, after: { id: '3', amount: '3', tags: '{c}' } }),
      ]),
    );
    const s = await runSink(ch.config, { log: () => undefined });
    assert.equal(s.messages, 1, 'acked: the subscription is not blocked');
    assert.equal(s.failed, 1);
    assert.deepEqual([...(await rowsBy(ch.rest, 'big', 'id')).keys()].sort(), ['1', '3']);
    // About 6 MB gzipped: kept whole, in parts of at most 4 MB (one AppendRows request each).
    const parts = (await ch.rest.listRows('_failed')).sort((x, y) =>
      String(JSON.parse(String(x.attributes)).pgcdc_part).localeCompare(
        String(JSON.parse(String(y.attributes)).pgcdc_part),
      ),
    );
    assert.equal(parts.length, 2);
    assert.match(String(parts[0].reason), /request too large/);
    const attributes = JSON.parse(String(parts[0].attributes)) as Record<string, string>;
    assert.equal(attributes.encoding, 'json+gzip', 'republishable: the attributes say how it is encoded');
    assert.equal(attributes.count, '1');
    assert.equal(attributes.pgcdc_part, '1/2');
    const joined = Buffer.concat(parts.map((p) => Buffer.from(String(p.payload), 'base64')));
    const payload = JSON.parse(gunzipSync(joined).toString());
    assert.equal(payload.events[0].key.id, '2');
  });

  it('a sink killed with SIGKILL mid-batch loses nothing: the rerun writes what was not acked', async function () {
    this.timeout(240_000);
    const ch = await channel(stack, { batchMessages: 1 });
    const total = 3000;
    for (const m of inserts(1000, total, 150)) await ch.publish(batchOf('kill', COLUMNS, m));
    const count = async (table: string) => {
      if ((await ch.rest.getTable(table)) === null) return 0;
      const [row] = await ch.rest.query(
        `SELECT COUNT(*) AS n FROM \`${ch.config.bigQueryProject}.${ch.dataset}.${table}\``,
      );
      return Number(row.n);
    };
    const child = spawn(process.execPath, [sinkMain], {
      env: childEnv(ch),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code, signal) => resolve(signal ? -1 : code)),
    );
    let midBatch = false;
    try {
      // Kill it between writing a batch's history and its replica rows, if we catch that moment,
      // and anyway once some but not all messages are written.
      await until('the child to write some rows', 60_000, async () => {
        const history = await count('kill_changes');
        const replica = await count('kill');
        midBatch = history > replica;
        return history >= 300 && (midBatch || history >= 1500);
      });
      child.kill('SIGKILL');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    assert.equal(await exited, -1);
    const partial = await count('kill');
    assert.ok(partial < total, `killed before the end (${partial} rows, mid-batch: ${midBatch})`);
    // Messages the killed sink had pulled come back when their ack deadline (30 s here) passes.
    await until('the replica to be complete', 150_000, async () => {
      await runSink(ch.config, { log: () => undefined });
      return (await count('kill')) === total;
    });
    const replica = await rowsBy(ch.rest, 'kill', 'id');
    for (let i = 0; i < total; i++) assert.equal(replica.get(String(1000 + i))?.amount, `${i}.25`);
    const ids = new Set((await ch.rest.listRows('kill_changes')).map((r) => r._event_id));
    assert.equal(ids.size, total);
  });

  it('the entry point exits 6 when BigQuery is unreachable and 5 when Pub/Sub is', async function () {
    const ch = await channel(stack);
    const deadPort = await freePort();
    const noBigQuery = await runMain({
      ...childEnv(ch),
      BIGQUERY_EMULATOR_HOST: `http://127.0.0.1:${deadPort}`,
    });
    assert.equal(noBigQuery.status, 6, noBigQuery.stderr);
    const noPubSub = await runMain({ ...childEnv(ch), PUBSUB_EMULATOR_HOST: `127.0.0.1:${deadPort}` });
    assert.equal(noPubSub.status, 5, noPubSub.stderr);
    const ok = await runMain(childEnv(ch));
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).messages, 0);
  });

  it('continuous mode keeps writing what arrives until it is stopped', async function () {
    const ch = await channel(stack, { mode: 'continuous', maxRunSeconds: 1 });
    const stop = new AbortController();
    const run = runSink(ch.config, { signal: stop.signal, log: () => undefined });
    const rows = async () =>
      (await ch.rest.getTable('cont')) === null ? 0 : (await ch.rest.listRows('cont')).length;
    const [a, b, c, d] = inserts(1, 20, 5);
    await ch.publish(batchOf('cont', COLUMNS, a));
    await ch.publish(batchOf('cont', COLUMNS, b));
    await until('the first rows', 60_000, async () => (await rows()) === 10);
    // Past the (1 s) time limit and after empty pulls: a bounded run would have ended by now.
    const started = Date.now();
    await until('the time limit to pass', 10_000, async () => Date.now() - started > 1000);
    await ch.publish(batchOf('cont', COLUMNS, c));
    await ch.publish(batchOf('cont', COLUMNS, d));
    await until('all rows', 60_000, async () => (await rows()) === 20);
    stop.abort();
    const summary = await run;
    assert.equal(summary.messages, 4);
    assert.equal(summary.events, 20);
  });

  it('BigQuery going away mid-run stops the sink without acking; a rerun completes the replica', async function () {
    this.timeout(240_000);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pgcdc-sink-bq-'));
    const dataFile = path.join(dir, 'bq.json');
    let bq = await startBigQueryEmulator({ dataFile });
    const restPort = Number(bq.restHost.split(':')[1]);
    const grpcPort = Number(bq.grpcHost.split(':')[1]);
    const savedHost = process.env.BIGQUERY_EMULATOR_HOST;
    process.env.BIGQUERY_EMULATOR_HOST = `http://${bq.restHost}`;
    try {
      const ch = await channel(
        { ...stack, grpcHost: bq.grpcHost, restHost: bq.restHost },
        { batchMessages: 1 },
      );
      const messages = inserts(1, 300, 3);
      for (const m of messages) await ch.publish(batchOf('down', COLUMNS, m));
      const run = runSink(ch.config, { log: () => undefined });
      await until('some rows to land', 60_000, async () => {
        const t = await ch.rest.getTable('down_changes');
        return t !== null && (await ch.rest.listRows('down_changes')).length >= 30;
      });
      await bq.stop();
      await assert.rejects(run, BigQueryError);
      bq = await startBigQueryEmulator({ dataFile, restPort, grpcPort });
      const landed = (await ch.rest.listRows('down')).length;
      assert.ok(landed < 300, `stopped before the end (${landed} rows)`);
      await until('the replica to be complete', 150_000, async () => {
        await runSink(ch.config, { log: () => undefined });
        return (await ch.rest.listRows('down')).length === 300;
      });
      const ids = new Set((await ch.rest.listRows('down_changes')).map((r) => r._event_id));
      assert.equal(ids.size, 300);
    } finally {
      process.env.BIGQUERY_EMULATOR_HOST = savedHost;
      await bq.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
