// The replica equals the source whatever the delivery order, the redelivery delay or the crash point.
// Random transactions (inserts, updates that change or keep a TOASTed column, key changes, deletes,
// re-inserts) are packed into messages the way the listener does it (decision 4: an unchanged TOAST value is
// read from the source when the message is flushed — possibly after later changes — or the event is
// `superseded` when the row is gone by then). The messages are published out of order with duplicates; a
// sink process is SIGKILLed at random points between its pulls and its acks, several times; redelivery then
// comes in whatever order Pub/Sub's emulator gives; reruns finish the job. The replica is compared with the
// source's final state row by row, then everything is replayed once more in another order and compared again.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { ChangeEvent, ColumnInfo, Row } from '../../contract/events';
import { ENV } from '../../contract/env';
import { runSink } from '../../sink/run';
import { batchOf, Channel, channel, event, nextCommit, rowsBy, sinkStack, SinkStack } from './support';

const sinkMain = path.join(__dirname, '..', '..', 'sink', 'main.js');

const COLUMNS: ColumnInfo[] = [
  { name: 'id', type: 'integer', oid: 23, key: true },
  { name: 'v', type: 'text', oid: 25, key: false },
  { name: 'big', type: 'text', oid: 25, key: false },
];

/** mulberry32: a small deterministic PRNG, so a failing seed can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The source's history: rows after each transaction, so a lookup "later" can be simulated. */
function scenario(seed: number) {
  const rnd = prng(seed);
  const pick = (n: number) => Math.floor(rnd() * n);
  const TX = 80;
  const state = new Map<string, Row>();
  const snapshots: Map<string, Row>[] = [];
  // Events with the transaction index they committed in; TOAST-unchanged updates resolved afterwards.
  const raw: { ev: ChangeEvent; tx: number; toast: boolean }[] = [];
  for (let tx = 0; tx < TX; tx++) {
    const commit = nextCommit();
    const changes = 1 + pick(3);
    for (let i = 0; i < changes; i++) {
      const id = String(1 + pick(10));
      const current = state.get(id);
      if (!current) {
        const row = { id, v: `v${tx}.${i}`, big: `big-${tx}-${i}-`.repeat(40) };
        state.set(id, row);
        raw.push({ ev: event('c', commit, i, { key: { id }, after: row }), tx, toast: false });
        continue;
      }
      const r = pick(10);
      if (r === 0) {
        state.delete(id);
        raw.push({ ev: event('d', commit, i, { key: { id }, before: { id } }), tx, toast: false });
      } else if (r === 1) {
        // Primary-key change to a free id.
        const free = [...Array(20).keys()].map((k) => String(k + 1)).filter((k) => !state.has(k));
        const to = free[pick(free.length)];
        const row = { ...current, id: to, v: `v${tx}.${i}` };
        state.delete(id);
        state.set(to, row);
        raw.push({
          ev: event('u', commit, i, { key: { id: to }, before: { id }, after: { id: to, v: row.v } }),
          tx,
          toast: true,
        });
      } else if (r < 5) {
        // An update that changes the TOASTed column too.
        const row = { ...current, v: `v${tx}.${i}`, big: `chg-${tx}-${i}-`.repeat(40) };
        state.set(id, row);
        raw.push({ ev: event('u', commit, i, { key: { id }, after: row }), tx, toast: false });
      } else {
        const row = { ...current, v: `v${tx}.${i}` };
        state.set(id, row);
        raw.push({ ev: event('u', commit, i, { key: { id }, after: { id, v: row.v } }), tx, toast: true });
      }
    }
    snapshots.push(new Map([...state].map(([k, v]) => [k, { ...v }])));
  }
  // The listener flushes a message every few events and resolves its TOAST columns then, reading the
  // source at some moment at or after the flush (a few transactions later at most).
  const messages: ChangeEvent[][] = [];
  let pending: ChangeEvent[] = [];
  raw.forEach((r, n) => {
    if (r.toast) {
      const lookupTx = Math.min(TX - 1, r.tx + pick(4));
      const key = (r.ev.after as Row).id as string;
      const found = snapshots[lookupTx].get(key);
      if (found) {
        r.ev.after = { ...(r.ev.after as Row), big: found.big };
        r.ev.fromSource = ['big'];
      } else {
        r.ev.unchanged = ['big'];
        r.ev.superseded = true;
      }
    }
    pending.push(r.ev);
    if (pending.length >= 1 + pick(4) || n === raw.length - 1) {
      messages.push(pending);
      pending = [];
    }
  });
  return { expected: state, messages, events: raw.length, rnd };
}

