// The Cloud Logging / Cloud Monitoring adapters (bounded by time, following pages, newest point), and how a
// job execution is run: its name and log URL as soon as it starts, fast polling, the summary retried.

import assert from 'node:assert/strict';
import {
  EntriesApi,
  LogEntry,
  LoggingJobLogs,
  MonitoringMetrics,
  RUN_JOB_POLLING,
  TimeSeriesApi,
} from '../../cli/cloud';
import { CloudContext, parseStackOutputs } from '../../cli/commands/shared';
import { EXIT } from '../../cli/errors';
import { jobNameFor, runStackJob } from '../../cli/jobs';
import { execution, harness, Harness, PROJECT, REGION, STACK_OUTPUTS } from './fakes';

const NOW = Date.UTC(2026, 0, 1, 12, 5, 0);

function entriesApi(
  pages: LogEntry[][],
): EntriesApi & { requests: Parameters<EntriesApi['getEntries']>[0][] } {
  const requests: Parameters<EntriesApi['getEntries']>[0][] = [];
  return {
    requests,
    async getEntries(req) {
      requests.push(req);
      const index = req.pageToken ? Number(req.pageToken) : 0;
      const next = index + 1 < pages.length ? { pageToken: String(index + 1) } : null;
      return [pages[index] ?? [], next] as const;
    },
  };
}

describe('Cloud Logging lookups (LoggingJobLogs on @google-cloud/logging getEntries)', () => {
  it('asks for the newest summary line of the job within a time bound, one page at a time', async () => {
    const api = entriesApi([
      [{ metadata: { timestamp: '2026-01-01T12:01:00Z' }, data: { confirmedLsn: '0/1' } }],
    ]);
    const logs = new LoggingJobLogs(api, () => NOW);
    const found = await logs.lastSummary(PROJECT, 'pgcdc-listener', {
      field: 'confirmedLsn',
      executionName: `projects/${PROJECT}/locations/${REGION}/jobs/pgcdc-listener/executions/x-1`,
    });
    assert.deepEqual(found, { at: '2026-01-01T12:01:00Z', summary: { confirmedLsn: '0/1' } });
    assert.equal(api.requests.length, 1);
    const req = api.requests[0];
    assert.deepEqual(req.resourceNames, [`projects/${PROJECT}`]);
    assert.equal(req.orderBy, 'timestamp desc');
    assert.equal(req.autoPaginate, false);
    assert.equal(
      req.filter,
      [
        'resource.type="cloud_run_job"',
        'resource.labels.job_name="pgcdc-listener"',
        'jsonPayload.confirmedLsn:*',
        // 30 days back by default: the _Default bucket's retention.
        'timestamp >= "2025-12-02T12:05:00.000Z"',
        'labels."run.googleapis.com/execution_name"="x-1"',
      ].join(' AND '),
    );
  });

  it('follows pages that come back empty with a page token until an entry is found', async () => {
    const api = entriesApi([
      [],
      [],
      [{ metadata: { timestamp: { seconds: 1767268860, nanos: 0 } }, data: { replicaRows: 3 } }],
    ]);
    const logs = new LoggingJobLogs(api, () => NOW);
    const found = await logs.lastSummary(PROJECT, 'pgcdc-sink', {
      field: 'replicaRows',
      sinceMs: NOW - 60_000,
    });
    assert.deepEqual(found, { at: '2026-01-01T12:01:00.000Z', summary: { replicaRows: 3 } });
    assert.deepEqual(
      api.requests.map((r) => r.pageToken),
      [undefined, '1', '2'],
    );
    assert.match(api.requests[0].filter, /timestamp >= "2026-01-01T12:04:00\.000Z"/);
  });

  it('gives up after its page limit, and says nothing was found when the pages run out', async () => {
    const endless: EntriesApi & { calls: number } = {
      calls: 0,
      async getEntries() {
        this.calls++;
        return [[], { pageToken: 'more' }] as const;
      },
    };
    const logs = new LoggingJobLogs(endless, () => NOW, { pages: 5, ms: 60_000 });
    assert.equal(await logs.lastSummary(PROJECT, 'pgcdc-sink', { field: 'replicaRows' }), null);
    assert.equal(endless.calls, 5);
    assert.equal(
      await new LoggingJobLogs(entriesApi([[]]), () => NOW).lastSummary(PROJECT, 'j', { field: 'x' }),
      null,
    );
  });

  it('recentSummaries collects up to its limit across pages, newest first, asking each page for what is left', async () => {
    const line = (n: number): LogEntry => ({
      metadata: { timestamp: `2026-01-01T12:0${n}:00Z` },
      data: { confirmedLsn: `0/${n}` },
    });
    const api = entriesApi([[line(4), line(3)], [], [line(2), line(1)], [line(0)]]);
    const logs = new LoggingJobLogs(api, () => NOW);
    const found = await logs.recentSummaries(PROJECT, 'pgcdc-listener', { field: 'confirmedLsn', limit: 3 });
    assert.deepEqual(
      found.map((f) => f.summary.confirmedLsn),
      ['0/4', '0/3', '0/2'],
    );
    assert.deepEqual(
      api.requests.map((r) => r.pageSize),
      [3, 1, 1],
    );
    assert.match(api.requests[0].filter, /jsonPayload\.confirmedLsn:\*/);
    // Fewer lines than the limit: all of them.
    const all = await new LoggingJobLogs(entriesApi([[line(1)], [line(0)]]), () => NOW).recentSummaries(
      PROJECT,
      'pgcdc-listener',
      { field: 'confirmedLsn', limit: 50 },
    );
    assert.equal(all.length, 2);
  });
});

