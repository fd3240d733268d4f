// A stand-in for the api, for developing and testing the dashboard before (and apart from) the
// backend: serves the real web/ files with the api's Content-Security-Policy, and answers every
// call the dashboard and the shared page make with contract-shaped JSON (contract.md, v1 and
// "v2 additions"): realistic figures, `(other)` rows, and hostile strings in every tracked field.
//
//   node tests/browser/fake-api.mjs [port] [--stdin]   prints "LISTENING http://127.0.0.1:<port>";
//   with --stdin it exits when its stdin closes (so a test's server never outlives the test).
//
// Two sites: `site-v2` answers everything; `site-v1` answers like the api before v2 (no v2
// stats fields; goals, realtime, export and share answer 404), to check that the dashboard
// hides what a server does not send. The owner's token is `fake-owner-token`; the owner is
// `owner@example.com` with the password `correct horse 1`. Logging in issues another token;
// logging out or changing the password ends every token the owner holds (contract v3).
//
// Issue 21: funnels (`funnel-1` with exact figures, `funnel-2` with hostile strings and still
// backfilling), segments (`seg-1`, and `seg-2` with a hostile name, still backfilling) and
// one-click filters (`filter=dimension:value`: summary, series, goals and top pages only; the
// other lists empty; refused with `page`). Goals created here are backfilling.
//
// Test controls (no auth): POST /__fake/realtime {visitors_5m}, POST /__fake/fail {stats: n}
// (the next n stats calls answer 500), POST /__fake/delay {ms} (stats answer after ms),
// POST /__fake/role {role} (the caller's role on site-v2, issue 24).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IMG, SCRIPT } from './payloads.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const web = path.join(root, 'web');

// The api's policy (api/src/routes/web.rs).
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
  "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const TOKEN = 'fake-owner-token';
const OWNER = { id: 'user-1', email: 'owner@example.com', name: 'Owner', created_at: '2026-01-01T00:00:00Z' };
const account = { password: 'correct horse 1', tokens: new Set([TOKEN]), issued: 0 };

const sites = [
  { id: 'site-v2', name: 'Acme landing', domain: 'acme.example', timezone: 'Europe/Berlin', api_key: 'cp_live_FAKEKEY0123456789abcdef', created_at: '2026-01-05T10:00:00Z', role: 'owner' },
  { id: 'site-v1', name: 'Legacy site', domain: 'legacy.example', timezone: 'UTC', api_key: 'cp_live_LEGACYKEY0123456789abcd', created_at: '2025-06-01T10:00:00Z' },
];
let goals = [
  { id: 'goal-1', name: 'Signup ' + IMG, kind: 'event', match: 'Signup', created_at: '2026-02-01T09:00:00Z', backfilling: false },
  { id: 'goal-2', name: 'Thank-you page', kind: 'pageview', match: '/thank-you*', created_at: '2026-02-02T09:00:00Z', backfilling: false },
];
let funnels = [
  { id: 'funnel-1', name: 'Signup funnel', steps: [{ kind: 'pageview', match: '/' }, { kind: 'pageview', match: '/pricing' }, { kind: 'event', match: 'Signup' }], created_at: '2026-02-03T09:00:00Z', backfilling: false },
  { id: 'funnel-2', name: 'Checkout ' + IMG, steps: [{ kind: 'click', match: SCRIPT }, { kind: 'pageview', match: '/' + IMG }], created_at: '2026-02-04T09:00:00Z', backfilling: true },
];
let funnelSeq = 3;
// Sessions that reached each step of a funnel over any range.
const FUNNEL_SESSIONS = { 'funnel-1': [4000, 1200, 300], 'funnel-2': [80, 20] };
let segments = [
  { id: 'seg-1', name: 'Email visitors', filters: [{ dimension: 'medium', op: 'is', value: 'email' }], created_at: '2026-02-05T09:00:00Z', backfilling: false },
  { id: 'seg-2', name: 'Hostile ' + SCRIPT, filters: [{ dimension: 'source', op: 'contains', value: IMG }], created_at: '2026-02-06T09:00:00Z', backfilling: true },
];
let segmentSeq = 3;
// Stats API keys (v3): one with a hostile name.
let apiKeys = [{ id: 'key-1', name: 'Reports ' + IMG, sites: '*', created_at: '2026-02-07T09:00:00Z' }];
let apiKeySeq = 2;
const DIMENSIONS = ['source', 'campaign', 'medium', 'variant', 'country', 'device', 'browser', 'os', 'entry_page'];
let goalSeq = 3;
const GOAL_FIGURES = { 'goal-1': { conversions: 200, rate: 0.0476 }, 'goal-2': { conversions: 150, rate: 0.0357 } };
// token -> site id; a known token for tests that open the shared page directly.
const shares = new Map([['share-initial-token-0123456789abcdef', 'site-v2']]);
let shareSeq = 0;
const control = { visitors_5m: 7, failStats: 0, delayMs: 0, v3: false };

// Issue 24: site-v2's team (an active admin, a pending viewer), the caller's weekly report and
// the site's alerts. The caller's role on site-v2 is `owner` unless a test sets another
// (POST /__fake/role {role}); members need the owner, alerts an admin, as in the api.
let members = [
  { id: 'mem-1', email: 'ann@example.com', role: 'admin', status: 'active' },
  { id: 'mem-2', email: 'bob@example.com', role: 'viewer', status: 'invited', expires_at: '2026-12-12T10:00:00Z' },
];
let memberSeq = 3;
let weekly = false;
let alerts = [{ id: 'alert-1', metric: 'conversion_rate', change: 'drop', percent: 30, window_hours: 24, created_at: '2026-02-08T09:00:00Z' }];
let alertSeq = 2;
const RANK = { viewer: 0, admin: 1, owner: 2 };

