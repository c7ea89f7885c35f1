// The status verdict (healthy / lagging / stale / failing) and the schedule intervals it is judged against.

import assert from 'node:assert/strict';
import { cronIntervalSeconds } from '../../cli/cron';
import { EXIT } from '../../cli/errors';
import { assess, VERDICT_EXIT, VerdictInput } from '../../cli/verdict';

const healthyCloud: VerdictInput = {
  env: 'dev',
  cloud: true,
  listenerIntervalSeconds: 720,
  sinkIntervalSeconds: 720,
  slot: {
    ok: true,
    value: { walStatus: 'reserved', lagBytes: 1024, ageSeconds: 300, stuckTransaction: null },
  },
  runs: { ok: true, value: [{ job: 'pgcdc-listener', state: 'succeeded', execution: 'l-2' }] },
  backlog: { ok: true, value: { subscription: 'pgcdc-sink', messages: 3, oldestUnackedSeconds: 200 } },
  deadLetters: { ok: true, value: { subscription: 'pgcdc-dead-letter', messages: 0 } },
};

describe('status verdict', () => {
  it('healthy: recent report, slot reserved, backlog younger than two sink intervals', () => {
    assert.deepEqual(assess(healthyCloud), { state: 'healthy', reasons: [] });
    assert.equal(VERDICT_EXIT.healthy, EXIT.ok);
  });

  it('stale after two schedule intervals, saying how old the report is', () => {
    const v = assess({
      ...healthyCloud,
      slot: { ok: true, value: { walStatus: 'reserved', lagBytes: 0, ageSeconds: 1500 } },
    });
    assert.equal(v.state, 'stale');
    assert.deepEqual(v.reasons, ['the newest listener report is 25m old (scheduled every 12m)']);
    assert.equal(VERDICT_EXIT.stale, EXIT.stale);
  });

  it('a lost slot is failing, with sql init --env as the fix, and outranks everything else', () => {
    const v = assess({
      ...healthyCloud,
      slot: { ok: true, value: { walStatus: 'lost', lagBytes: 0, ageSeconds: 99_999 } },
      backlog: {
        ok: true,
        value: { subscription: 'pgcdc-sink', messages: 10, oldestUnackedSeconds: 99_999 },
      },
    });
    assert.equal(v.state, 'failing');
    assert.match(v.reasons[0], /replication slot is lost/);
    assert.match(v.fix ?? '', /^pgcdc sql init --env dev/);
    assert.equal(v.reasons.length, 3, JSON.stringify(v.reasons));
  });

  it('a stuck transaction is lagging and says which setting to raise; absent fields of old summaries are fine', () => {
    const v = assess({
      ...healthyCloud,
      slot: {
        ok: true,
        value: {
          walStatus: null,
          lagBytes: 0,
          ageSeconds: 60,
          stuckTransaction: { xid: 777, changesRead: 1200000, runs: 3 },
        },
      },
    });
    assert.equal(v.state, 'lagging');
    assert.match(
      v.reasons[0],
      /transaction 777 could not be finished within a run \(1200000 changes read, 3 runs\)/,
    );
    assert.match(v.fix ?? '', /listenerMaxRunSeconds in Pulumi\.dev\.yaml.*pgcdc deploy --env dev/);
  });

  it('the newest failed run of a job is failing; an older failure already followed by a success is not', () => {
    const runs = (states: string[]): VerdictInput['runs'] => ({
      ok: true,
      value: states.map((state, i) => ({ job: 'pgcdc-sink', state, execution: `s-${i}` })),
    });
    assert.equal(assess({ ...healthyCloud, runs: runs(['succeeded', 'failed']) }).state, 'healthy');
    const v = assess({ ...healthyCloud, runs: runs(['failed', 'succeeded']) });
    assert.equal(v.state, 'failing');
    assert.deepEqual(v.reasons, ['the newest pgcdc-sink run (s-0) failed']);
  });

  it('locally any waiting message is lagging (no schedule will pick it up), with run-once --env local as the fix', () => {
    const v = assess({
      ...healthyCloud,
      env: 'local',
      cloud: false,
      slot: { ok: true, value: { walStatus: 'reserved', lagBytes: 0 } },
      backlog: { ok: true, value: { subscription: 'pgcdc-sink', messages: 1, oldestUnackedSeconds: 0 } },
    });
    assert.equal(v.state, 'lagging');
    assert.equal(v.fix, 'pgcdc run-once --env local');
  });

  it('no slot locally is failing (sql init); in the cloud, no report yet is stale (run-once)', () => {
    const none = { ok: true as const, value: null };
    assert.deepEqual(
      assess({ ...healthyCloud, env: 'local', cloud: false, slot: none }).fix,
      'pgcdc sql init --env local',
    );
    const cloud = assess({ ...healthyCloud, slot: none });
    assert.equal(cloud.state, 'stale');
    assert.equal(cloud.fix, 'pgcdc run-once --env dev');
  });
});

describe('cron schedule intervals', () => {
  it('the longest gap between firings, weekends and lists included', () => {
    assert.equal(cronIntervalSeconds('*/12 * * * *'), 12 * 60);
    assert.equal(cronIntervalSeconds('6-59/12 * * * *'), 12 * 60);
    assert.equal(cronIntervalSeconds('0 * * * *'), 3600);
    assert.equal(cronIntervalSeconds('0,30 9-17 * * *'), 15.5 * 3600);
    assert.equal(cronIntervalSeconds('0 9 * * MON-FRI'), 3 * 24 * 3600);
    assert.equal(cronIntervalSeconds('0 3 * * 0'), 7 * 24 * 3600);
  });
});