describe('Cloud Monitoring backlog (MonitoringMetrics on @google-cloud/monitoring listTimeSeries)', () => {
  it('reads the newest point of num_undelivered_messages and oldest_unacked_message_age over the last ten minutes', async () => {
    const requests: Parameters<TimeSeriesApi['listTimeSeries']>[0][] = [];
    const api: TimeSeriesApi = {
      async listTimeSeries(req) {
        requests.push(req);
        const undelivered = req.filter.includes('num_undelivered_messages');
        return [
          [
            {
              points: [
                { interval: { endTime: { seconds: 100 } }, value: { int64Value: undelivered ? '7' : '30' } },
                { interval: { endTime: { seconds: 160 } }, value: { int64Value: undelivered ? '9' : '90' } },
              ],
            },
          ],
        ] as const;
      },
    };
    const metrics = new MonitoringMetrics(api, () => NOW);
    assert.deepEqual(await metrics.backlog(PROJECT, 'pgcdc-sink'), { messages: 9, oldestUnackedSeconds: 90 });
    assert.deepEqual(requests.map((r) => r.filter).sort(), [
      'metric.type="pubsub.googleapis.com/subscription/num_undelivered_messages" AND resource.labels.subscription_id="pgcdc-sink"',
      'metric.type="pubsub.googleapis.com/subscription/oldest_unacked_message_age" AND resource.labels.subscription_id="pgcdc-sink"',
    ]);
    assert.deepEqual(requests[0].interval, {
      startTime: { seconds: NOW / 1000 - 600 },
      endTime: { seconds: NOW / 1000 },
    });
    assert.equal(requests[0].name, `projects/${PROJECT}`);
  });

  it('no series (a subscription without traffic yet) is no data, not zero', async () => {
    const metrics = new MonitoringMetrics({ listTimeSeries: async () => [[]] as const }, () => NOW);
    assert.equal(await metrics.backlog(PROJECT, 'pgcdc-sink'), null);
  });
});

describe('running a stack job execution', () => {
  let h: Harness;
  afterEach(() => h?.cleanup());
  const ctx = (): CloudContext => ({
    outputs: parseStackOutputs(STACK_OUTPUTS, 'dev'),
    clients: {
      jobs: h.jobs,
      executions: h.executions,
      metrics: h.metrics,
      logs: h.logs,
      bigquery: undefined as never,
    },
  });

  it('prints the execution name and log URL as soon as it starts, and polls the operation every few seconds', async () => {
    h = harness();
    await h.run('run-once', '--env', 'dev');
    const err = h.out.stderr;
    const started = err.indexOf(
      'execution pgcdc-listener-exec-1 started; logs: https://console.cloud.google.com/',
    );
    const done = err.indexOf('Listener: execution of job pgcdc-listener: done');
    assert.ok(started >= 0 && done > started, err);
    assert.deepEqual(h.jobs.options, [{ longrunning: RUN_JOB_POLLING }, { longrunning: RUN_JOB_POLLING }]);
    assert.ok(RUN_JOB_POLLING.maxRetryDelayMillis <= 5000);
  });

  it('the summary line is looked up again while Cloud Logging has not got it yet', async () => {
    h = harness();
    h.logs.summaries.set('pgcdc-sink', {
      replicaRows: 4,
      messages: 1,
      events: 4,
      changelogRows: 4,
      failed: 0,
      tables: [],
      seconds: 1,
    });
    h.logs.missesBeforeFound = 2;
    const run = await runStackJob(h.deps, ctx(), 'dev', {
      role: 'sink',
      title: 'Sink',
      summaryField: 'replicaRows',
    });
    assert.equal(run.summary?.replicaRows, 4);
    assert.equal(h.logs.requests.length, 3);
    assert.ok(
      h.logs.requests.every((r) => r.executionName === run.execution.execution && r.sinceMs !== undefined),
    );
  });

  it('the admin job runs as its own job; a stack deployed before it existed is told to redeploy', async () => {
    h = harness();
    const outputs = { ...STACK_OUTPUTS, adminJobName: { value: 'pgcdc-admin', secret: false } };
    const withAdmin: CloudContext = { ...ctx(), outputs: parseStackOutputs(outputs, 'dev') };
    h.jobs.outcome.set('pgcdc-admin', { execution: execution('pgcdc-admin', 1) });
    const run = await runStackJob(h.deps, withAdmin, 'dev', {
      role: 'admin',
      args: ['check'],
      title: 'Check',
    });
    assert.equal(run.execution.job, 'pgcdc-admin');
    assert.deepEqual(h.jobs.requests, [
      {
        name: `projects/${PROJECT}/locations/${REGION}/jobs/pgcdc-admin`,
        overrides: { containerOverrides: [{ args: ['check'] }] },
      },
    ]);
    assert.throws(
      () => jobNameFor(parseStackOutputs(STACK_OUTPUTS, 'dev'), 'admin', 'dev'),
      (e: Error & { exitCode?: number; hint?: string }) =>
        /no output "adminJobName"/.test(e.message) &&
        e.exitCode === EXIT.failure &&
        /pgcdc deploy --env dev/.test(e.hint ?? ''),
    );
  });
});
