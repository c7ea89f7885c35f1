// A table the application creates after the last `sql init` (issue 10): the replicator was granted exactly
// the tables present then, so it may not read the new one. That table must not stop the pipeline: the job
// snapshots and streams the others, and names the new table with the fix (`pgcdc sql init`).

import assert from 'node:assert/strict';
import { DecoderName } from '../../listener/config';
import { runListenerJob } from '../../listener/job';
import { cloudSqlListenerFixture } from '../support/cloudsql';
import { createTopic, eventsOf, pullAll } from '../support/pubsub';

for (const decoder of ['pgoutput', 'wal2json'] as DecoderName[]) {
  describe(`listener with ${decoder}: a table created after the SQL init`, function () {
    this.timeout(120_000);

    it('does not stop the job: the granted tables are snapshotted and streamed, the new one is named', async () => {
      const topic = await createTopic(`notgranted_${decoder}`);
      const f = await cloudSqlListenerFixture(topic, decoder, { snapshot: 'auto' }, async (sql) => {
        await sql('CREATE TABLE kept (id int PRIMARY KEY, v text)');
        await sql("INSERT INTO kept VALUES (1, 'existing')");
      });
      await f.sql('CREATE TABLE later (id int PRIMARY KEY, v text)');
      await f.sql("INSERT INTO later VALUES (1, 'not granted yet')");
      await f.sql("INSERT INTO kept VALUES (2, 'new')");
      const alerts: string[] = [];
      const summary = await runListenerJob(f.cfg, { alert: (_severity, message) => alerts.push(message) });
      assert.ok(summary.snapshot, 'the granted table was snapshotted');
      assert.ok(
        alerts.some((a) => /may not read them .*public\.later.*pgcdc sql init/.test(a)),
        alerts.join('\n'),
      );
      const events = eventsOf(await pullAll(topic));
      const kept = events.filter((e) => e.table === 'kept').map((e) => `${e.op}:${String(e.after?.id)}`);
      assert.ok(kept.includes('r:1'), `snapshot row of kept: ${kept.join(', ')}`);
      assert.ok(kept.includes('c:2'), `streamed insert of kept: ${kept.join(', ')}`);
    });
  });
}
