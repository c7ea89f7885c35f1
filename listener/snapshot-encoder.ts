// Turns COPY text lines (copy-text.ts) straight into the JSON of snapshot events (`op: r`), packed into
// message payloads — without building a row object or an event object per row. The bytes are those
// `JSON.stringify` gives for the event the snapshot used to build from a SELECT (test/listener/
// snapshot-encoding.test.ts compares both over many types): same key order, same escapes, same payload
// layout as contract/codec.ts encodeSerializedBatch.

import { isUtf8 } from 'node:buffer';
import { ColumnInfo, EventBatch, Row } from '../contract/events';
import { Lsn, formatLsn } from '../contract/lsn';
import { decodeCopyText, isCopyNull } from './copy-text';

export interface EncodedMessage {
  /** The batch JSON, uncompressed. */
  json: Buffer;
  /**
   * Bytes of memory the message holds until released: the whole buffer `json` is a view of (at least
   * json.length). In-flight limits count these, so a wide row's grown buffer counts in full.
   */
  heldBytes: number;
  count: number;
  firstSeq: string;
  lastSeq: string;
  /**
   * Gives the bytes back for the next messages, once nothing reads `json` any more (compressed, or failed).
   * Reusing a few buffers instead of allocating one per message keeps V8's external memory flat, which
   * otherwise triggers a full garbage collection every few messages.
   */
  release(): void;
}

export interface EncoderLimits {
  /** A message is cut once its events' JSON reaches this many bytes (like listener/publisher.ts). */
  maxMessageBytes: number;
  maxEventsPerMessage: number;
}

/** A name JSON.stringify writes before the others: an array index ("0", "17"; up to 2^32 - 2). */
function isArrayIndex(name: string): boolean {
  return /^(0|[1-9][0-9]*)$/.test(name) && Number(name) <= 2 ** 32 - 2;
}

/**
 * The order in which JSON.stringify prints an object's properties created in the order `names`: integer
 * indexes first, ascending, then the other names in creation order (ECMAScript OrdinaryOwnPropertyKeys).
 */
export function jsonPropertyOrder(names: string[]): number[] {
  const idx = names.map((_, i) => i);
  const ints = idx.filter((i) => isArrayIndex(names[i])).sort((a, b) => Number(names[a]) - Number(names[b]));
  return [...ints, ...idx.filter((i) => !isArrayIndex(names[i]))];
}

const HEX = Buffer.from('0123456789ABCDEF');
// Message buffers kept for reuse: at most this many bytes (and never more than were in use at once).
const POOL_BYTES = 32 * 1024 * 1024;
const COMMA = 0x2c;
const QUOTE = 0x22;

function hex16(n: bigint): string {
  return n.toString(16).toUpperCase().padStart(16, '0');
}

/** Fields of one line: start and end offsets, and whether the bytes can be copied into JSON as they are. */
interface Fields {
  start: Int32Array;
  end: Int32Array;
  /** 0: plain ASCII, 1: needs decoding or escaping (\ " control), 2: plain but has bytes >= 0x80. */
  kind: Uint8Array;
}

export class SnapshotEventEncoder {
  private readonly head: Buffer;
  private readonly keyNames: Buffer[];
  private readonly keyFields: number[];
  private readonly afterNames: Buffer[];
  private readonly afterFields: number[];
  private readonly open = Buffer.from('{"op":"r","key":{');
  private readonly middle = Buffer.from('},"before":null,"after":{');
  private readonly fields: Fields;
  /** Bytes of an event besides its values: the constant fragments, the names, the seq. */
  private readonly fixedBytes: number;
  private tail = Buffer.alloc(0);
  private seqHead = '';
  private buf: Buffer;
  /** Message buffers given back (EncodedMessage.release), all of bufferSize bytes. */
  private readonly pool: Buffer[] = [];
  private readonly bufferSize: number;
  private readonly poolSize: number;
  private pos = 0;
  private count = 0;
  private eventBytes = 0;
  private firstOrdinal = 0;
  private ordinal = 0;
  /** Where the JSON of the latest event is, until its message is emitted; then its text. */
  private lastStart = 0;
  private lastEnd = 0;
  private lastEventJson: string | null = null;
  /** Event JSON bytes of the current chunk. */
  chunkBytes = 0;

