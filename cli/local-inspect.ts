// Looking at the local stack's slot from outside for `status` (the backlog: emulator-backlog.ts).

import type { ClientConfig } from 'pg';

export interface SlotStatus {
  slot: string;
  plugin: string | null;
  active: boolean | null;
  confirmedLsn: string | null;
  /** WAL the slot holds that the listener has not confirmed yet (local: now; cloud: at the last run). */
  lagBytes: number | null;
  /**
   * pg_replication_slots.wal_status: "reserved"/"extended" fine, "unreserved" about to lose WAL, "lost":
   * the slot can no longer be used (https://www.postgresql.org/docs/current/view-pg-replication-slots.html).
   */
  walStatus: string | null;
  /** Age of the oldest change the slot still holds (null: none pending, or unknown). */
  lagSeconds: number | null;
  /** Where the numbers come from: the database itself, or the listener's last run summary (cloud). */
  source: 'database' | 'last listener run';
  /** Cloud: when the listener reported this, and how long ago (seconds). */
  at?: string;
  ageSeconds?: number;
  /** Cloud: the run hit its time limit inside a transaction it could not finish (listener summary). */
  stuckTransaction?: { xid: number | string; startLsn: string; changesRead: number; runs?: number } | null;
}

/** The slot's position and lag, read from pg_replication_slots; the lag's age by peeking the first change. */
export async function localSlotStatus(
  pg: ClientConfig,
  slot: string,
  nowMs: number,
): Promise<SlotStatus | null> {
  const { Client } = await import('pg');
  const client = new Client({ ...pg, statement_timeout: 5000 });
  await client.connect();
  try {
    const { rows } = await client.query<{
      plugin: string;
      active: boolean;
      confirmed: string | null;
      lag: string | null;
      wal_status: string | null;
    }>(
      `SELECT plugin, active, confirmed_flush_lsn::text AS confirmed, wal_status,
              pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text AS lag
         FROM pg_replication_slots WHERE slot_name = $1`,
      [slot],
    );
    if (rows.length === 0) return null;
    const r = rows[0];
    let lagSeconds: number | null = null;
    // Peeking decodes without consuming; it fails while a listener holds the slot, and only wal2json's
    // text output carries the commit time where we can read it. Best effort: the byte lag is the fact.
    if (r.plugin === 'wal2json' && !r.active && Number(r.lag) > 0) {
      try {
        const peek = await client.query<{ data: string }>(
          `SELECT data FROM pg_logical_slot_peek_changes($1, NULL, 1, 'format-version', '2', 'include-timestamp', '1')`,
          [slot],
        );
        const begin = peek.rows
          .map((p) => JSON.parse(p.data) as { action?: string; timestamp?: string })
          .find((d) => d.timestamp);
        if (begin?.timestamp)
          lagSeconds = Math.max(0, Math.round((nowMs - Date.parse(begin.timestamp)) / 1000));
        else if (peek.rows.length === 0) lagSeconds = 0;
      } catch {
        /* keep the byte lag only */
      }
    }
    return {
      slot,
      plugin: r.plugin,
      active: r.active,
      confirmedLsn: r.confirmed,
      walStatus: r.wal_status,
      lagBytes: r.lag === null ? null : Number(r.lag),
      lagSeconds,
      source: 'database',
    };
  } finally {
    await client.end();
  }
}
