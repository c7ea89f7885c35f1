// `COPY (SELECT ...) TO STDOUT` in text format through a `pg` client: each row arrives as the bytes of one
// text line, which is the cheapest way to read the text Postgres prints for each value (no per-row result
// objects, no per-value strings unless a value needs decoding).
//
// The text format (https://www.postgresql.org/docs/current/sql-copy.html, "Text Format"):
//  - "Each record is represented as a single line of text, with the columns separated by the delimiter
//    character" (tab by default); "COPY TO will terminate each row with a Unix-style newline ("\n")."
//  - NULL: "The default is \N (backslash-N) in text format" (option NULL).
//  - "Backslash characters (\) can be used in the COPY data to quote data characters that might otherwise be
//    taken as row or column delimiters." The sequences: \b \f \n \r \t \v, "\digits: Backslash followed by
//    one to three octal digits specifies the byte with that numeric code", "\xdigits: Backslash x followed
//    by one or two hex digits specifies the byte with that numeric code", and "Any other backslashed
//    character that is not mentioned in the above table will be taken to represent itself."
//  - "Presently, COPY TO will never emit an octal or hex-digits backslash sequence, but it does use the
//    other sequences listed above for those control characters." We decode all of them anyway.
//  - "All backslash sequences are interpreted after encoding conversion": the bytes are in the client
//    encoding (UTF8, pg's default), like the values of an ordinary result.
// Privileges: "COPY TO ... requires the SELECT privilege" on the table read, the same as the SELECT it
// replaces; only COPY naming a server file or program needs pg_read/write_server_files or superuser, and
// STDOUT is neither.

import type { Connection, Submittable } from 'pg';

const BACKSLASH = 0x5c;

/** True when the field bytes [start, end) are COPY's NULL marker `\N`. */
export function isCopyNull(line: Buffer, start: number, end: number): boolean {
  return end - start === 2 && line[start] === BACKSLASH && line[start + 1] === 0x4e;
}

function octal(b: number): boolean {
  return b >= 0x30 && b <= 0x37;
}

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x41 && b <= 0x46) return b - 0x41 + 10;
  if (b >= 0x61 && b <= 0x66) return b - 0x61 + 10;
  return -1;
}

const SIMPLE_ESCAPES: Record<number, number> = {
  0x62: 0x08, // \b
  0x66: 0x0c, // \f
  0x6e: 0x0a, // \n
  0x72: 0x0d, // \r
  0x74: 0x09, // \t
  0x76: 0x0b, // \v
};

/** The value of one non-NULL text-format field [start, end), its escapes decoded, as a UTF-8 string. */
export function decodeCopyText(line: Buffer, start: number, end: number): string {
  let i = line.indexOf(BACKSLASH, start);
  if (i < 0 || i >= end) return line.toString('utf8', start, end);
  const out = Buffer.allocUnsafe(end - start);
  let n = line.copy(out, 0, start, i);
  while (i < end) {
    const b = line[i];
    if (b !== BACKSLASH || i + 1 >= end) {
      out[n++] = b;
      i++;
      continue;
    }
    const c = line[i + 1];
    i += 2;
    const simple = SIMPLE_ESCAPES[c];
    if (simple !== undefined) {
      out[n++] = simple;
    } else if (octal(c)) {
      let v = c - 0x30;
      for (let k = 0; k < 2 && i < end && octal(line[i]); k++) v = (v << 3) + (line[i++] - 0x30);
      out[n++] = v & 0xff;
    } else if (c === 0x78 && i < end && hexValue(line[i]) >= 0) {
      let v = hexValue(line[i++]);
      if (i < end && hexValue(line[i]) >= 0) v = (v << 4) + hexValue(line[i++]);
      out[n++] = v;
    } else {
      out[n++] = c; // any other backslashed character represents itself (\\ among them)
    }
  }
  return out.toString('utf8', 0, n);
}

/**
 * One `COPY ... TO STDOUT` statement as a `pg` Submittable: `onLine` gets each row's bytes (valid only
 * during the call: pg's parser reuses its buffer), `done` settles with the row count once the server is
 * ready for the next query. pause()/resume() stop reading the socket, so TCP pushes back on the server
 * while what we already read is being published (bounded memory).
 */
export class CopyTextOut implements Submittable {
  readonly done: Promise<number>;
  private resolveDone!: (rows: number) => void;
  private rejectDone!: (e: Error) => void;
  private connection: Connection | undefined;
  private paused = false;
  private rows = 0;
  private failure: Error | undefined;

  constructor(
    private readonly text: string,
    private readonly onLine: (line: Buffer) => void,
  ) {
    this.done = new Promise<number>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
  }

  submit(connection: Connection): void {
    this.connection = connection;
    connection.query(this.text);
  }

  pause(): void {
    if (this.paused || !this.connection) return;
    this.paused = true;
    this.connection.stream.pause();
  }

  resume(): void {
    if (!this.paused || !this.connection) return;
    this.paused = false;
    this.connection.stream.resume();
  }

  /**
   * Closes the connection under the statement: the server ends the backend (and its transaction and locks)
   * even while it is blocked writing to us, which a cancel or statement_timeout would not interrupt. `done`
   * rejects; the client cannot be used again.
   */
  abort(): void {
    this.connection?.stream.destroy();
  }

  handleCopyData(msg: { chunk: Buffer }): void {
    this.rows++;
    if (this.failure) return;
    try {
      this.onLine(msg.chunk);
    } catch (e) {
      // Read on to the end of the statement so the connection stays usable; report it then.
      this.failure = e instanceof Error ? e : new Error(String(e));
    }
  }

  handleCopyInResponse(connection: Connection & { sendCopyFail(msg: string): void }): void {
    connection.sendCopyFail('pgcdc only reads with COPY TO');
  }

  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleCommandComplete(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}

  handleError(err: Error): void {
    this.resume();
    this.rejectDone(err);
  }

  handleReadyForQuery(): void {
    this.resume();
    if (this.failure) this.rejectDone(this.failure);
    else this.resolveDone(this.rows);
  }
}
