// Imports (v3): the site's imports of Plausible's export zip, with their state and, for a
// failed one, the file and line to blame; a zip uploaded as it is; an import deleted at once;
// the site's own export as a zip. While an import runs the list is polled, and the stats
// reload once it is done. Every string is set as text.

import { $, el, messageRow } from './dom.js';

const STATES = { running: 'Importing…', done: 'Done', failed: 'Failed' };
/** How often a running import is looked at, and for how long at most. */
const POLL_MS = 2000;
const POLL_LIMIT_MS = 10 * 60 * 1000;

/** options: `call(path, {method, body, file})`, `download(path, fallback)`, `onDone()`. */
export function createImports(options) {
  const o = options;
  const list = $('import-list');
  const form = $('import-form');
  let site = null;
  let timer = null;
  let pollingSince = 0;
  let running = new Set();

  const base = () => '/api/sites/' + encodeURIComponent(site.id);

  function days(i) {
    if (!i.from) return '—';
    return i.from === i.to ? i.from : i.from + ' – ' + i.to;
  }

  function render(imports) {
    if (!imports.length) {
      messageRow(list, 'No imports yet.', 'muted', 4);
      return;
    }
    list.textContent = '';
    imports.forEach((i) => {
      const tr = el('tr');
      tr.appendChild(el('td', days(i)));
      const state = el('td', STATES[i.state] || i.state, 'import-' + i.state);
      tr.appendChild(state);
      tr.appendChild(el('td', i.error || '', i.error ? 'error-text' : ''));
      const td = el('td');
      const del = el('button', 'Delete', 'button small danger-btn');
      del.type = 'button';
      // Hidden below the role the route needs (app.css, body[data-role]).
      del.dataset.minRole = 'owner';
      del.setAttribute('aria-label', 'Delete import ' + days(i));
      del.addEventListener('click', () => {
        if (!confirm('Delete the import of ' + days(i) + '? Its days leave the stats at once.')) return;
        del.disabled = true;
        o.call(base() + '/imports/' + encodeURIComponent(i.id), { method: 'DELETE' }).then(() => {
          o.onDone();
          return load();
        }, (e) => {
          $('import-error').textContent = 'Could not delete the import: ' + e.message;
          del.disabled = false;
        });
      });
      td.appendChild(del);
      tr.appendChild(td);
      list.appendChild(tr);
    });
  }

  function schedule(imports) {
    const now = new Set(imports.filter((i) => i.state === 'running').map((i) => i.id));
    const finished = [...running].some((id) => !now.has(id));
    running = now;
    if (finished) o.onDone();
    clearTimeout(timer);
    if (now.size && Date.now() - pollingSince < POLL_LIMIT_MS) timer = setTimeout(load, POLL_MS);
  }

  function load() {
    const forSite = site;
    return o.call(base() + '/imports').then((imports) => {
      if (forSite !== site) return;
      render(imports);
      schedule(imports);
    }, (e) => messageRow(list, 'Could not load the imports: ' + e.message, 'error-text', 4));
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    $('import-error').textContent = '';
    const input = $('import-file');
    const file = input.files && input.files[0];
    if (!file) {
      $('import-error').textContent = 'Choose the zip that Plausible\u2019s "Export data" produced.';
      input.focus();
      return;
    }
    const button = $('import-upload');
    button.disabled = true;
    o.call(base() + '/imports', { method: 'POST', file }).then(() => {
      form.reset();
      pollingSince = Date.now();
      return load();
    }, (err) => { $('import-error').textContent = err.message; }).then(() => { button.disabled = false; });
  });

  $('export-zip').addEventListener('click', () => {
    const status = $('export-zip-status');
    status.textContent = 'Preparing…';
    o.download(base() + '/export.zip', 'convertpulse-export.zip')
      .then((name) => { status.textContent = 'Downloaded ' + name; }, (e) => { status.textContent = 'Could not export: ' + e.message; });
  });

  return {
    show(s) {
      site = s;
      running = new Set();
      pollingSince = Date.now();
      $('import-error').textContent = '';
      $('export-zip-status').textContent = '';
      load();
    },
  };
}
