// Table names as users write them (PGCDC_TABLES, pgcdc:tables, PGCDC_REPLICA_IDENTITY_FULL, --table) and as
// pgcdc prints and keys them: PostgreSQL's own identifier syntax, `schema.table`, either part bare or in
// double quotes. PostgreSQL's rules (https://www.postgresql.org/docs/15/sql-syntax-lexical.html, 4.1.1):
// "Quoting an identifier also makes it case-sensitive, whereas unquoted names are always folded to lower
// case"; "If you want to include a double quote in a quoted identifier, write two double quotes"; "The
// system uses no more than NAMEDATALEN-1 bytes of an identifier" (63: a longer name names no table).
//
// So `"my.schema"."Weird ""name"""` is schema my.schema, table Weird "name"; `Sales.Orders` is sales.orders.
// One exception, for lists written before quoting was supported (when every name was taken exactly as
// written, upper case included): a bare part with upper-case letters also stands for the name exactly as
// written, and where a table of that exact name exists, that table is meant (resolveTableEntry); where
// tables of both readings exist, the entry is refused until it is written quoted or in lower case.
//
// The key pgcdc uses for a table everywhere (catalog maps, skippedTables, snapshot progress, logs) is its
// canonical text, formatTableName: each part bare when it is lower-case letters, digits, _ and $ (starting
// with a letter or _), else quoted. For such plain names it is `schema.table` exactly as before; for any
// other it is unambiguous ("a.b".c and a."b.c" are two tables, and two keys).

export interface TableName {
  readonly schema: string;
  readonly table: string;
}

/** One entry of a table list, parsed. */
export interface TableEntry {
  /** The entry rewritten so that parsing it again gives this entry (quoted parts canonical, bare parts as written). */
  readonly text: string;
  /** What PostgreSQL would read: bare parts folded to lower case, quoted parts exact. */
  readonly name: TableName;
  /**
   * Set when a bare part has upper-case letters: the names exactly as written, which is what the entry meant
   * before quoting was supported. resolveTableEntry prefers it when such a table exists (and refuses the
   * entry when the folded table exists too).
   */
  readonly asWritten?: TableName;
}

export class TableNameError extends Error {
  /** `what` is the setting (PGCDC_TABLES, --table); `problem` says what is wrong and what to write. */
  constructor(
    readonly what: string,
    readonly problem: string,
  ) {
    super(`${what}: ${problem}`);
    this.name = 'TableNameError';
  }
}

/** Longest identifier PostgreSQL keeps: NAMEDATALEN - 1 bytes. */
export const MAX_IDENTIFIER_BYTES = 63;

const PLAIN = /^[a-z_][a-z0-9_$]*$/;
const UPPER = /[A-Z]/;

/** A name part as pgcdc prints it: bare when PostgreSQL would read it back unchanged, else double-quoted. */
export function formatIdentifier(part: string): string {
  return PLAIN.test(part) ? part : quoteIdentifier(part);
}

/** A name part always double-quoted, for SQL text. */
export function quoteIdentifier(part: string): string {
  return `"${part.replace(/"/g, '""')}"`;
}

/** The canonical text (and key) of a table: `public.customers`, `"a.b"."c.d"`, `"Mixed Case"."x,y"`. */
export function formatTableName(t: TableName): string {
  return `${formatIdentifier(t.schema)}.${formatIdentifier(t.table)}`;
}

/** formatTableName of a schema and a table. */
export function tableKey(schema: string, table: string): string {
  return `${formatIdentifier(schema)}.${formatIdentifier(table)}`;
}

/** `"schema"."table"` for SQL text, whatever the names hold. */
export function sqlTableName(t: TableName): string {
  return `${quoteIdentifier(t.schema)}.${quoteIdentifier(t.table)}`;
}

