// Managing a site's goals (owner only): the list, a form to add one (a page path or a clicked
// element picked from the site's current top lists, or typed; an event name typed, with the
// snippet's own `form_submit` and `outbound` suggested), and deleting. The api's
// `invalid_goal` message is shown next to the field it names. A goal made recently says
// "Counting past data…" while the api still backfills it (`backfilling`). A server without
// goals (404 on the list) hides the panel.

import { $, el, messageRow } from './dom.js';

export const MAX_GOALS = 20;
export const KINDS = {
  pageview: { label: 'Page visited', match: 'Page path', hint: 'A path such as /thank-you; * matches any characters (/thank-you*).', placeholder: '/thank-you', pick: 'Pick one of the top pages' },
  click: { label: 'Element clicked', match: 'Element selector', hint: 'The selector exactly as shown in Top clicks, e.g. button#cta.', placeholder: 'button#cta', pick: 'Pick one of the top clicks' },
  event: { label: 'Custom event', match: 'Event name', hint: 'Exactly as sent: window.convertpulse(\'Signup\'), data-cp-event="Signup", or the snippet\'s form_submit and outbound.', placeholder: 'Signup', pick: 'Pick an event' },
};
const BUILT_IN_EVENTS = [['form_submit', 'form_submit (a form was submitted)'], ['outbound', 'outbound (a link to another site was clicked)']];

/**
 * options: `call(path, {method, body})` -> Promise (the owner's api call), `suggestions()` ->
 * {pages, clicks, events} of the current stats, `onChange()` after a goal was added or deleted.
 */
