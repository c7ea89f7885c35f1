// How often a unix-cron schedule (Cloud Scheduler's format: minute hour day-of-month month day-of-week) fires:
// `status` calls the listener's report stale after two of its intervals. The longest gap between firings
// over the coming 15 days is taken, so "0 9 * * 1-5" counts the weekend gap; names (JAN, MON) are accepted.

const NAMES: Record<number, string[]> = {
  3: ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'],
  4: ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'],
};
const RANGES: Array<[number, number]> = [
  [0, 59],
  [0, 23],
  [1, 31],
  [1, 12],
  [0, 7],
];

function field(text: string, index: number): Set<number> {
  const [min, max] = RANGES[index];
  const names = NAMES[index] ?? [];
  const value = (s: string) => {
    const i = names.indexOf(s.toUpperCase());
    if (i >= 0) return index === 3 ? i + 1 : i;
    const n = Number(s);
    if (!Number.isInteger(n)) throw new Error(`"${s}" is not a number`);
    return n;
  };
  const out = new Set<number>();
  for (const item of text.split(',')) {
    const [range, stepText] = item.split('/');
    const step = stepText ? Number(stepText) : 1;
    let [lo, hi] = [min, max];
    if (range !== '*') {
      const [a, b] = range.split('-');
      lo = value(a);
      hi = b === undefined ? (stepText ? max : lo) : value(b);
    }
    for (let v = lo; v <= hi; v += step) out.add(index === 4 && v === 7 ? 0 : v);
  }
  return out;
}

/** The longest interval between two firings of `expr`, in seconds (evaluated in UTC from `fromMs`). */
export function cronIntervalSeconds(expr: string, fromMs = Date.UTC(2026, 0, 5)): number {
  const parts = expr.trim().split(/\s+/);
  if (parts.length !== 5) throw new Error(`"${expr}" is not a 5-field cron expression`);
  const [minute, hour, dom, month, dow] = parts.map(field);
  // Cron's rule: when both day fields are restricted, a day matches if either does.
  const domAny = parts[2] === '*';
  const dowAny = parts[4] === '*';
  const start = Math.floor(fromMs / 60_000) * 60_000;
  let last: number | null = null;
  let longest = 0;
  for (let t = start; t < start + 15 * 24 * 3600_000; t += 60_000) {
    const d = new Date(t);
    if (!minute.has(d.getUTCMinutes()) || !hour.has(d.getUTCHours()) || !month.has(d.getUTCMonth() + 1))
      continue;
    const domOk = dom.has(d.getUTCDate());
    const dowOk = dow.has(d.getUTCDay());
    const dayOk = domAny && dowAny ? true : domAny ? dowOk : dowAny ? domOk : domOk || dowOk;
    if (!dayOk) continue;
    if (last !== null) longest = Math.max(longest, (t - last) / 1000);
    last = t;
  }
  // Fewer than two firings in 15 days (a monthly schedule): a month is the interval.
  return longest || 31 * 24 * 3600;
}
