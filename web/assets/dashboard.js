// The owner's dashboard: sites, snippet and key, the live view, the stats of a timeframe or a
// custom range (refreshed every 10 s while the tab is visible, compared with the previous
// period, optionally filtered to one page (with that page's on-page attention) or by a clicked
// row of a table, optionally for a saved segment), funnels, CSV export, goals, segments, the
// public link and the site's settings, and the account (log out, change the password). The
// view (site, timeframe or range, page or filter, segment) lives in the URL: it can be shared, and back/forward restore it. Every string
// that came from tracking is set as text.

import { $, el, copyText } from './dom.js';
import { request } from './http.js';
import { rangeQuery, readView, statsQuery, viewSearch, withFilter } from './viewstate.js';
import { createStatsView, suggestions } from './view.js';
import { createControls } from './controls.js';
import { createLoader } from './loader.js';
import { createLive } from './live.js';
import { createGoals } from './goals.js';
import { createSharing } from './sharing.js';
import { download, downloadCsv } from './export.js';
import { createAccount } from './account.js';
import { createAttention } from './attention.js';
import { createApiKeys } from './apikeys.js';
import { createImports } from './imports.js';
import { createTeam } from './team.js';
import { createFunnels } from './funnels.js';
import { createSegments } from './segments.js';

const STATS_EVERY_MS = 10000;
const LIVE_EVERY_MS = 5000;

