// On-page attention of one page (the page filter's drill-down), from `GET .../page?path=`:
// how far its visitors scrolled, which sections they saw and for how long, which calls to
// action they saw and clicked, where they clicked (a 20 × 50 map of the page), where clicks
// raged or did nothing, and which forms were started, sent or left at which field. The owner
// also gets "Open overlay", which paints the same over the live page. Every string that came
// from tracking is set as text.

import { el } from './dom.js';
import { full, percent } from './format.js';
import { statsQuery, rangeOf } from './viewstate.js';

/**
 * options: `root` (an empty element), `fetchPage(query)` -> Promise of the page view (rejects
 * with an Error carrying `message`), `openOverlay(path)` -> Promise of {url}, or null where
 * there is no overlay (a shared link).
 */
export function createAttention(options) {
  const o = options;
  const root = o.root;
  let shown = null; // the query being shown
  let seq = 0;

  function table(caption, heads, rows, empty) {
    const box = el('div', null, 'attention-block');
    box.appendChild(el('h3', caption));
    if (!rows.length) {
      box.appendChild(el('p', empty, 'muted'));
      return box;
    }
    const wrap = el('div', null, 'table-wrap');
    const t = el('table');
    const head = el('tr');
    heads.forEach((h, i) => {
      const th = el('th', h);
      th.scope = 'col';
      if (i > 0) th.className = 'num';
      head.appendChild(th);
    });
    t.appendChild(el('thead')).appendChild(head);
    const body = t.appendChild(el('tbody'));
    rows.forEach((cells) => {
      const tr = el('tr');
      cells.forEach((c, i) => tr.appendChild(el('td', c, i > 0 ? 'num' : 'mono')));
      body.appendChild(tr);
    });
    wrap.appendChild(t);
    box.appendChild(wrap);
    return box;
  }

  function scrollMap(view) {
    const box = el('div', null, 'attention-block');
    box.appendChild(el('h3', 'Scroll reach'));
    const list = el('ol', null, 'scroll-map');
    list.setAttribute('aria-label', 'Share of pageviews that reached each depth of the page');
    view.scroll_map.forEach((n, i) => {
      const share = view.pageviews > 0 ? n / view.pageviews : 0;
      const li = el('li');
      li.appendChild(el('span', (i + 1) * 5 + '%', 'depth'));
      const bar = el('span', null, 'reach');
      bar.style.setProperty('--share', Math.min(100, share * 100).toFixed(1) + '%');
      li.appendChild(bar);
      li.appendChild(el('span', percent(share), 'reach-share'));
      list.appendChild(li);
    });
    box.appendChild(list);
    return box;
  }

  function clickMap(view) {
    const box = el('div', null, 'attention-block');
    box.appendChild(el('h3', 'Where visitors click'));
    const m = view.click_map;
    const canvas = el('canvas', null, 'click-map');
    canvas.width = m.cols * 10;
    canvas.height = m.rows * 6;
    const total = m.cells.reduce((s, c) => s + c[2], 0);
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', full(total) + ' clicks mapped over the page, top to bottom');
    const g = canvas.getContext('2d');
    if (g) {
      const max = m.cells.reduce((s, c) => Math.max(s, c[2]), 1);
      m.cells.forEach((c) => {
        g.fillStyle = 'rgba(220, 38, 38, ' + (0.15 + 0.85 * c[2] / max).toFixed(2) + ')';
        g.fillRect(c[0] * 10, c[1] * 6, 10, 6);
      });
    }
    box.appendChild(canvas);
    if (!total) box.appendChild(el('p', 'No clicks with a position yet.', 'muted'));
    return box;
  }

  function render(view) {
    root.textContent = '';
    const head = el('div', null, 'attention-head');
    head.appendChild(el('h2', 'On-page attention · ' + view.path));
    if (o.openOverlay) {
      const button = el('button', 'Open overlay on my page', 'button ghost small');
      button.type = 'button';
      button.dataset.minRole = 'admin';
      const status = el('span', '', 'muted');
      status.setAttribute('role', 'status');
      button.addEventListener('click', () => {
        status.textContent = 'Opening…';
        o.openOverlay(view.path).then((r) => {
          status.textContent = '';
          window.open(r.url, '_blank', 'noopener');
        }, (e) => { status.textContent = 'Could not open the overlay: ' + e.message; });
      });
      head.appendChild(button);
      head.appendChild(status);
    }
    root.appendChild(head);
    root.appendChild(el('p', full(view.pageviews) + ' pageviews by ' + full(view.visitors) + ' visitors', 'muted'));
    const grid = el('div', null, 'attention-grid');
    grid.appendChild(scrollMap(view));
    const sections = table('Sections seen, in page order', ['Section', 'Viewers', 'Seen by', 'Avg visible'],
      view.sections.map((s) => [s.name, full(s.viewers), percent(s.view_rate), s.avg_visible_seconds.toFixed(1) + ' s']),
      'No tracked sections seen yet: mark them with data-cp-section="name".');
    // Each section's row is a bar as long as its view rate.
    sections.querySelectorAll('tbody tr').forEach((tr, i) => {
      tr.firstChild.classList.add('bar');
      tr.firstChild.style.setProperty('--share', Math.min(100, view.sections[i].view_rate * 100).toFixed(1) + '%');
    });
    grid.appendChild(sections);
    grid.appendChild(table('Calls to action', ['Element', 'Viewers', 'Clickers', 'Click-through'],
      view.ctas.map((c) => [c.text ? c.selector + ' — ' + c.text : c.selector, full(c.viewers), full(c.clickers), percent(c.ctr)]),
      'No calls to action seen yet.'));
    grid.appendChild(clickMap(view));
    grid.appendChild(table('Rage clicks', ['Element', 'Bursts'], view.rage_clicks.map((r) => [r.selector, full(r.count)]),
      'No rage clicks.'));
    grid.appendChild(table('Dead clicks', ['Element', 'Clicks'], view.dead_clicks.map((r) => [r.selector, full(r.count)]),
      'No dead clicks.'));
    grid.appendChild(table('Forms: started, sent, and where the rest left', ['Form', 'Started', 'Sent', 'Left at'],
      view.forms.map((f) => [f.form, full(f.starts), full(f.submits),
        f.abandons.length ? f.abandons.map((a) => a.field + ' (' + full(a.count) + ')').join(', ') : '—']),
      'No form activity.'));
    root.appendChild(grid);
  }

  return {
    /** Shows the attention of `view.page` over the view's range, or hides when unfiltered. */
    show(view) {
      if (!view.page) {
        root.hidden = true;
        shown = null;
        return;
      }
      const query = 'path=' + encodeURIComponent(view.page) + '&' + statsQuery(rangeOf(view));
      if (shown !== query) {
        root.textContent = '';
        root.appendChild(el('p', 'Loading on-page attention…', 'muted'));
      }
      shown = query;
      root.hidden = false;
      const mine = ++seq;
      o.fetchPage(query).then((page) => { if (mine === seq) render(page); }, (e) => {
        if (mine !== seq) return;
        // A server without the attention view (before v3): nothing to show.
        if (e.status === 404) { root.hidden = true; return; }
        root.textContent = '';
        root.appendChild(el('p', 'Could not load the on-page attention: ' + e.message, 'alert'));
      });
    },
  };
}