  constructor(
    header: Omit<EventBatch, 'events'>,
    keyCols: string[],
    private readonly limits: EncoderLimits,
    private readonly emit: (msg: EncodedMessage) => void,
  ) {
    const columns: ColumnInfo[] = header.columns;
    // The same text as encodeSerializedBatch: the header object's JSON, reopened for the events.
    const headJson = JSON.stringify({
      v: header.v,
      schema: header.schema,
      table: header.table,
      columns: header.columns,
    });
    this.head = Buffer.from(`${headJson.slice(0, -1)},"events":[`);
    const names = columns.map((c) => c.name);
    const fieldOf = (k: string) => {
      const i = names.indexOf(k);
      if (i < 0) throw new Error(`key column ${k} is not among the columns read`);
      return i;
    };
    // The old code built `key` with Object.fromEntries(keyCols...) and `after` from pg's row object,
    // so both print in JSON property order of those names.
    this.keyFields = jsonPropertyOrder(keyCols).map((i) => fieldOf(keyCols[i]));
    this.afterFields = jsonPropertyOrder(names);
    const frag = (name: string, i: number) => Buffer.from(`${i > 0 ? ',' : ''}${JSON.stringify(name)}:`);
    this.keyNames = this.keyFields.map((f, i) => frag(names[f], i));
    this.afterNames = this.afterFields.map((f, i) => frag(names[f], i));
    this.fixedBytes =
      this.open.length +
      this.middle.length +
      32 + // the tail's own text is added per chunk (startChunk); this is the seq ordinal, quotes and braces
      [...this.keyNames, ...this.afterNames].reduce((n, b) => n + b.length, 0);
    const n = columns.length;
    this.fields = { start: new Int32Array(n), end: new Int32Array(n), kind: new Uint8Array(n) };
    // Room for a full message and the event that makes it full (a larger one grows its own buffer).
    this.bufferSize = this.head.length + limits.maxMessageBytes + 64 * 1024;
    this.poolSize = Math.max(2, Math.floor(POOL_BYTES / this.bufferSize));
    this.buf = this.newBuffer();
  }

  /** A new consistent read: its rows get seq (lsn - 1)/<ordinal> and carry lsn as lsn and commitLsn. */
  startChunk(lsn: Lsn, commitTs: string): void {
    const l = formatLsn(lsn);
    this.seqHead = `${hex16(lsn - 1n)}/`;
    this.tail = Buffer.from(
      `},"unchanged":[],"fromSource":[],"lsn":"${l}","commitLsn":"${l}","xid":0,` +
        `"commitTs":${JSON.stringify(commitTs)},"seq":"${this.seqHead}`,
    );
    this.ordinal = 0;
    this.firstOrdinal = 0;
    this.chunkBytes = 0;
    this.lastEventJson = null;
    // Events not flushed are from a read that failed or was ended (endChunk flushes): drop them, they
    // belong to no chunk. The buffer still starts with the batch head.
    this.pos = this.head.length;
    this.count = 0;
    this.eventBytes = 0;
  }

  /** One COPY text line (with or without its final newline). */
  addLine(line: Buffer): void {
    const nFields = this.split(line);
    if (nFields !== this.fields.start.length) {
      throw new Error(`COPY sent ${nFields} fields where ${this.fields.start.length} columns were asked for`);
    }
    this.reserve(
      this.fixedBytes +
        this.tail.length +
        this.valueBytes(this.keyFields) +
        this.valueBytes(this.afterFields),
    );
    const b = this.buf;
    if (this.count > 0) b[this.pos++] = COMMA;
    const start = this.pos;
    this.put(this.open);
    for (let i = 0; i < this.keyFields.length; i++) {
      this.put(this.keyNames[i]);
      this.value(line, this.keyFields[i]);
    }
    this.put(this.middle);
    for (let i = 0; i < this.afterFields.length; i++) {
      this.put(this.afterNames[i]);
      this.value(line, this.afterFields[i]);
    }
    this.put(this.tail);
    let o = this.ordinal; // < 2^32: chunks hold at most 1,000,000 rows
    for (let k = 15; k >= 0; k--) {
      b[this.pos + k] = HEX[o & 15];
      o >>>= 4;
    }
    this.pos += 16;
    b[this.pos++] = QUOTE;
    b[this.pos++] = 0x7d; // }
    const bytes = this.pos - start;
    this.lastStart = start;
    this.lastEnd = this.pos;
    this.eventBytes += bytes;
    this.chunkBytes += bytes;
    this.count++;
    this.ordinal++;
    if (this.count >= this.limits.maxEventsPerMessage || this.eventBytes >= this.limits.maxMessageBytes) {
      this.flush();
    }
  }

