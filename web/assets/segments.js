// A site's saved segments (owner only): the picker beside the range ("All visitors" or a
// segment: the whole dashboard for that segment's sessions, `segment=` on every stats call and
// in the URL), the chip that names the chosen segment, and an editor (a name and 1-5
// conditions on the session's attribution, all of which must hold) with deleting. A segment
// made recently says "Counting past data…" while the api still backfills it. A server without
// segments (404 on the list) hides the picker and the editor. Every string is set as text.

import { $, el, messageRow } from './dom.js';
import { DIMENSIONS } from './viewstate.js';
import { createRows, refusedField, select } from './editor.js';

export const MAX_SEGMENTS = 10;
const OPS = { is: 'is', is_not: 'is not', contains: 'contains' };

/** "Medium is email and Country is not DE". */
export function describe(filters) {
  return (filters || []).map((f) => (DIMENSIONS[f.dimension] || f.dimension) + ' ' + (OPS[f.op] || f.op) + ' ' + f.value).join(' and ');
}

/**
 * options: `call(path, {method, body})` -> Promise (the owner's api call), `pick(id or null)`
 * (the user chose a segment, or all visitors).
 */
export function createSegments(options) {
  const o = options;
  const panel = $('segments-manager');
  const picker = $('segment-picker');
  const choice = $('segment-select');
  const list = $('segment-list');
  const form = $('segment-form');
  const status = $('segment-status');
  let site = null;
  let segments = [];
  let current = null; // the view's segment id
  let backfilling = false; // the stats of the current segment say so
  let seq = 0;

  const conditions = createRows({
    list: $('segment-conditions'),
    add: $('segment-add-condition'),
    min: 1,
    max: 5,
    prefix: 'segment-condition',
    noun: 'condition',
    fields: [
      { name: 'dimension', label: 'Visits whose', make: () => select(Object.keys(DIMENSIONS).map((d) => [d, DIMENSIONS[d]])) },
      { name: 'op', label: 'Is', make: () => select(Object.keys(OPS).map((k) => [k, OPS[k]])) },
      {
        name: 'value', label: 'Value',
        make: () => {
          const input = el('input');
          input.required = true;
          input.placeholder = 'email, google.com, DE, mobile…';
          return input;
        },
      },
    ],
  });

  function base() { return '/api/sites/' + encodeURIComponent(site.id) + '/segments'; }

  function formError(field, text) {
    $('segment-' + field + '-error').textContent = text || '';
    if (field === 'name') {
      if (text) form.elements.name.setAttribute('aria-invalid', 'true');
      else form.elements.name.removeAttribute('aria-invalid');
    }
  }
  function clearErrors() {
    formError('name', '');
    formError('filters', '');
    $('segment-form-error').textContent = '';
    conditions.clearErrors();
  }

  // The picker and the chip, for the view's segment.
  function reflect() {
    choice.textContent = '';
    const all = el('option', 'All visitors');
    all.value = '';
    choice.appendChild(all);
    segments.forEach((s) => {
      const opt = el('option', s.name);
      opt.value = s.id;
      choice.appendChild(opt);
    });
    const known = segments.filter((s) => s.id === current)[0];
    if (current && !known) {
      // Not (yet) in the list (loading, or deleted elsewhere): still shown as chosen.
      const opt = el('option', 'Segment ' + current);
      opt.value = current;
      choice.appendChild(opt);
    }
    choice.value = current || '';
    $('segment-bar').hidden = !current;
    $('segment-chip-name').textContent = current ? (known ? known.name : current) : '';
    $('segment-chip-backfill').hidden = !(current && (backfilling || (known && known.backfilling)));
  }

  function renderList() {
    list.textContent = '';
    if (!segments.length) messageRow(list, 'No segments yet. Add the first one below.', 'muted', 3);
    segments.forEach((s) => {
      const tr = el('tr');
      tr.appendChild(el('td', s.name));
      tr.appendChild(el('td', describe(s.filters)));
      const td = el('td', null, 'actions');
      if (s.backfilling) td.appendChild(el('span', 'Counting past data…', 'backfill'));
      const del = el('button', 'Delete', 'button small danger-btn');
      del.type = 'button';
      // Hidden below the role the route needs (app.css, body[data-role]).
      del.dataset.minRole = 'admin';
      del.setAttribute('aria-label', 'Delete segment ' + s.name);
      del.addEventListener('click', () => remove(s, del));
      td.appendChild(del);
      tr.appendChild(td);
      list.appendChild(tr);
    });
    const atLimit = segments.length >= MAX_SEGMENTS;
    $('segment-limit').hidden = !atLimit;
    $('segment-fields').disabled = atLimit;
    reflect();
  }

  function load() {
    const mine = ++seq;
    return o.call(base()).then((rows) => {
      if (mine !== seq) return;
      panel.hidden = false;
      picker.hidden = false;
      segments = Array.isArray(rows) ? rows : [];
      renderList();
    }, (e) => {
      if (mine !== seq) return;
      if (e.status === 404 || e.status === 405) { panel.hidden = true; picker.hidden = true; return; }
      messageRow(list, 'Could not load the segments: ' + e.message, 'error-text', 3);
    });
  }

  function remove(s, button) {
    if (!confirm('Delete the segment "' + s.name + '"? Its figures are no longer counted or shown.')) return;
    button.disabled = true;
    o.call(base() + '/' + encodeURIComponent(s.id), { method: 'DELETE' }).then(() => {
      status.textContent = 'Segment "' + s.name + '" deleted.';
      if (current === s.id) o.pick(null);
      return load();
    }, (e) => {
      button.disabled = false;
      status.textContent = 'Could not delete the segment: ' + e.message;
    });
  }

  choice.addEventListener('change', () => o.pick(choice.value || null));
  $('segment-clear').addEventListener('click', () => {
    o.pick(null);
    choice.focus();
  });

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    clearErrors();
    const body = { name: form.elements.name.value.trim(), filters: conditions.values() };
    let firstBad = null;
    if (!body.name) { formError('name', 'Give the segment a name.'); firstBad = () => form.elements.name.focus(); }
    body.filters.forEach((f, i) => {
      if (!f.value) {
        conditions.fieldError(i, 'value', 'Enter the value condition ' + (i + 1) + ' compares with.');
        firstBad = firstBad || (() => conditions.focus(i, 'value'));
      }
    });
    if (firstBad) { firstBad(); return; }
    const submit = $('segment-save');
    submit.disabled = true;
    o.call(base(), { method: 'POST', body }).then((created) => {
      form.elements.name.value = '';
      conditions.reset();
      status.textContent = 'Segment "' + created.name + '" added. Choose it above the figures to see the dashboard for its visits.';
      return load();
    }, (err) => {
      // invalid_segment names the field first: name, filters, or filters[i].dimension / op / value.
      const at = err.code === 'invalid_segment' ? refusedField(err.message, ['name', 'filters']) : null;
      if (at && at.index != null && conditions.fieldError(at.index, at.sub, err.message)) conditions.focus(at.index, at.sub);
      else if (at && at.index == null) {
        formError(at.field, err.message);
        if (at.field === 'name') form.elements.name.focus();
      } else $('segment-form-error').textContent = err.message;
    }).then(() => { submit.disabled = false; });
  });

  return {
    /** Shows the segments of `s` (a site). */
    show(s) {
      site = s;
      segments = [];
      clearErrors();
      status.textContent = '';
      form.reset();
      conditions.reset();
      messageRow(list, 'Loading…', 'muted', 3);
      load();
    },
    /** Reflects the view's segment in the picker and the chip. */
    view(view) {
      if ((view.segment || null) !== current) backfilling = false;
      current = view.segment || null;
      reflect();
    },
    /** The stats of the view arrived: whether its segment is still being backfilled. */
    stats(stats) {
      const was = backfilling;
      backfilling = !!(stats && stats.segment && stats.backfilling);
      reflect();
      // A segment's backfill ended: its row in the list says so too.
      if (was && !backfilling) load();
    },
  };
}
