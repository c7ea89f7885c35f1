// sql init / run-once / status against a Pulumi stack, with injected Cloud Run, metrics, logs and BigQuery.

import assert from 'node:assert/strict';
import { EXIT } from '../../cli/errors';
import { execution, harness, Harness, PROJECT, REGION, STACK_OUTPUTS } from './fakes';

const LISTENER_JOB = `projects/${PROJECT}/locations/${REGION}/jobs/pgcdc-listener`;
const SINK_JOB = `projects/${PROJECT}/locations/${REGION}/jobs/pgcdc-sink`;
const ADMIN_JOB = `projects/${PROJECT}/locations/${REGION}/jobs/pgcdc-admin`;
/** A stack deployed with the admin job (sql init, teardown and check run there). */
const WITH_ADMIN = { ...STACK_OUTPUTS, adminJobName: { value: 'pgcdc-admin', secret: false } };

describe('pgcdc sql init / run-once / status on a cloud stack', () => {
  let h: Harness;
  afterEach(() => h?.cleanup());

  it('sql init runs an execution of the admin job (the only identity with the admin password) with args ["sql-init"]', async () => {
    h = harness({ outputs: WITH_ADMIN });
    h.logs.summaries.set('pgcdc-admin', {
      statements: 6,
      notices: [
        'created publication pgcdc_pub',
        'created logical replication slot pgcdc_slot (plugin pgoutput)',
      ],
    });
    const code = await h.run('sql', 'init', '--env', 'dev');
    assert.equal(code, EXIT.ok, h.out.stderr);
    assert.deepEqual(h.source.requests, [
      { method: 'selectStack', stackName: 'dev', workDir: h.deps.projectDir },
    ]);
    assert.deepEqual(h.cloudProjects, [PROJECT]);
    assert.deepEqual(h.jobs.requests, [
      { name: ADMIN_JOB, overrides: { containerOverrides: [{ args: ['sql-init'] }] } },
    ]);
    assert.match(h.out.stdout, /created logical replication slot pgcdc_slot/);
    assert.match(h.out.stdout, /sql init: execution pgcdc-admin-exec-1 succeeded/);
    assert.deepEqual(
      h.logs.requests.map((r) => [r.project, r.job, r.field, r.executionName]),
      [[PROJECT, 'pgcdc-admin', 'statements', 'pgcdc-admin-exec-1']],
    );
  });

  it('sql init on a stack deployed before the admin job existed says to deploy again, and runs nothing', async () => {
    h = harness();
    const code = await h.run('sql', 'init', '--env', 'dev');
    assert.equal(code, EXIT.failure);
    assert.match(h.out.stderr, /has no output "adminJobName"/);
    assert.match(h.out.stderr, /pgcdc deploy --env dev/);
    assert.deepEqual(h.jobs.requests, []);
  });

  it('snapshot runs the listener job with args ["snapshot", "--table", t, "--restart"]; a bad table name stops first', async () => {
    h = harness();
    const code = await h.run('snapshot', '--env', 'dev', '--table', 'public.customers', '--restart');
    assert.equal(code, EXIT.ok, h.out.stderr);
    assert.deepEqual(h.jobs.requests, [
      {
        name: LISTENER_JOB,
        overrides: {
          containerOverrides: [{ args: ['snapshot', '--table', 'public.customers', '--restart'] }],
        },
      },
    ]);
    assert.match(h.out.stdout, /snapshot: execution pgcdc-listener-exec-1 succeeded/);
    h.cleanup();
    h = harness();
    assert.notEqual(await h.run('snapshot', '--env', 'dev', '--table', 'customers'), EXIT.ok);
    assert.match(h.out.stderr, /--table: "customers" names no schema \(e\.g\. public\.customers\)/);
    assert.deepEqual(h.jobs.requests, []);
  });

  it('a failed execution exits with the job-failed code and prints the execution log URL', async () => {
    h = harness({ outputs: WITH_ADMIN });
    const failed = execution('pgcdc-admin', 7, {
      failedCount: 1,
      succeededCount: 0,
      logUri: 'https://console.cloud.google.com/logs/exec-7',
    });
    h.jobs.outcome.set('pgcdc-admin', {
      execution: failed,
      error: new Error('Task pgcdc-admin-exec-7-task0 failed: exit code 4'),
    });
    const code = await h.run('sql', 'init', '--env', 'dev');
    assert.equal(code, EXIT.jobFailed);
    assert.match(
      h.out.stderr,
      /job pgcdc-admin failed: Task .* exit code 4 \(execution pgcdc-admin-exec-7\)/,
    );
    assert.match(h.out.stderr, /Logs of the execution: https:\/\/console\.cloud\.google\.com\/logs\/exec-7/);
  });

  it('run-once runs the listener job, then the sink job, and --json prints both executions and what each did', async () => {
    h = harness();
    h.logs.summaries.set('pgcdc-listener', {
      changes: 12,
      messages: 2,
      bytes: 4096,
      transactions: 3,
      firstLsn: '0/16B3748',
      lastLsn: '0/16B9000',
      confirmedLsn: '0/16B9000',
      lagBytes: 0,
      seconds: 1.5,
      stoppedBy: 'wal-end',
    });
    h.logs.summaries.set('pgcdc-sink', {
      messages: 2,
      events: 12,
      replicaRows: 12,
      changelogRows: 12,
      failed: 0,
      tables: ['public.customers'],
      seconds: 2.5,
    });
    const code = await h.run('run-once', '--env', 'dev', '--json');
    assert.equal(code, EXIT.ok, h.out.stderr);
    // The listener must finish before the sink starts: the sink drains what the listener published.
    assert.deepEqual(
      h.jobs.requests.map((r) => r.name),
      [LISTENER_JOB, SINK_JOB],
    );
    assert.ok(
      h.jobs.requests.every((r) => r.overrides === undefined),
      'run-once runs the jobs as deployed',
    );
    const summary = JSON.parse(h.out.stdout) as {
      env: string;
      listener: {
        execution: { execution: string; seconds: number; logUri: string };
        summary: { changes: number };
      };
      sink: { execution: { execution: string }; summary: { replicaRows: number } };
    };
    assert.equal(summary.env, 'dev');
    assert.equal(summary.listener.execution.execution, 'pgcdc-listener-exec-1');
    assert.equal(summary.listener.execution.seconds, 42);
    assert.equal(summary.listener.summary.changes, 12);
    assert.equal(summary.sink.execution.execution, 'pgcdc-sink-exec-2');
    assert.equal(summary.sink.summary.replicaRows, 12);
  });

  it('run-once in plain text says what each job did and where its logs are', async () => {
    h = harness();
    h.logs.summaries.set('pgcdc-sink', {
      messages: 2,
      events: 12,
      replicaRows: 12,
      changelogRows: 12,
      failed: 1,
      tables: ['public.customers'],
      seconds: 2.5,
    });
    assert.equal(await h.run('run-once', '--env', 'dev'), EXIT.ok, h.out.stderr);
    assert.match(
      h.out.stdout,
      /listener: execution pgcdc-listener-exec-1 succeeded in 42\.0s\n {2}\(no summary line in Cloud Logging yet: see the logs\)/,
    );
    assert.match(
      h.out.stdout,
      /sink: execution pgcdc-sink-exec-2 succeeded in 42\.0s\n {2}2 messages, 12 events → 12 replica rows, 12 changelog rows, 1 failed/,
    );
    assert.match(h.out.stdout, /logs: https:\/\/console\.cloud\.google\.com\/logs\/viewer/);
    // Progress goes to stderr, not into the results.
    assert.match(h.out.stderr, /Listener: execution of job pgcdc-listener…/);
  });

  it('when the listener execution fails, run-once stops before the sink and exits with the job-failed code', async () => {
    h = harness();
    h.jobs.outcome.set('pgcdc-listener', {
      execution: execution('pgcdc-listener', 3, {
        failedCount: 1,
        succeededCount: 0,
        logUri: 'https://logs/exec-3',
      }),
    });
    assert.equal(await h.run('run-once', '--env', 'dev'), EXIT.jobFailed);
    assert.deepEqual(
      h.jobs.requests.map((r) => r.name),
      [LISTENER_JOB],
    );
    assert.match(h.out.stderr, /execution pgcdc-listener-exec-3 failed \(1 task\(s\) failed\)/);
    assert.match(h.out.stderr, /https:\/\/logs\/exec-3/);
  });

  it('status shows the slot as the listener last saw it, the last executions, backlog, dead letters, failed rows and replica freshness', async () => {
    h = harness();
    h.logs.summaries.set('pgcdc-listener', {
      confirmedLsn: '0/2000000',
      lastLsn: '0/2000000',
      lagBytes: 3 * 1024 * 1024,
    });
    h.executions.byJob.set('pgcdc-listener', [
      execution('pgcdc-listener', 9),
      execution('pgcdc-listener', 8, { failedCount: 1, succeededCount: 0 }),
    ]);
    h.executions.byJob.set('pgcdc-sink', [execution('pgcdc-sink', 9)]);
    h.metrics.backlogs.set('pgcdc-sink', { messages: 17, oldestUnackedSeconds: 300 });
    h.metrics.backlogs.set('pgcdc-dead-letter', { messages: 1, oldestUnackedSeconds: 7200 });
    // Messages younger than two sink intervals are the schedule at work; a dead letter waiting is a lag.
    assert.equal(await h.run('status', '--env', 'dev'), EXIT.lagging, h.out.stderr);
    const out = h.out.stdout;
    assert.match(out, /^dev: lagging — 1 dead letter\(s\) in pgcdc-dead-letter not yet recorded in _failed/);
    assert.match(out, /confirmed 0\/2000000, WAL status unknown/);
    assert.match(out, /3\.0 MiB not yet confirmed/);
    assert.match(out, /as reported by the last listener run, 4m00s ago \(2026-01-01T12:01:00Z\)/);
    assert.doesNotMatch(out, /WAL at/);
    assert.match(out, /pgcdc-listener pgcdc-listener-exec-9 {2}succeeded in 42\.0s/);
    assert.match(out, /pgcdc-listener pgcdc-listener-exec-8 {2}failed/);
    assert.match(out, /pgcdc-sink: 17 message\(s\) waiting or unacknowledged, oldest 5m00s old/);
    assert.match(out, /pgcdc-dead-letter: 1 message\(s\) waiting or unacknowledged, oldest 2h00m old/);
    assert.match(out, /_failed: 2 row\(s\)/);
    assert.match(out, /customers\s+31\s+2026-01-01T12:01:00\.000Z\s+4m00s/);
    assert.doesNotMatch(out, /customers_changes/);
    assert.deepEqual(
      h.executions.requests.map((r) => r.parent),
      [LISTENER_JOB, SINK_JOB],
    );
    assert.deepEqual(
      h.metrics.requests.map((r) => `${r.project}/${r.subscription}`),
      [`${PROJECT}/pgcdc-sink`, `${PROJECT}/pgcdc-dead-letter`],
    );
    assert.ok(h.bigqueryAsked.includes('getTables pgcdc_dev'));
  });

  it('status --json is machine-readable and a section that cannot be read says why without hiding the rest', async () => {
    h = harness();
    h.metrics.backlog = async () => {
      throw new Error('Permission monitoring.timeSeries.list denied');
    };
    // A part that cannot be read means the health cannot be vouched for: failing, with the reason.
    assert.equal(await h.run('status', '--env', 'dev', '--json'), EXIT.failing, h.out.stderr);
    const report = JSON.parse(h.out.stdout) as {
      verdict: { state: string; reasons: string[] };
      backlog: { ok: boolean; error: string };
      failedRows: { ok: boolean; value: { rows: number } };
    };
    assert.equal(report.verdict.state, 'failing');
    assert.match(report.verdict.reasons[0], /subscription backlog could not be read: .*denied/);
    assert.equal(report.backlog.ok, false);
    assert.match(report.backlog.error, /monitoring\.timeSeries\.list denied/);
    assert.deepEqual(report.failedRows, { ok: true, value: { table: '_failed', rows: 2 } });
  });

  it('without Google credentials, cloud commands exit with the no-credentials code and say how to log in', async () => {
    h = harness();
    const noCreds = new Error(
      'Could not load the default credentials. Browse to https://cloud.google.com/docs/authentication/getting-started',
    );
    h.jobs.runJob = async () => {
      throw noCreds;
    };
    assert.equal(await h.run('run-once', '--env', 'dev'), EXIT.noCredentials);
    assert.match(h.out.stderr, /no Google Cloud credentials/);
    assert.match(h.out.stderr, /gcloud auth application-default login/);

    const everything = async () => {
      throw noCreds;
    };
    h.executions.listExecutions = everything;
    h.metrics.backlog = everything;
    h.logs.lastSummary = everything;
    h.logs.recentSummaries = everything;
    const unreadable = { dataset: () => ({ getTables: everything }) };
    h.deps.cloud = async () => ({
      jobs: h.jobs,
      executions: h.executions,
      metrics: h.metrics,
      logs: h.logs,
      bigquery: unreadable as never,
    });
    assert.equal(await h.run('status', '--env', 'dev'), EXIT.noCredentials);
  });

  it('commands with --env local say to run `pgcdc local up` when the local stack is not up', async () => {
    h = harness();
    for (const argv of [
      ['sql', 'init', '--env', 'local'],
      ['run-once', '--env', 'local'],
      ['status', '--env', 'local'],
    ]) {
      assert.equal(await h.run(...argv), EXIT.localStackNotUp, argv.join(' '));
    }
    assert.match(h.out.stderr, /the local stack is not up: no .*endpoints\.json/);
    assert.match(h.out.stderr, /Run `pgcdc local up` first\./);
    assert.deepEqual(h.source.requests, [], 'local commands never touch Pulumi');
  });
});
