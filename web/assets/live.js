// The live view: visitors in the last 5 minutes, pageviews per minute over the last 30
// minutes and the top pages now, from `GET /api/stats/{id}/realtime`, polled every few seconds
// while the tab is visible. It covers the whole site (the realtime call takes no filter). A
// server without the realtime route (404) hides the panel.

import { $, el, messageRow } from './dom.js';
import { compact, full } from './format.js';

/** options: `fetchRealtime()` -> Promise, `charts` (Chart.js instances by id), `interval` (ms). */
export function createLive(options) {
  const o = options;
  const panel = $('live');
  const count = $('live-visitors');
  const status = $('live-status');
  const pages = $('t-live-pages');
  let timer = 0;
  let seq = 0;
  let running = false;

  function render(rt) {
    const n = Number(rt.visitors_5m) || 0;
    count.textContent = compact(n);
    count.title = full(n) + (n === 1 ? ' visitor' : ' visitors');
    status.textContent = '';
    const points = Array.isArray(rt.pageviews_30m) ? rt.pageviews_30m : [];
    const data = {
      labels: points.map((p) => String(p.minute)),
      datasets: [{ label: 'Pageviews per minute', data: points.map((p) => p.pageviews), backgroundColor: '#818cf8', borderRadius: 2 }],
    };
    const existing = o.charts['live-chart'];
    if (existing) {
      existing.data = data;
      existing.update('none');
    } else if (window.Chart) {
      o.charts['live-chart'] = new window.Chart($('live-chart'), {
        type: 'bar',
        data,
        options: {
          maintainAspectRatio: false, animation: false, plugins: { legend: { display: false } },
          scales: { x: { ticks: { maxTicksLimit: 6, maxRotation: 0 } }, y: { beginAtZero: true, ticks: { precision: 0 } } },
        },
      });
    }
    const rows = Array.isArray(rt.top_pages_5m) ? rt.top_pages_5m : [];
    if (!rows.length) {
      messageRow(pages, 'Nobody right now', 'muted', 2);
      return;
    }
    pages.textContent = '';
    rows.forEach((r) => {
      const tr = el('tr');
      tr.appendChild(el('td', r.path));
      tr.appendChild(el('td', compact(r.visitors || 0), 'num'));
      pages.appendChild(tr);
    });
  }

  function poll() {
    clearTimeout(timer);
    if (!running) return;
    const mine = ++seq;
    o.fetchRealtime().then((rt) => {
      if (mine !== seq) return;
      panel.hidden = false;
      render(rt || {});
    }, (e) => {
      if (mine !== seq) return;
      if (e.status === 404 || e.status === 405) {
        // No live view on this server (or the site is gone): nothing to poll.
        panel.hidden = true;
        running = false;
        return;
      }
      status.textContent = 'Live figures unavailable: ' + e.message + ' Retrying…';
    }).then(() => {
      if (mine === seq && running && document.visibilityState === 'visible') timer = setTimeout(poll, o.interval);
    });
  }

  document.addEventListener('visibilitychange', () => {
    if (!running) return;
    if (document.visibilityState === 'visible') poll();
    else clearTimeout(timer);
  });

  return {
    /** Starts polling for a (new) site. */
    start() {
      running = true;
      seq++;
      panel.hidden = false;
      count.textContent = '–';
      status.textContent = 'Loading…';
      messageRow(pages, 'Loading…', 'muted', 2);
      poll();
    },
    stop() {
      running = false;
      seq++;
      clearTimeout(timer);
    },
  };
}
