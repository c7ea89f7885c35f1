import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { changeSeq, formatLsn, parseLsn } from '../../contract/lsn';
import { Catalog, emptyCatalog } from '../../listener/catalog';
import { PgOutputDecoder } from '../../listener/decoders/pgoutput';
import { Decoded, TransactionContext, changeEventOf } from '../../listener/decoders/types';
import { defaultSqlDir, splitStatements } from '../../listener/sql-init';
import { formatPgMicros, normalizeTimestamptz } from '../../listener/time';

/** Builds pgoutput protocol messages byte by byte (PostgreSQL 15 docs, "Logical Replication Message Formats"). */
class Bytes {
  private parts: Buffer[] = [];
  u8(n: number) {
    this.parts.push(Buffer.from([n]));
    return this;
  }
  ch(c: string) {
    return this.u8(c.charCodeAt(0));
  }
  i16(n: number) {
    const b = Buffer.alloc(2);
    b.writeInt16BE(n);
    this.parts.push(b);
    return this;
  }
  i32(n: number) {
    const b = Buffer.alloc(4);
    b.writeInt32BE(n);
    this.parts.push(b);
    return this;
  }
  i64(n: bigint) {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(n);
    this.parts.push(b);
    return this;
  }
  str(s: string) {
    this.parts.push(Buffer.from(s + '\0'));
    return this;
  }
  text(s: string) {
    const b = Buffer.from(s);
    return this.ch('t').i32(b.length).bytes(b);
  }
  bytes(b: Buffer) {
    this.parts.push(b);
    return this;
  }
  done() {
    return Buffer.concat(this.parts);
  }
}

describe('listener units', () => {
  it("a transaction's seqs are changeSeq(commit LSN, ordinal) across every 4-digit boundary, and restart at the next one", () => {
    const txn = new TransactionContext();
    txn.begin(7, 0x1a2b3c4dn, '2026-12-02 05:00:00+00');
    const want = (lsn: bigint, o: number) => changeSeq(lsn, o);
    for (let o = 0; o <= 0x10001; o++) {
      const seq = txn.nextSeq();
      if (o < 300 || (o > 0xff00 && o < 0x10100) || o % 4099 === 0) assert.equal(seq, want(0x1a2b3c4dn, o));
    }
    // Far past the first 65,536 ordinals of a transaction: the head is recomputed, never carried over.
    txn.begin(8, 0xffffffff00000001n, '2026-12-02 05:00:01+00');
    assert.equal(txn.nextSeq(), want(0xffffffff00000001n, 0));
    for (let o = 1; o < 0x2ffff; o++) txn.nextSeq();
    assert.equal(txn.nextSeq(), want(0xffffffff00000001n, 0x2ffff));
    assert.equal(txn.nextSeq(), want(0xffffffff00000001n, 0x30000));
  });

  it('pgoutput: a relation is cached and its changes decoded, unchanged TOAST and NULL kept apart', () => {
    const catalog: Catalog = {
      ...emptyCatalog(),
      typeNames: new Map([
        [23, 'integer'],
        [25, 'text'],
      ]),
    };
    const d = new PgOutputDecoder(catalog, 'pub', []);
    const out: Decoded[] = [];
    const feed = (b: Bytes, walStart = 0x100n) =>
      d.decode({ walStart, walEnd: 0n, data: b.done() }, (x) => out.push(x));
    feed(new Bytes().ch('B').i64(0x2000n).i64(0n).i32(7));
    feed(
      new Bytes()
        .ch('R')
        .i32(16384)
        .str('public')
        .str('docs')
        .u8(100)
        .i16(3)
        .u8(1)
        .str('id')
        .i32(23)
        .i32(-1)
        .u8(0)
        .str('body')
        .i32(25)
        .i32(-1)
        .u8(0)
        .str('note')
        .i32(25)
        .i32(-1),
    );
    feed(new Bytes().ch('U').i32(16384).ch('N').i16(3).text('5').ch('u').ch('n'), 0x180n);
    feed(new Bytes().ch('D').i32(16384).ch('K').i16(3).text('5').ch('n').ch('n'), 0x190n);
    feed(new Bytes().ch('C').u8(0).i64(0x2000n).i64(0x2040n).i64(0n));
    const changes = out.filter((x) => x.kind === 'change');
    assert.equal(changes.length, 2);
    const [u, del] = changes.map((c) => (c.kind === 'change' ? changeEventOf(c.event) : undefined)!);
    assert.deepEqual(u.after, { id: '5', note: null });
    assert.deepEqual(u.unchanged, ['body']);
    assert.deepEqual(u.key, { id: '5' }, 'without a catalog entry the replica identity is the key');
    assert.equal(u.commitTs, '2000-01-01 00:00:00.000000+00');
    assert.equal(u.seq, '0000000000002000/0000000000000000');
    assert.deepEqual(del.before, { id: '5' }, 'an old-key tuple carries only the key columns');
    assert.deepEqual(out[out.length - 1], { kind: 'commit', endLsn: 0x2040n });
  });

  it('LSNs print as Postgres prints them on both sides of 2^53 (the number fast path and the bigint one)', () => {
    const bigintForm = (l: bigint) =>
      `${(l >> 32n).toString(16).toUpperCase()}/${(l & 0xffffffffn).toString(16).toUpperCase()}`;
    const edges = [
      0n,
      1n,
      0xffffffffn,
      0x100000000n,
      0x16b374d848n,
      2n ** 53n - 1n,
      2n ** 53n,
      2n ** 64n - 1n,
    ];
    for (const l of edges) {
      assert.equal(formatLsn(l), bigintForm(l));
      assert.equal(parseLsn(formatLsn(l)), l);
    }
    assert.equal(formatLsn(0x16b374d848n), '16/B374D848');
  });

  it('commit timestamps are normalised to UTC with microseconds, whatever the server time zone', () => {
    assert.equal(normalizeTimestamptz('2026-11-25 18:39:30.36347+01'), '2026-11-25 17:39:30.363470+00');
    assert.equal(normalizeTimestamptz('2026-11-25 12:09:30-05:30'), '2026-11-25 17:39:30.000000+00');
    assert.equal(formatPgMicros(1n), '2000-01-01 00:00:00.000001+00');
  });

  it('the SQL splitter keeps DO blocks, quoted semicolons and comments intact', () => {
    const stmts = splitStatements(
      `-- a; comment\nSELECT 'a;b';\nDO $$ BEGIN PERFORM 1; END $$;\n/* x; */ SELECT "c;d" FROM t;`,
    );
    assert.deepEqual(stmts, [
      `-- a; comment\nSELECT 'a;b';`,
      'DO $$ BEGIN PERFORM 1; END $$;',
      '/* x; */ SELECT "c;d" FROM t;',
    ]);
    // Our own scripts split into whole statements: each ends with its semicolon and starts with a statement.
    for (const file of ['0-init.sql', '0-init-slot.sql']) {
      const stmts = splitStatements(readFileSync(path.join(defaultSqlDir(), file), 'utf8'));
      assert.ok(stmts.length > 0, file);
      for (const s of stmts) {
        assert.match(s, /;$/, `${file}: ${s.slice(0, 80)}`);
        assert.match(
          s.replace(/^(\s|--[^\n]*\n|\/\*[\s\S]*?\*\/)*/, ''),
          /^(DO|CREATE|GRANT|REVOKE|ALTER|SELECT|COMMENT)\b/i,
          file,
        );
      }
    }
  });
});
