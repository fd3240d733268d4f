// The stats part of a dashboard, shared by the owner's dashboard and the read-only shared page:
// stat cards with their change against the previous period, the traffic chart (with the
// previous period as a dashed line), scroll and click charts, and the tables. Built from the
// specs below into an empty container; a figure or table the server does not send (an older
// api without the v2 fields) is hidden rather than shown as zero.
//
// A row of a table whose key is a session attribution (sources, campaigns, mediums, variants,
// countries, devices, browsers, OS) is a one-click filter: choosing it asks for
// `filter=dimension:value`; a top page's row asks for the page filter. Under a one-click filter
// the api answers the summary, the series, goals and top pages only: the other tables are
// hidden and one line says they are not available with a filter (never a "nothing yet").
//
// Every string that came from tracking (paths, selectors, texts, sources, campaigns, mediums,
// variants, event names, countries, goal names) is set with textContent or handed to the
// charts as a plain label; links are built only for http(s) URLs.

import { el, messageRow } from './dom.js';
import { compact, full, duration, percent, ratio, change, countryName, money, hasMoney } from './format.js';

const BRAND = '#4f46e5';

/** The summary of the previous period: `previous` itself, or `previous.summary`. */
export function previousSummary(stats) {
  const p = stats && stats.previous;
  if (!p || typeof p !== 'object') return null;
  return p.summary && typeof p.summary === 'object' ? p.summary : p;
}

const CARDS = [
  { key: 'pageviews', id: 'pageviews', label: 'Pageviews' },
  { key: 'visitors', id: 'visitors', label: 'Visitors' },
  { key: 'sessions', id: 'sessions', label: 'Sessions' },
  { key: 'bounce_rate', id: 'bounce-rate', label: 'Bounce rate', kind: 'rate', lowerIsBetter: true },
  { key: 'avg_time_seconds', id: 'time', label: 'Avg time', title: 'Average engaged time per pageview', show: duration, exact: (v) => (Math.round(v * 10) / 10) + ' s' },
  { key: 'avg_scroll_depth', id: 'scroll', label: 'Avg scroll', title: 'Average maximum scroll depth per pageview', show: (v) => Math.round(v) + '%', exact: (v) => (Math.round(v * 10) / 10) + '%' },
  { key: 'clicks', id: 'clicks', label: 'Clicks' },
  { key: 'conversions', id: 'conversions', label: 'Conversions' },
  { key: 'conversion_rate', id: 'conversion-rate', label: 'Conv. rate', title: 'Conversion rate: sessions that completed a goal / sessions', kind: 'rate' },
  // Revenue per currency, never converted; shown once any came in (v3).
  { key: 'revenue', id: 'revenue', label: 'Revenue', title: 'Revenue per currency, never converted', show: money, exact: money, money: true },
];

function showCard(card, v) {
  if (card.show) return card.show(v);
  return card.kind === 'rate' ? percent(v) : compact(v);
}
function exactCard(card, v) {
  if (card.exact) return card.exact(v);
  return card.kind === 'rate' ? percent(v) : full(v);
}

const DEVICE_NAMES = { desktop: 'Desktop', mobile: 'Mobile', tablet: 'Tablet' };

