// What one execution of the listener job does: a bounded streaming run, then, with the time that is left,
// the initial snapshot of tables that never had one (PGCDC_SNAPSHOT=auto). Used by the container entry
// point and by `pgcdc run-once --env local`, so both behave the same.

import { ListenerConfig } from './config';
import { ListenerSummary, RunOptions, runListener } from './run';
import { SnapshotSummary, pendingSnapshots, runSnapshot } from './snapshot';
import { expandPartitions, loadCatalog } from './catalog';
import { connectWithRetry } from './connect';

export interface ListenerJobSummary extends ListenerSummary {
  snapshot: SnapshotSummary | null;
}

export async function runListenerJob(
  cfg: ListenerConfig,
  opts: RunOptions = {},
): Promise<ListenerJobSummary> {
  const now = opts.now ?? Date.now;
  const started = now();
  const stream = await runListener(cfg, opts);
  if (cfg.snapshot === 'off') return { ...stream, snapshot: null };
  // The application holds a lock that the TOAST lookup would have waited for (a migration, typically): the
  // snapshot's reads take the same ACCESS SHARE locks, so it waits for the next run too.
  if (stream.stoppedBy === 'lookup-blocked') return { ...stream, snapshot: null };
  const left = cfg.maxRunSeconds - Math.ceil((now() - started) / 1000);
  if (left <= 0) return { ...stream, snapshot: null };
  const client = await connectWithRetry(cfg.pg, { deadline: started + cfg.maxRunSeconds * 1000, now });
  let pending: string[];
  try {
    const catalog = await loadCatalog(client);
    // Unlogged tables were reported by the stream run; they are never snapshotted (listener/catalog.ts).
    const unlogged = new Set(catalog.unlogged ?? []);
    // Without a table list, the tables the SQL init granted: one created since is not readable by the
    // replicator yet. It must not stop the others' snapshots; the stream run named it (skippedTables,
    // 'not-granted') with the fix. Once `sql init` grants it, it has no finished snapshot, so the first job
    // after the grant snapshots it: that brings the rows its skipped changes made (neither decoder streamed
    // it before the grant; wal2json's add-tables follows the grants, decoders/wal2json.ts).
    const unreadable = new Set(cfg.tables.length ? [] : (catalog.unreadable ?? []));
    // A partitioned table in the list is snapshotted partition by partition, as it is streamed (run.ts).
    const tables = cfg.tables.length ? expandPartitions(cfg.tables, catalog) : [...catalog.tables.keys()];
    pending = await pendingSnapshots(
      client,
      tables.filter((t) => !t.startsWith('pgcdc.') && !unlogged.has(t) && !unreadable.has(t)),
    );
  } finally {
    await client.end();
  }
  if (pending.length === 0) return { ...stream, snapshot: null };
  const snapshot = await runSnapshot(
    { ...cfg, maxRunSeconds: left },
    {
      tables: pending,
      chunkRows: cfg.snapshotChunkRows,
      sink: opts.sink,
      log: opts.log,
      alert: opts.alert,
      now,
    },
  );
  return { ...stream, snapshot };
}
