// Continuous mode runs about once a second: the WARNING about tables it cannot capture is written at the
// execution's first run and whenever the set of skipped tables changes, not on every run, while every run's
// summary still lists them (`skippedTables`, read by `pgcdc status`). Real runs against a Cloud-SQL-like
// database; the loop's pause is a no-op and the database changes between runs are scripted by run number.

import assert from 'node:assert/strict';
import { DecoderName } from '../../listener/config';
import { ListenerJobSummary, continuousRuns, runContinuous, stopControl } from '../../listener/job';
import { cloudSqlListenerFixture } from '../support/cloudsql';
import { createTopic } from '../support/pubsub';

for (const decoder of ['pgoutput', 'wal2json'] as DecoderName[]) {
  describe(`listener with ${decoder}, continuous: skipped tables`, function () {
    this.timeout(180_000);

    it('warns at the first run and when the skipped set changes; every summary lists the set', async () => {
      const topic = await createTopic(`skipwarn_${decoder}`);
      const f = await cloudSqlListenerFixture(topic, decoder, {}, async (sql) => {
        await sql('CREATE TABLE kept (id int PRIMARY KEY, v text)');
      });
      // Created after the init: the replicator may not read it.
      await f.sql('CREATE TABLE later1 (id int PRIMARY KEY, v text)');
      const replicator = String(f.cfg.pg.user);
      // What changes before run n (1-based).
      const before: Record<number, () => Promise<unknown>> = {
        4: () => f.sql('CREATE TABLE later2 (id int PRIMARY KEY, v text)'),
        6: () => f.sql(`GRANT SELECT ON later1, later2 TO ${replicator}`),
      };
      const RUNS = 7;
      const warnings: Array<{ run: number; message: string; tables: unknown }> = [];
      const infos: Array<{ run: number; line: string }> = [];
      const summaries: ListenerJobSummary[] = [];
      let run = 0;
      const control = stopControl();
      const oneRun = continuousRuns(f.cfg, {
        alert: (severity, message, fields) => {
          if (severity === 'WARNING') warnings.push({ run, message, tables: fields?.skippedTables });
        },
        log: (line) => infos.push({ run, line }),
      });
      await runContinuous({
        runJob: async () => {
          run++;
          await before[run]?.();
          const s = await oneRun();
          if (run === RUNS) control.stop();
          return s;
        },
        report: (s) => summaries.push(s),
        stopping: control.stopping,
        pause: async () => undefined,
      });

      assert.equal(summaries.length, RUNS);
      const names = (s: ListenerJobSummary) => s.skippedTables.map((t) => `${t.table}:${t.reason}`);
      assert.deepEqual(summaries.map(names), [
        ['public.later1:not-granted'],
        ['public.later1:not-granted'],
        ['public.later1:not-granted'],
        ['public.later1:not-granted', 'public.later2:not-granted'],
        ['public.later1:not-granted', 'public.later2:not-granted'],
        [],
        [],
      ]);
      // Two WARNINGs in seven runs: the first run's, and run 4's, when later2 joined the set.
      assert.deepEqual(
        warnings.map((w) => [w.run, w.tables]),
        [
          [1, [{ table: 'public.later1', reason: 'not-granted' }]],
          [
            4,
            [
              { table: 'public.later1', reason: 'not-granted' },
              { table: 'public.later2', reason: 'not-granted' },
            ],
          ],
        ],
      );
      for (const w of warnings)
        assert.match(w.message, /^not captured yet, because the replicator may not read them/);
      // The set emptied at run 6 (the grant): said once, not as a WARNING, and not in the alert's words.
      const cleared = infos.filter((i) => /skipped/.test(i.line));
      assert.deepEqual(
        cleared.map((i) => i.run),
        [6],
      );
      assert.doesNotMatch(cleared[0]!.line, /not captured/);
    });
  });
}
