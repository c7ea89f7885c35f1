// Commit timestamps in one form whichever decoder read them: "YYYY-MM-DD HH:MM:SS.ffffff+00" (UTC,
// microseconds always six digits). wal2json prints the server's TimeZone; pgoutput sends microseconds
// since 2000-01-01.

const PG_EPOCH_MS = 946_684_800_000;

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** Microseconds since the Unix epoch → canonical UTC text. */
export function formatUtcMicros(unixMicros: bigint): string {
  const ms = unixMicros / 1000n;
  let micros = Number(unixMicros % 1_000_000n);
  if (micros < 0) micros += 1_000_000;
  const d = new Date(Number(ms));
  return (
    `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(micros, 6)}+00`
  );
}

/** pgoutput: microseconds since 2000-01-01 UTC. */
export function formatPgMicros(pgMicros: bigint): string {
  return formatUtcMicros(pgMicros + BigInt(PG_EPOCH_MS) * 1000n);
}

const TIMESTAMPTZ =
  /^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?([+-]\d\d)(?::?(\d\d))?(?::?(\d\d))?$/;

/** Postgres timestamptz text in any offset ("2026-11-25 18:39:30.36347+01") → canonical UTC text. */
export function normalizeTimestamptz(text: string): string {
  const m = TIMESTAMPTZ.exec(text);
  if (!m) return text; // BC dates or infinity: keep what Postgres printed rather than guess
  const [, y, mo, d, h, mi, s, frac = '', oh, om = '0', os = '0'] = m;
  const sign = oh.startsWith('-') ? -1 : 1;
  const offsetSeconds = sign * (Math.abs(Number(oh)) * 3600 + Number(om) * 60 + Number(os));
  const wallMs = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  const unixMicros = BigInt(wallMs - offsetSeconds * 1000) * 1000n + BigInt(frac.padEnd(6, '0') || '0');
  return formatUtcMicros(unixMicros);
}