function alertProblem(b) {
  if (!b || typeof b !== 'object') return 'body: must be a JSON object';
  if (!['visitors', 'conversions', 'conversion_rate'].includes(b.metric)) return 'metric: must be visitors, conversions or conversion_rate';
  if (!['drop', 'spike'].includes(b.change)) return 'change: must be drop or spike';
  if (!Number.isInteger(b.percent) || b.percent < 10 || b.percent > 1000) return 'percent: must be a whole number from 10 to 1000';
  if (!Number.isInteger(b.window_hours) || b.window_hours < 1 || b.window_hours > 168) return 'window_hours: must be a whole number from 1 to 168';
  return null;
}

// Issue 22's fields, sent once a test turns `control.v3` on (POST /__fake/v3): revenue in two
// currencies, the variants' statistics with a broken split, time to conversion, entry and exit
// pages; and the properties of custom events.
const TTC = [5, 40, 30, 60, 25, 8, 2];
function addV3(body) {
  const rev = (eur, usd) => (usd ? { EUR: eur, USD: usd } : { EUR: eur });
  body.summary.revenue = rev(12345.5, 99);
  const ttc = (f) => TTC.map((n) => Math.round(n * f));
  const byName = { 'google.com': [rev(8000, 99), ttc(0.5)], '(direct)': [rev(4345.5), ttc(0.3)] };
  body.top_referrers = body.top_referrers.map((r) => Object.assign({}, r, { revenue: (byName[r.source] || [rev(0)])[0], time_to_conversion: (byName[r.source] || [null, ttc(0)])[1] }));
  ['top_campaigns', 'top_mediums'].forEach((k) => { body[k] = body[k].map((r, i) => Object.assign({}, r, { revenue: rev(i === 0 ? 5000 : 0), time_to_conversion: ttc(i === 0 ? 0.4 : 0) })); });
  body.goals = body.goals.map((g, i) => Object.assign({}, g, { revenue: rev(i === 0 ? 12345.5 : 0, i === 0 ? 99 : 0) }));
  const stats = { B: [0.0717, 0.0962, 0.9876, rev(7000, 99), ttc(0.6)], A: [0.0607, 0.0827, null, rev(5345.5), ttc(0.4)] };
  body.variants = body.variants.map((v) => {
    const [lo, hi, p, revenue, t] = stats[v.variant] || [0, 0.2775, 0.0312, rev(0), ttc(0)];
    return Object.assign({}, v, { ci_low: lo, ci_high: hi, p_beat_control: p, revenue, time_to_conversion: t });
  });
  body.experiment = { control: 'A', sample_ratio_p: control.srm == null ? 0.0042 : control.srm, enough_data: control.enough !== false };
  body.time_to_conversion = ['<10s', '10-30s', '30s-1m', '1-5m', '5-30m', '30m-2h', '>2h'].map((bucket, i) => ({ bucket, conversions: TTC[i] }));
}
const EVENT_PROPS = {
  Signup: [{ key: 'plan', values: [{ value: 'pro', count: 200 }, { value: 'basic', count: 100 }, { value: IMG, count: 21 }] }, { key: 'revenue', values: [{ value: '49.5', count: 120 }] }],
};

// Figures -------------------------------------------------------------------------------

// The attention of a page (contract v3), with hostile strings where tracking puts text.
function attention(path) {
  const scroll = Array.from({ length: 20 }, (_, i) => Math.round(2345 * (1 - i / 25)));
  return {
    path, pageviews: 2345, visitors: 812,
    sections: [
      { name: 'hero', order: 0, viewers: 2300, view_rate: 0.9808, avg_visible_seconds: 6.4 },
      { name: 'pricing', order: 3, viewers: 1200, view_rate: 0.5117, avg_visible_seconds: 12.5 },
      { name: IMG, order: 4, viewers: 10, view_rate: 0.0043, avg_visible_seconds: 1 },
    ],
    ctas: [
      { selector: 'a#buy', text: 'Buy now', viewers: 1500, clickers: 240, ctr: 0.16 },
      { selector: IMG, text: SCRIPT, viewers: 30, clickers: 1, ctr: 0.0333 },
    ],
    rage_clicks: [{ selector: 'img.hero', count: 12 }],
    dead_clicks: [{ selector: 'div.price', count: 40 }],
    forms: [{ form: 'form#signup', starts: 300, submits: 120, abandons: [{ field: 'email', count: 90 }, { field: IMG, count: 3 }] }],
    scroll_map: scroll,
    click_map: { cols: 20, rows: 50, cells: [[10, 15, 240], [2, 45, 40], [19, 49, 1]] },
  };
}

