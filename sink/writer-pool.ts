// Storage Write API connections, bounded whatever the number of tables.
//
// BigQuery limits open Write API connections per project ("Concurrent connections: 1,000 in a region;
// 10,000 in a multi-region", https://cloud.google.com/bigquery/quotas#write-api-limits), and every open
// connection is one of them. A sink run may see thousands of tables, so connections are kept in a small
// LRU pool: a table's connection opens when it is written, and the least recently used idle one is closed
// when the pool is full. A connection is (table, kind, schema): CDC and plain rows cannot share one, and a
// new schema needs a new descriptor (see storage-writer.ts).

import { managedwriter } from '@google-cloud/bigquery-storage';
import type { TableField } from './bigquery-rest';
import { AppendRow, RowError, TableAppender } from './storage-writer';

// Our share: a run writes at most MAX_TABLE_WORKERS tables at once (run.ts), two connections each, so 16
// leaves room for reuse across batches while staying far below the project quota even with parallel tasks.
export const MAX_OPEN_CONNECTIONS = 16;

interface Entry {
  signature: string;
  appender: TableAppender;
  busy: number;
  lastUsed: number;
  /** Replaced or dropped while busy: closed when its last append finishes. */
  retired?: boolean;
}

function retire(e: Entry): void {
  if (e.busy === 0) e.appender.close();
  else e.retired = true;
}

let clock = 0;

export class WriterPool {
  private readonly open = new Map<string, Entry>();

  constructor(
    private readonly client: managedwriter.WriterClient,
    private readonly max = MAX_OPEN_CONNECTIONS,
  ) {}

  /** Connections open now (tests and logs). */
  get size(): number {
    return this.open.size;
  }

  /** An appender for the table with these fields; reuses the open connection when the schema is the same. */
  async get(tablePath: string, fields: TableField[], cdc: boolean): Promise<PooledAppender> {
    const key = `${cdc ? 'cdc' : 'plain'} ${tablePath}`;
    const signature = JSON.stringify(fields.map((f) => [f.name, f.type, f.mode]));
    let entry = this.open.get(key);
    if (entry && entry.signature !== signature) {
      retire(entry);
      this.open.delete(key);
      entry = undefined;
    }
    if (!entry) {
      this.evict();
      const appender = await TableAppender.open(this.client, tablePath, fields, cdc);
      entry = { signature, appender, busy: 0, lastUsed: ++clock };
      this.open.set(key, entry);
    }
    entry.lastUsed = ++clock;
    return new PooledAppender(entry);
  }

  /** Makes room for one more connection by closing the least recently used idle ones. */
  private evict(): void {
    while (this.open.size >= this.max) {
      let oldest: [string, Entry] | undefined;
      for (const kv of this.open) {
        if (kv[1].busy === 0 && (!oldest || kv[1].lastUsed < oldest[1].lastUsed)) oldest = kv;
      }
      if (!oldest) return; // every connection is mid-append: briefly over, never more than the workers
      oldest[1].appender.close();
      this.open.delete(oldest[0]);
    }
  }

  /** Forgets a table's connections (its schema changed, or it failed): the next get opens fresh ones. */
  drop(tablePath: string): void {
    for (const kind of ['cdc', 'plain']) {
      const key = `${kind} ${tablePath}`;
      const e = this.open.get(key);
      if (e) retire(e);
      this.open.delete(key);
    }
  }

  close(): void {
    for (const e of this.open.values()) e.appender.close();
    this.open.clear();
  }
}

export interface Appender {
  encode(row: AppendRow): Uint8Array;
  append(rows: Uint8Array[]): Promise<RowError[]>;
}

/** A pooled connection: marks itself busy while appending so the pool never closes it mid-request. */
export class PooledAppender implements Appender {
  constructor(private readonly entry: Entry) {}

  encode(row: AppendRow): Uint8Array {
    return this.entry.appender.encode(row);
  }

  async append(rows: Uint8Array[]): Promise<RowError[]> {
    this.entry.busy += 1;
    try {
      return await this.entry.appender.append(rows);
    } finally {
      this.entry.busy -= 1;
      this.entry.lastUsed = ++clock;
      if (this.entry.retired && this.entry.busy === 0) this.entry.appender.close();
    }
  }
}
