// PostgreSQL log sequence numbers ("16/B374D848") as bigints, and the change sequence built from them.
//
// An LSN is a 64-bit position in the WAL. Postgres prints it as two hex halves; we keep it as a bigint
// in memory (exact, comparable) and as the Postgres text form on the wire.

export type Lsn = bigint;

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

export function parseLsn(text: string): Lsn {
  const m = LSN_TEXT.exec(text);
  if (!m) throw new Error(`not a PostgreSQL LSN: ${JSON.stringify(text)} (expected e.g. "16/B374D848")`);
  return (BigInt('0x' + m[1]) << 32n) | BigInt('0x' + m[2]);
}

const TWO_32 = 2 ** 32;
const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);

export function formatLsn(lsn: Lsn): string {
  // Hot path (pgoutput: one call per change): below 2^53 a JavaScript number holds the LSN exactly, and
  // number arithmetic allocates nothing, where each bigint operation makes a new bigint.
  if (lsn >= 0n && lsn <= MAX_EXACT) {
    const n = Number(lsn);
    const lo = n % TWO_32;
    return `${((n - lo) / TWO_32).toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
  }
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

function hex16(n: bigint): string {
  return n.toString(16).toUpperCase().padStart(16, '0');
}

/**
 * The total order of change events, usable as BigQuery's `_CHANGE_SEQUENCE_NUMBER`.
 *
 * Two sections of 16 hex digits: the commit LSN of the event's transaction, then the event's ordinal
 * inside that transaction. Transactions are decoded in commit order and commit LSNs grow with it; several
 * changes of one transaction can share an LSN (a multi-row insert), hence the ordinal. BigQuery compares
 * the `/`-separated sections as hex numbers, left to right; fixed width also makes plain string
 * comparison agree with that order, which the sink and tests rely on.
 */
export function changeSeq(commitLsn: Lsn, ordinal: number | bigint): string {
  return `${hex16(commitLsn)}/${hex16(BigInt(ordinal))}`;
}

const SEQ_TEXT = /^[0-9A-F]{16}(\/[0-9A-F]{16}){1,3}$/;

export function isChangeSeq(text: string): boolean {
  return SEQ_TEXT.test(text);
}

/** Compare two change sequences the way BigQuery does: section by section, as hex numbers. */
export function compareSeq(a: string, b: string): number {
  if (a === b) return 0;
  // Fast path (the sink sorts every batch): strings of equal length that first differ at a hex digit of
  // one case, inside sections of equal width, compare like the numbers (the sections before are equal).
  if (a.length === b.length) {
    let i = 0;
    while (a.charCodeAt(i) === b.charCodeAt(i)) i++;
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    const cx = hexClass(x);
    const cy = hexClass(y);
    const sameCase = cx === 1 || cy === 1 || cx === cy;
    if (cx !== 0 && cy !== 0 && sameCase && a.indexOf('/', i) === b.indexOf('/', i)) {
      return x < y ? -1 : 1;
    }
  }
  const as = a.split('/');
  const bs = b.split('/');
  for (let i = 0; i < Math.max(as.length, bs.length); i++) {
    const x = BigInt('0x' + (as[i] ?? '0'));
    const y = BigInt('0x' + (bs[i] ?? '0'));
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/**
 * 1 for a digit, 2 for A-F, 3 for a-f, 0 otherwise. Character order is numeric order among digits and the
 * letters of one case (every digit is below every letter); 'a' against 'B' is left to the exact comparison.
 */
function hexClass(c: number): number {
  if (c >= 48 && c <= 57) return 1;
  if (c >= 65 && c <= 70) return 2;
  if (c >= 97 && c <= 102) return 3;
  return 0;
}
