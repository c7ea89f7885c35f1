// Runs the project's sql/ scripts against a database, one statement per transaction (a logical slot
// cannot be created in a transaction that has written), collecting the NOTICEs that say what was done.

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Client, ClientConfig } from 'pg';

export interface SqlInitReport {
  statements: number;
  notices: string[];
}

export interface SqlInitOptions {
  slot: string;
  publication: string;
  decoder: 'wal2json' | 'pgoutput';
  replicationUser?: string;
  /** Default: every *.sql file of the project's sql/ directory, in name order. */
  files?: string[];
}

/** sql/ next to the compiled code (dist/listener/.. /../sql) or next to the sources. */
export function defaultSqlDir(): string {
  for (const dir of [path.resolve(__dirname, '..', '..', 'sql'), path.resolve(__dirname, '..', 'sql')]) {
    try {
      if (readdirSync(dir).some((f) => f.endsWith('.sql'))) return dir;
    } catch {
      /* try the next one */
    }
  }
  throw new Error(`no sql/ directory found near ${__dirname}`);
}

/**
 * Splits a script into statements at semicolons outside quotes, dollar-quoted bodies and comments.
 * Enough for our own scripts (DO blocks, DDL, DML); not a general SQL parser.
 */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let start = 0;
  let i = 0;
  while (i < sql.length) {
    const c = sql[i];
    if (c === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      i = nl === -1 ? sql.length : nl + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end === -1 ? sql.length : end + 2;
    } else if (c === "'" || c === '"') {
      const end = sql.indexOf(c, i + 1);
      i = end === -1 ? sql.length : end + 1;
    } else if (c === '$') {
      const tag = /^\$[A-Za-z_0-9]*\$/.exec(sql.slice(i));
      if (tag) {
        const end = sql.indexOf(tag[0], i + tag[0].length);
        i = end === -1 ? sql.length : end + tag[0].length;
      } else {
        i++;
      }
    } else if (c === ';') {
      out.push(sql.slice(start, i + 1));
      start = i + 1;
      i++;
    } else {
      i++;
    }
  }
  out.push(sql.slice(start));
  return out.filter((s) => stripComments(s).trim().length > 0).map((s) => s.trim());
}

function stripComments(s: string): string {
  return s.replace(/--[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '');
}

export async function runSqlInit(pgConfig: ClientConfig, opts: SqlInitOptions): Promise<SqlInitReport> {
  const files =
    opts.files ??
    readdirSync(defaultSqlDir())
      .filter((f) => f.endsWith('.sql'))
      .sort()
      .map((f) => path.join(defaultSqlDir(), f));
  const client = new Client(pgConfig);
  const notices: string[] = [];
  client.on('notice', (n) => notices.push(n.message ?? String(n)));
  await client.connect();
  let statements = 0;
  try {
    const settings: Record<string, string> = {
      'pgcdc.slot': opts.slot,
      'pgcdc.publication': opts.publication,
      'pgcdc.decoder': opts.decoder,
      'pgcdc.replication_user': opts.replicationUser ?? '',
    };
    for (const [k, v] of Object.entries(settings)) {
      await client.query('SELECT set_config($1, $2, false)', [k, v]);
    }
    for (const file of files) {
      for (const statement of splitStatements(readFileSync(file, 'utf8'))) {
        try {
          await client.query(statement);
        } catch (e) {
          const err = e as Error & { hint?: string };
          throw new Error(
            `${path.basename(file)}: ${err.message}${err.hint ? ` (hint: ${err.hint})` : ''}\n  in: ${statement.slice(0, 200)}`,
            { cause: e },
          );
        }
        statements++;
      }
    }
  } finally {
    await client.end();
  }
  return { statements, notices };
}
