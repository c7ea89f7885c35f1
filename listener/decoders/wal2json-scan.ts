// A scanner for the compact JSON wal2json format-version 2 prints, one record per change. It does not build
// objects: it records where each token of interest starts and ends in the text, so the decoder can copy value
// tokens straight into the event's JSON text (listener/decoders/wal2json.ts). That saves the two JSON passes
// and the intermediate objects of JSON.parse-then-JSON.stringify, which bounded the listener on large
// transactions.
//
// It accepts exactly the form wal2json writes (no whitespace between tokens: wal2json.c appends each token
// with appendStringInfo and no separators; https://github.com/eulerto/wal2json, format-version 2). On anything
// else — whitespace, an unexpected key or value shape, a truncated record — `scan` returns false, and the
// decoder parses that record with JSON.parse instead. So the scanner only ever has to be right on input it
// accepts; it never has to be complete.

const QUOTE = 0x22; // "
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;

/** Index just past the string token that opens at `p` (a quote), or -1. Escaped quotes are skipped. */
export function stringEnd(s: string, p: number): number {
  let q = p;
  for (;;) {
    q = s.indexOf('"', q + 1);
    if (q < 0) return -1;
    let backslashes = 0;
    while (s.charCodeAt(q - 1 - backslashes) === BACKSLASH) backslashes++;
    if ((backslashes & 1) === 0) return q + 1;
  }
}

/**
 * Index just past a bare token (number, true, false, null) that starts at `p`, or -1 if it holds anything
 * but letters, digits, `.`, `+`, `-` (what Postgres prints for a numeric value, and the JSON literals).
 * Such a token can be copied between quotes as it is: none of those characters needs escaping.
 */
function bareEnd(s: string, p: number): number {
  let q = p;
  for (; q < s.length; q++) {
    const c = s.charCodeAt(q);
    if (c === COMMA || c === RBRACE || c === RBRACKET) break;
    const ok =
      (c >= 0x30 && c <= 0x39) ||
      (c >= 0x61 && c <= 0x7a) ||
      (c >= 0x41 && c <= 0x5a) ||
      c === 0x2e ||
      c === 0x2b ||
      c === 0x2d;
    if (!ok) return -1;
  }
  return q > p ? q : -1;
}

/** The text of a string token without its quotes; JSON.parse only when it holds an escape. */
export function unquote(s: string, start: number, end: number): string {
  const inner = s.slice(start + 1, end - 1);
  return inner.includes('\\') ? (JSON.parse(s.slice(start, end)) as string) : inner;
}

/**
 * Columns of one array ("columns" or "identity"), as token positions, five numbers per column: name start,
 * name end (the token with its quotes), value start, value end, and 1 when its "type" is exactly "bytea".
 */
export class ColumnTokens {
  pos: number[] = [];
  count = 0;
  reset(): void {
    this.count = 0;
  }
}

export const COLUMN_STRIDE = 5;

/** Token positions of one wal2json record; -1 when the key is absent. Reused from record to record. */
export class Wal2JsonTokens {
  /** The action letter's char code (B, C, I, U, D, T, M). */
  action = 0;
  xid: [number, number] = [-1, -1];
  timestamp: [number, number] = [-1, -1];
  lsn: [number, number] = [-1, -1];
  nextlsn: [number, number] = [-1, -1];
  schema: [number, number] = [-1, -1];
  table: [number, number] = [-1, -1];
  readonly columns = new ColumnTokens();
  readonly identity = new ColumnTokens();
  hasColumns = false;
  hasIdentity = false;

  private clear(): void {
    this.action = 0;
    this.xid[0] = this.timestamp[0] = this.lsn[0] = this.nextlsn[0] = this.schema[0] = this.table[0] = -1;
    this.columns.reset();
    this.identity.reset();
    this.hasColumns = this.hasIdentity = false;
  }