export function createGoals(options) {
  const o = options;
  const panel = $('goals-manager');
  const list = $('goal-list');
  const form = $('goal-form');
  const pick = $('goal-pick');
  const limit = $('goal-limit');
  const status = $('goal-status');
  let site = null;
  let goals = [];
  let seq = 0;

  const fields = ['name', 'kind', 'match'];
  function fieldError(field, text) {
    const input = form.elements[field];
    $('goal-' + field + '-error').textContent = text || '';
    if (text) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }
  function clearErrors() {
    fields.forEach((f) => fieldError(f, ''));
    $('goal-form-error').textContent = '';
  }

  function base() { return '/api/sites/' + encodeURIComponent(site.id) + '/goals'; }

  function renderList() {
    list.textContent = '';
    if (!goals.length) messageRow(list, 'No goals yet. Add the first one below.', 'muted', 4);
    goals.forEach((g) => {
      const tr = el('tr');
      tr.appendChild(el('td', g.name));
      tr.appendChild(el('td', (KINDS[g.kind] || { label: g.kind }).label));
      tr.appendChild(el('td', g.match, 'mono'));
      const td = el('td', null, 'actions');
      if (g.backfilling) td.appendChild(el('span', 'Counting past data…', 'backfill'));
      const del = el('button', 'Delete', 'button small danger-btn');
      del.type = 'button';
      // Hidden below the role the route needs (app.css, body[data-role]).
      del.dataset.minRole = 'admin';
      del.setAttribute('aria-label', 'Delete goal ' + g.name);
      del.addEventListener('click', () => remove(g, del));
      td.appendChild(del);
      tr.appendChild(td);
      list.appendChild(tr);
    });
    const full = goals.length >= MAX_GOALS;
    limit.hidden = !full;
    Array.prototype.forEach.call(form.elements, (e) => { e.disabled = full; });
    if (document.activeElement !== pick) fillPicker();
  }

  // `quiet`: a refresh of the list on screen, which stays until the answer replaces it.
  function load(quiet) {
    const mine = ++seq;
    if (!quiet) messageRow(list, 'Loading…', 'muted', 4);
    return o.call(base()).then((rows) => {
      if (mine !== seq) return;
      panel.hidden = false;
      goals = Array.isArray(rows) ? rows : [];
      status.textContent = '';
      renderList();
    }, (e) => {
      if (mine !== seq) return;
      if (e.status === 404 || e.status === 405) { panel.hidden = true; return; }
      messageRow(list, 'Could not load the goals: ' + e.message, 'error-text', 4);
    });
  }

  function remove(goal, button) {
    if (!confirm('Delete the goal "' + goal.name + '"? Its conversions are no longer counted or shown.')) return;
    button.disabled = true;
    o.call(base() + '/' + encodeURIComponent(goal.id), { method: 'DELETE' }).then(() => {
      status.textContent = 'Goal "' + goal.name + '" deleted.';
      return load().then(o.onChange);
    }, (e) => {
      button.disabled = false;
      status.textContent = 'Could not delete the goal: ' + e.message;
    });
  }

  // The kind decides what the match is, and what can be picked for it.
  function kindChanged() {
    const k = KINDS[form.kind.value] || KINDS.pageview;
    $('goal-match-label').textContent = k.match;
    $('goal-match-hint').textContent = k.hint;
    form.match.placeholder = k.placeholder;
    fillPicker();
  }

  function fillPicker() {
    const s = o.suggestions();
    const kind = form.kind.value;
    pick.textContent = '';
    const first = el('option', (KINDS[kind] || KINDS.pageview).pick + '…');
    first.value = '';
    pick.appendChild(first);
    let options = [];
    if (kind === 'pageview') options = s.pages.map((p) => [p, p]);
    else if (kind === 'click') options = s.clicks.map((c) => [c.selector, c.text ? c.selector + ' — ' + c.text : c.selector]);
    else options = BUILT_IN_EVENTS.concat(s.events.filter((n) => n !== 'form_submit' && n !== 'outbound').map((n) => [n, n]));
    options.forEach(([value, label]) => {
      const opt = el('option', label);
      opt.value = value;
      pick.appendChild(opt);
    });
    pick.disabled = options.length === 0 || goals.length >= MAX_GOALS;
  }

  form.kind.addEventListener('change', kindChanged);
  pick.addEventListener('change', () => {
    if (!pick.value) return;
    form.match.value = pick.value;
    fieldError('match', '');
    if (!form.name.value.trim()) form.name.value = pick.value;
  });
  // The picker offers the current top lists: refresh it when the user goes to it.
  pick.addEventListener('focus', () => { if (!pick.value) fillPicker(); });

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    clearErrors();
    const body = { name: form.name.value.trim(), kind: form.kind.value, match: form.match.value.trim() };
    let ok = true;
    if (!body.name) { fieldError('name', 'Give the goal a name.'); ok = false; }
    if (!body.match) { fieldError('match', 'Enter what the goal matches.'); ok = false; }
    if (!ok) { form.querySelector('[aria-invalid="true"]').focus(); return; }
    const submit = $('goal-add');
    submit.disabled = true;
    o.call(base(), { method: 'POST', body }).then((goal) => {
      form.name.value = '';
      form.match.value = '';
      pick.value = '';
      status.textContent = 'Goal "' + goal.name + '" added. It also counts the visits kept from before it; until that is done it says "Counting past data…".';
      return load().then(o.onChange);
    }, (err) => {
      // invalid_goal names the field in its message: show it there.
      const m = err.code === 'invalid_goal' ? /\b(name|kind|match)\b/.exec(err.message || '') : null;
      if (m) {
        fieldError(m[1], err.message);
        form.elements[m[1]].focus();
      } else {
        $('goal-form-error').textContent = err.message;
      }
    }).then(() => { submit.disabled = goals.length >= MAX_GOALS; });
  });

  return {
    /** Shows the goals of `s` (a site). */
    show(s) {
      site = s;
      goals = [];
      clearErrors();
      status.textContent = '';
      form.reset();
      kindChanged();
      load();
    },
    /** The stats changed: the picker offers their top lists. */
    statsChanged() {
      if (document.activeElement !== pick) fillPicker();
      // A backfill ends on the server: the list is asked again until none says it is running.
      if (site && goals.some((g) => g.backfilling)) load(true);
    },
  };
}
