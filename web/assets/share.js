// The read-only shared dashboard at /share/{token}: the same figures as the owner's
// dashboard, from `GET /api/public/{token}/stats`, with no site settings, key, snippet, goal
// editing, export or live view. It never reads or sends the owner's session token. A revoked or
// unknown token (404) shows that the link is no longer valid.

import { $ } from './dom.js';
import { request } from './http.js';
import { rangeQuery, readView, viewSearch, withFilter } from './viewstate.js';
import { createStatsView } from './view.js';
import { createControls } from './controls.js';
import { createLoader } from './loader.js';
import { createAttention } from './attention.js';

// Public stats are rate-limited: a slower refresh than the owner's.
const STATS_EVERY_MS = 30000;

function main() {
  const parts = location.pathname.split('/');
  let token = '';
  try { token = decodeURIComponent(parts[2] || ''); } catch (e) { token = ''; }
  const state = { view: readView(location.search), charts: {}, stats: null };
  window.cpDashboard = state; // read by the browser tests

  function invalid() {
    loader.stop();
    $('site-view').hidden = true;
    $('invalid').hidden = false;
    document.title = 'Link no longer valid — ConvertPulse';
  }

  const controls = createControls((view) => go(view, 'push'));
  // Read-only: no overlay from a shared link.
  const attention = createAttention({
    root: $('attention'),
    fetchPage: (query) => request('/api/public/' + encodeURIComponent(token) + '/page?' + query),
    openOverlay: null,
  });
  const statsView = createStatsView($('stats'), {
    charts: state.charts,
    empty: $('empty'),
    filterable: true,
    fetchEvent: (name) => request('/api/public/' + encodeURIComponent(token) + '/events/' + encodeURIComponent(name) + '?' + rangeQuery(state.view)),
  });
  const loader = createLoader({
    view: statsView,
    interval: STATS_EVERY_MS,
    fetchStats: (query) => request('/api/public/' + encodeURIComponent(token) + '/stats?' + query),
    onStats: (stats, fresh) => {
      state.stats = stats;
      if (fresh) {
        controls.setTimeZone(stats.timezone);
        controls.showRange(stats.from, stats.to);
      }
      attention.show(state.view);
    },
    onError: (e) => {
      if (e.status !== 404) return false;
      invalid();
      return true;
    },
    onFilter: (change) => {
      go(withFilter(state.view, change), 'push');
      $('filter-clear').focus();
    },
  });

  function go(view, how) {
    state.view = view;
    controls.show(view);
    const url = location.pathname + viewSearch(view);
    if (url !== location.pathname + location.search) {
      if (how === 'push') history.pushState(null, '', url);
      else history.replaceState(null, '', url);
    }
    loader.show('public', view);
  }
  window.addEventListener('popstate', () => go(readView(location.search), 'replace'));

  if (!token) invalid();
  else go(state.view, 'replace');
}

main();
