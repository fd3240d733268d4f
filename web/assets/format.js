// Numbers, durations, rates, changes, country names and date ranges as people read them.
// Pure functions (no DOM), so the dashboard, the shared page and the unit tests
// (tests/browser/units.mjs, run by tests/tests/web_units.rs) use the same rules.

const UNITS = [[1e9, 'B'], [1e6, 'M'], [1e3, 'k']];

/** 987 -> "987", 1234 -> "1.2k", 12345 -> "12.3k", 123456 -> "123k", 3.4e6 -> "3.4M". */
export function compact(n) {
  n = Number(n) || 0;
  if (Math.abs(n) < 1000) return String(Math.round(n));
  for (let i = 0; i < UNITS.length; i++) {
    const [size, unit] = UNITS[i];
    if (Math.abs(n) < size) continue;
    const v = n / size;
    let r = Math.abs(v) >= 100 ? Math.round(v) : Math.round(v * 10) / 10;
    // 999,950 rounds to "1000k": say "1M" instead.
    if (Math.abs(r) >= 1000 && i > 0) return compact(Math.sign(n) * UNITS[i - 1][0]);
    return String(r) + unit;
  }
  return String(n);
}

/** 12345 -> "12,345": the exact figure, for titles and screen readers. */
export function full(n) {
  return (Number(n) || 0).toLocaleString('en-US');
}

/** Seconds as "42 s", "3 m 4 s", "1 h 2 m". */
export function duration(seconds) {
  let s = Math.round(Number(seconds) || 0);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' m ' + (s % 60) + ' s';
  s = Math.round(s / 60);
  return Math.floor(s / 60) + ' h ' + (s % 60) + ' m';
}

/** A fraction (0.0762) as a percent with one decimal ("7.6%"). */
export function percent(fraction) {
  return (Math.round((Number(fraction) || 0) * 1000) / 10).toFixed(1) + '%';
}

/** `part` of `whole` as a percent with one decimal; "—" when `whole` is 0. */
export function ratio(part, whole) {
  return whole > 0 ? percent(part / whole) : '—';
}

/**
 * The change of a figure against the previous period.
 * `kind` 'count' (and averages): relative change in percent ("↑ 23%", "↓ 4.5%").
 * `kind` 'rate' (a fraction): difference in percentage points ("↑ 1.2 pp"), since a relative
 * change of a rate ("conversion rate +50%") reads as something it is not.
 * No previous value, or 0: no arrow and "—". Returns {arrow, text, direction}, direction one of
 * 'up', 'down', 'flat', 'none'.
 */
export function change(current, previous, kind) {
  const cur = Number(current) || 0;
  const prev = Number(previous);
  if (previous == null || !isFinite(prev) || prev === 0) return { arrow: '', text: '—', direction: 'none' };
  const diff = kind === 'rate' ? (cur - prev) * 100 : (cur - prev) / prev * 100;
  const size = Math.abs(diff);
  const shown = size < 10 ? (Math.round(size * 10) / 10).toFixed(1) : String(Math.round(size));
  const unit = kind === 'rate' ? ' pp' : '%';
  if (Number(shown) === 0) return { arrow: '', text: '0' + unit, direction: 'flat' };
  return diff > 0
    ? { arrow: '↑', text: shown + unit, direction: 'up' }
    : { arrow: '↓', text: shown + unit, direction: 'down' };
}

/** True when a revenue map ({"EUR": 49.5}) holds any amount above 0. */
export function hasMoney(revenue) {
  return !!revenue && typeof revenue === 'object' && Object.keys(revenue).some((c) => Number(revenue[c]) > 0);
}

/**
 * Revenue per currency as the browser's locale writes money, never converted: {"EUR": 49.5,
 * "USD": 10} -> "€49.50 · $10.00" (largest first); "—" when nothing came in. `locale` for tests.
 */
export function money(revenue, locale) {
  if (!hasMoney(revenue)) return '—';
  return Object.keys(revenue)
    .filter((c) => Number(revenue[c]) > 0)
    .sort((a, b) => revenue[b] - revenue[a] || (a < b ? -1 : 1))
    .map((c) => {
      try {
        return new Intl.NumberFormat(locale, { style: 'currency', currency: c }).format(revenue[c]);
      } catch (e) {
        return revenue[c] + ' ' + c;
      }
    })
    .join(' · ');
}

let regions = null;
/** "DE" -> "Germany"; anything that is not a two-letter code ("(unknown)", "(other)") as is. */
export function countryName(code) {
  const s = String(code == null ? '' : code);
  if (!/^[A-Z]{2}$/.test(s)) return s;
  try {
    regions = regions || new Intl.DisplayNames(['en'], { type: 'region' });
    return regions.of(s) || s;
  } catch (e) {
    return s;
  }
}

// Days as "YYYY-MM-DD" strings, computed in UTC so no local offset shifts them.
const DAY = /^\d{4}-\d{2}-\d{2}$/;
function dayMs(day) { return Date.parse(day + 'T00:00:00Z'); }
export function isDay(s) {
  if (typeof s !== 'string' || !DAY.test(s)) return false;
  const ms = dayMs(s);
  return isFinite(ms) && new Date(ms).toISOString().slice(0, 10) === s;
}
/** `day` moved by `n` days. */
export function addDays(day, n) {
  return new Date(dayMs(day) + n * 86400000).toISOString().slice(0, 10);
}
/** Days from `from` to `to`, both included. */
export function daysIn(from, to) {
  return Math.round((dayMs(to) - dayMs(from)) / 86400000) + 1;
}
/** Today's date in the IANA time zone `tz` (falls back to UTC), as "YYYY-MM-DD". */
export function todayIn(tz, now) {
  const at = now == null ? new Date() : new Date(now);
  try {
    // en-CA writes dates as YYYY-MM-DD.
    return new Intl.DateTimeFormat('en-CA', { timeZone: tz || 'UTC', year: 'numeric', month: '2-digit', day: '2-digit' }).format(at);
  } catch (e) {
    return at.toISOString().slice(0, 10);
  }
}

export const MAX_RANGE_DAYS = 366;

/** Why a custom range cannot be applied, or '' when it can. */
export function rangeProblem(from, to, today) {
  if (!from || !to) return 'Choose a start and an end date.';
  if (!isDay(from) || !isDay(to)) return 'Enter dates as YYYY-MM-DD.';
  if (from > to) return 'The start date must be on or before the end date.';
  if (to > today) return 'The end date cannot be in the future.';
  if (daysIn(from, to) > MAX_RANGE_DAYS) return 'A range can span at most ' + MAX_RANGE_DAYS + ' days.';
  return '';
}

/** The range of the same length just before `from`..`to`. */
export function previousRange(from, to) {
  const n = daysIn(from, to);
  return { from: addDays(from, -n), to: addDays(from, -1) };
}