  /**
   * At most the JSON bytes of these fields' values: as they are when plain (kind 0 or 2), else at most 6
   * bytes per byte (a control character printed as \u00XX is the worst case; an invalid UTF-8 byte becomes
   * U+FFFD, 3 bytes), plus quotes (or `null`). Exact enough that a wide row reserves about its own size.
   */
  private valueBytes(fields: number[]): number {
    const { start, end, kind } = this.fields;
    let n = 0;
    for (const f of fields) n += (end[f] - start[f]) * (kind[f] & 1 ? 6 : 1) + 4;
    return n;
  }

  /** Ends the chunk: emits its last message; returns the key of its last row (null when it had none). */
  endChunk(): Row | null {
    this.flush();
    if (this.lastEventJson === null) return null;
    return (JSON.parse(this.lastEventJson) as { key: Row }).key;
  }

  private flush(): void {
    if (this.count === 0) return;
    this.buf[this.pos++] = 0x5d; // ]
    this.buf[this.pos++] = 0x7d; // }
    const seq = (o: number) => this.seqHead + o.toString(16).toUpperCase().padStart(16, '0');
    const full = this.buf;
    // The buffer is reused once released: keep the last event's text, whose key the next chunk starts after.
    this.lastEventJson = full.toString('utf8', this.lastStart, this.lastEnd);
    this.emit({
      json: full.subarray(0, this.pos),
      heldBytes: full.length,
      release: () => {
        if (this.pool.length < this.poolSize && full.length === this.bufferSize) this.pool.push(full);
      },
      count: this.count,
      firstSeq: seq(this.firstOrdinal),
      lastSeq: seq(this.ordinal - 1),
    });
    // The emitted bytes stay the message's (compressed and published asynchronously): start a new buffer.
    this.buf = this.newBuffer();
    this.count = 0;
    this.eventBytes = 0;
    this.firstOrdinal = this.ordinal;
  }

  /** Appends constant bytes: a plain loop for the short ones (cheaper than a call into Buffer.copy). */
  private put(src: Buffer): void {
    const b = this.buf;
    const n = src.length;
    if (n > 32) {
      b.set(src, this.pos);
      this.pos += n;
      return;
    }
    let p = this.pos;
    for (let i = 0; i < n; i++) b[p++] = src[i];
    this.pos = p;
  }

  private newBuffer(): Buffer {
    const b = this.pool.pop() ?? Buffer.allocUnsafe(this.bufferSize);
    this.pos = this.head.copy(b, 0);
    return b;
  }

  private reserve(n: number): void {
    if (this.pos + n + 2 <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n + 2));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  /** Splits a line at its tabs into this.fields; returns the number of fields. */
  private split(line: Buffer): number {
    const { start, end, kind } = this.fields;
    const max = start.length;
    let len = line.length;
    if (len > 0 && line[len - 1] === 0x0a) len--;
    let f = 0;
    let s = 0;
    let k = 0;
    let high = 0;
    for (let i = 0; i < len; i++) {
      const c = line[i];
      if (c === 0x09) {
        if (f < max) {
          start[f] = s;
          end[f] = i;
          kind[f] = k;
        }
        f++;
        s = i + 1;
        high |= k;
        k = 0;
      } else if (c < 0x20 || c === QUOTE || c === 0x5c) {
        k |= 1;
      } else if (c >= 0x80) {
        k |= 2;
      }
    }
    if (f < max) {
      start[f] = s;
      end[f] = len;
      kind[f] = k;
    }
    f++;
    high |= k;
    // Bytes >= 0x80 can be copied as they are when the line is valid UTF-8 (JSON.stringify leaves non-ASCII
    // characters alone); otherwise the slow path decodes them as pg would (U+FFFD for invalid bytes).
    if (high & 2 && !isUtf8(line)) for (let i = 0; i < Math.min(f, max); i++) if (kind[i] & 2) kind[i] |= 1;
    return f;
  }

  private value(line: Buffer, field: number): void {
    const s = this.fields.start[field];
    const e = this.fields.end[field];
    const b = this.buf;
    if ((this.fields.kind[field] & 1) === 0) {
      b[this.pos++] = QUOTE;
      let p = this.pos;
      if (e - s > 32) {
        b.set(line.subarray(s, e), p);
        p += e - s;
      } else {
        for (let i = s; i < e; i++) b[p++] = line[i];
      }
      b[p++] = QUOTE;
      this.pos = p;
    } else if (isCopyNull(line, s, e)) {
      b[this.pos++] = 0x6e; // null
      b[this.pos++] = 0x75;
      b[this.pos++] = 0x6c;
      b[this.pos++] = 0x6c;
    } else {
      this.pos += b.write(JSON.stringify(decodeCopyText(line, s, e)), this.pos, 'utf8');
    }
  }
}
