// The invitation page (/invite/<token>): a logged-in invitee presses Accept, which sends
// POST /invite/<token> with their token, then goes to the site's dashboard.
import { request } from './http.js';
import { $ } from './dom.js';

const token = decodeURIComponent(location.pathname.split('/').pop() || '');
const session = localStorage.getItem('cp_token');

if (!session) {
  $('invite-login').hidden = false;
} else {
  const button = $('invite-accept');
  button.hidden = false;
  button.addEventListener('click', () => {
    button.disabled = true;
    $('invite-error').textContent = '';
    request('/invite/' + encodeURIComponent(token), { method: 'POST', token: session })
      .then((site) => {
        $('invite-text').textContent = 'You now see ' + site.name + ' (' + site.domain + ') as ' + site.role + '.';
        location.assign('/dashboard');
      })
      .catch((e) => {
        button.disabled = false;
        $('invite-error').textContent = e.status === 404
          ? 'This invitation is unknown, used or expired. Ask the site owner for a new one.'
          : e.message;
      });
  });
}
