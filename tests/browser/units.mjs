// Unit tests of the dashboard's pure modules (web/assets/format.js, viewstate.js, editor.js's refusedField), run by
// tests/tests/web_units.rs with `node --experimental-detect-module` (web/ has no package.json
// of its own). Prints one JSON line: {"cases": N, "failures": ["<case>: got X, want Y", ...]}.
import * as f from '../../web/assets/format.js';
import * as v from '../../web/assets/viewstate.js';
import * as e from '../../web/assets/editor.js';

const failures = [];
let cases = 0;
function eq(name, got, want) {
  cases++;
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) failures.push(`${name}: got ${g}, want ${w}`);
}

// compact: integers below 1000 as they are; one decimal below 100 units; no "1000k".
[[0, '0'], [7, '7'], [987, '987'], [999, '999'], [1000, '1k'], [1049, '1k'], [1050, '1.1k'], [1234, '1.2k'],
  [12345, '12.3k'], [99949, '99.9k'], [99950, '100k'], [123456, '123k'], [999499, '999k'], [999500, '1M'],
  [3.4e6, '3.4M'], [12.5e6, '12.5M'], [2e9, '2B'], [-1500, '-1.5k'], [null, '0'], ['42', '42'], [2.6, '3']]
  .forEach(([n, want]) => eq(`compact(${n})`, f.compact(n), want));
eq('full(12345)', f.full(12345), '12,345');

[[0, '0 s'], [0.4, '0 s'], [42, '42 s'], [59.6, '1 m 0 s'], [184.2, '3 m 4 s'], [3599, '59 m 59 s'], [3600, '1 h 0 m'],
  [3725, '1 h 2 m'], [null, '0 s']].forEach(([s, want]) => eq(`duration(${s})`, f.duration(s), want));

[[0, '0.0%'], [0.0762, '7.6%'], [0.4123, '41.2%'], [1, '100.0%'], [0.00049, '0.0%'], [0.00051, '0.1%']]
  .forEach(([x, want]) => eq(`percent(${x})`, f.percent(x), want));
eq('ratio(10, 300)', f.ratio(10, 300), '3.3%');
eq('ratio(5, 0)', f.ratio(5, 0), '—');

// change: relative percent for counts, percentage points for rates; "—" without a previous value.
[[[12345, 10000], { arrow: '↑', text: '23%', direction: 'up' }],
  [[3456, 4000], { arrow: '↓', text: '14%', direction: 'down' }],
  [[4210, 4210], { arrow: '', text: '0%', direction: 'flat' }],
  [[987, 0], { arrow: '', text: '—', direction: 'none' }],
  [[987, null], { arrow: '', text: '—', direction: 'none' }],
  [[987, undefined], { arrow: '', text: '—', direction: 'none' }],
  [[0, 10], { arrow: '↓', text: '100%', direction: 'down' }],
  [[54.6, 52], { arrow: '↑', text: '5.0%', direction: 'up' }],
  [[184.2, 200], { arrow: '↓', text: '7.9%', direction: 'down' }],
  [[100.04, 100], { arrow: '', text: '0%', direction: 'flat' }],
  [[30, 10], { arrow: '↑', text: '200%', direction: 'up' }]]
  .forEach(([[a, b], want]) => eq(`change(${a}, ${b})`, f.change(a, b, 'count'), want));
[[[0.0762, 0.0712], { arrow: '↑', text: '0.5 pp', direction: 'up' }],
  [[0.4123, 0.4523], { arrow: '↓', text: '4.0 pp', direction: 'down' }],
  [[0.3, 0.05], { arrow: '↑', text: '25 pp', direction: 'up' }],
  [[0.1, 0], { arrow: '', text: '—', direction: 'none' }]]
  .forEach(([[a, b], want]) => eq(`change rate(${a}, ${b})`, f.change(a, b, 'rate'), want));

[['DE', 'Germany'], ['US', 'United States'], ['GB', 'United Kingdom'], ['(unknown)', '(unknown)'], ['(other)', '(other)'],
  ['de', 'de'], ['<img src=x>', '<img src=x>'], ['', ''], [null, '']]
  .forEach(([c, want]) => eq(`countryName(${c})`, f.countryName(c), want));

// Money: per currency, never converted, largest first, in the locale's own way.
[[{ EUR: 49.5, USD: 10 }, '€49.50 · $10.00'],
  [{ USD: 10, EUR: 49.5 }, '€49.50 · $10.00'],
  [{ JPY: 1200 }, '¥1,200'],
  [{ EUR: 0 }, '—'],
  [{}, '—'],
  [null, '—']]
  .forEach(([r, want]) => eq(`money(${JSON.stringify(r)})`, f.money(r, 'en-US'), want));
eq('hasMoney({EUR: 0})', f.hasMoney({ EUR: 0 }), false);
eq('hasMoney({EUR: 0, USD: 1})', f.hasMoney({ EUR: 0, USD: 1 }), true);

// Date ranges: from <= to, at most 366 days, not in the future, real dates.
const today = '2026-11-26';
[[['2026-11-01', '2026-11-26'], ''],
  [['2026-11-26', '2026-11-26'], ''],
  [['2025-11-26', '2026-11-26'], ''], // 366 days
  [['2025-11-25', '2026-11-26'], 'A range can span at most 366 days.'],
  [['2026-11-20', '2026-11-19'], 'The start date must be on or before the end date.'],
  [['2026-11-20', '2026-11-27'], 'The end date cannot be in the future.'],
  [['', '2026-11-27'], 'Choose a start and an end date.'],
  [['2026-02-30', '2026-03-02'], 'Enter dates as YYYY-MM-DD.'],
  [['26-11-01', '2026-11-02'], 'Enter dates as YYYY-MM-DD.']]
  .forEach(([[a, b], want]) => eq(`rangeProblem(${a}, ${b})`, f.rangeProblem(a, b, today), want));
