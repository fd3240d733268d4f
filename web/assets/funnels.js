// A site's funnels (owner only): the list, the chart of the chosen funnel over the dashboard's
// range, an editor (a name and 2-8 steps, each a kind and a match as for goals) and deleting.
//
// The chart is a list: one bar per step as long as its share of the first step's sessions,
// with the figures in words beside it (sessions, the share of the previous step and of the
// first, and how many dropped off before it), so it reads without the bars. A funnel made
// recently says "Counting past data…" while the api still backfills it (`backfilling`). A
// server without funnels (404 on the list) hides the panel. Every string is set as text.

import { $, el, messageRow } from './dom.js';
import { full, percent } from './format.js';
import { KINDS } from './goals.js';
import { createRows, refusedField, select } from './editor.js';
import { rangeOf, statsQuery } from './viewstate.js';

export const MAX_FUNNELS = 10;
const MIN_STEPS = 2;
const MAX_STEPS = 8;
const REFRESH_MS = 5000;
const kindLabel = (k) => (KINDS[k] || { label: k }).label;

/**
 * options: `call(path, {method, body})` -> Promise (the owner's api call), `view()` -> the
 * dashboard's current view (its range is the chart's).
 */
export function createFunnels(options) {
  const o = options;
  const panel = $('funnels');
  const picker = $('funnel-select');
  const chart = $('funnel-chart');
  const backfill = $('funnel-backfill');
  const list = $('funnel-list');
  const form = $('funnel-form');
  const status = $('funnel-status');
  let site = null;
  let funnels = [];
  let chosen = null; // a funnel id
  let listSeq = 0;
  let chartSeq = 0;
  let shownChart = null; // the path of the chart on screen
  let asked = { path: null, at: 0 }; // the last chart asked for, and when

  const steps = createRows({
    list: $('funnel-steps'),
    add: $('funnel-add-step'),
    min: MIN_STEPS,
    max: MAX_STEPS,
    prefix: 'funnel-step',
    noun: 'step',
    fields: [
      { name: 'kind', label: 'Kind', make: () => select(Object.keys(KINDS).map((k) => [k, KINDS[k].label])) },
      {
        name: 'match', label: 'Match',
        make: () => {
          const input = el('input');
          input.required = true;
          input.placeholder = '/pricing, button#cta or Signup';
          return input;
        },
      },
    ],
  });

  function siteBase() { return encodeURIComponent(site.id); }
  function base() { return '/api/sites/' + siteBase() + '/funnels'; }

  function formError(field, text) {
    const input = field === 'name' ? form.elements.name : null;
    $('funnel-' + field + '-error').textContent = text || '';
    if (input) {
      if (text) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    }
  }
  function clearErrors() {
    formError('name', '');
    formError('steps', '');
    $('funnel-form-error').textContent = '';
    steps.clearErrors();
  }

  function renderList() {
    list.textContent = '';
    if (!funnels.length) messageRow(list, 'No funnels yet. Add the first one below.', 'muted', 3);
    funnels.forEach((f) => {
      const tr = el('tr');
      tr.appendChild(el('td', f.name));
      tr.appendChild(el('td', (f.steps || []).map((s) => s.match).join(' → '), 'mono'));
      const td = el('td', null, 'actions');
      if (f.backfilling) td.appendChild(el('span', 'Counting past data…', 'backfill'));
      const del = el('button', 'Delete', 'button small danger-btn');
      del.type = 'button';
      // Hidden below the role the route needs (app.css, body[data-role]).
      del.dataset.minRole = 'admin';
      del.setAttribute('aria-label', 'Delete funnel ' + f.name);
      del.addEventListener('click', () => remove(f, del));
      td.appendChild(del);
      tr.appendChild(td);
      list.appendChild(tr);
    });
    picker.textContent = '';
    funnels.forEach((f) => {
      const opt = el('option', f.name);
      opt.value = f.id;
      picker.appendChild(opt);
    });
    if (!funnels.some((f) => f.id === chosen)) chosen = funnels.length ? funnels[0].id : null;
    picker.value = chosen || '';
    picker.disabled = !funnels.length;
    // A disabled fieldset leaves its fields' own states (a Remove at two steps) as they are.
    const atLimit = funnels.length >= MAX_FUNNELS;
    $('funnel-limit').hidden = !atLimit;
    $('funnel-fields').disabled = atLimit;
  }

  function load() {
    const mine = ++listSeq;
    return o.call(base()).then((rows) => {
      if (mine !== listSeq) return;
      panel.hidden = false;
      funnels = Array.isArray(rows) ? rows : [];
      renderList();
      showChart(true);
    }, (e) => {
      if (mine !== listSeq) return;
      if (e.status === 404 || e.status === 405) { panel.hidden = true; return; }
      messageRow(list, 'Could not load the funnels: ' + e.message, 'error-text', 3);
    });
  }

  function renderChart(f) {
    chart.textContent = '';
    backfill.hidden = !f.backfilling;
    const ol = el('ol', null, 'funnel-bars');
    ol.setAttribute('aria-label', 'Sessions that reached each step of ' + f.name);
    const first = f.steps.length ? Number(f.steps[0].sessions) || 0 : 0;
    f.steps.forEach((s, i) => {
      const li = el('li', null, 'funnel-step');
      if (i > 0) {
        const before = Number(f.steps[i - 1].sessions) || 0;
        const lost = Math.max(0, before - (Number(s.sessions) || 0));
        li.appendChild(el('p', '↓ ' + full(lost) + ' dropped off (' + percent(before > 0 ? 1 - s.rate_from_previous : 0) + ')', 'step-drop'));
      }
      const head = el('p', null, 'step-head');
      head.appendChild(el('span', String(i + 1), 'step-no'));
      head.appendChild(el('span', kindLabel(s.kind), 'step-kind'));
      head.appendChild(el('span', s.match, 'step-match mono'));
      li.appendChild(head);
      const bar = el('div', null, 'step-bar');
      bar.setAttribute('aria-hidden', 'true');
      bar.style.setProperty('--share', (first > 0 ? Math.min(100, (Number(s.sessions) || 0) / first * 100) : 0).toFixed(1) + '%');
      li.appendChild(bar);
      const figures = el('p', null, 'step-figures');
      figures.appendChild(el('span', full(s.sessions) + ' sessions', 'step-sessions'));
      if (i > 0) {
        figures.appendChild(el('span', percent(s.rate_from_previous) + ' of the previous step', 'step-prev'));
        figures.appendChild(el('span', percent(s.rate_from_start) + ' of the first step', 'step-start'));
      } else {
        figures.appendChild(el('span', 'entered the funnel', 'step-start'));
      }
      li.appendChild(figures);
      ol.appendChild(li);
    });
    chart.appendChild(ol);
  }

  // `fresh`: the funnel or the range changed (show "Loading…" rather than the other figures).
  function showChart(fresh) {
    if (!site || panel.hidden) return;
    if (!chosen) {
      chart.textContent = '';
      backfill.hidden = true;
      shownChart = null;
      chart.appendChild(el('p', 'No funnels yet: add one below to see how many visits go through its steps.', 'muted'));
      return;
    }
    const path = '/api/stats/' + siteBase() + '/funnels/' + encodeURIComponent(chosen) + '?' + statsQuery(rangeOf(o.view()));
    if (fresh || path !== shownChart) {
      chart.textContent = '';
      chart.appendChild(el('p', 'Loading the funnel…', 'muted'));
    }
    // The dashboard reloads its figures every few seconds, and once more when the previous
    // period arrives: the same chart is asked again only after a while.
    if (!fresh && path === asked.path && Date.now() - asked.at < REFRESH_MS) return;
    asked = { path, at: Date.now() };
    const mine = ++chartSeq;
    o.call(path).then((f) => {
      if (mine !== chartSeq) return;
      shownChart = path;
      renderChart(f);
      // Its backfill ended: the list says so too.
      const listed = funnels.filter((x) => x.id === f.id)[0];
      if (listed && listed.backfilling && !f.backfilling) load();
    }, (e) => {
      if (mine !== chartSeq) return;
      shownChart = null;
      asked = { path: null, at: 0 };
      backfill.hidden = true;
      chart.textContent = '';
      chart.appendChild(el('p', 'Could not load the funnel: ' + e.message, 'error-text'));
    });
  }

  function remove(f, button) {
    if (!confirm('Delete the funnel "' + f.name + '"? Its figures are no longer counted or shown.')) return;
    button.disabled = true;
    o.call(base() + '/' + encodeURIComponent(f.id), { method: 'DELETE' }).then(() => {
      status.textContent = 'Funnel "' + f.name + '" deleted.';
      return load();
    }, (e) => {
      button.disabled = false;
      status.textContent = 'Could not delete the funnel: ' + e.message;
    });
  }

  picker.addEventListener('change', () => {
    chosen = picker.value || null;
    showChart(true);
  });

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    clearErrors();
    const body = { name: form.elements.name.value.trim(), steps: steps.values() };
    let firstBad = null;
    if (!body.name) { formError('name', 'Give the funnel a name.'); firstBad = firstBad || (() => form.elements.name.focus()); }
    body.steps.forEach((s, i) => {
      if (!s.match) {
        steps.fieldError(i, 'match', 'Enter what step ' + (i + 1) + ' matches.');
        firstBad = firstBad || (() => steps.focus(i, 'match'));
      }
    });
    if (firstBad) { firstBad(); return; }
    const submit = $('funnel-save');
    submit.disabled = true;
    o.call(base(), { method: 'POST', body }).then((created) => {
      form.elements.name.value = '';
      steps.reset();
      chosen = created.id;
      status.textContent = 'Funnel "' + created.name + '" added. It also counts the visits kept from before it; until that is done it says "Counting past data…".';
      return load();
    }, (err) => {
      // invalid_funnel names the field first: name, steps, or steps[i].kind / steps[i].match.
      const at = err.code === 'invalid_funnel' ? refusedField(err.message, ['name', 'steps']) : null;
      if (at && at.index != null && steps.fieldError(at.index, at.sub, err.message)) steps.focus(at.index, at.sub);
      else if (at && at.index == null) {
        formError(at.field, err.message);
        if (at.field === 'name') form.elements.name.focus();
      } else $('funnel-form-error').textContent = err.message;
    }).then(() => { submit.disabled = funnels.length >= MAX_FUNNELS; });
  });

  return {
    /** Shows the funnels of `s` (a site). */
    show(s) {
      site = s;
      funnels = [];
      chosen = null;
      shownChart = null;
      asked = { path: null, at: 0 };
      clearErrors();
      status.textContent = '';
      form.reset();
      steps.reset();
      messageRow(list, 'Loading…', 'muted', 3);
      load();
    },
    /** The dashboard's figures were (re)loaded: the chart follows its range. */
    refresh() { showChart(false); },
  };
}
