// The dashboard: sites, snippet and key, timeframe, stat cards, charts and tables, refreshed
// every 10 s while the tab is visible. Every string that came from tracking is set as text
// (textContent, canvas labels), never as HTML.
(function () {
  'use strict';
  var token = localStorage.getItem('cp_token');
  if (!token) { location.replace('/login?reason=signin'); return; }

  var $ = function (id) { return document.getElementById(id); };
  var ingest = (document.querySelector('meta[name="cp-ingest"]') || {}).content || '';
  var state = { sites: [], site: null, query: 'timeframe=7d', timer: 0, charts: {}, stats: null };
  window.cpDashboard = state; // read by the browser tests: what the charts were given

  function api(path, opts) {
    opts = opts || {};
    opts.headers = Object.assign({ Authorization: 'Bearer ' + token }, opts.body ? { 'Content-Type': 'application/json' } : {});
    return fetch(path, opts).then(function (r) {
      if (r.status === 401) {
        localStorage.removeItem('cp_token');
        location.replace('/login?reason=expired');
        throw new Error('unauthorized');
      }
      if (r.status === 204) return null;
      return r.json().then(function (j) {
        if (!r.ok) { var e = new Error(j.message || j.error || 'request failed'); e.code = j.error; throw e; }
        return j;
      });
    });
  }

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text != null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function fmt(n) { return Number(n).toLocaleString('en-US'); }
  function fmtTime(s) {
    s = Math.round(s);
    return s < 60 ? s + ' s' : Math.floor(s / 60) + ' m ' + (s % 60) + ' s';
  }
  function safeUrl(u) {
    try { var p = new URL(u); return p.protocol === 'http:' || p.protocol === 'https:' ? p.href : null; } catch (e) { return null; }
  }

  // Sites
  function renderSites() {
    var sel = $('site-select');
    sel.textContent = '';
    state.sites.forEach(function (s) {
      var o = el('option', s.name + ' (' + s.domain + ')');
      o.value = s.id;
      sel.appendChild(o);
    });
    var has = state.sites.length > 0;
    $('site-view').hidden = !has;
    $('create-site').hidden = has;
    sel.disabled = !has;
    if (has) {
      if (!state.site || !state.sites.some(function (s) { return s.id === state.site.id; })) state.site = state.sites[0];
      sel.value = state.site.id;
      renderSite();
    }
  }

  function renderSite() {
    var s = state.site;
    $('site-title').textContent = s.name;
    var origin = location.origin;
    $('snippet').textContent = '<script defer src="' + origin + '/convertpulse.js" data-key="' + s.api_key +
      '" data-endpoint="' + (ingest || origin) + '/api/events/batch"></script>';
    var f = $('settings-form');
    f.name.value = s.name; f.domain.value = s.domain; f.timezone.value = s.timezone;
    refresh();
  }

  function loadSites(selectId) {
    return api('/api/sites').then(function (sites) {
      state.sites = sites;
      if (selectId) state.site = sites.filter(function (s) { return s.id === selectId; })[0] || null;
      renderSites();
    });
  }

  // Stats
  function setCards(sum) {
    $('c-pageviews').textContent = fmt(sum.pageviews);
    $('c-visitors').textContent = fmt(sum.visitors);
    $('c-sessions').textContent = fmt(sum.sessions);
    $('c-clicks').textContent = fmt(sum.clicks);
    $('c-scroll').textContent = Math.round(sum.avg_scroll_depth) + '%';
    $('c-time').textContent = fmtTime(sum.avg_time_seconds);
  }

  function fillTable(id, rows, cells) {
    var body = $(id);
    body.textContent = '';
    if (!rows.length) {
      var tr = el('tr');
      var td = el('td', 'Nothing yet', 'muted');
      td.colSpan = cells(rows[0] || {}).length;
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    rows.forEach(function (r) {
      var tr = el('tr');
      cells(r).forEach(function (c) { tr.appendChild(c); });
      body.appendChild(tr);
    });
  }

  function chart(id, config) {
    if (!window.Chart) return;
    var existing = state.charts[id];
    if (existing) {
      existing.data = config.data;
      existing.update('none');
      return;
    }
    state.charts[id] = new window.Chart($(id), config);
  }

  function render(stats) {
    state.stats = stats;
    setCards(stats.summary);
    var empty = stats.summary.pageviews === 0 && stats.summary.clicks === 0;
    $('empty').hidden = !empty;
    var labels = stats.series.map(function (p) { return stats.granularity === 'hour' ? p.start.slice(11) : p.start.slice(5); });
    chart('series-chart', {
      type: 'line',
      data: {
        labels: labels,
        datasets: [
          { label: 'Pageviews', data: stats.series.map(function (p) { return p.pageviews; }), borderColor: '#4f46e5', backgroundColor: 'rgba(79,70,229,.12)', fill: true, tension: .3 },
          { label: 'Visitors', data: stats.series.map(function (p) { return p.visitors; }), borderColor: '#0ea5e9', tension: .3 },
          { label: 'Clicks', data: stats.series.map(function (p) { return p.clicks; }), borderColor: '#f59e0b', tension: .3 }
        ]
      },
      options: { maintainAspectRatio: false, animation: false, interaction: { mode: 'index', intersect: false }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
    chart('scroll-chart', {
      type: 'doughnut',
      data: {
        labels: stats.scroll_distribution.map(function (b) { return b.bucket + '%'; }),
        datasets: [{ data: stats.scroll_distribution.map(function (b) { return b.pageviews; }), backgroundColor: ['#e0e7ff', '#a5b4fc', '#818cf8', '#6366f1', '#4338ca'] }]
      },
      options: { maintainAspectRatio: false, animation: false, plugins: { legend: { position: 'bottom' } } }
    });
    chart('clicks-chart', {
      type: 'bar',
      data: {
        labels: stats.top_clicks.map(function (c) { return c.text ? c.text : c.selector; }),
        datasets: [{ label: 'Clicks', data: stats.top_clicks.map(function (c) { return c.clicks; }), backgroundColor: '#6366f1' }]
      },
      options: { maintainAspectRatio: false, animation: false, indexAxis: 'y', plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
    fillTable('t-pages', stats.top_pages, function (r) { return [el('td', r.path), el('td', fmt(r.pageviews || 0), 'num')]; });
    fillTable('t-referrers', stats.top_referrers, function (r) {
      var td = el('td');
      var href = r.source && r.source.indexOf('.') > 0 ? safeUrl('https://' + r.source) : null;
      if (href) {
        var a = el('a', r.source);
        a.href = href; a.rel = 'noopener noreferrer nofollow'; a.target = '_blank';
        td.appendChild(a);
      } else {
        td.textContent = r.source || '';
      }
      return [td, el('td', fmt(r.visits || 0), 'num')];
    });
    fillTable('t-clicks', stats.top_clicks, function (r) {
      return [el('td', r.selector, 'mono'), el('td', r.text), el('td', fmt(r.clicks || 0), 'num')];
    });
    $('updated').textContent = 'Updated ' + new Date().toLocaleTimeString();
  }

  function refresh() {
    clearTimeout(state.timer);
    if (!state.site) return;
    var siteId = state.site.id;
    api('/api/stats/' + encodeURIComponent(siteId) + '?' + state.query)
      .then(function (stats) { if (state.site && state.site.id === siteId) { $('stats-error').textContent = ''; render(stats); } })
      .catch(function (e) { if (e.message !== 'unauthorized') $('stats-error').textContent = e.message; })
      .then(schedule);
  }

  // Near-real-time while visible; paused while hidden.
  function schedule() {
    clearTimeout(state.timer);
    if (document.visibilityState === 'visible') state.timer = setTimeout(refresh, 10000);
  }
  document.addEventListener('visibilitychange', function () {
    if (document.visibilityState === 'visible') refresh(); else clearTimeout(state.timer);
  });

  // Controls
  $('site-select').addEventListener('change', function () {
    state.site = state.sites.filter(function (s) { return s.id === this.value; }, this)[0];
    renderSite();
  });
  document.querySelectorAll('[data-tf]').forEach(function (b) {
    b.addEventListener('click', function () {
      document.querySelectorAll('[data-tf]').forEach(function (x) { x.setAttribute('aria-pressed', 'false'); });
      b.setAttribute('aria-pressed', 'true');
      state.query = 'timeframe=' + b.getAttribute('data-tf');
      refresh();
    });
  });
  $('range-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var f = e.target;
    document.querySelectorAll('[data-tf]').forEach(function (x) { x.setAttribute('aria-pressed', 'false'); });
    state.query = 'from=' + encodeURIComponent(f.from.value) + '&to=' + encodeURIComponent(f.to.value);
    refresh();
  });
  $('new-site-btn').addEventListener('click', function () {
    $('create-site').hidden = false;
    $('create-form').name.focus();
  });
  function formError(form, text) { form.querySelector('.form-error').textContent = text || ''; }
  $('create-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var f = e.target;
    formError(f);
    var body = { name: f.name.value, domain: f.domain.value };
    if (f.timezone.value.trim()) body.timezone = f.timezone.value.trim();
    api('/api/sites', { method: 'POST', body: JSON.stringify(body) })
      .then(function (site) { f.reset(); $('create-site').hidden = true; return loadSites(site.id); })
      .catch(function (err) { formError(f, err.message); });
  });
  $('settings-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var f = e.target;
    formError(f);
    api('/api/sites/' + encodeURIComponent(state.site.id), { method: 'PATCH', body: JSON.stringify({ name: f.name.value, domain: f.domain.value, timezone: f.timezone.value }) })
      .then(function (site) { return loadSites(site.id); })
      .catch(function (err) { formError(f, err.message); });
  });
  $('rotate-key').addEventListener('click', function () {
    if (!confirm('Rotate the key of "' + state.site.name + '"? The old key stops working within seconds: pages still using it stop being counted until you update their snippet.')) return;
    api('/api/sites/' + encodeURIComponent(state.site.id) + '/rotate-key', { method: 'POST' })
      .then(function (site) { return loadSites(site.id); })
      .catch(function (err) { $('stats-error').textContent = err.message; });
  });
  $('delete-site').addEventListener('click', function () {
    if (!confirm('Delete "' + state.site.name + '"? Its key stops working and the site disappears from your dashboard.')) return;
    api('/api/sites/' + encodeURIComponent(state.site.id), { method: 'DELETE' })
      .then(function () { state.site = null; return loadSites(); })
      .catch(function (err) { $('stats-error').textContent = err.message; });
  });
  $('copy-snippet').addEventListener('click', function () {
    var text = $('snippet').textContent;
    var done = function () { $('copy-status').textContent = 'Copied'; setTimeout(function () { $('copy-status').textContent = ''; }, 2000); };
    if (navigator.clipboard) navigator.clipboard.writeText(text).then(done, function () { $('copy-status').textContent = 'Select the text and copy it'; });
  });
  $('logout').addEventListener('click', function () {
    localStorage.removeItem('cp_token');
    location.assign('/login?reason=logout');
  });
  var zones = (Intl.supportedValuesOf ? Intl.supportedValuesOf('timeZone') : ['UTC']);
  var dl = $('tz-list');
  ['UTC'].concat(zones).forEach(function (z) { var o = document.createElement('option'); o.value = z; dl.appendChild(o); });

  api('/api/auth/me').then(function () { return loadSites(); }).catch(function (e) {
    if (e.message !== 'unauthorized') { $('banner').textContent = 'Cannot load your sites: ' + e.message; $('banner').hidden = false; }
  });
})();
