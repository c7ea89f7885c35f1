// What a DBA sees without reading logs, from a real listener job run on a real cluster (Cloud-SQL-like
// roles): a TOAST lookup refused a lock by the application, and captured tables the listener skips. The
// job's real summary and WARNING lines go through what `pgcdc status` reads (cli/listener-health.ts, the
// verdict) and are checked against what the stack's alerts match (infra/monitoring.ts): the summary field
// and value of the lookup-blocked alert, the field its label is extracted from, and the message text and
// severity of the skipped-tables alert.

import assert from 'node:assert/strict';
import { Client } from 'pg';
import { listenerHealth } from '../../cli/listener-health';
import { assess } from '../../cli/verdict';
import { ListenerJobSummary, runListenerJob } from '../../listener/job';
import { LOOKUP_BLOCKED, SKIPPED_TABLES_MESSAGE, SUMMARY_FIELDS } from '../../infra/monitoring';
import { cloudSqlListenerFixture } from '../support/cloudsql';
import { createTopic } from '../support/pubsub';

/** 4 kB+ of text that does not compress: with STORAGE EXTERNAL it always lives out of line. */
const BIG = (seed: number) =>
  `(SELECT string_agg(md5((${seed} * 1000 + g)::text), '') FROM generate_series(1, 130) g)`;

/** The value at a dotted jsonPayload path, as a Logging query or EXTRACT() reads it. */
function at(payload: unknown, dotted: string): unknown {
  return dotted.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown> | null)?.[k], payload);
}

type Alert = { severity: string; message: string; fields?: Record<string, unknown> };

describe('listener job reports: a blocked lookup and skipped tables, as status and the alerts read them', function () {
  this.timeout(180_000);

  it('real summaries and WARNING lines: status counts the blocked runs and names the session; the alert fields match', async () => {
    const topic = await createTopic('job_reports');
    const f = await cloudSqlListenerFixture(topic, 'pgoutput', {}, async (sql) => {
      await sql('CREATE TABLE docs (id int PRIMARY KEY, small text, big text)');
      await sql('ALTER TABLE docs ALTER COLUMN big SET STORAGE EXTERNAL');
    });
    await f.sql(`INSERT INTO docs VALUES (1, 'a', ${BIG(1)})`);
    // Created after the init: the replicator may not read it.
    await f.sql('CREATE TABLE later (id int PRIMARY KEY)');
    const first = await runListenerJob(f.cfg);
    assert.equal(first.stoppedBy, 'wal-end');

    await f.sql("UPDATE docs SET small = 'b' WHERE id = 1");
    const app = new Client(f.db);
    await app.connect();
    const [{ pid }] = (await app.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows;
    const lines: Array<{ at: string; summary: ListenerJobSummary & { command: string } }> = [];
    const alerts: Alert[] = [];
    // The normal run before: the blocked ones are counted from there.
    lines.push({ at: '2026-01-01T11:48:00.000Z', summary: { command: 'listen', ...first } });
    try {
      await app.query('BEGIN');
      await app.query('LOCK TABLE docs IN ACCESS EXCLUSIVE MODE');
      for (let run = 0; run < 3; run++) {
        const s = await runListenerJob(f.cfg, {
          alert: (severity, message, fields) => alerts.push({ severity, message, fields }),
        });
        // As listener/main.ts prints it; newest first, as Cloud Logging returns them.
        lines.unshift({
          at: new Date(Date.UTC(2026, 0, 1, 12, run * 12)).toISOString(),
          summary: { command: 'listen', ...s },
        });
      }
    } finally {
      await app.query('ROLLBACK').catch(() => undefined);
      await app.end();
    }

    // The alert on the summary: jsonPayload.stoppedBy = "lookup-blocked", label from blockedLookup.table.
    for (const l of lines.slice(0, 3)) {
      assert.equal(at(l.summary, SUMMARY_FIELDS.stoppedBy), LOOKUP_BLOCKED);
      assert.equal(at(l.summary, SUMMARY_FIELDS.blockedTable), 'public.docs');
    }
    // The alert on the WARNING lines about skipped tables: severity WARNING, message containing the text.
    const skippedWarnings = alerts.filter((a) => a.fields?.skippedTables);
    assert.ok(skippedWarnings.length >= 3, JSON.stringify(alerts));
    for (const w of skippedWarnings) {
      assert.equal(w.severity, 'WARNING');
      assert.ok(w.message.includes(SKIPPED_TABLES_MESSAGE), w.message);
    }
    // No other WARNING of these runs matches that alert.
    for (const a of alerts.filter((x) => !x.fields?.skippedTables))
      assert.ok(!a.message.includes(SKIPPED_TABLES_MESSAGE), a.message);

    // What status makes of them.
    const health = listenerHealth(lines, 'dev');
    assert.ok(health?.blockedLookup, JSON.stringify(health));
    assert.equal(health.blockedLookup.table, 'public.docs');
    assert.equal(health.blockedLookup.runs, 3);
    assert.equal(health.blockedLookup.since, lines[2].at);
    assert.ok(
      health.blockedLookup.sessions.some((s) => s.pid === pid && s.granted === true),
      JSON.stringify(health.blockedLookup.sessions),
    );
    assert.deepEqual(
      health.skippedTables.map((t) => [t.table, t.reason]),
      [['public.later', 'not-granted']],
    );
    const v = assess({
      env: 'dev',
      cloud: true,
      listenerIntervalSeconds: 720,
      sinkIntervalSeconds: 720,
      slot: { ok: true, value: { walStatus: first.slotWalStatus, lagBytes: 0, ageSeconds: 0 } },
      runs: { ok: true, value: [] },
      backlog: { ok: true, value: null },
      deadLetters: { ok: true, value: null },
      listener: { ok: true, value: health },
    });
    assert.equal(v.state, 'failing');
    assert.match(
      v.reasons[0],
      /TOAST lookup of public\.docs was refused a lock .* in 3 listener runs in a row/,
    );
    assert.ok(v.fix?.includes(`pg_terminate_backend(${pid})`), v.fix);
    assert.ok(
      v.reasons.includes(
        'public.later is not captured: the replicator may not read it (created after the last sql init)',
      ),
      JSON.stringify(v.reasons),
    );

    // The lock gone: the next run is normal, and status no longer reports a blocked lookup.
    const after = await runListenerJob(f.cfg);
    assert.equal(after.stoppedBy, 'wal-end');
    const cleared = listenerHealth([{ at: '2026-01-01T13:00:00.000Z', summary: after }, ...lines], 'dev');
    assert.equal(cleared?.blockedLookup, null);
  });
});
