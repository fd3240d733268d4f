// The toolbar of a dashboard: timeframe buttons, the custom date range (which cannot be
// applied while invalid: from after to, over 366 days, or in the future), and the removable
// page-filter chip. It only reports the view the user asked for; the page decides what to do.

import { $ } from './dom.js';
import { rangeProblem, todayIn } from './format.js';

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
    onChange(withPage({ timeframe: b.getAttribute('data-tf') }));
  }));
  form.from.addEventListener('input', check);
  form.to.addEventListener('input', check);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!check()) return;
    onChange(withPage({ from: form.from.value, to: form.to.value }));
  });
  $('filter-clear').addEventListener('click', () => {
    const v = Object.assign({}, current);
    delete v.page;
    onChange(v);
    // The chip is gone: keep keyboard focus on the page rather than losing it to <body>.
    $('site-title').focus();
  });

  function withPage(v) {
    if (current.page) v.page = current.page;
    return v;
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
      $('filter-bar').hidden = !view.page;
      $('filter-value').textContent = view.page || '';
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