eq('daysIn leap year', f.daysIn('2028-01-01', '2028-12-31'), 366);
eq('previousRange 7 days', f.previousRange('2026-11-20', '2026-11-26'), { from: '2026-11-13', to: '2026-11-19' });
eq('previousRange across March', f.previousRange('2026-03-01', '2026-03-02'), { from: '2026-02-27', to: '2026-02-28' });
eq('todayIn zone', f.todayIn('Pacific/Auckland', Date.parse('2026-11-26T12:00:00Z')), '2026-11-27');
eq('todayIn bad zone', f.todayIn('Not/AZone', Date.parse('2026-11-26T12:00:00Z')), '2026-11-26');

// The view in the URL and in the stats query.
eq('readView empty', v.readView(''), { timeframe: '7d' });
eq('readView 24h with page', v.readView('?site=s&timeframe=24h&page=%2Fpricing'), { timeframe: '24h', page: '/pricing' });
eq('readView bad timeframe', v.readView('?timeframe=1y'), { timeframe: '7d' });
eq('readView range', v.readView('?from=2026-01-01&to=2026-01-31'), { from: '2026-01-01', to: '2026-01-31' });
eq('readView backwards range', v.readView('?from=2026-02-01&to=2026-01-31&timeframe=30d'), { timeframe: '30d' });
eq('readView future range', v.readView('?from=2026-01-01&to=2999-01-31'), { timeframe: '7d' });
eq('statsQuery compare', v.statsQuery({ timeframe: '24h' }, { compare: true }), 'compare=previous&timeframe=24h');
eq('statsQuery page', v.statsQuery({ from: '2026-01-01', to: '2026-01-31', page: '/a b?c&d' }, { compare: true }),
  'page=%2Fa+b%3Fc%26d&compare=previous&from=2026-01-01&to=2026-01-31');
eq('statsQuery export', v.statsQuery({ timeframe: '30d', page: '/x' }), 'page=%2Fx&timeframe=30d');
eq('viewSearch', v.viewSearch({ timeframe: '30d', page: '/x' }, { site: 'abc' }), '?site=abc&timeframe=30d&page=%2Fx');
eq('viewSearch round trip', v.readView(v.viewSearch({ from: '2026-01-01', to: '2026-01-02', page: '/<img>' }, { site: 's' })),
  { from: '2026-01-01', to: '2026-01-02', page: '/<img>' });

// One-click filters and segments in the URL and the stats query (issue 21).
eq('parseFilter', v.parseFilter('source:google.com'), { dimension: 'source', value: 'google.com' });
eq('parseFilter value with a colon', v.parseFilter('entry_page:/a:b'), { dimension: 'entry_page', value: '/a:b' });
eq('parseFilter unknown dimension', v.parseFilter('planet:mars'), null);
eq('parseFilter no value', v.parseFilter('source:'), null);
eq('readView filter and segment', v.readView('?timeframe=30d&filter=country%3ADE&segment=seg-1'), { timeframe: '30d', filter: 'country:DE', segment: 'seg-1' });
eq('readView page wins over filter', v.readView('?page=%2Fx&filter=country%3ADE'), { timeframe: '7d', page: '/x' });
eq('readView bad filter', v.readView('?filter=planet%3Amars'), { timeframe: '7d' });
eq('withFilter replaces the page', v.withFilter({ timeframe: '7d', page: '/x', segment: 's' }, { filter: 'source:a' }), { timeframe: '7d', segment: 's', filter: 'source:a' });
eq('withFilter replaces the filter', v.withFilter({ timeframe: '7d', filter: 'source:a' }, { page: '/y' }), { timeframe: '7d', page: '/y' });
eq('withFilter none', v.withFilter({ timeframe: '7d', filter: 'source:a' }, null), { timeframe: '7d' });
eq('statsQuery filter and segment', v.statsQuery({ timeframe: '7d', filter: 'source:a b', segment: 'seg-1' }, { compare: true }),
  'filter=source%3Aa+b&segment=seg-1&compare=previous&timeframe=7d');
eq('viewSearch filter round trip', v.readView(v.viewSearch({ timeframe: '24h', filter: 'campaign:<img>', segment: 'x&y' }, { site: 's' })),
  { timeframe: '24h', filter: 'campaign:<img>', segment: 'x&y' });
eq('sameView segment', v.sameView({ timeframe: '7d', segment: 'a' }, { timeframe: '7d' }), false);
eq('rangeOf', v.rangeOf({ from: '2026-01-01', to: '2026-01-02', page: '/x' }), { from: '2026-01-01', to: '2026-01-02' });
eq('refusedField row', e.refusedField('steps[1].match: must be a path', ['name', 'steps']), { field: 'steps', index: 1, sub: 'match' });
eq('refusedField whole', e.refusedField('name: must be 1 to 100 characters', ['name', 'steps']), { field: 'name' });
eq('refusedField list', e.refusedField('filters: must hold 1 to 5 conditions', ['name', 'filters']), { field: 'filters' });
eq('refusedField other', e.refusedField('funnels: a site has at most 10 funnels', ['name', 'steps']), null);

console.log(JSON.stringify({ cases, failures }));
