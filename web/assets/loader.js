// Loads the figures of the current view into a stats view and keeps them fresh while the tab
// is visible. Each call asks for `compare=previous`. The dashed previous-period line needs the
// previous period's series, which the contract's `previous` (a summary) does not carry: the
// loader uses `previous.series` when the server sends it, and otherwise asks once for the
// previous range by `from`/`to` (daily views only; cached, since past days barely change).

import { $, el } from './dom.js';
import { statsQuery } from './viewstate.js';
import { isDay, previousRange } from './format.js';

/**
 * options: `view` (a stats view), `fetchStats(query)` -> Promise of stats (rejects with an
 * Error carrying `status` and `code`), `interval` (ms), `onStats(stats, fresh)`,
 * `onError(error)` -> true when the page handled it (then nothing more is shown),
 * `onFilter(change)` ({page} or {filter: 'dimension:value'}: a row was chosen).
 */
export function createLoader(options) {
  const o = options;
  const errorBox = $('stats-error');
  const updated = $('updated');
  let target = null; // {key, view}: what is being shown
  let seq = 0;
  let timer = 0;
  let stopped = false;
  let shownKey = null;
  const previousSeries = new Map();

  function showError(e) {
    errorBox.textContent = '';
    if (!e) { errorBox.hidden = true; return; }
    const stale = shownKey === target.key;
    const why = String(e.message || 'request failed').replace(/\.$/, '');
    errorBox.appendChild(el('span', (stale ? 'Could not refresh the figures: ' : 'Could not load the figures: ') + why +
      (stale ? '. Showing the last figures loaded.' : '.')));
    const retry = el('button', 'Retry', 'button small ghost');
    retry.type = 'button';
    retry.addEventListener('click', () => load(false));
    errorBox.appendChild(retry);
    errorBox.hidden = false;
  }

  function render(stats, prev, fresh) {
    o.view.render(stats, { page: target.view.page, filter: target.view.filter, onFilter: o.onFilter, previousSeries: prev });
    o.onStats(stats, fresh);
  }

  function withPrevious(stats, mine) {
    const p = stats.previous;
    if (p && Array.isArray(p.series)) return p.series;
    if (stats.granularity === 'hour' || !isDay(stats.from) || !isDay(stats.to)) return null;
    // The same page, filter and segment over the previous range.
    const view = target.view;
    const query = statsQuery(Object.assign({}, previousRange(stats.from, stats.to), { page: view.page, filter: view.filter, segment: view.segment }));
    const key = target.scope + '?' + query;
    if (previousSeries.has(key)) return previousSeries.get(key);
    o.fetchStats(query).then((prevStats) => {
      if (previousSeries.size > 20) previousSeries.clear();
      previousSeries.set(key, prevStats.series || []);
      if (mine === seq) render(stats, previousSeries.get(key), false);
    }, () => { /* the line is optional: the figures are already shown */ });
    return null;
  }

  function load(userChange) {
    clearTimeout(timer);
    if (!target || stopped) return;
    const mine = ++seq;
    const key = target.key;
    const fresh = shownKey !== key;
    if (userChange || fresh) o.view.busy();
    o.fetchStats(statsQuery(target.view, { compare: true })).then((stats) => {
      if (mine !== seq) return;
      showError(null);
      shownKey = key;
      render(stats, withPrevious(stats, mine), fresh);
      updated.textContent = 'Updated ' + new Date().toLocaleTimeString();
    }, (e) => {
      if (mine !== seq) return;
      const keep = shownKey === key;
      if (!keep) shownKey = null;
      o.view.failed(keep);
      if (!(o.onError && o.onError(e))) showError(e);
    }).then(() => { if (mine === seq) schedule(); });
  }

  function schedule() {
    clearTimeout(timer);
    if (!stopped && document.visibilityState === 'visible') timer = setTimeout(() => load(false), o.interval);
  }

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') load(false);
    else clearTimeout(timer);
  });

  return {
    /** Shows `view` of `scope` (a string naming the site); loads at once. */
    show(scope, view) {
      stopped = false;
      target = { scope, view, key: scope + '?' + statsQuery(view) };
      load(true);
    },
    refresh() { load(false); },
    stop() {
      stopped = true;
      seq++;
      clearTimeout(timer);
    },
  };
}
