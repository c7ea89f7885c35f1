// Looking at the local stack from outside for `status`: the slot in Postgres, the subscription backlog in
// the Pub/Sub emulator (which has no metrics API).

import { credentials } from '@grpc/grpc-js';
import { v1 } from '@google-cloud/pubsub';
import { Client, ClientConfig } from 'pg';
import type { Backlog } from './cloud';

export interface SlotStatus {
  slot: string;
  plugin: string | null;
  active: boolean | null;
  confirmedLsn: string | null;
  currentLsn: string | null;
  lagBytes: number | null;
  /** Age of the oldest change the slot still holds (null: none pending, or unknown). */
  lagSeconds: number | null;
  /** Where the numbers come from: the database itself, or the listener's last run summary (cloud). */
  source: 'database' | 'last listener run';
  at?: string;
}

/** The slot's position and lag, read from pg_replication_slots; the lag's age by peeking the first change. */
export async function localSlotStatus(
  pg: ClientConfig,
  slot: string,
  nowMs: number,
): Promise<SlotStatus | null> {
  const client = new Client({ ...pg, statement_timeout: 5000 });
  await client.connect();
  try {
    const { rows } = await client.query<{
      plugin: string;
      active: boolean;
      confirmed: string | null;
      current: string;
      lag: string | null;
    }>(
      `SELECT plugin, active, confirmed_flush_lsn::text AS confirmed, pg_current_wal_lsn()::text AS current,
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
        if (begin?.timestamp) lagSeconds = Math.max(0, (nowMs - Date.parse(begin.timestamp)) / 1000);
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
      currentLsn: r.current,
      lagBytes: r.lag === null ? null : Number(r.lag),
      lagSeconds,
      source: 'database',
    };
  } finally {
    await client.end();
  }
}

// Enough to tell "a few" from "a lot" without holding the emulator's whole backlog leased.
const PEEK_LIMIT = 10_000;

/**
 * Counts waiting messages in an emulator subscription by pulling them and handing every one straight back
 * (ack deadline 0), so they are redelivered to the sink as if never pulled.
 */
export async function emulatorBacklog(
  emulatorHost: string,
  project: string,
  subscription: string,
  nowMs: number,
): Promise<Backlog> {
  const [host, port] = emulatorHost.split(':');
  // universeDomain up front: otherwise google-gax asks the (absent) credentials and probes for GCE metadata.
  const client = new v1.SubscriberClient({
    servicePath: host,
    port: Number(port),
    sslCreds: credentials.createInsecure(),
    clientOptions: { universeDomain: 'googleapis.com' },
  } as ConstructorParameters<typeof v1.SubscriberClient>[0]);
  const name = `projects/${project}/subscriptions/${subscription}`;
  const ackIds: string[] = [];
  let oldest: number | null = null;
  try {
    while (ackIds.length < PEEK_LIMIT) {
      const [resp] = await client.pull({ subscription: name, maxMessages: 1000, returnImmediately: true });
      const got = resp.receivedMessages ?? [];
      if (got.length === 0) break;
      for (const m of got) {
        if (m.ackId) ackIds.push(m.ackId);
        const t = m.message?.publishTime;
        if (t?.seconds !== undefined && t.seconds !== null) {
          const ms = Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1e6);
          oldest = oldest === null ? ms : Math.min(oldest, ms);
        }
      }
    }
    for (let i = 0; i < ackIds.length; i += 1000) {
      await client.modifyAckDeadline({
        subscription: name,
        ackIds: ackIds.slice(i, i + 1000),
        ackDeadlineSeconds: 0,
      });
    }
  } finally {
    await client.close();
  }
  return {
    messages: ackIds.length,
    oldestUnackedSeconds: oldest === null ? null : Math.max(0, (nowMs - oldest) / 1000),
  };
}