// Columns: {head, title?, text: row -> string, cls?} | {head, count: row -> number} |
// {head, rate: row -> fraction} | {head, cell: (row, ctx) -> td}; `conv: true` only when the
// server sends conversions.
const conversionColumns = [
  { head: 'Conv.', title: 'Conversions: sessions that completed a goal', count: (r) => r.conversions, conv: true },
  { head: 'CR', title: 'Conversion rate: conversions / visits', text: (r) => ratio(r.conversions, r.visits), num: true, conv: true },
];
// v3: revenue per currency, and the first conversions by time since the first pageview as a
// small histogram; shown when the server sends them and any came in.
const revenueColumn = { head: 'Revenue', title: 'Revenue of these sessions, per currency (never converted)', text: (r) => money(r.revenue), num: true, rev: true };
const ttcColumn = { head: 'Time to conv.', title: 'First conversions by time since the first pageview: <10s, 10-30s, 30s-1m, 1-5m, 5-30m, 30m-2h, >2h', cell: ttcCell, ttc: true };
export const TTC_LABELS = ['<10s', '10-30s', '30s-1m', '1-5m', '5-30m', '30m-2h', '>2h'];
const TABLES = [
  {
    key: 'top_pages', id: 'pages', title: 'Top pages', measure: (r) => r.pageviews, hint: 'Select a page to see the whole dashboard for it alone.',
    choose: (r) => ({ page: r.path }), keep: true,
    columns: [{ head: 'Path', cell: filterCell((r) => r.path, 'Show only this page') }, { head: 'Pageviews', count: (r) => r.pageviews }],
  },
  {
    key: 'top_referrers', id: 'referrers', title: 'Sources', measure: (r) => r.visits,
    dimension: 'source', value: (r) => r.source,
    columns: [{ head: 'Source', cell: sourceCell }, { head: 'Visits', count: (r) => r.visits }].concat(conversionColumns, [revenueColumn, ttcColumn]),
  },
  {
    key: 'goals', id: 'goals', title: 'Goals', measure: (r) => r.conversions, empty: 'No goals yet.', optional: true, keep: true,
    columns: [{ head: 'Goal', text: (r) => r.name }, { head: 'Conv.', title: 'Conversions: sessions that completed the goal', count: (r) => r.conversions }, { head: 'Rate', title: 'Share of sessions that completed the goal', rate: (r) => r.rate },
      { head: 'Revenue', title: 'Revenue of the events completing the goal, per currency', text: (r) => money(r.revenue), num: true, rev: true }],
  },
  {
    key: 'top_campaigns', id: 'campaigns', title: 'Campaigns', measure: (r) => r.visits, empty: 'No visits with utm_campaign yet.', optional: true,
    dimension: 'campaign', value: (r) => r.name,
    columns: [{ head: 'Campaign', text: (r) => r.name }, { head: 'Visits', count: (r) => r.visits }].concat(conversionColumns, [revenueColumn, ttcColumn]),
  },
  {
    key: 'top_mediums', id: 'mediums', title: 'Mediums', measure: (r) => r.visits, empty: 'No visits with utm_medium yet.', optional: true,
    dimension: 'medium', value: (r) => r.name,
    columns: [{ head: 'Medium', text: (r) => r.name }, { head: 'Visits', count: (r) => r.visits }].concat(conversionColumns, [revenueColumn]),
  },
  {
    key: 'variants', id: 'variants', title: 'A/B variants', measure: (r) => r.visits, empty: 'No visits with a variant yet.', optional: true,
    dimension: 'variant', value: (r) => r.variant,
    columns: [{ head: 'Variant', text: (r) => r.variant }, { head: 'Visits', count: (r) => r.visits }, { head: 'Conv.', title: 'Conversions', count: (r) => r.conversions }, { head: 'Rate', title: 'Conversion rate: conversions / visits', rate: (r) => r.rate },
      { head: '95% interval', title: 'Where the true conversion rate lies, 19 times out of 20 (Wilson)', cell: intervalCell, exp: true },
      { head: 'Chance to beat control', title: 'The probability that the variant\'s true rate is higher than the control\'s', cell: chanceCell, exp: true },
      revenueColumn, ttcColumn],
  },
  {
    key: 'top_entry_pages', id: 'entry-pages', title: 'Entry pages', measure: (r) => r.visits, empty: 'No sessions yet.', optional: true,
    choose: (r) => ({ page: r.path }),
    columns: [{ head: 'Path', cell: filterCell((r) => r.path, 'Show only this page') }, { head: 'Visits', count: (r) => r.visits },
      { head: 'Conv.', title: 'Conversions: sessions that started here and completed a goal', count: (r) => r.conversions, conv: true },
      { head: 'Bounce', title: 'Bounce rate of the sessions that started here', rate: (r) => r.bounce_rate }],
  },
  {
    key: 'top_exit_pages', id: 'exit-pages', title: 'Exit pages', measure: (r) => r.exits, empty: 'No sessions yet.', optional: true,
    choose: (r) => ({ page: r.path }),
    columns: [{ head: 'Path', cell: filterCell((r) => r.path, 'Show only this page') }, { head: 'Exits', title: 'Sessions whose last page this was', count: (r) => r.exits }],
  },
  {
    key: 'top_events', id: 'events', title: 'Custom events', measure: (r) => r.count, empty: 'No custom events yet.', optional: true, drill: true,
    columns: [{ head: 'Event', text: (r) => r.name }, { head: 'Count', count: (r) => r.count }],
  },
  {
    key: 'top_clicks', id: 'clicks', title: 'Top clicks', measure: (r) => r.clicks,
    columns: [{ head: 'Element', text: (r) => r.selector, cls: 'mono' }, { head: 'Text', text: (r) => r.text }, { head: 'Clicks', count: (r) => r.clicks }],
  },
  {
    key: 'top_devices', id: 'devices', title: 'Devices', measure: (r) => r.visits, optional: true,
    dimension: 'device', value: (r) => r.name,
    columns: [{ head: 'Device', text: (r) => DEVICE_NAMES[r.name] || r.name }, { head: 'Visits', count: (r) => r.visits }],
  },
  {
    key: 'top_browsers', id: 'browsers', title: 'Browsers', measure: (r) => r.visits, optional: true,
    dimension: 'browser', value: (r) => r.name,
    columns: [{ head: 'Browser', text: (r) => r.name }, { head: 'Visits', count: (r) => r.visits }],
  },
  {
    key: 'top_os', id: 'os', title: 'Operating systems', measure: (r) => r.visits, optional: true,
    dimension: 'os', value: (r) => r.name,
    columns: [{ head: 'OS', text: (r) => r.name }, { head: 'Visits', count: (r) => r.visits }],
  },
  {
    key: 'top_countries', id: 'countries', title: 'Countries', measure: (r) => r.visits, optional: true,
    dimension: 'country', value: (r) => r.country,
    columns: [{ head: 'Country', cell: countryCell }, { head: 'Visits', count: (r) => r.visits }],
  },
];

