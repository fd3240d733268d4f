// What the dashboard shows (a timeframe or a custom range, and an optional page filter), read
// from and written to the page URL so a view is shareable and back/forward restore it, and the
// query string the stats, public stats and export calls take.

import { rangeProblem, todayIn } from './format.js';

export const TIMEFRAMES = ['24h', '7d', '30d', '90d'];
export const DEFAULT_TIMEFRAME = '7d';

// While reading a URL the site's time zone may not be known yet: accept any date that is
// already today somewhere (the server checks again).
const LATEST_TODAY = () => todayIn('Pacific/Kiritimati');

/** The view in a query string: {timeframe} or {from, to}, plus {page} when filtered. */
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
  if (page) view.page = page;
  return view;
}

/** The query of a stats call: `page`, then `compare=previous`, then the range (in that order). */
export function statsQuery(view, opts) {
  const q = new URLSearchParams();
  if (view.page) q.set('page', view.page);
  if (opts && opts.compare) q.set('compare', 'previous');
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
  return '?' + q.toString();
}

export function sameView(a, b) {
  return (a.timeframe || '') === (b.timeframe || '') && (a.from || '') === (b.from || '') &&
    (a.to || '') === (b.to || '') && (a.page || '') === (b.page || '');
}