  /** Reads a B, C, I, U or D record; false for any other record or any form it does not expect. */
  scan(s: string): boolean {
    this.clear();
    if (s.charCodeAt(0) !== LBRACE) return false;
    let p = 1;
    if (s.charCodeAt(p) === RBRACE) return false;
    for (;;) {
      if (s.charCodeAt(p) !== QUOTE) return false;
      const keyEnd = s.indexOf('"', p + 1);
      // Keys are wal2json's own fixed names: none holds an escape.
      if (keyEnd < 0 || s.charCodeAt(keyEnd - 1) === BACKSLASH || s.charCodeAt(keyEnd + 1) !== COLON)
        return false;
      const key = s.slice(p + 1, keyEnd);
      p = keyEnd + 2;
      switch (key) {
        case 'action': {
          const end = stringEnd(s, p);
          if (end !== p + 3) return false; // one letter
          this.action = s.charCodeAt(p + 1);
          p = end;
          break;
        }
        case 'xid':
          p = this.bare(s, p, this.xid);
          break;
        case 'timestamp':
          p = this.str(s, p, this.timestamp);
          break;
        case 'lsn':
          p = this.str(s, p, this.lsn);
          break;
        case 'nextlsn':
          p = this.str(s, p, this.nextlsn);
          break;
        case 'schema':
          p = this.str(s, p, this.schema);
          break;
        case 'table':
          p = this.str(s, p, this.table);
          break;
        case 'columns':
          this.hasColumns = true;
          p = columnsEnd(s, p, this.columns);
          break;
        case 'identity':
          this.hasIdentity = true;
          p = columnsEnd(s, p, this.identity);
          break;
        case 'pk':
          // Only the catalog-free slow path needs the primary key (a table the decoder does not know yet).
          p = valueEnd(s, p);
          break;
        default:
          return false;
      }
      if (p < 0) return false;
      const c = s.charCodeAt(p);
      if (c === RBRACE) break;
      if (c !== COMMA) return false;
      p++;
    }
    if (p !== s.length - 1) return false;
    const a = this.action;
    return (
      a === 0x42 /* B */ || a === 0x43 /* C */ || a === 0x49 /* I */ || a === 0x55 /* U */ || a === 0x44
    ); /* D */
  }

  private str(s: string, p: number, into: [number, number]): number {
    if (s.charCodeAt(p) !== QUOTE) return -1;
    const end = stringEnd(s, p);
    into[0] = p;
    into[1] = end;
    return end;
  }

  private bare(s: string, p: number, into: [number, number]): number {
    const end = bareEnd(s, p);
    into[0] = p;
    into[1] = end;
    return end;
  }
}

/** Index just past any JSON value at `p` (used to skip "pk"), or -1. */
function valueEnd(s: string, p: number): number {
  const c = s.charCodeAt(p);
  if (c === QUOTE) return stringEnd(s, p);
  if (c !== LBRACE && c !== LBRACKET) return bareEnd(s, p);
  let depth = 0;
  let q = p;
  while (q < s.length) {
    const d = s.charCodeAt(q);
    if (d === QUOTE) {
      q = stringEnd(s, q);
      if (q < 0) return -1;
      continue;
    }
    if (d === LBRACE || d === LBRACKET) depth++;
    else if (d === RBRACE || d === RBRACKET) {
      depth--;
      if (depth === 0) return q + 1;
    }
    q++;
  }
  return -1;
}

/**
 * Reads `[{"name":…,"type":…,"typeoid":…,"value":…},…]` at `p` into `into`: the keys in the order wal2json
 * writes them with include-types and include-type-oids (the decoder always asks for both). Index past the
 * array, or -1.
 */
function columnsEnd(s: string, p: number, into: ColumnTokens): number {
  if (s.charCodeAt(p) !== LBRACKET) return -1;
  p++;
  if (s.charCodeAt(p) === RBRACKET) return p + 1;
  const pos = into.pos;
  for (;;) {
    const at = into.count * COLUMN_STRIDE;
    if (!s.startsWith('{"name":"', p)) return -1;
    p += 8;
    let end = stringEnd(s, p);
    if (end < 0) return -1;
    pos[at] = p;
    pos[at + 1] = end;
    p = end;
    if (!s.startsWith(',"type":"', p)) return -1;
    p += 8;
    end = stringEnd(s, p);
    if (end < 0) return -1;
    pos[at + 4] = end - p === 7 && s.startsWith('"bytea"', p) ? 1 : 0;
    p = end;
    if (!s.startsWith(',"typeoid":', p)) return -1;
    end = bareEnd(s, p + 11);
    if (end < 0) return -1;
    p = end;
    if (!s.startsWith(',"value":', p)) return -1;
    p += 9;
    end = s.charCodeAt(p) === QUOTE ? stringEnd(s, p) : bareEnd(s, p);
    if (end < 0 || s.charCodeAt(end) !== RBRACE) return -1;
    pos[at + 2] = p;
    pos[at + 3] = end;
    into.count++;
    p = end + 1;
    const c = s.charCodeAt(p);
    if (c === RBRACKET) return p + 1;
    if (c !== COMMA) return -1;
    p++;
  }
}
