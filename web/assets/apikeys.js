// Stats API keys (v3): the user's read-only keys, listed without the keys themselves; a new
// one for this site or all of the user's sites, shown once with a copy button; deleting one
// stops it at once. Names and site names are set as text.

import { $, el, copyText, messageRow } from './dom.js';

/** options: `call(path, {method, body})` -> Promise (the owner's api call). */
export function createApiKeys(options) {
  const o = options;
  const list = $('key-list');
  const form = $('key-form');
  const created = $('key-created');
  let site = null;
  let sites = {};

  function reads(k) {
    if (k.sites === '*') return 'All sites';
    return (Array.isArray(k.sites) ? k.sites : []).map((id) => sites[id] || id).join(', ');
  }

  function render(keys) {
    if (!keys.length) {
      messageRow(list, 'No keys yet.', 'muted', 4);
      return;
    }
    list.textContent = '';
    keys.forEach((k) => {
      const tr = el('tr');
      tr.appendChild(el('td', k.name));
      tr.appendChild(el('td', reads(k)));
      tr.appendChild(el('td', String(k.created_at || '').slice(0, 10), 'num'));
      const td = el('td');
      const del = el('button', 'Delete', 'button small danger-btn');
      del.type = 'button';
      del.setAttribute('aria-label', 'Delete key ' + k.name);
      del.addEventListener('click', () => {
        if (!confirm('Delete the key "' + k.name + '"? Whatever uses it stops reading at once.')) return;
        del.disabled = true;
        o.call('/api/keys/' + encodeURIComponent(k.id), { method: 'DELETE' }).then(load, (e) => {
          $('key-form-error').textContent = 'Could not delete the key: ' + e.message;
          del.disabled = false;
        });
      });
      td.appendChild(del);
      tr.appendChild(td);
      list.appendChild(tr);
    });
  }

  function load() {
    return o.call('/api/keys').then(render, (e) => messageRow(list, 'Could not load the keys: ' + e.message, 'error-text', 4));
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    $('key-name-error').textContent = '';
    $('key-form-error').textContent = '';
    const name = $('key-name').value.trim();
    if (!name) {
      $('key-name-error').textContent = 'Give the key a name.';
      $('key-name').setAttribute('aria-invalid', 'true');
      $('key-name').focus();
      return;
    }
    $('key-name').removeAttribute('aria-invalid');
    const scope = $('key-scope').value === '*' ? '*' : [site.id];
    const button = $('key-create');
    button.disabled = true;
    o.call('/api/keys', { method: 'POST', body: { name, sites: scope } }).then((k) => {
      form.reset();
      created.hidden = false;
      $('key-value').value = k.key;
      $('key-value').focus();
      $('key-value').select();
      $('key-copy-status').textContent = '';
      return load();
    }, (err) => {
      const field = /^name:/.test(err.message) ? 'key-name-error' : 'key-form-error';
      $(field).textContent = err.message;
    }).then(() => { button.disabled = false; });
  });

  $('key-copy').addEventListener('click', () => copyText($('key-value').value, $('key-copy-status')));

  return {
    /** The site on screen (a new key may read it alone), and the user's sites by id. */
    show(s, all) {
      site = s;
      sites = {};
      (all || [s]).forEach((x) => { sites[x.id] = x.name; });
      created.hidden = true;
      $('key-value').value = '';
      load();
    },
  };
}