function main() {
  // Replaced when a password change logs in again.
  let token = localStorage.getItem('cp_token');
  if (!token) {
    location.replace('/login?reason=signin');
    return;
  }
  const ingest = (document.querySelector('meta[name="cp-ingest"]') || {}).content || '';
  const state = { sites: [], site: null, view: readView(location.search), charts: {}, stats: null, user: null };
  window.cpDashboard = state; // read by the browser tests: what the charts were given

  // A password change ends this token and logs in again meanwhile: a refresh refused then is
  // not the end of the session.
  let renewing = false;

  // An expired, forged or ended token ends the session wherever it shows up.
  function call(path, opts) {
    const used = token;
    return request(path, Object.assign({ token: used }, opts)).catch((e) => {
      if (e.status === 401 && !renewing && used === token) {
        localStorage.removeItem('cp_token');
        location.replace('/login?reason=expired');
      }
      throw e;
    });
  }
  const siteBase = () => encodeURIComponent(state.site.id);
  function withoutSiteParts(view) {
    const v = withFilter(view, null);
    delete v.segment;
    return v;
  }

  const controls = createControls((view) => go(view, 'push'));
  const statsView = createStatsView($('stats'), {
    charts: state.charts,
    empty: $('empty'),
    filterable: true,
    fetchEvent: (name) => call('/api/stats/' + siteBase() + '/events/' + encodeURIComponent(name) + '?' + rangeQuery(state.view)),
  });
  const loader = createLoader({
    view: statsView,
    interval: STATS_EVERY_MS,
    fetchStats: (query) => call('/api/stats/' + siteBase() + '?' + query),
    onStats: (stats, fresh) => {
      state.stats = stats;
      if (fresh) controls.showRange(stats.from, stats.to);
      goals.statsChanged();
      segments.stats(stats);
      funnels.refresh();
      attention.show(state.view);
    },
    onError: (e) => e.status === 401,
    onFilter: (change) => {
      go(withFilter(state.view, change), 'push');
      $('filter-clear').focus();
    },
  });
  const live = createLive({ fetchRealtime: () => call('/api/stats/' + siteBase() + '/realtime'), charts: state.charts, interval: LIVE_EVERY_MS });
  const goals = createGoals({ call, suggestions: () => suggestions(state.stats), onChange: () => loader.refresh() });
  const sharing = createSharing({ call });
  const apiKeys = createApiKeys({ call });
  const imports = createImports({ call, download: (path, fallback) => download(path, token, fallback, '.zip'), onDone: () => loader.refresh() });
  const team = createTeam({ call });
  const funnels = createFunnels({ call, view: () => state.view });
  const segments = createSegments({
    call,
    pick: (id) => {
      const view = Object.assign({}, state.view);
      if (id) view.segment = id;
      else delete view.segment;
      go(view, 'push');
    },
  });
  const attention = createAttention({
    root: $('attention'),
    fetchPage: (query) => call('/api/stats/' + siteBase() + '/page?' + query),
    openOverlay: (path) => call('/api/sites/' + siteBase() + '/overlay', { method: 'POST', body: { path } }),
  });

  /** Shows `view` of the current site; `how` is 'push' or 'replace' for the history entry. */
  function go(view, how) {
    state.view = view;
    controls.show(view);
    segments.view(view);
    const url = location.pathname + viewSearch(view, { site: state.site.id });
    if (url !== location.pathname + location.search) {
      if (how === 'push') history.pushState(null, '', url);
      else history.replaceState(null, '', url);
    }
    loader.show(state.site.id, view);
  }

  window.addEventListener('popstate', () => {
    const view = readView(location.search);
    const id = new URLSearchParams(location.search).get('site');
    const site = state.sites.filter((s) => s.id === id)[0];
    if (site && site !== state.site) {
      state.site = site;
      state.view = view;
      $('site-select').value = site.id;
      renderSite('replace');
    } else if (state.site) {
      go(view, 'replace');
    }
  });

  // Sites
  function renderSites() {
    const sel = $('site-select');
    sel.textContent = '';
    state.sites.forEach((s) => {
      const o = el('option', s.name + ' (' + s.domain + ')');
      o.value = s.id;
      sel.appendChild(o);
    });
    const has = state.sites.length > 0;
    $('site-view').hidden = !has;
    $('create-site').hidden = has;
    sel.disabled = !has;
    if (!has) {
      loader.stop();
      live.stop();
      return;
    }
    if (!state.site || !state.sites.some((s) => s.id === state.site.id)) state.site = state.sites[0];
    else state.site = state.sites.filter((s) => s.id === state.site.id)[0];
    sel.value = state.site.id;
    renderSite('replace');
  }

  function renderSite(how) {
    const s = state.site;
    $('site-title').textContent = s.name;
    const origin = location.origin;
    $('snippet').textContent = '<script defer src="' + origin + '/convertpulse.js" data-key="' + s.api_key +
      '" data-endpoint="' + (ingest || origin) + '/api/events/batch"></script>';
    const f = $('settings-form');
    f.name.value = s.name;
    f.domain.value = s.domain;
    f.timezone.value = s.timezone;
    f.currency.value = s.currency || '';
    f.plausible.checked = !!s.plausible_compatible;
    controls.setTimeZone(s.timezone);
    state.stats = null;
    goals.show(s);
    funnels.show(s);
    segments.show(s);
    sharing.show(s);
    apiKeys.show(s, state.sites);
    imports.show(s);
    team.show(s);
    live.start();
    go(state.view, how);
  }

  function loadSites(selectId) {
    return call('/api/sites').then((sites) => {
      state.sites = sites;
      if (selectId) state.site = sites.filter((s) => s.id === selectId)[0] || null;
      renderSites();
    });
  }

  // Controls
  $('site-select').addEventListener('change', (e) => {
    state.site = state.sites.filter((s) => s.id === e.target.value)[0];
    // A page, filter or segment of one site means nothing on another.
    state.view = withoutSiteParts(state.view);
    renderSite('push');
  });
  $('export').addEventListener('click', () => {
    const button = $('export');
    const status = $('export-status');
    const s = state.stats;
    const fallback = 'convertpulse-' + state.site.domain + (s ? '-' + s.from + '-' + s.to : '');
    button.disabled = true;
    status.textContent = 'Preparing…';
    downloadCsv('/api/stats/' + siteBase() + '/export.csv?' + statsQuery(state.view), token, fallback)
      .then((name) => { status.textContent = 'Downloaded ' + name; }, (e) => { status.textContent = 'Could not export: ' + e.message; })
      .then(() => { button.disabled = false; });
  });
  $('new-site-btn').addEventListener('click', () => {
    $('create-site').hidden = false;
    $('create-form').name.focus();
  });
  function formError(form, text) { form.querySelector('.form-error').textContent = text || ''; }
  $('create-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const f = e.target;
    formError(f);
    const body = { name: f.name.value, domain: f.domain.value };
    if (f.timezone.value.trim()) body.timezone = f.timezone.value.trim();
    call('/api/sites', { method: 'POST', body })
      .then((site) => { f.reset(); $('create-site').hidden = true; return loadSites(site.id); })
      .catch((err) => formError(f, err.message));
  });
  $('settings-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const f = e.target;
    formError(f);
    const body = { name: f.name.value, domain: f.domain.value, timezone: f.timezone.value };
    if (f.currency.value.trim()) body.currency = f.currency.value.trim().toUpperCase();
    body.plausible_compatible = f.plausible.checked;
    call('/api/sites/' + siteBase(), { method: 'PATCH', body })
      .then((site) => loadSites(site.id))
      .catch((err) => formError(f, err.message));
  });
  function siteActionError(err) {
    $('banner').textContent = err.message;
    $('banner').hidden = false;
  }
  $('rotate-key').addEventListener('click', () => {
    if (!confirm('Rotate the key of "' + state.site.name + '"? The old key stops working within seconds: pages still using it stop being counted until you update their snippet.')) return;
    call('/api/sites/' + siteBase() + '/rotate-key', { method: 'POST' })
      .then((site) => loadSites(site.id))
      .catch(siteActionError);
  });
  $('delete-site').addEventListener('click', () => {
    if (!confirm('Delete "' + state.site.name + '"? Its key stops working and the site disappears from your dashboard.')) return;
    call('/api/sites/' + siteBase(), { method: 'DELETE' })
      .then(() => {
        state.site = null;
        state.view = withoutSiteParts(state.view);
        return loadSites();
      })
      .catch(siteActionError);
  });
  $('copy-snippet').addEventListener('click', () => copyText($('snippet').textContent, $('copy-status')));
  createAccount({
    token: () => token,
    setToken: (t) => {
      token = t;
      localStorage.setItem('cp_token', t);
    },
    email: () => state.user && state.user.email,
    renewing: (on) => { renewing = on; },
    leave: (reason) => {
      localStorage.removeItem('cp_token');
      location.assign('/login?reason=' + reason);
    },
  });
  const zones = Intl.supportedValuesOf ? Intl.supportedValuesOf('timeZone') : ['UTC'];
  const dl = $('tz-list');
  ['UTC'].concat(zones).forEach((z) => {
    const o = document.createElement('option');
    o.value = z;
    dl.appendChild(o);
  });

  const wanted = new URLSearchParams(location.search).get('site');
  call('/api/auth/me').then((user) => {
    state.user = user;
    return loadSites(wanted);
  }).catch((e) => {
    if (e.status !== 401) {
      $('banner').textContent = 'Cannot load your sites: ' + e.message;
      $('banner').hidden = false;
    }
  });
}

main();