const SUMMARY = {
  all: {
    now: { pageviews: 12345, visitors: 3456, sessions: 4210, clicks: 987, avg_scroll_depth: 54.6, avg_time_seconds: 184.2, conversions: 321, conversion_rate: 0.0762, bounce_rate: 0.4123 },
    before: { pageviews: 10000, visitors: 4000, sessions: 4210, clicks: 0, avg_scroll_depth: 52, avg_time_seconds: 200, conversions: 300, conversion_rate: 0.0712, bounce_rate: 0.4523 },
  },
  '/pricing': {
    now: { pageviews: 2345, visitors: 812, sessions: 640, clicks: 150, avg_scroll_depth: 71.2, avg_time_seconds: 65, conversions: 48, conversion_rate: 0.075, bounce_rate: 0.3 },
    before: { pageviews: 2000, visitors: 800, sessions: 600, clicks: 100, avg_scroll_depth: 70, avg_time_seconds: 60, conversions: 40, conversion_rate: 0.0667, bounce_rate: 0.35 },
  },
};
SUMMARY['/' + IMG] = {
  now: { pageviews: 1200, visitors: 400, sessions: 300, clicks: 40, avg_scroll_depth: 20, avg_time_seconds: 12, conversions: 3, conversion_rate: 0.01, bounce_rate: 0.8 },
  before: { pageviews: 0, visitors: 0, sessions: 0, clicks: 0, avg_scroll_depth: 0, avg_time_seconds: 0, conversions: 0, conversion_rate: 0, bounce_rate: 0 },
};
// A segment's sessions, and a one-click filter's, whatever the segment or value.
SUMMARY.segment = {
  now: { pageviews: 3210, visitors: 900, sessions: 1000, clicks: 250, avg_scroll_depth: 60, avg_time_seconds: 90, conversions: 120, conversion_rate: 0.12, bounce_rate: 0.3 },
  before: { pageviews: 3000, visitors: 900, sessions: 1000, clicks: 250, avg_scroll_depth: 60, avg_time_seconds: 90, conversions: 100, conversion_rate: 0.1, bounce_rate: 0.3 },
};
SUMMARY.filter = {
  now: { pageviews: 4567, visitors: 1400, sessions: 1500, clicks: 310, avg_scroll_depth: 50, avg_time_seconds: 100, conversions: 140, conversion_rate: 0.0933, bounce_rate: 0.35 },
  before: { pageviews: 4000, visitors: 1400, sessions: 1500, clicks: 300, avg_scroll_depth: 50, avg_time_seconds: 100, conversions: 120, conversion_rate: 0.08, bounce_rate: 0.35 },
};
const ZERO = { pageviews: 0, visitors: 0, sessions: 0, clicks: 0, avg_scroll_depth: 0, avg_time_seconds: 0, conversions: 0, conversion_rate: 0, bounce_rate: 0 };
const V1_KEYS = ['pageviews', 'visitors', 'sessions', 'clicks', 'avg_scroll_depth', 'avg_time_seconds'];

function lists(page) {
  const all = {
    top_pages: [{ path: '/', pageviews: 5123 }, { path: '/pricing', pageviews: 2345 }, { path: '/' + IMG, pageviews: 1200 }, { path: '/blog/launch', pageviews: 980 }, { path: '(other)', pageviews: 2697 }],
    top_referrers: [{ source: 'google.com', visits: 1500, conversions: 120 }, { source: '(direct)', visits: 1200, conversions: 90 }, { source: IMG, visits: 300, conversions: 10 }, { source: 'javascript:alert(4)', visits: 20, conversions: 0 }, { source: '(other)', visits: 410, conversions: 11 }],
    top_clicks: [{ selector: 'button#cta', text: 'Start free trial', clicks: 500 }, { selector: 'a.pricing-link', text: 'See pricing', clicks: 320 }, { selector: IMG, text: SCRIPT, clicks: 40 }, { selector: '(other)', text: '', clicks: 12 }],
    top_campaigns: [{ name: 'spring_sale', visits: 900, conversions: 81 }, { name: 'launch_week', visits: 420, conversions: 12 }, { name: IMG, visits: 50, conversions: 2 }, { name: '(other)', visits: 30, conversions: 1 }],
    top_mediums: [{ name: 'email', visits: 700, conversions: 70 }, { name: 'cpc', visits: 650, conversions: 30 }, { name: SCRIPT, visits: 5, conversions: 0 }],
    variants: [{ variant: 'B', visits: 2050, conversions: 171, rate: 0.0834 }, { variant: 'A', visits: 2100, conversions: 150, rate: 0.0714 }, { variant: IMG, visits: 10, conversions: 0, rate: 0 }],
    top_events: [{ name: 'Signup', count: 321 }, { name: 'form_submit', count: 280 }, { name: 'outbound', count: 95 }, { name: IMG, count: 3 }],
    top_devices: [{ name: 'desktop', visits: 2500 }, { name: 'mobile', visits: 1500 }, { name: 'tablet', visits: 210 }],
    top_browsers: [{ name: 'Chrome', visits: 2300 }, { name: 'Safari', visits: 1100 }, { name: 'Firefox', visits: 500 }, { name: 'Edge', visits: 200 }, { name: IMG, visits: 60 }, { name: 'Other', visits: 50 }],
    top_os: [{ name: 'Windows', visits: 1400 }, { name: 'macOS', visits: 1000 }, { name: 'iOS', visits: 900 }, { name: 'Android', visits: 600 }, { name: 'Linux', visits: 300 }, { name: SCRIPT, visits: 10 }],
    top_countries: [{ country: 'DE', visits: 1800 }, { country: 'US', visits: 1200 }, { country: 'GB', visits: 600 }, { country: '(unknown)', visits: 300 }, { country: '(other)', visits: 300 }, { country: IMG, visits: 10 }],
    top_entry_pages: [{ path: '/', visits: 3000, conversions: 240, bounce_rate: 0.412 }, { path: '/' + IMG, visits: 40, conversions: 0, bounce_rate: 1 }],
    top_exit_pages: [{ path: '/pricing', exits: 1800 }, { path: '/', exits: 1200 }, { path: SCRIPT, exits: 5 }],
  };
  if (!page) return all;
  const known = SUMMARY[page];
  const pv = known ? known.now.pageviews : 0;
  const filtered = {};
  Object.keys(all).forEach((k) => {
    filtered[k] = known ? all[k].filter((_, i) => i < 2).map((r) => scaleRow(r, 0.2)) : [];
  });
  filtered.top_pages = known ? [{ path: page, pageviews: pv }] : [];
  return filtered;
}
function scaleRow(r, f) {
  const out = {};
  Object.keys(r).forEach((k) => { out[k] = typeof r[k] === 'number' && k !== 'rate' ? Math.round(r[k] * f) : r[k]; });
  return out;
}

// Days in UTC strings; "today" in the site's zone.
function todayIn(tz) {
  return new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());
}
const addDays = (d, n) => new Date(Date.parse(d + 'T00:00:00Z') + n * 86400000).toISOString().slice(0, 10);
const daysIn = (a, b) => Math.round((Date.parse(b + 'T00:00:00Z') - Date.parse(a + 'T00:00:00Z')) / 86400000) + 1;
const isDay = (s) => typeof s === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(s) && new Date(Date.parse(s + 'T00:00:00Z')).toISOString().slice(0, 10) === s;

