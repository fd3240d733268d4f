// The owner's account: log out and change the password. Both end every token the user holds
// on the server (every browser and device), this one included. Logging out asks the server
// first and only then forgets the token here, so a failed request leaves nothing half done.
// A password change answers without a token: the page logs in again with the new password,
// and sends the user to the log-in page if that fails. Messages are set as text.

import { $ } from './dom.js';
import { request } from './http.js';

/**
 * options: `token()` the current token; `setToken(t)` keeps a new one (here and in storage);
 * `email()` the user's email; `renewing(on)` says a change is ending the token and logging in
 * again; `leave(reason)` forgets the token and opens the log-in page.
 */
export function createAccount(options) {
  const o = options;
  const panel = $('account');
  const toggle = $('account-btn');
  const form = $('password-form');
  const status = $('password-status');
  const show = (id, text) => { $(id).textContent = text || ''; };

  function open(visible) {
    panel.hidden = !visible;
    toggle.setAttribute('aria-expanded', String(visible));
    if (visible) $('current-password').focus();
  }
  toggle.addEventListener('click', () => open(panel.hidden));
  $('password-cancel').addEventListener('click', () => { open(false); toggle.focus(); });

  $('logout').addEventListener('click', () => {
    const button = $('logout');
    button.disabled = true;
    request('/api/auth/logout', { method: 'POST', token: o.token() }).then(
      () => o.leave('logout'),
      (e) => {
        // An ended or expired token is logged out already.
        if (e.status === 401) return o.leave('logout');
        $('banner').textContent = 'Could not log out: ' + e.message + ' You are still logged in; try again.';
        $('banner').hidden = false;
        button.disabled = false;
      });
  });

  function validate(current, next) {
    let ok = true;
    show('current-password-error');
    show('new-password-error');
    if (!current) { show('current-password-error', 'Enter your current password.'); ok = false; }
    if (next.length < 8) { show('new-password-error', 'Use at least 8 characters.'); ok = false; }
    else if (new TextEncoder().encode(next).length > 72) { show('new-password-error', 'Use at most 72 bytes.'); ok = false; }
    return ok;
  }

  const failures = {
    invalid_credentials: ['current-password-error', 'The current password is wrong.'],
    invalid_password: ['new-password-error', null],
    rate_limited: ['password-form-error', 'Too many attempts. Please wait a few minutes and try again.'],
  };

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    show('password-form-error');
    status.textContent = '';
    const current = form.current.value;
    const next = form.new.value;
    if (!validate(current, next)) return;
    const button = $('password-save');
    button.disabled = true;
    o.renewing(true);
    request('/api/auth/password', { method: 'POST', token: o.token(), body: { current_password: current, new_password: next } })
      .then(() => {
        form.reset();
        status.textContent = 'Your password is changed. Every other session is logged out.';
        // Every token ended with the change, this one too: log in again with the new password.
        return request('/api/auth/login', { method: 'POST', body: { email: o.email(), password: next } })
          .then((res) => o.setToken(res.token), () => o.leave('password'));
      }, (err) => {
        if (err.status === 401 && err.code !== 'invalid_credentials') return o.leave('expired');
        const f = failures[err.code] || ['password-form-error', null];
        show(f[0], f[1] || err.message);
      })
      .then(() => {
        o.renewing(false);
        button.disabled = false;
      });
  });
}
