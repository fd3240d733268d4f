// What the dashboard shows (a timeframe or a custom range, an optional page filter or one-click
// filter, and an optional saved segment), read from and written to the page URL so a view is
// shareable and back/forward restore it, and the query string the stats, public stats and
// export calls take.
//
// A page filter (`page=/path`) and a one-click filter (`filter=dimension:value`) replace each
// other: the api refuses both at once. A segment combines with either.

import { rangeProblem, todayIn } from './format.js';

export const TIMEFRAMES = ['24h', '7d', '30d', '90d'];
export const DEFAULT_TIMEFRAME = '7d';

/** The dimensions a one-click filter (and a segment condition) can name, with their labels. */
export const DIMENSIONS = {
  source: 'Source', campaign: 'Campaign', medium: 'Medium', variant: 'Variant', country: 'Country',
  device: 'Device', browser: 'Browser', os: 'OS', entry_page: 'Entry page',
};

// While reading a URL the site's time zone may not be known yet: accept any date that is
// already today somewhere (the server checks again).
const LATEST_TODAY = () => todayIn('Pacific/Kiritimati');

/** `dimension:value` split, or null when it names no known dimension or no value. */
export function parseFilter(raw) {
  const s = String(raw == null ? '' : raw);
  const at = s.indexOf(':');
  if (at <= 0) return null;
  const dimension = s.slice(0, at);
  const value = s.slice(at + 1);
  if (!Object.prototype.hasOwnProperty.call(DIMENSIONS, dimension) || !value) return null;
  return { dimension, value };
}

/** The view in a query string: {timeframe} or {from, to}, plus {page} or {filter}, and {segment}. */
export function readView(search) {
  const q = new URLSearchParams(search);
  const view = {};
  const from = q.get('from');
  const to = q.get('to');
  if (from && to && !rangeProblem(from, to, LATEST_TODAY())) {
    view.from = from;
    view.to = to;
  } else {
    const tf = q.get('timeframe');
    view.timeframe = TIMEFRAMES.indexOf(tf) >= 0 ? tf : DEFAULT_TIMEFRAME;
  }
  const page = q.get('page');
  const filter = q.get('filter');
  if (page) view.page = page;
  else if (parseFilter(filter)) view.filter = filter;
  const segment = q.get('segment');
  if (segment) view.segment = segment;
  return view;
}

/** `view` with `change` ({page} or {filter}) applied: the one set replaces the other. */
export function withFilter(view, change) {
  const v = Object.assign({}, view);
  delete v.page;
  delete v.filter;
  if (change && change.page) v.page = change.page;
  else if (change && change.filter) v.filter = change.filter;
  return v;
}

/** The view's range only: {timeframe} or {from, to}. */
export function rangeOf(view) {
  return view.from ? { from: view.from, to: view.to } : { timeframe: view.timeframe || DEFAULT_TIMEFRAME };
}

/**
 * The query of a stats call: `page` or `filter`, then `segment`, then `compare=previous`, then
 * the range (in that order).
 */
export function statsQuery(view, opts) {
  const q = new URLSearchParams();
  if (view.page) q.set('page', view.page);
  else if (view.filter) q.set('filter', view.filter);
  if (view.segment) q.set('segment', view.segment);
  if (opts && opts.compare) q.set('compare', 'previous');
  rangeParams(view, q);
  return q.toString();
}

/** The range part of a query alone (`timeframe=7d` or `from=…&to=…`). */
export function rangeQuery(view) {
  const q = new URLSearchParams();
  rangeParams(view, q);
  return q.toString();
}

function rangeParams(view, q) {
  if (view.from) {
    q.set('from', view.from);
    q.set('to', view.to);
  } else {
    q.set('timeframe', view.timeframe || DEFAULT_TIMEFRAME);
  }
}

/** The page's own query string for `view` (`extra` first, e.g. {site: id}). */
export function viewSearch(view, extra) {
  const q = new URLSearchParams();
  Object.keys(extra || {}).forEach((k) => { if (extra[k] != null) q.set(k, extra[k]); });
  rangeParams(view, q);
  if (view.page) q.set('page', view.page);
  else if (view.filter) q.set('filter', view.filter);
  if (view.segment) q.set('segment', view.segment);
  return '?' + q.toString();
}

export function sameView(a, b) {
  return ['timeframe', 'from', 'to', 'page', 'filter', 'segment'].every((k) => (a[k] || '') === (b[k] || ''));
}
