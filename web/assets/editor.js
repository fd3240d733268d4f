// The repeated rows of an editor form (a funnel's steps, a segment's conditions): each row a
// few labelled fields, an error line and a Remove button, between a least and a most rows; and
// where the api's refusal goes. An `invalid_funnel` or `invalid_segment` message starts with
// the field it is about (`name: ...`, `steps: ...`, `steps[1].match: ...`): the message is shown
// next to that field, which is focused and marked invalid.

import { el } from './dom.js';

/**
 * options: `list` (an <ol>), `add` (its "Add" button), `min`, `max`, `prefix` (for ids, e.g.
 * 'funnel-step'), `noun` ('step'), `fields`: [{name, label, make() -> input or select}],
 * `onChange()` after a row was added or removed.
 */
export function createRows(options) {
  const o = options;
  let rows = [];

  function renumber() {
    rows.forEach((r, i) => {
      r.title.textContent = o.noun[0].toUpperCase() + o.noun.slice(1) + ' ' + (i + 1);
      o.fields.forEach((f) => {
        const id = o.prefix + '-' + i + '-' + f.name;
        r.inputs[f.name].id = id;
        r.labels[f.name].htmlFor = id;
        r.inputs[f.name].setAttribute('aria-describedby', o.prefix + '-' + i + '-error');
      });
      r.error.id = o.prefix + '-' + i + '-error';
      r.remove.setAttribute('aria-label', 'Remove ' + o.noun + ' ' + (i + 1));
      r.remove.disabled = rows.length <= o.min;
    });
    o.add.disabled = rows.length >= o.max;
  }

  function addRow(values) {
    if (rows.length >= o.max) return null;
    const li = el('li', null, 'editor-row');
    const title = el('span', '', 'row-title');
    li.appendChild(title);
    const row = { li, title, inputs: {}, labels: {}, error: el('p', '', 'field-error') };
    o.fields.forEach((f) => {
      const box = el('div', null, 'field field-' + f.name);
      const label = el('label', f.label);
      const input = f.make(row);
      input.name = f.name;
      if (values && values[f.name] != null) input.value = values[f.name];
      input.addEventListener('input', () => fieldError(rows.indexOf(row), f.name, ''));
      box.appendChild(label);
      box.appendChild(input);
      li.appendChild(box);
      row.inputs[f.name] = input;
      row.labels[f.name] = label;
    });
    row.remove = el('button', 'Remove', 'button ghost small row-remove');
    row.remove.type = 'button';
    row.remove.addEventListener('click', () => {
      const i = rows.indexOf(row);
      if (i < 0 || rows.length <= o.min) return;
      rows.splice(i, 1);
      li.remove();
      renumber();
      const next = rows[Math.min(i, rows.length - 1)];
      if (next) next.inputs[o.fields[0].name].focus();
      if (o.onChange) o.onChange();
    });
    li.appendChild(row.remove);
    row.error.setAttribute('aria-live', 'polite');
    li.appendChild(row.error);
    o.list.appendChild(li);
    rows.push(row);
    renumber();
    if (o.onChange) o.onChange();
    return row;
  }

  function fieldError(i, field, text) {
    const row = rows[i];
    if (!row) return false;
    if (field) {
      const input = row.inputs[field];
      if (!input) return false;
      if (text) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    }
    row.error.textContent = text || '';
    return true;
  }

  o.add.addEventListener('click', () => {
    const row = addRow();
    if (row) row.inputs[o.fields[0].name].focus();
  });

  return {
    addRow,
    /** Back to `min` empty rows. */
    reset() {
      rows.forEach((r) => r.li.remove());
      rows = [];
      for (let i = 0; i < o.min; i++) addRow();
    },
    /** The rows' values: [{field: value}]. */
    values() {
      return rows.map((r) => {
        const v = {};
        o.fields.forEach((f) => { v[f.name] = r.inputs[f.name].value.trim(); });
        return v;
      });
    },
    rows() { return rows; },
    /** Shows `text` under row `i`, marking `field` (if any) invalid; false when there is no such row. */
    fieldError,
    clearErrors() {
      rows.forEach((r, i) => o.fields.forEach((f) => fieldError(i, f.name, '')));
    },
    focus(i, field) {
      const r = rows[i];
      if (r) r.inputs[field || o.fields[0].name].focus();
    },
  };
}

/**
 * Where a refusal belongs: {field} for a whole-form field (`name`, `steps`), {field, index,
 * sub} for a row's field (`steps[1].match`), or null when the message names none of `fields`.
 */
export function refusedField(message, fields) {
  const m = /^\s*([a-z_]+)(?:\[(\d+)\](?:\.([a-z_]+))?)?\b/.exec(String(message || ''));
  if (!m || fields.indexOf(m[1]) < 0) return null;
  return m[2] == null ? { field: m[1] } : { field: m[1], index: Number(m[2]), sub: m[3] || null };
}

/** A <select> of `options` ([[value, label]]). */
export function select(options) {
  const s = el('select');
  options.forEach(([value, label]) => {
    const opt = el('option', label);
    opt.value = value;
    s.appendChild(opt);
  });
  return s;
}
