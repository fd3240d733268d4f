// The toolbar of a dashboard: timeframe buttons, the custom date range (which cannot be
// applied while invalid: from after to, over 366 days, or in the future), and the removable
// chip of the page filter or the one-click filter ("Page is /pricing", "Source is google.com"). It only reports the view the user asked for; the page decides what to do.

import { $ } from './dom.js';
import { countryName, rangeProblem, todayIn } from './format.js';
import { DIMENSIONS, parseFilter } from './viewstate.js';

/** Binds the toolbar markup (ids as in dashboard.html); `onChange(view)` gets a new view. */
export function createControls(onChange) {
  const form = $('range-form');
  const msg = $('range-msg');
  const apply = form.querySelector('button[type=submit]');
  const buttons = Array.prototype.slice.call(document.querySelectorAll('[data-tf]'));
  let current = {};
  let tz = 'UTC';

  const today = () => todayIn(tz);

  function check() {
    const problem = rangeProblem(form.from.value, form.to.value, today());
    apply.disabled = !!problem;
    msg.textContent = problem;
    form.from.setAttribute('aria-invalid', String(!!problem && !!form.from.value && problem.indexOf('start') >= 0));
    form.to.setAttribute('aria-invalid', String(!!problem && !!form.to.value && problem.indexOf('end') >= 0));
    return !problem;
  }

  buttons.forEach((b) => b.addEventListener('click', () => {
    onChange(withRange({ timeframe: b.getAttribute('data-tf') }));
  }));
  form.from.addEventListener('input', check);
  form.to.addEventListener('input', check);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!check()) return;
    onChange(withRange({ from: form.from.value, to: form.to.value }));
  });
  $('filter-clear').addEventListener('click', () => {
    const v = Object.assign({}, current);
    delete v.page;
    delete v.filter;
    onChange(v);
    // The chip is gone: keep keyboard focus on the page rather than losing it to <body>.
    $('site-title').focus();
  });

  // A new range keeps what the view is filtered to.
  function withRange(range) {
    const v = Object.assign({}, current);
    delete v.timeframe;
    delete v.from;
    delete v.to;
    return Object.assign(v, range);
  }

  // What the chip says: the page, or the filter's dimension and value.
  function chip(view) {
    if (view.page) return { label: 'Page is', value: view.page, what: 'the page filter' };
    const f = parseFilter(view.filter);
    if (!f) return null;
    const name = DIMENSIONS[f.dimension];
    const value = f.dimension === 'country' ? countryName(f.value) : f.value;
    return { label: name + ' is', value, what: 'the ' + name.toLowerCase() + ' filter' };
  }

  return {
    /** Reflects `view` in the buttons, the range inputs and the chip. */
    show(view) {
      current = view;
      buttons.forEach((b) => b.setAttribute('aria-pressed', String(b.getAttribute('data-tf') === view.timeframe)));
      if (view.from) {
        form.from.value = view.from;
        form.to.value = view.to;
      }
      form.from.max = form.to.max = today();
      check();
      const c = chip(view);
      $('filter-bar').hidden = !c;
      $('filter-value').textContent = c ? c.value : '';
      $('filter-label').textContent = c ? c.label : '';
      const clear = $('filter-clear');
      clear.setAttribute('aria-label', 'Remove ' + (c ? c.what : 'the filter'));
      clear.title = clear.getAttribute('aria-label');
    },
    /** The range a timeframe resolved to, shown in the inputs unless the user is editing them. */
    showRange(from, to) {
      if (current.from || form.contains(document.activeElement)) return;
      if (from && to) {
        form.from.value = from;
        form.to.value = to;
        check();
      }
    },
    /** The site's time zone, which decides what "today" is. */
    setTimeZone(zone) {
      tz = zone || 'UTC';
      form.from.max = form.to.max = today();
      check();
    },
  };
}