/** Deterministic figures of one series point (the same date always gives the same numbers). */
function point(start, scale) {
  let h = 2166136261;
  for (const c of start) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 2246822507) >>> 0;
  const pv = Math.round((1300 + (h % 700)) * scale);
  return { start, pageviews: pv, visitors: Math.round(pv / 3), sessions: Math.round(pv / 2.5), clicks: Math.round(pv / 12), conversions: Math.round(pv / 40) };
}

function range(q, tz) {
  const today = todayIn(tz);
  const from = q.get('from');
  const to = q.get('to');
  if (from != null || to != null) {
    if (!isDay(from) || !isDay(to) || from > to || to > today || daysIn(from, to) > 366) return null;
    return { timeframe: 'custom', from, to, hourly: false };
  }
  const tf = q.get('timeframe') || '7d';
  const days = { '7d': 7, '30d': 30, '90d': 90 }[tf];
  if (tf === '24h') return { timeframe: tf, from: addDays(today, -1), to: today, hourly: true };
  if (!days) return null;
  return { timeframe: tf, from: addDays(today, -(days - 1)), to: today, hourly: false };
}

function series(r, scale) {
  if (r.hourly) {
    const now = new Date();
    const out = [];
    for (let i = 23; i >= 0; i--) {
      const t = new Date(now.getTime() - i * 3600000);
      const local = new Intl.DateTimeFormat('sv-SE', { timeZone: 'Europe/Berlin', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', hourCycle: 'h23' }).format(t);
      out.push(point(local.slice(0, 10) + 'T' + local.slice(11, 13) + ':00', scale / 20));
    }
    return out;
  }
  const out = [];
  for (let d = r.from; d <= r.to; d = addDays(d, 1)) out.push(point(d, scale));
  return out;
}

function stats(site, q) {
  const r = range(q, site.timezone);
  if (!r) return [400, { error: 'invalid_timeframe', message: 'timeframe must be 24h, 7d, 30d or 90d, or from/to a valid range of at most 366 days' }];
  const page = q.get('page') || '';
  const filter = q.get('filter') || '';
  const segmentId = q.get('segment') || '';
  if (filter) {
    const at = filter.indexOf(':');
    if (at <= 0 || !DIMENSIONS.includes(filter.slice(0, at)) || at === filter.length - 1) return [400, { error: 'invalid_request', message: 'filter: must be dimension:value' }];
    if (page) return [400, { error: 'invalid_request', message: 'filter: cannot be combined with page' }];
  }
  const segment = segmentId ? segments.find((x) => x.id === segmentId) : null;
  if (segmentId && (!segment || site.id !== 'site-v2')) return [404, { error: 'not_found', message: 'not found' }];
  const fig = filter ? SUMMARY.filter : page ? SUMMARY[page] || { now: ZERO, before: ZERO } : segment ? SUMMARY.segment : SUMMARY.all;
  const scale = page ? fig.now.pageviews / SUMMARY.all.now.pageviews : 1;
  const body = {
    site_id: site.id, timeframe: r.timeframe, timezone: site.timezone, from: r.from, to: r.to, granularity: r.hourly ? 'hour' : 'day',
    summary: Object.assign({}, fig.now),
    series: series(r, scale),
    scroll_distribution: [{ bucket: '0-25', pageviews: Math.round(3100 * scale) }, { bucket: '25-50', pageviews: Math.round(2900 * scale) }, { bucket: '50-75', pageviews: Math.round(2500 * scale) }, { bucket: '75-100', pageviews: Math.round(2100 * scale) }, { bucket: '100', pageviews: Math.round(1745 * scale) }],
  };
  Object.assign(body, lists(page));
  body.goals = goals.map((g) => Object.assign({ id: g.id, name: g.name }, page ? { conversions: 0, rate: 0 } : GOAL_FIGURES[g.id] || { conversions: 0, rate: 0 }));
  if (segment) {
    Object.keys(body).filter((k) => /^top_|^variants$/.test(k)).forEach((k) => { body[k] = body[k].map((x) => scaleRow(x, 0.25)); });
    body.segment = segment.id;
    body.backfilling = segment.backfilling;
  }
  if (filter) {
    // The api answers summary, series, goals and top pages of the filtered sessions; the other
    // lists come back empty.
    ['top_clicks', 'top_referrers', 'top_campaigns', 'top_mediums', 'variants', 'top_events', 'top_devices', 'top_browsers', 'top_os', 'top_countries',
      'top_entry_pages', 'top_exit_pages']
      .forEach((k) => { body[k] = []; });
    body.top_pages = [{ path: '/', pageviews: 3000 }, { path: '/pricing', pageviews: 1567 }];
    body.filter = filter;
  }
  if (control.v3 && site.id === 'site-v2' && !filter) addV3(body);
  if (q.get('compare') === 'previous') body.previous = Object.assign({}, fig.before);
  if (site.id === 'site-v1') {
    // The api before v2: v1 fields only.
    body.summary = Object.fromEntries(V1_KEYS.map((k) => [k, body.summary[k]]));
    body.top_referrers = body.top_referrers.map((x) => ({ source: x.source, visits: x.visits }));
    body.series = body.series.map((p) => ({ start: p.start, pageviews: p.pageviews, visitors: p.visitors, sessions: p.sessions, clicks: p.clicks }));
    ['goals', 'top_campaigns', 'top_mediums', 'variants', 'top_events', 'top_devices', 'top_browsers', 'top_os', 'top_countries', 'previous',
      'top_entry_pages', 'top_exit_pages'].forEach((k) => delete body[k]);
  }
  return [200, body];
}

function realtime(site) {
  const now = Date.now();
  const points = [];
  for (let i = 29; i >= 0; i--) {
    const t = new Date(now - i * 60000);
    const minute = new Intl.DateTimeFormat('en-GB', { timeZone: site.timezone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(t);
    points.push({ minute, pageviews: i === 0 ? control.visitors_5m : (i * 7) % 5 + (i % 3) });
  }
  return {
    visitors_5m: control.visitors_5m,
    pageviews_30m: points,
    top_pages_5m: [{ path: '/pricing', visitors: Math.max(1, control.visitors_5m - 3) }, { path: '/' + IMG, visitors: 2 }, { path: '/', visitors: 1 }],
  };
}

function csv(site, q) {
  const [status, body] = stats(site, q);
  if (status !== 200) return [status, body];
  const lines = ['start,pageviews,visitors,sessions,clicks,conversions'];
  body.series.forEach((p) => lines.push([p.start, p.pageviews, p.visitors, p.sessions, p.clicks, p.conversions].join(',')));
  return [200, lines.join('\n') + '\n', `convertpulse-${site.domain}-${body.from}-${body.to}.csv`];
}

function funnelStats(f, q, tz) {
  const r = range(q, tz);
  if (!r) return [400, { error: 'invalid_timeframe', message: 'timeframe must be 24h, 7d, 30d or 90d, or from/to a valid range of at most 366 days' }];
  const sessions = FUNNEL_SESSIONS[f.id] || f.steps.map(() => 0);
  const rate = (a, b) => (b > 0 ? Math.round(a / b * 10000) / 10000 : 0);
  return [200, {
    id: f.id, name: f.name, backfilling: f.backfilling,
    steps: f.steps.map((s, i) => ({ kind: s.kind, match: s.match, sessions: sessions[i], rate_from_previous: i ? rate(sessions[i], sessions[i - 1]) : rate(sessions[0], sessions[0]), rate_from_start: rate(sessions[i], sessions[0]) })),
  }];
}

// Field names first, as the api's invalid_funnel and invalid_segment messages.
function validateFunnel(b) {
  if (!b || typeof b !== 'object') return 'name: the body must be a JSON object';
  if (typeof b.name !== 'string' || !b.name.trim() || b.name.length > 100) return 'name: must be 1 to 100 characters';
  if (!Array.isArray(b.steps)) return 'steps: must be a list of steps';
  if (b.steps.length < 2 || b.steps.length > 8) return `steps: must hold 2 to 8 steps, not ${b.steps.length}`;
  for (let i = 0; i < b.steps.length; i++) {
    const st = b.steps[i];
    if (!['pageview', 'click', 'event'].includes(st && st.kind)) return `steps[${i}].kind: must be one of pageview, click, event`;
    if (typeof st.match !== 'string' || !st.match.trim()) return `steps[${i}].match: must not be empty`;
    if (st.kind === 'pageview' && !/^\s*[/*]/.test(st.match)) return `steps[${i}].match: must be a path starting with '/', '*' matching any run of characters`;
  }
  return null;
}
function validateSegment(b) {
  if (!b || typeof b !== 'object') return 'name: the body must be a JSON object';
  if (typeof b.name !== 'string' || !b.name.trim() || b.name.length > 100) return 'name: must be 1 to 100 characters';
  if (!Array.isArray(b.filters) || b.filters.length < 1 || b.filters.length > 5) return 'filters: must hold 1 to 5 conditions';
  for (let i = 0; i < b.filters.length; i++) {
    const f = b.filters[i];
    if (!DIMENSIONS.includes(f && f.dimension)) return `filters[${i}].dimension: must be one of ${DIMENSIONS.join(', ')}`;
    if (!['is', 'is_not', 'contains'].includes(f.op)) return `filters[${i}].op: must be one of is, is_not, contains`;
    if (typeof f.value !== 'string' || !f.value) return `filters[${i}].value: must be 1 to 2048 characters`;
    if (f.dimension === 'country' && f.op !== 'contains' && !/^([A-Z]{2}|\(unknown\))$/.test(f.value)) return `filters[${i}].value: a country is a two-letter code such as DE`;
  }
  return null;
}

function validateGoal(b) {
  if (!b || typeof b !== 'object') return 'name: the body must be a JSON object';
  if (typeof b.name !== 'string' || !b.name.trim() || b.name.length > 100) return 'name must be 1 to 100 characters';
  if (!['pageview', 'click', 'event'].includes(b.kind)) return 'kind must be pageview, click or event';
  if (typeof b.match !== 'string' || !b.match || b.match.length > 256) return 'match must be 1 to 256 characters';
  if (b.kind === 'pageview' && !b.match.startsWith('/')) return 'match must be a path starting with / for a pageview goal';
  return null;
}

// HTTP -----------------------------------------------------------------------------------

const TYPES = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.html': 'text/html; charset=utf-8' };

function send(res, status, body, headers) {
  const h = Object.assign({ 'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' }, headers || {});
  if (body !== null && typeof body === 'object' && !Buffer.isBuffer(body)) {
    h['Content-Type'] = 'application/json';
    body = JSON.stringify(body);
  }
  res.writeHead(status, h);
  res.end(body == null ? '' : body);
}
const error = (res, status, code, message) => send(res, status, { error: code, message: message || code.replace(/_/g, ' ') });

function file(res, p, status) {
  fs.readFile(p, (err, data) => {
    if (err) return error(res, 404, 'not_found', 'page not found');
    let body = data;
    if (p.endsWith('.html')) body = data.toString('utf8').replace(/__CP_INGEST__/g, 'http://127.0.0.1:9');
    send(res, status || 200, body, { 'Content-Type': TYPES[path.extname(p)] || 'application/octet-stream' });
  });
}

function readBody(req) {
  return new Promise((resolve) => {
    let s = '';
    req.on('data', (c) => { s += c; });
    req.on('end', () => { try { resolve(s ? JSON.parse(s) : null); } catch (e) { resolve(undefined); } });
  });
}

// A slow server on purpose (a test sets `delayMs` to see loading states): pacing, not a wait.
const later = (ms) => new Promise((r) => setTimeout(r, ms));

async function handle(req, res) {
  const url = new URL(req.url, 'http://fake');
  const p = url.pathname;
  const q = url.searchParams;
  const m = (re) => re.exec(p);
  let g;

  // Pages and assets.
  const pages = { '/': 'index.html', '/login': 'login.html', '/register': 'register.html', '/dashboard': 'dashboard.html' };
  if (req.method === 'GET' && pages[p]) return file(res, path.join(web, pages[p]));
  if (req.method === 'GET' && (g = m(/^\/share\/([^/]+)$/))) return file(res, path.join(web, 'share.html'), shares.has(decodeURIComponent(g[1])) ? 200 : 404);
  if (req.method === 'GET' && (g = m(/^\/assets\/([A-Za-z0-9._-]+)$/))) return file(res, path.join(web, 'assets', g[1]));
  if (req.method === 'GET' && p === '/vendor/chart.umd.min.js') return file(res, path.join(root, 'node_modules/chart.js/dist/chart.umd.min.js'));

  // Test controls.
  if (req.method === 'POST' && p === '/__fake/realtime') { Object.assign(control, await readBody(req)); return send(res, 204, null); }
  if (req.method === 'POST' && p === '/__fake/fail') { control.failStats = (await readBody(req)).stats; return send(res, 204, null); }
  if (req.method === 'POST' && p === '/__fake/v3') {
    const b = await readBody(req);
    Object.assign(control, { v3: b.on !== false, srm: b.srm, enough: b.enough });
    return send(res, 204, null);
  }
  if (req.method === 'POST' && p === '/__fake/role') { sites[0].role = (await readBody(req)).role; return send(res, 204, null); }
  if (req.method === 'POST' && p === '/__fake/delay') { control.delayMs = (await readBody(req)).ms; return send(res, 204, null); }

  // Public stats of a shared link: no token.
  if (req.method === 'GET' && (g = m(/^\/api\/public\/([^/]+)\/page$/))) {
    if (!shares.has(decodeURIComponent(g[1]))) return error(res, 404, 'not_found');
    return send(res, 200, attention(q.get('path')));
  }
  if (req.method === 'GET' && (g = m(/^\/api\/public\/([^/]+)\/stats$/))) {
    const siteId = shares.get(decodeURIComponent(g[1]));
    if (!siteId) return error(res, 404, 'not_found', 'not found');
    if (control.delayMs) await later(control.delayMs);
    const [status, body] = stats(sites.find((s) => s.id === siteId), q);
    return send(res, status, body);
  }

  if (!p.startsWith('/api/')) return error(res, 404, 'not_found', 'not found');
  if (req.method === 'POST' && p === '/api/auth/login') {
    const b = await readBody(req);
    if (!b || typeof b.email !== 'string' || b.email.trim().toLowerCase() !== OWNER.email || b.password !== account.password) {
      return error(res, 401, 'invalid_credentials', 'email or password is wrong');
    }
    const token = `${TOKEN}-${++account.issued}`;
    account.tokens.add(token);
    return send(res, 200, { token, user: OWNER });
  }
  const bearer = (req.headers.authorization || '').replace(/^Bearer /, '');
  if (!account.tokens.has(bearer)) return error(res, 401, 'unauthorized', 'missing, invalid or ended token');
  if (req.method === 'GET' && p === '/api/auth/me') return send(res, 200, OWNER);
  if (req.method === 'POST' && p === '/api/auth/logout') {
    account.tokens.clear();
    return send(res, 204, null);
  }
  if (req.method === 'POST' && p === '/api/auth/password') {
    const b = await readBody(req);
    if (!b || typeof b !== 'object') return error(res, 400, 'invalid_request', 'body: expected a JSON object');
    const next = typeof b.new_password === 'string' ? b.new_password : '';
    if ([...next].length < 8) return error(res, 400, 'invalid_password', 'new_password: must be at least 8 characters');
    if (Buffer.byteLength(next) > 72) return error(res, 400, 'invalid_password', 'new_password: must be at most 72 bytes');
    if (b.current_password !== account.password) return error(res, 401, 'invalid_credentials', 'email or password is wrong');
    account.password = next;
    account.tokens.clear();
    return send(res, 204, null);
  }
  if (req.method === 'GET' && p === '/api/sites') return send(res, 200, sites);

  const siteOf = (id) => sites.find((s) => s.id === decodeURIComponent(id));
  const v2 = (site) => site && site.id === 'site-v2';

  if ((g = m(/^\/api\/stats\/([^/]+)$/)) && req.method === 'GET') {
    const site = siteOf(g[1]);
    if (!site) return error(res, 404, 'not_found');
    if (control.delayMs) await later(control.delayMs);
    if (control.failStats > 0) { control.failStats--; return error(res, 500, 'internal', 'internal error'); }
    const [status, body] = stats(site, q);
    return send(res, status, body);
  }
  // Teams (issue 24): site-v2 only; site-v1 answers 404 like an api before them.
  const needs = (site, role) => (RANK[site.role] >= RANK[role] ? null : 'this needs the ' + role + ' role on the site');
  if ((g = m(/^\/api\/sites\/([^/]+)\/members$/))) {
    const site = siteOf(g[1]);
    if (!v2(site)) return error(res, 404, 'not_found');
    if (needs(site, 'owner')) return error(res, 403, 'forbidden', "only the site's owner may do this");
    if (req.method === 'GET') return send(res, 200, members);
    if (req.method === 'POST') {
      const b = await readBody(req) || {};
      if (typeof b.email !== 'string' || !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(b.email.trim())) return error(res, 400, 'invalid_member', 'email: must be an email address');
      if (!['viewer', 'admin'].includes(b.role)) return error(res, 400, 'invalid_member', 'role: must be viewer or admin');
      const email = b.email.trim().toLowerCase();
      if (members.some((x) => x.email === email)) return error(res, 409, 'invalid_member', 'email: already a member or invited');
      const member = { id: 'mem-' + memberSeq++, email, role: b.role, status: 'invited', expires_at: '2026-12-12T10:00:00Z' };
      members.push(member);
      return send(res, 201, Object.assign({ invite_url: 'http://127.0.0.1/invite/site-v2.secret' + member.id }, member));
    }
  }
  if ((g = m(/^\/api\/sites\/([^/]+)\/members\/([^/]+)$/)) && req.method === 'DELETE') {
    const site = siteOf(g[1]);
    if (!v2(site) || !members.some((x) => x.id === decodeURIComponent(g[2]))) return error(res, 404, 'not_found');
    if (needs(site, 'owner')) return error(res, 403, 'forbidden', "only the site's owner may do this");
    members = members.filter((x) => x.id !== decodeURIComponent(g[2]));
    return send(res, 204, null);
  }
  if ((g = m(/^\/api\/sites\/([^/]+)\/report$/))) {
    if (!v2(siteOf(g[1]))) return error(res, 404, 'not_found');
    if (req.method === 'GET') return send(res, 200, { weekly });
    if (req.method === 'PUT') {
      const b = await readBody(req) || {};
      if (typeof b.weekly !== 'boolean') return error(res, 400, 'invalid_request', 'weekly: must be true or false');
      weekly = b.weekly;
      return send(res, 200, { weekly });
    }
  }
  if ((g = m(/^\/api\/sites\/([^/]+)\/alerts$/))) {
    const site = siteOf(g[1]);
    if (!v2(site)) return error(res, 404, 'not_found');
    if (needs(site, 'admin')) return error(res, 403, 'forbidden', 'this needs the admin role on the site');
    if (req.method === 'GET') return send(res, 200, alerts);
    if (req.method === 'POST') {
      const b = await readBody(req);
      const problem = alertProblem(b);
      if (problem) return error(res, 400, 'invalid_alert', problem);
      if (alerts.length >= 10) return error(res, 409, 'invalid_alert', 'alerts: a site has at most 10 alerts; delete one first');
      const alert = { id: 'alert-' + alertSeq++, metric: b.metric, change: b.change, percent: b.percent, window_hours: b.window_hours, created_at: '2026-02-09T09:00:00Z' };
      alerts.push(alert);
      return send(res, 201, alert);
    }
  }
  if ((g = m(/^\/api\/sites\/([^/]+)\/alerts\/([^/]+)$/)) && req.method === 'DELETE') {
    const site = siteOf(g[1]);
    if (!v2(site) || !alerts.some((x) => x.id === decodeURIComponent(g[2]))) return error(res, 404, 'not_found');
    if (needs(site, 'admin')) return error(res, 403, 'forbidden', 'this needs the admin role on the site');
    alerts = alerts.filter((x) => x.id !== decodeURIComponent(g[2]));
    return send(res, 204, null);
  }
  // Imports (v3): one finished import of a hostile-named site's history, as listed.
  if ((g = m(/^\/api\/sites\/([^/]+)\/imports$/)) && req.method === 'GET') {
    if (!siteOf(g[1])) return error(res, 404, 'not_found');
    return send(res, 200, v2(siteOf(g[1])) ? [{ id: 'imp-1', state: 'done', from: '2025-01-01', to: '2025-12-31', error: null }] : []);
  }
  if (p === '/api/keys' && req.method === 'GET') return send(res, 200, apiKeys);
  if (p === '/api/keys' && req.method === 'POST') {
    const b = await readBody(req);
    if (typeof b.name !== 'string' || !b.name.trim() || b.name.length > 100) return error(res, 400, 'invalid_request', 'name: must be 1 to 100 characters, without control characters');
    if (!(b.sites === '*' || (Array.isArray(b.sites) && b.sites.length && b.sites.every((id) => sites.some((x) => x.id === id))))) {
      return error(res, 400, 'invalid_request', 'sites: must be "*" or a list of 1 to 100 of your site ids');
    }
    if (apiKeys.length >= 20) return error(res, 400, 'invalid_request', 'a user has at most 20 Stats API keys; delete one to add another');
    const k = { id: 'key-' + apiKeySeq++, name: b.name.trim(), sites: b.sites, created_at: new Date().toISOString() };
    apiKeys.push(k);
    return send(res, 201, Object.assign({ key: 'cps_fake_' + k.id + '_' + 'x'.repeat(43) }, k));
  }
  if ((g = m(/^\/api\/keys\/([^/]+)$/)) && req.method === 'DELETE') {
    const id = decodeURIComponent(g[1]);
    if (!apiKeys.some((k) => k.id === id)) return error(res, 404, 'not_found');
    apiKeys = apiKeys.filter((k) => k.id !== id);
    return send(res, 204, null);
  }
  if ((g = m(/^\/api\/stats\/([^/]+)\/events\/([^/]+)$/)) && req.method === 'GET') {
    const site = siteOf(g[1]);
    if (!v2(site)) return error(res, 404, 'not_found');
    if (!range(q, site.timezone)) return error(res, 400, 'invalid_timeframe', 'bad range');
    const name = decodeURIComponent(g[2]);
    const count = { Signup: 321, form_submit: 280, outbound: 95 }[name] || 3;
    return send(res, 200, { name, count, props: EVENT_PROPS[name] || [] });
  }
  if ((g = m(/^\/api\/stats\/([^/]+)\/page$/)) && req.method === 'GET') {
    const site = siteOf(g[1]);
    if (!v2(site)) return error(res, 404, 'not_found');
    if (!q.get('path')) return error(res, 400, 'invalid_request', 'path: is required');
    return send(res, 200, attention(q.get('path')));
  }
  if ((g = m(/^\/api\/sites\/([^/]+)\/overlay$/)) && req.method === 'POST') {
    const site = siteOf(g[1]);
    if (!v2(site)) return error(res, 404, 'not_found');
    const b = await readBody(req);
    return send(res, 200, { url: 'https://' + site.domain + b.path + '?cp_overlay=fake-overlay-token' });
  }
  if ((g = m(/^\/api\/stats\/([^/]+)\/realtime$/)) && req.method === 'GET') {
    const site = siteOf(g[1]);
    if (!v2(site)) return error(res, 404, 'not_found');
    return send(res, 200, realtime(site));
  }
  if ((g = m(/^\/api\/stats\/([^/]+)\/export\.csv$/)) && req.method === 'GET') {
    const site = siteOf(g[1]);
    if (!v2(site)) return error(res, 404, 'not_found');
    const [status, body, name] = csv(site, q);
    if (status !== 200) return send(res, status, body);
    return send(res, 200, body, { 'Content-Type': 'text/csv; charset=utf-8', 'Content-Disposition': `attachment; filename="${name}"` });
  }
  if ((g = m(/^\/api\/sites\/([^/]+)\/goals$/))) {
    const site = siteOf(g[1]);
    if (!v2(site)) return error(res, 404, 'not_found');
    if (req.method === 'GET') return send(res, 200, goals);
    if (req.method === 'POST') {
      const b = await readBody(req);
      const problem = validateGoal(b);
      if (problem) return error(res, 400, 'invalid_goal', problem);
      if (goals.length >= 20) return error(res, 400, 'invalid_goal', 'a site has at most 20 goals');
      const goal = { id: 'goal-' + goalSeq++, name: b.name.trim(), kind: b.kind, match: b.match, created_at: new Date().toISOString(), backfilling: true };
      goals.push(goal);
      return send(res, 201, goal);
    }
  }
  if ((g = m(/^\/api\/sites\/([^/]+)\/goals\/([^/]+)$/)) && req.method === 'DELETE') {
    const site = siteOf(g[1]);
    const id = decodeURIComponent(g[2]);
    if (!v2(site) || !goals.some((x) => x.id === id)) return error(res, 404, 'not_found');
    goals = goals.filter((x) => x.id !== id);
    return send(res, 204, null);
  }
  if ((g = m(/^\/api\/stats\/([^/]+)\/funnels\/([^/]+)$/)) && req.method === 'GET') {
    const site = siteOf(g[1]);
    const f = funnels.find((x) => x.id === decodeURIComponent(g[2]));
    if (!v2(site) || !f) return error(res, 404, 'not_found');
    const [status, body] = funnelStats(f, q, site.timezone);
    return send(res, status, body);
  }
  if ((g = m(/^\/api\/sites\/([^/]+)\/(funnels|segments)$/))) {
    const site = siteOf(g[1]);
    if (!v2(site)) return error(res, 404, 'not_found');
    const isFunnel = g[2] === 'funnels';
    if (req.method === 'GET') return send(res, 200, isFunnel ? funnels : segments);
    if (req.method === 'POST') {
      const b = await readBody(req);
      const problem = isFunnel ? validateFunnel(b) : validateSegment(b);
      if (problem) return error(res, 400, isFunnel ? 'invalid_funnel' : 'invalid_segment', problem);
      const all = isFunnel ? funnels : segments;
      if (all.length >= 10) return error(res, 400, isFunnel ? 'invalid_funnel' : 'invalid_segment', `${g[2]}: a site has at most 10 ${g[2]}; delete one first`);
      const made = isFunnel
        ? { id: 'funnel-' + funnelSeq++, name: b.name.trim(), steps: b.steps.map((x) => ({ kind: x.kind, match: x.match.trim() })), created_at: new Date().toISOString(), backfilling: true }
        : { id: 'seg-' + segmentSeq++, name: b.name.trim(), filters: b.filters.map((x) => ({ dimension: x.dimension, op: x.op, value: x.value })), created_at: new Date().toISOString(), backfilling: true };
      all.push(made);
      return send(res, 201, made);
    }
  }
  if ((g = m(/^\/api\/sites\/([^/]+)\/(funnels|segments)\/([^/]+)$/)) && req.method === 'DELETE') {
    const site = siteOf(g[1]);
    const id = decodeURIComponent(g[3]);
    const all = g[2] === 'funnels' ? funnels : segments;
    if (!v2(site) || !all.some((x) => x.id === id)) return error(res, 404, 'not_found');
    if (g[2] === 'funnels') funnels = funnels.filter((x) => x.id !== id);
    else segments = segments.filter((x) => x.id !== id);
    return send(res, 204, null);
  }
  if ((g = m(/^\/api\/sites\/([^/]+)\/share$/))) {
    const site = siteOf(g[1]);
    if (!v2(site)) return error(res, 404, 'not_found');
    if (req.method === 'POST') {
      for (const [t, s] of shares) if (s === site.id) shares.delete(t);
      const token = `share-${++shareSeq}-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
      shares.set(token, site.id);
      return send(res, 200, { token, url: '/share/' + token });
    }
    if (req.method === 'DELETE') {
      let had = false;
      for (const [t, s] of shares) if (s === site.id) { shares.delete(t); had = true; }
      return had ? send(res, 204, null) : error(res, 404, 'not_found');
    }
  }
  if ((g = m(/^\/api\/sites\/([^/]+)$/))) {
    const site = siteOf(g[1]);
    if (!site) return error(res, 404, 'not_found');
    if (req.method === 'GET') return send(res, 200, site);
  }
  return error(res, 404, 'not_found', 'not found');
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((e) => { console.error(e); error(res, 500, 'internal', 'internal error'); });
});
const args = process.argv.slice(2);
server.listen(Number(args.find((a) => /^\d+$/.test(a)) || 0), '127.0.0.1', () => {
  console.log(`LISTENING http://127.0.0.1:${server.address().port}`);
});
if (args.includes('--stdin')) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
