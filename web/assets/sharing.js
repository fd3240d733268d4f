// The public link of a site (owner only): create it, rotate it (creating again: the old link
// stops working), revoke it, and copy its full URL. The api returns a link only when it is
// created, so after a reload the page cannot show an existing one (unless the site object
// carries `share_url` or `share_token`); it says so instead.

import { $, copyText } from './dom.js';

/** options: `call(path, {method})` -> Promise (the owner's api call). */
export function createSharing(options) {
  const o = options;
  const create = $('share-create');
  const revoke = $('share-revoke');
  const box = $('share-current');
  const url = $('share-url');
  const status = $('share-status');
  let site = null;
  let link = null;

  function base() { return '/api/sites/' + encodeURIComponent(site.id) + '/share'; }

  function render() {
    box.hidden = !link;
    url.value = link ? new URL(link, location.origin).href : '';
    create.textContent = link ? 'Rotate link' : 'Create public link';
  }

  create.addEventListener('click', () => {
    if (link && !confirm('Replace the public link? The current link stops working; share the new one.')) return;
    create.disabled = true;
    status.textContent = '';
    o.call(base(), { method: 'POST' }).then((res) => {
      link = res && (res.url || (res.token && '/share/' + encodeURIComponent(res.token)));
      render();
      status.textContent = 'A new public link is ready. Any older link no longer works.';
      url.focus();
      url.select();
    }, (e) => {
      status.textContent = 'Could not create a public link: ' + e.message;
    }).then(() => { create.disabled = false; });
  });

  revoke.addEventListener('click', () => {
    if (!confirm('Revoke the public link? Anyone who has it loses access within seconds.')) return;
    revoke.disabled = true;
    o.call(base(), { method: 'DELETE' }).then(() => {
      link = null;
      render();
      status.textContent = 'The public link is revoked.';
    }, (e) => {
      status.textContent = e.status === 404 ? 'There is no public link to revoke.' : 'Could not revoke the link: ' + e.message;
    }).then(() => { revoke.disabled = false; });
  });

  $('share-copy').addEventListener('click', () => copyText(url.value, $('share-copy-status')));

  return {
    /** Shows the sharing settings of `s` (a site). */
    show(s) {
      site = s;
      link = s.share_url || (s.share_token ? '/share/' + encodeURIComponent(s.share_token) : null);
      status.textContent = '';
      $('share-copy-status').textContent = '';
      render();
    },
  };
}