function childEnv(ch: Channel, batch: number): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    PUBSUB_EMULATOR_HOST: process.env.PUBSUB_EMULATOR_HOST,
    BIGQUERY_EMULATOR_HOST: process.env.BIGQUERY_EMULATOR_HOST,
    [ENV.project]: ch.config.projectId,
    [ENV.subscription]: ch.config.subscription,
    [ENV.dataset]: ch.dataset,
    [ENV.sinkBatchMessages]: String(batch),
    [ENV.sinkPullWaitSeconds]: '3',
    [ENV.bigQueryStorageEmulatorHost]: ch.config.bigQueryStorageEmulatorHost,
  };
}

async function historyCount(ch: Channel): Promise<number> {
  if ((await ch.rest.getTable('chaos_changes')) === null) return 0;
  const rows = await ch.rest.query(
    `SELECT DISTINCT _event_id FROM \`${ch.config.bigQueryProject}.${ch.dataset}.chaos_changes\``,
  );
  return rows.length;
}

/** Starts the sink process and SIGKILLs it once the history holds `atRows` distinct events (or it ends). */
async function killAt(ch: Channel, atRows: number, batch: number): Promise<'killed' | 'ended'> {
  const child = spawn(process.execPath, [sinkMain], {
    env: childEnv(ch, batch),
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let ended = false;
  void exited.then(() => (ended = true));
  try {
    while (!ended && (await historyCount(ch)) < atRows) await new Promise((r) => setTimeout(r, 50));
    if (ended) return 'ended';
    child.kill('SIGKILL');
    await exited;
    return 'killed';
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

async function replicaMatches(ch: Channel, expected: Map<string, Row>): Promise<string | null> {
  if ((await ch.rest.getTable('chaos')) === null) return 'no replica yet';
  const replica = await rowsBy(ch.rest, 'chaos', 'id');
  const want = [...expected.keys()].sort();
  const got = [...replica.keys()].sort();
  if (JSON.stringify(want) !== JSON.stringify(got)) return `keys ${got.join(',')} ≠ ${want.join(',')}`;
  for (const [id, row] of expected) {
    const r = replica.get(id);
    if (r?.v !== row.v) return `v of ${id}: ${String(r?.v)} ≠ ${row.v}`;
    if (r?.big !== row.big) return `big of ${id} differs`;
  }
  return null;
}

describe('sink: chaos — SIGKILLs between pull and ack, permuted redelivery', function () {
  let stack: SinkStack;
  before(async function () {
    stack = await sinkStack();
  });
  after(async function () {
    await stack?.stopBigQuery();
  });

  for (const seed of [11, 12]) {
    it(`the replica equals the source row by row after random kills and redelivery (seed ${seed})`, async function () {
      this.timeout(600_000);
      const { expected, messages, events, rnd } = scenario(seed);
      const ch = await channel(stack);
      const order = messages.map((m) => ({ m, r: rnd() }));
      const published = [...order, ...order.filter(() => rnd() < 0.2)].sort((a, b) => a.r - b.r);
      for (const { m } of published) await ch.publish(batchOf('chaos', COLUMNS, m));

      // Three sink processes killed at random points of their work.
      let kills = 0;
      for (let k = 0; k < 3; k++) {
        const at = 1 + Math.floor(rnd() * events);
        if ((await killAt(ch, at, 1 + Math.floor(rnd() * 4))) === 'killed') kills += 1;
      }
      assert.ok(kills >= 1, 'at least one sink was killed mid-run');

      // Reruns until the replica is right; messages the killed sinks held come back when their leases run
      // out, in whatever order Pub/Sub redelivers them.
      let mismatch: string | null = 'not checked';
      for (let round = 0; round < 60 && mismatch !== null; round++) {
        const s = await runSink(ch.config, { log: () => undefined });
        assert.equal(s.failed, 0, 'nothing goes to _failed');
        mismatch =
          (await historyCount(ch)) < events ? 'history incomplete' : await replicaMatches(ch, expected);
      }
      assert.equal(mismatch, null);

      // Everything once more, in another order: no change.
      for (const { m } of [...order].sort((a, b) => b.r - a.r))
        await ch.publish(batchOf('chaos', COLUMNS, m));
      await runSink(ch.config, { log: () => undefined });
      assert.equal(await replicaMatches(ch, expected), null);
      assert.equal(await historyCount(ch), events, 'every event is in the history (dedup by _event_id)');
    });
  }
});