function isOther(v) { return v === '(other)'; }

function shorten(s, n) {
  s = String(s == null ? '' : s);
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

/**
 * The first cell of a row, `text(r)`: a real button (reachable with Tab, activated with Enter
 * or Space) when the row can filter (`ctx.choice(r)`). The row's own click handler (for a click
 * anywhere on the row) receives this click as it bubbles.
 */
function filterCell(text, title) {
  return (r, ctx) => {
    const td = el('td');
    const shown = text(r);
    if (!ctx.choice || !ctx.choice(r)) {
      td.textContent = shown;
      if (isOther(shown)) td.className = 'other';
      return td;
    }
    const b = el('button', shown, 'row-filter');
    b.type = 'button';
    b.title = title;
    if (ctx.active(r)) b.setAttribute('aria-current', 'true');
    td.appendChild(b);
    return td;
  };
}

function sourceCell(r, ctx) {
  const source = r.source == null ? '' : String(r.source);
  const href = source.indexOf('.') > 0 && !isOther(source) ? safeUrl('https://' + source) : null;
  const link = el('a', null, 'ext-link');
  if (href) {
    link.href = href;
    link.rel = 'noopener noreferrer nofollow';
    link.target = '_blank';
  }
  if (href && !(ctx.choice && ctx.choice(r))) {
    // A row that filters nothing: the source itself is the link.
    const td = el('td');
    link.className = '';
    link.textContent = source;
    td.appendChild(link);
    return td;
  }
  const td = filterCell(() => source, 'Show only visits from this source')(r, ctx);
  if (href) {
    // Beside the filter button; its arrow comes from the style sheet, so the cell's text
    // stays the source alone.
    link.title = 'Open ' + source;
    link.setAttribute('aria-label', 'Open ' + source + ' in a new tab');
    link.addEventListener('click', (e) => e.stopPropagation());
    td.appendChild(link);
  }
  return td;
}

function countryCell(r, ctx) {
  const td = filterCell((x) => countryName(x.country), 'Show only visits from this country')(r, ctx);
  if (/^[A-Z]{2}$/.test(String(r.country))) td.title = r.country;
  return td;
}

function safeUrl(u) {
  try {
    const p = new URL(u);
    return p.protocol === 'http:' || p.protocol === 'https:' ? p.href : null;
  } catch (e) {
    return null;
  }
}

// The Wilson interval as a bar on a 0 to 100 % scale, the rate as a tick; the figures in words.
function intervalCell(r) {
  const td = el('td', null, 'ci-cell');
  if (typeof r.ci_low !== 'number' || typeof r.ci_high !== 'number') return td;
  const scale = el('span', null, 'ci');
  const span = el('span', null, 'ci-range');
  span.style.left = (r.ci_low * 100).toFixed(2) + '%';
  span.style.width = Math.max(0.5, (r.ci_high - r.ci_low) * 100).toFixed(2) + '%';
  const tick = el('span', null, 'ci-rate');
  tick.style.left = ((Number(r.rate) || 0) * 100).toFixed(2) + '%';
  scale.appendChild(span);
  scale.appendChild(tick);
  td.appendChild(scale);
  td.appendChild(el('span', percent(r.ci_low) + '–' + percent(r.ci_high), 'ci-text'));
  return td;
}

function chanceCell(r, ctx) {
  const control = ctx.experiment && ctx.experiment.control;
  if (r.p_beat_control == null) return el('td', r.variant === control ? 'control' : '—', 'num muted');
  const td = el('td', percent(r.p_beat_control) + ' to beat ' + control, 'num');
  if (r.p_beat_control >= 0.95) td.classList.add('good');
  else if (r.p_beat_control <= 0.05) td.classList.add('bad');
  return td;
}

// Seven bars, one per time bucket, as tall as the bucket's share of the row's largest.
function ttcCell(r) {
  const td = el('td', null, 'ttc-cell');
  const counts = Array.isArray(r.time_to_conversion) ? r.time_to_conversion : [];
  const max = Math.max.apply(null, counts.concat([1]));
  const spark = el('span', null, 'ttc-spark');
  spark.setAttribute('role', 'img');
  spark.setAttribute('aria-label', TTC_LABELS.map((l, i) => l + ': ' + (counts[i] || 0)).join(', '));
  spark.title = spark.getAttribute('aria-label');
  TTC_LABELS.forEach((_, i) => {
    const b = el('span', null, 'ttc-bar');
    b.style.height = Math.round((counts[i] || 0) / max * 100) + '%';
    spark.appendChild(b);
  });
  td.appendChild(spark);
  return td;
}

function rangeKey(stats) {
  return [stats.timeframe, stats.from, stats.to].join(' ');
}

function numberCell(n) {
  const td = el('td', compact(n || 0), 'num');
  if (Math.abs(n) >= 1000) td.title = full(n);
  return td;
}

function makeCell(col, r, ctx, first) {
  if (col.cell) return col.cell(r, ctx);
  if (first && ctx.choice && ctx.choice(r)) return filterCell(col.text, 'Show only these visits')(r, ctx);
  if (col.count) return numberCell(col.count(r));
  if (col.rate) return el('td', percent(col.rate(r)), 'num');
  const value = col.text(r);
  const td = el('td', value == null ? '' : value, col.num ? 'num' : col.cls);
  if (isOther(value)) td.classList.add('other');
  return td;
}

/**
 * Builds the panels into `root`. Options: `filterable` says that rows filter the dashboard
 * (render's `ctx.onFilter` does it); `empty` is the element shown when nothing was
 * tracked yet; `charts` the object that keeps the Chart.js instances (read by the browser tests).
 */
export function createStatsView(root, options) {
  const opts = options || {};
  const charts = opts.charts || {};
  let hasData = false;

  // Cards
  const cardsBox = el('div', null, 'stat-cards');
  cardsBox.id = 'cards';
  const cards = CARDS.map((c) => {
    const box = el('div', null, 'card');
    box.id = 'card-' + c.id;
    const label = el('p', c.label, 'label');
    label.title = c.title || c.label;
    box.appendChild(label);
    const value = el('p', '–', 'value');
    value.id = 'c-' + c.id;
    const delta = el('p', '', 'delta');
    delta.id = 'd-' + c.id;
    box.appendChild(value);
    box.appendChild(delta);
    cardsBox.appendChild(box);
    return { spec: c, box, value, delta };
  });
  root.appendChild(cardsBox);

  // Charts
  const chartsBox = el('div', null, 'charts');
  const chartBoxes = {};
  const chartFigures = {};
  [['series-chart', 'Traffic', 'Pageviews, visitors and clicks over time, with the previous period dashed', true],
    ['scroll-chart', 'Scroll depth', 'Pageviews by maximum scroll depth', false],
    ['clicks-chart', 'Top clicks', 'Most clicked elements', false]].forEach(([id, caption, label, wide]) => {
    const fig = el('figure', null, 'panel' + (wide ? ' wide' : ''));
    fig.appendChild(el('figcaption', caption));
    const box = el('div', null, 'chart-box');
    const canvas = el('canvas');
    canvas.id = id;
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', label);
    box.appendChild(canvas);
    fig.appendChild(box);
    chartsBox.appendChild(fig);
    chartBoxes[id] = box;
    chartFigures[id] = fig;
  });
  root.appendChild(chartsBox);

  // Tables
  const tablesBox = el('div', null, 'tables');
  const tables = TABLES.map((t) => {
    const panel = el('section', null, 'panel table-panel');
    panel.id = 'p-' + t.id;
    const h = el('h2', t.title);
    h.id = 'h-' + t.id;
    panel.appendChild(h);
    if (t.hint && opts.filterable) {
      const hint = el('p', t.hint, 'hint small-hint');
      panel.appendChild(hint);
    }
    const wrap = el('div', null, 'table-wrap');
    const table = el('table');
    table.setAttribute('aria-labelledby', h.id);
    const thead = el('thead');
    const tbody = el('tbody');
    tbody.id = 't-' + t.id;
    table.appendChild(thead);
    table.appendChild(tbody);
    wrap.appendChild(table);
    panel.appendChild(wrap);
    tablesBox.appendChild(panel);
    return { spec: t, panel, table, thead, tbody };
  });
  // The variants' verdict (v3): a broken split, or not enough data yet.
  const variantsPanel = tables.find((t) => t.spec.id === 'variants').panel;
  const experimentNote = el('p', null, 'notice experiment-note');
  experimentNote.id = 'experiment-note';
  experimentNote.hidden = true;
  variantsPanel.insertBefore(experimentNote, variantsPanel.querySelector('.table-wrap'));

  // Time to conversion (v3): seven bars.
  const ttcPanel = el('section', null, 'panel ttc-panel');
  ttcPanel.id = 'p-ttc';
  ttcPanel.hidden = true;
  const ttcHead = el('h2', 'Time to conversion');
  ttcHead.id = 'h-ttc';
  ttcPanel.appendChild(ttcHead);
  ttcPanel.appendChild(el('p', 'From the first pageview to the first goal completion of each converting session.', 'hint small-hint'));
  const ttcList = el('ol', null, 'ttc-bars');
  ttcList.id = 'ttc-bars';
  ttcList.setAttribute('aria-labelledby', ttcHead.id);
  ttcPanel.appendChild(ttcList);

  // A custom event's properties (v3), opened from its row.
  const eventPanel = el('section', null, 'panel event-panel');
  eventPanel.id = 'p-event-props';
  eventPanel.hidden = true;
  const eventHead = el('h2');
  eventHead.id = 'h-event-props';
  const eventClose = el('button', 'Close', 'button small ghost');
  eventClose.type = 'button';
  eventClose.id = 'event-props-close';
  const eventBody = el('div', null, 'event-props');
  eventBody.id = 'event-props';
  eventBody.setAttribute('aria-live', 'polite');
  eventPanel.appendChild(eventHead);
  eventPanel.appendChild(eventClose);
  eventPanel.appendChild(eventBody);
  let eventShown = null;
  let eventRange = null; // the range its properties were asked for
  let eventSeq = 0;
  let lastCtx = null;
  let lastStats = null;
  eventClose.addEventListener('click', () => {
    eventShown = null;
    eventPanel.hidden = true;
    if (lastStats) fillEvents();
  });

  function showEvent(name) {
    eventShown = name;
    eventRange = lastStats && rangeKey(lastStats);
    eventPanel.hidden = false;
    eventHead.textContent = 'Properties of ' + name;
    eventBody.textContent = '';
    eventBody.appendChild(el('p', 'Loading…', 'muted'));
    if (lastStats) fillEvents();
    const mine = ++eventSeq;
    opts.fetchEvent(name).then((data) => {
      if (mine !== eventSeq) return;
      eventBody.textContent = '';
      eventBody.appendChild(el('p', full(data.count) + (data.count === 1 ? ' event' : ' events') + ' in this range.', 'muted'));
      const props = Array.isArray(data.props) ? data.props : [];
      if (!props.length) eventBody.appendChild(el('p', 'No properties sent with this event.', 'muted'));
      props.forEach((p) => {
        const block = el('div', null, 'prop-block');
        block.appendChild(el('h3', p.key));
        const list = el('ol', null, 'prop-values');
        const max = Math.max.apply(null, (p.values || []).map((v) => v.count).concat([1]));
        (p.values || []).forEach((v) => {
          const li = el('li', null, 'bar');
          li.style.setProperty('--share', Math.round(v.count / max * 100) + '%');
          li.appendChild(el('span', v.value, 'prop-value'));
          li.appendChild(el('span', full(v.count), 'num'));
          list.appendChild(li);
        });
        block.appendChild(list);
        eventBody.appendChild(block);
      });
    }, (e) => {
      if (mine !== eventSeq) return;
      eventBody.textContent = '';
      eventBody.appendChild(el('p', 'Could not load the properties: ' + ((e && e.message) || 'error'), 'error-text'));
    });
  }

  function fillEvents() {
    const t = tables.find((x) => x.spec.id === 'events');
    if (!t.panel.hidden && Array.isArray(lastStats.top_events)) fill(t, lastStats.top_events, lastCtx);
  }

  function renderTtc(stats, filtered) {
    const rows = stats.time_to_conversion;
    ttcPanel.hidden = filtered || !Array.isArray(rows) || !(Array.isArray(stats.goals) && stats.goals.length);
    if (ttcPanel.hidden) return;
    ttcList.textContent = '';
    const max = Math.max.apply(null, rows.map((r) => Number(r.conversions) || 0).concat([1]));
    const total = rows.reduce((a, r) => a + (Number(r.conversions) || 0), 0);
    rows.forEach((r) => {
      const li = el('li', null, 'ttc-row');
      li.appendChild(el('span', r.bucket, 'ttc-label'));
      const bar = el('span', null, 'ttc-track');
      const fillBar = el('span', null, 'ttc-fill');
      fillBar.style.width = Math.round((Number(r.conversions) || 0) / max * 100) + '%';
      bar.appendChild(fillBar);
      li.appendChild(bar);
      li.appendChild(el('span', full(r.conversions) + (total ? ' (' + percent(r.conversions / total) + ')' : ''), 'num'));
      ttcList.appendChild(li);
    });
  }

  function renderExperiment(stats, filtered) {
    const x = stats.experiment;
    experimentNote.hidden = true;
    experimentNote.className = 'notice experiment-note';
    if (filtered || !x || !Array.isArray(stats.variants) || !stats.variants.length) return;
    if (typeof x.sample_ratio_p === 'number' && x.sample_ratio_p < 0.01) {
      experimentNote.textContent = 'Sample ratio mismatch: visits are not split evenly across the variants (p = '
        + (x.sample_ratio_p < 0.001 ? '< 0.001' : x.sample_ratio_p.toFixed(3)) + '). Fix the split before trusting these results.';
      experimentNote.classList.add('warning');
      experimentNote.hidden = false;
    } else if (x.enough_data === false) {
      experimentNote.textContent = 'Not enough data yet: every variant needs at least 100 visits and 10 conversions before the chance to beat the control settles.';
      experimentNote.hidden = false;
    }
  }

  // Under a one-click filter: what the hidden tables would have been.
  const filterNote = el('p', null, 'notice filter-note');
  filterNote.id = 'filter-note';
  filterNote.hidden = true;
  root.appendChild(filterNote);
  root.appendChild(tablesBox);
  root.appendChild(ttcPanel);
  root.appendChild(eventPanel);

  function columnsOf(t, ctx) {
    return t.spec.columns.filter((c) => (!c.conv || ctx.conversions) && (!c.rev || ctx.revenue) && (!c.exp || ctx.experiment) && (!c.ttc || ctx.ttc));
  }

  function head(t, cols) {
    t.thead.textContent = '';
    const tr = el('tr');
    cols.forEach((c) => {
      const th = el('th', c.head, c.count || c.rate || c.num ? 'num' : null);
      th.scope = 'col';
      if (c.title) th.title = c.title;
      tr.appendChild(th);
    });
    t.thead.appendChild(tr);
    // Four columns or more need room: the table scrolls inside its panel on narrow screens.
    t.table.classList.toggle('many', cols.length > 3);
    t.table.classList.toggle('three', cols.length === 3);
  }

  // What choosing a row of `spec` asks for ({page} or {filter}), or null when it cannot filter.
  function chooser(spec, ctx) {
    if (!ctx.onFilter) return null;
    if (spec.choose) return (r) => (isOther(r.path) ? null : spec.choose(r));
    if (!spec.dimension) return null;
    return (r) => {
      const v = spec.value(r);
      return v == null || v === '' || isOther(v) ? null : { filter: spec.dimension + ':' + v };
    };
  }

  function fill(t, rows, ctx) {
    const cols = columnsOf(t, ctx);
    head(t, cols);
    if (!rows.length) {
      messageRow(t.tbody, t.spec.empty || 'Nothing yet', 'muted', cols.length);
      return;
    }
    t.tbody.textContent = '';
    const choice = chooser(t.spec, ctx);
    const active = (r) => {
      const c = choice && choice(r);
      return !!c && (c.page ? c.page === ctx.page : c.filter === ctx.filter);
    };
    const rowCtx = Object.assign({}, ctx, { choice, active });
    const max = Math.max.apply(null, rows.map((r) => Number(t.spec.measure(r)) || 0).concat([1]));
    rows.forEach((r) => {
      const tr = el('tr');
      cols.forEach((c, i) => tr.appendChild(makeCell(c, r, rowCtx, i === 0)));
      // A bar behind the first cell, as long as the row's share of the largest row.
      const first = tr.firstChild;
      first.classList.add('bar');
      first.style.setProperty('--share', Math.round((Number(t.spec.measure(r)) || 0) / max * 100) + '%');
      const change = choice && choice(r);
      if (change) {
        tr.classList.add('filterable');
        if (active(r)) tr.classList.add('active');
        tr.addEventListener('click', () => ctx.onFilter(change));
      } else if (t.spec.drill && opts.fetchEvent && typeof r.name === 'string' && r.name && !isOther(r.name)) {
        // A custom event's row opens its properties: its name is a button.
        tr.classList.add('filterable');
        const b = el('button', r.name, 'row-filter');
        b.type = 'button';
        b.title = 'Show the properties of this event';
        if (eventShown === r.name) {
          tr.classList.add('active');
          b.setAttribute('aria-current', 'true');
        }
        tr.firstChild.textContent = '';
        tr.firstChild.appendChild(b);
        tr.addEventListener('click', () => showEvent(r.name));
      }
      t.tbody.appendChild(tr);
    });
  }

  function chart(id, config) {
    if (!window.Chart) return;
    const existing = charts[id];
    if (existing) {
      existing.data = config.data;
      existing.options = config.options;
      existing.update('none');
      return;
    }
    charts[id] = new window.Chart(document.getElementById(id), config);
  }

  function setChartStatus(text) {
    Object.keys(chartBoxes).forEach((id) => {
      if (text) chartBoxes[id].setAttribute('data-status', text);
      else chartBoxes[id].removeAttribute('data-status');
    });
  }

  function seriesLabel(start, hourly) {
    if (hourly) return String(start).slice(11, 16);
    const d = new Date(String(start).slice(0, 10) + 'T00:00:00Z');
    return isFinite(d) ? d.toLocaleDateString('en-US', { month: 'short', day: 'numeric', timeZone: 'UTC' }) : String(start);
  }

  function renderCharts(stats, previousSeries) {
    const hourly = stats.granularity === 'hour';
    const series = stats.series || [];
    const datasets = [
      { label: 'Pageviews', data: series.map((p) => p.pageviews), borderColor: BRAND, backgroundColor: 'rgba(79,70,229,.12)', fill: true, tension: 0.3 },
      { label: 'Visitors', data: series.map((p) => p.visitors), borderColor: '#0ea5e9', tension: 0.3 },
      { label: 'Clicks', data: series.map((p) => p.clicks), borderColor: '#f59e0b', tension: 0.3 },
    ];
    if (previousSeries && previousSeries.length) {
      const prev = series.map((_, i) => (previousSeries[i] ? previousSeries[i].pageviews : null));
      datasets.push({
        label: 'Pageviews, previous period', data: prev, cpStarts: previousSeries.map((p) => p.start),
        borderColor: 'rgba(79,70,229,.45)', borderDash: [6, 4], borderWidth: 1.5, pointRadius: 0, fill: false, tension: 0.3,
      });
    }
    chart('series-chart', {
      type: 'line',
      data: { labels: series.map((p) => seriesLabel(p.start, hourly)), datasets },
      options: {
        maintainAspectRatio: false, animation: false, interaction: { mode: 'index', intersect: false },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
        plugins: {
          tooltip: {
            callbacks: {
              label: (item) => {
                const starts = item.dataset.cpStarts;
                const when = starts && starts[item.dataIndex] ? ' (' + seriesLabel(starts[item.dataIndex], hourly) + ')' : '';
                return item.dataset.label + when + ': ' + full(item.parsed.y);
              },
            },
          },
        },
      },
    });
    const dist = stats.scroll_distribution || [];
    chart('scroll-chart', {
      type: 'doughnut',
      data: {
        labels: dist.map((b) => b.bucket + '%'),
        datasets: [{ data: dist.map((b) => b.pageviews), backgroundColor: ['#e0e7ff', '#a5b4fc', '#818cf8', '#6366f1', '#4338ca'] }],
      },
      options: { maintainAspectRatio: false, animation: false, plugins: { legend: { position: 'bottom' } } },
    });
    const clicks = stats.top_clicks || [];
    chart('clicks-chart', {
      type: 'bar',
      data: {
        labels: clicks.map((c) => (c.text ? c.text : c.selector)),
        datasets: [{ label: 'Clicks', data: clicks.map((c) => c.clicks), backgroundColor: '#6366f1' }],
      },
      options: {
        maintainAspectRatio: false, animation: false, indexAxis: 'y', plugins: { legend: { display: false } },
        scales: {
          x: { beginAtZero: true, ticks: { precision: 0 } },
          // Long selectors and texts are shortened on the axis only; the tooltip has them whole.
          y: { ticks: { callback(value) { return shorten(this.getLabelForValue(value), 22); } } },
        },
      },
    });
  }

  function renderCards(summary, prev) {
    cards.forEach((c) => {
      const v = summary[c.spec.key];
      c.box.hidden = v == null || (c.spec.money && !hasMoney(v));
      if (c.box.hidden) return;
      c.value.textContent = showCard(c.spec, v);
      c.value.title = exactCard(c.spec, v);
      c.delta.className = 'delta';
      if (!prev || c.spec.money) {
        c.delta.textContent = '';
        c.delta.removeAttribute('title');
        return;
      }
      const p = prev[c.spec.key];
      const d = change(v, p, c.spec.kind);
      c.delta.textContent = (d.arrow ? d.arrow + ' ' : '') + d.text;
      c.delta.classList.add(d.direction);
      if (d.direction === 'up' || d.direction === 'down') {
        c.delta.classList.add((d.direction === 'down') === !!c.spec.lowerIsBetter ? 'good' : 'bad');
      }
      c.delta.title = 'Previous period: ' + (p == null ? 'none' : exactCard(c.spec, p));
    });
  }

  return {
    charts,

    /** Before the first figures arrive. */
    loading() {
      if (hasData) return;
      root.setAttribute('aria-busy', 'true');
      tables.forEach((t) => { head(t, columnsOf(t, {})); messageRow(t.tbody, 'Loading…', 'muted', columnsOf(t, {}).length); });
      setChartStatus('Loading…');
    },

    /**
     * The figures could not be loaded (the page's alert says why). With `keep`, a refresh of
     * the view on screen failed: its figures stay. Otherwise every panel says it failed, so
     * figures of another view are never shown under this one's controls.
     */
    failed(keep) {
      root.removeAttribute('aria-busy');
      root.classList.remove('busy');
      if (keep && hasData) return;
      hasData = false;
      tables.forEach((t) => { head(t, columnsOf(t, {})); messageRow(t.tbody, 'Could not load.', 'error-text', columnsOf(t, {}).length); });
      cards.forEach((c) => { c.value.textContent = '–'; c.value.removeAttribute('title'); c.delta.textContent = ''; });
      setChartStatus('Could not load');
      if (opts.empty) opts.empty.hidden = true;
    },

    /** A new view is on its way: the current figures stay, dimmed. */
    busy() {
      if (!hasData) { this.loading(); return; }
      root.setAttribute('aria-busy', 'true');
      root.classList.add('busy');
    },

    /** Shows `stats`; `ctx`: {page, filter, onFilter(change), previousSeries}. */
    render(stats, ctx) {
      hasData = true;
      root.removeAttribute('aria-busy');
      root.classList.remove('busy');
      setChartStatus('');
      const summary = stats.summary || {};
      const prev = previousSummary(stats);
      const ttcTotal = Array.isArray(stats.time_to_conversion) ? stats.time_to_conversion.reduce((a, r) => a + (Number(r.conversions) || 0), 0) : 0;
      const c = {
        page: ctx.page, filter: ctx.filter, onFilter: ctx.onFilter, conversions: summary.conversions != null,
        revenue: hasMoney(summary.revenue), experiment: stats.experiment || null, ttc: ttcTotal > 0,
      };
      lastCtx = c;
      lastStats = stats;
      renderCards(summary, prev);
      renderCharts(stats, ctx.previousSeries);
      // A one-click filter answers the summary, series, goals and top pages only: the other
      // lists come back empty (or not at all), which must not read as "nothing yet".
      const filtered = !!ctx.filter;
      const unavailable = [];
      tables.forEach((t) => {
        const rows = stats[t.spec.key];
        const off = filtered && !t.spec.keep;
        if (off && Array.isArray(rows)) unavailable.push(t.spec.title);
        t.panel.hidden = off || !Array.isArray(rows);
        if (!t.panel.hidden) fill(t, rows, c);
      });
      renderTtc(stats, filtered);
      renderExperiment(stats, filtered);
      // The properties follow the range (a refresh of the same range leaves them).
      if (eventShown && !filtered && rangeKey(stats) !== eventRange) showEvent(eventShown);
      else if (filtered) { eventShown = null; eventPanel.hidden = true; }
      chartFigures['clicks-chart'].hidden = filtered;
      filterNote.hidden = !filtered;
      filterNote.textContent = filtered
        ? 'Not available with this filter: ' + unavailable.concat(['the click chart']).join(', ') + '. Remove the filter to see them.'
        : '';
      if (opts.empty) opts.empty.hidden = !(summary.pageviews === 0 && summary.clicks === 0) || !!ctx.page || filtered;
    },
  };
}

/** Current top pages, click selectors and event names of `stats` (for goal suggestions). */
export function suggestions(stats) {
  const s = stats || {};
  const names = (rows, key) => (Array.isArray(rows) ? rows.map((r) => r[key]).filter((v) => typeof v === 'string' && v && !isOther(v)) : []);
  return {
    pages: names(s.top_pages, 'path'),
    clicks: (Array.isArray(s.top_clicks) ? s.top_clicks : []).filter((c) => typeof c.selector === 'string' && c.selector && !isOther(c.selector)),
    events: names(s.top_events, 'name'),
  };
}
