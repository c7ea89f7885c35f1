import { Client } from 'pg';
import { Lsn, parseLsn } from '../../contract/lsn';

/** The slot's confirmed position as the server has it. */
export async function confirmedFlush(db: object, slot: string): Promise<Lsn> {
  const c = new Client(db);
  await c.connect();
  try {
    const r = await c.query<{ lsn: string }>(
      'SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1',
      [slot],
    );
    return parseLsn(r.rows[0].lsn);
  } finally {
    await c.end();
  }
}
