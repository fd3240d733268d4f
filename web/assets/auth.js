// Log-in and sign-up forms: inline validation, the API's own error messages, then the dashboard.
(function () {
  'use strict';
  var form = document.getElementById('auth-form');
  var mode = form.getAttribute('data-mode');
  var reasons = {
    expired: 'Your session has expired. Please log in again.',
    signin: 'Please log in to see your dashboard.',
    logout: 'You are logged out.',
    password: 'Your password was changed. Log in with the new one.'
  };
  var reason = new URLSearchParams(location.search).get('reason');
  if (reason && reasons[reason]) {
    var notice = document.getElementById('notice');
    notice.textContent = reasons[reason];
    notice.hidden = false;
  }

  function show(id, text) { document.getElementById(id).textContent = text || ''; }

  function validate() {
    var ok = true;
    var email = form.email.value.trim();
    var password = form.password.value;
    show('email-error', '');
    show('password-error', '');
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) { show('email-error', 'Enter a valid email address.'); ok = false; }
    if (mode === 'register') {
      if (password.length < 8) { show('password-error', 'Use at least 8 characters.'); ok = false; }
      else if (new TextEncoder().encode(password).length > 72) { show('password-error', 'Use at most 72 bytes.'); ok = false; }
    } else if (!password) { show('password-error', 'Enter your password.'); ok = false; }
    return ok;
  }

  var messages = {
    email_taken: ['email-error', 'An account with this email already exists. Log in instead?'],
    invalid_email: ['email-error', null],
    weak_password: ['password-error', null],
    invalid_credentials: ['form-error', 'Email or password is wrong.'],
    rate_limited: ['form-error', 'Too many attempts. Please wait a few minutes and try again.']
  };

  form.addEventListener('submit', function (e) {
    e.preventDefault();
    show('form-error', '');
    if (!validate()) return;
    var button = form.querySelector('button');
    button.disabled = true;
    var body = { email: form.email.value.trim(), password: form.password.value };
    if (form.name && form.name.value.trim()) body.name = form.name.value.trim();
    fetch('/api/auth/' + mode, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, body: j }; }); })
      .then(function (res) {
        if (res.ok && res.body.token) {
          localStorage.setItem('cp_token', res.body.token);
          location.assign('/dashboard');
          return;
        }
        var m = messages[res.body.error] || ['form-error', null];
        show(m[0], m[1] || res.body.message || 'Something went wrong.');
      })
      .catch(function () { show('form-error', 'Cannot reach the server. Check your connection.'); })
      .then(function () { button.disabled = false; });
  });
})();
