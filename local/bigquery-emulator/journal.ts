/**
 * Durability: the emulator acknowledges nothing it has not written down. Every change the store makes is appended
 * to a journal file (one JSON line) and fdatasync'ed before the request that made it is answered, so a SIGKILLed
 * emulator restarted on the same files has every change it confirmed. One write and one sync per request
 * (an AppendRows request of thousands of rows is one record), not per row.
 *
 * The journal is folded into a snapshot (the whole store as JSON, written to a temporary file, synced, renamed)
 * when it grows past a size, and at a clean stop. The snapshot records the sequence number of the last change it
 * holds; on start the journal's records up to it are skipped, so a crash between writing the snapshot and
 * emptying the journal applies nothing twice. A torn last line (the process died inside the write, before the
 * sync returned, so the change was never acknowledged) is ignored.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Store, type JournalRecord } from './store';

/** Past this many journal bytes the store is snapshotted and the journal emptied. */
const COMPACT_AFTER_BYTES = 64 * 1024 * 1024;

export interface DataFiles {
  snapshot: string;
  journal: string;
}

/** Where a data directory keeps its files. */
export function dataDirFiles(dir: string): DataFiles {
  return { snapshot: path.join(dir, 'state.json'), journal: path.join(dir, 'journal.jsonl') };
}

/** The files of a `--data-file F` setup: the snapshot F and its journal beside it. */
export function dataFileFiles(file: string): DataFiles {
  return { snapshot: file, journal: `${file}.journal` };
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Loads the snapshot and replays the journal after it. */
export function loadStore(files: DataFiles): Store {
  const store = fs.existsSync(files.snapshot)
    ? Store.fromJSON(JSON.parse(fs.readFileSync(files.snapshot, 'utf8')))
    : new Store();
  if (!fs.existsSync(files.journal)) return store;
  const text = fs.readFileSync(files.journal, 'utf8');
  const lines = text.split('\n');
  // Everything after the last newline is a write that never completed (so was never acknowledged): cut it off,
  // or the next record appended would follow it on the same line.
  const torn = lines.pop() ?? '';
  if (torn.length > 0) {
    fs.truncateSync(files.journal, Buffer.byteLength(text, 'utf8') - Buffer.byteLength(torn, 'utf8'));
  }
  lines.forEach((line, index) => {
    let record: JournalRecord;
    try {
      record = JSON.parse(line) as JournalRecord;
    } catch {
      throw new Error(
        `${files.journal}: line ${index + 1} is not a journal record; the data files are damaged`,
      );
    }
    try {
      store.replay(record);
    } catch (err) {
      throw new Error(
        `${files.journal}: record ${record.seq} (${String(record.op)}) cannot be applied again: ${(err as Error).message}. ` +
          'The data files were written by an emulator with other rules; start with an empty data directory.',
        { cause: err },
      );
    }
  });
  return store;
}

export interface JournalStats {
  /** Records appended (one per accepted change: an AppendRows request, a table insert, ...). */
  records: number;
  /** Bytes appended. */
  bytes: number;
  /** Time spent serializing, writing and syncing records, and compacting (ms). */
  ms: number;
}

export class Journal {
  private fd: number;
  private bytes: number;
  readonly stats: JournalStats = { records: 0, bytes: 0, ms: 0 };

  constructor(
    private readonly files: DataFiles,
    private readonly store: Store,
  ) {
    fs.mkdirSync(path.dirname(files.journal), { recursive: true });
    this.fd = fs.openSync(files.journal, 'a');
    this.bytes = fs.fstatSync(this.fd).size;
    store.setJournal((record) => this.append(record));
  }

  private append(record: JournalRecord): void {
    const started = performance.now();
    const line = Buffer.from(`${JSON.stringify(record)}\n`, 'utf8');
    try {
      let written = 0;
      while (written < line.length) written += fs.writeSync(this.fd, line, written);
      fs.fdatasyncSync(this.fd);
      this.bytes += line.length;
      if (this.bytes > COMPACT_AFTER_BYTES) this.compact();
    } catch (err) {
      // The change is in memory but maybe not on disk: answering anything now could confirm a write a restart
      // would lose. Stop instead (fail-stop, as PostgreSQL does when fsync fails); the client sees the
      // connection drop and retries against the restarted emulator.
      process.stderr.write(
        `bigquery-emulator: cannot write the journal ${this.files.journal}: ${String(err)}\n`,
      );
      process.exit(70);
    }
    this.stats.records++;
    this.stats.bytes += line.length;
    this.stats.ms += performance.now() - started;
  }

  /** Writes the whole store as the snapshot, then empties the journal. */
  compact(): void {
    const tmp = `${this.files.snapshot}.tmp`;
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, JSON.stringify(this.store));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.files.snapshot);
    fsyncDir(path.dirname(this.files.snapshot));
    fs.ftruncateSync(this.fd, 0);
    fs.fdatasyncSync(this.fd);
    this.bytes = 0;
  }

  close(): void {
    this.compact();
    fs.closeSync(this.fd);
  }
}