/** PostgreSQL folds only ASCII letters of an unquoted name (multi-byte characters stay as they are). */
function fold(part: string): string {
  return part.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

const HOW =
  'write schema.table; a name with a period, a comma, a space, a double quote or upper case goes in double ' +
  'quotes, a double quote inside it written twice: "my.schema"."Weird ""name"""';

interface Part {
  name: string;
  quoted: boolean;
}

/** Reads one list entry or one table name; `what` names the setting in messages. */
class Reader {
  pos = 0;
  constructor(
    private readonly s: string,
    private readonly what: string,
  ) {}

  private fail(entry: string, problem: string): never {
    throw new TableNameError(this.what, `${JSON.stringify(entry.trim())} ${problem}: ${HOW}`);
  }

  private skipSpace(): void {
    while (this.pos < this.s.length && /\s/.test(this.s[this.pos]!)) this.pos++;
  }

  /** At the end, or at the comma that ends this entry. */
  private atEntryEnd(): boolean {
    return this.pos >= this.s.length || this.s[this.pos] === ',';
  }

  private part(start: number): Part {
    const s = this.s;
    const entry = () => this.entryText(start);
    if (s[this.pos] === '"') {
      let name = '';
      this.pos++;
      for (;;) {
        if (this.pos >= s.length) this.fail(entry(), 'has a double quote that is never closed');
        const c = s[this.pos]!;
        if (c === '"') {
          if (s[this.pos + 1] === '"') {
            name += '"';
            this.pos += 2;
            continue;
          }
          this.pos++;
          break;
        }
        name += c;
        this.pos++;
      }
      if (name === '') this.fail(entry(), 'has an empty quoted name ("")');
      return { name, quoted: true };
    }
    const from = this.pos;
    while (this.pos < s.length && !/[\s.,"]/.test(s[this.pos]!)) this.pos++;
    if (s[this.pos] === '"')
      this.fail(entry(), 'has a double quote inside a bare name (quote the whole name)');
    return { name: s.slice(from, this.pos), quoted: false };
  }

  /** The text of the entry that starts at `start`, for messages (up to its comma, or the end). */
  private entryText(start: number): string {
    let i = start;
    let quoted = false;
    for (; i < this.s.length; i++) {
      const c = this.s[i];
      if (c === '"') quoted = !quoted;
      else if (c === ',' && !quoted) break;
    }
    return this.s.slice(start, i);
  }

  /** Reads `schema.table` from the current position up to the next comma or the end. */
  entry(): TableEntry {
    const start = this.pos;
    const entry = () => this.entryText(start);
    const parts: Part[] = [];
    this.skipSpace();
    for (;;) {
      const p = this.part(start);
      if (p.name === '')
        this.fail(entry(), parts.length === 0 ? 'has no schema name' : 'has an empty name after a period');
      if (Buffer.byteLength(p.name, 'utf8') > MAX_IDENTIFIER_BYTES)
        this.fail(
          entry(),
          `has a name longer than ${MAX_IDENTIFIER_BYTES} bytes, which no PostgreSQL table has`,
        );
      parts.push(p);
      this.skipSpace();
      if (this.atEntryEnd()) break;
      if (this.s[this.pos] !== '.') {
        const next = this.s[this.pos];
        this.fail(
          entry(),
          next === '"'
            ? 'has a quoted name right after another name (a period between them?)'
            : parts[parts.length - 1]!.quoted
              ? `has ${JSON.stringify(next)} after a closing double quote (expected a period)`
              : 'has a space inside a name (quote the whole name)',
        );
      }
      this.pos++;
      this.skipSpace();
    }
    if (parts.length === 1)
      this.fail(
        entry(),
        `names no schema (e.g. public.${formatIdentifier(parts[0]!.quoted ? parts[0]!.name : fold(parts[0]!.name))})`,
      );
    if (parts.length > 2)
      this.fail(
        entry(),
        `has ${parts.length} period-separated names; a schema or table name that holds a period goes in double quotes (e.g. "a.b".c)`,
      );
    const [schema, table] = parts as [Part, Part];
    const name = {
      schema: schema.quoted ? schema.name : fold(schema.name),
      table: table.quoted ? table.name : fold(table.name),
    };
    const upper = [schema, table].some((p) => !p.quoted && UPPER.test(p.name));
    const asWritten = upper ? { schema: schema.name, table: table.name } : undefined;
    const text = [schema, table].map((p) => (p.quoted ? formatIdentifier(p.name) : p.name)).join('.');
    return asWritten ? { text, name, asWritten } : { text, name };
  }

  /** A comma list: entries separated by commas outside quotes; empty entries (",,", a trailing comma) skipped. */
  list(): TableEntry[] {
    const out: TableEntry[] = [];
    for (;;) {
      this.skipSpace();
      if (this.pos >= this.s.length) return out;
      if (this.s[this.pos] === ',') {
        this.pos++;
        continue;
      }
      out.push(this.entry());
      if (this.pos < this.s.length) this.pos++; // the comma
    }
  }
}

/** Parses a comma-separated table list; throws TableNameError naming `what` and saying what to write. */
export function parseTableList(list: string, what: string): TableEntry[] {
  return new Reader(list, what).list();
}

/** Parses one table name (a comma is part of no name unless quoted). */
export function parseTableEntry(text: string, what: string): TableEntry {
  const entries = parseTableList(text, what);
  if (entries.length !== 1)
    throw new TableNameError(
      what,
      `${JSON.stringify(text)} ${entries.length === 0 ? 'is empty' : 'is several names'}: ${HOW}`,
    );
  return entries[0]!;
}

/** Parses a canonical key (formatTableName's output) back into its parts. */
export function parseTableKey(key: string): TableName {
  return parseTableEntry(key, 'table').name;
}

/**
 * Which table an entry means, given which capturable tables exist (by key): its exact-case reading when it
 * has one and that table exists (the meaning before quoting was supported), otherwise PostgreSQL's reading.
 * Returns the table's key. When both readings exist, the entry is refused (TableNameError naming `what`):
 * picking one would silently change what a list captures the day someone creates the other table.
 */
export function resolveTableEntry(entry: TableEntry, exists: (key: string) => boolean, what: string): string {
  const folded = formatTableName(entry.name);
  if (entry.asWritten) {
    const exact = formatTableName(entry.asWritten);
    if (exists(exact) && exists(folded))
      throw new TableNameError(
        what,
        `${JSON.stringify(entry.text)} could mean table ${exact} or table ${folded}, and both exist: ` +
          `write ${exact} or ${folded}, whichever is meant`,
      );
    if (exists(exact)) return exact;
  }
  return folded;
}

/** Every table an entry may mean, by key (for one catalog query that resolves a list). */
export function candidateNames(entry: TableEntry): TableName[] {
  return entry.asWritten ? [entry.asWritten, entry.name] : [entry.name];
}
