// Teams (issue 24): the site's members and invitations (owner only: list, invite by email and
// role showing the link, remove), the caller's weekly report, and the site's alerts (admins and
// the owner: list, add, delete). A panel whose route the server does not have (an api before
// teams answers 404) or refuses to the caller's role (403) stays hidden. Every string is set
// as text.

import { $, el, messageRow } from './dom.js';

const METRICS = { visitors: 'Visitors', conversions: 'Conversions', conversion_rate: 'Conversion rate' };
const ROLES = { viewer: 'Viewer', admin: 'Admin', owner: 'Owner' };
const RANK = { viewer: 0, admin: 1, owner: 2 };

/** The caller's role on `site`; an api before teams sends none and only the owner saw a site. */
export function roleOf(site) {
  return RANK[site.role] === undefined ? 'owner' : site.role;
}

/** options: `call(path, {method, body})`. */
export function createTeam(options) {
  const o = options;
  let site = null;
  const base = () => '/api/sites/' + encodeURIComponent(site.id);
  const current = (forSite) => forSite === site;

  function deleteButton(label, question, path, error, reload) {
    const b = el('button', label, 'button small danger-btn');
    b.type = 'button';
    b.addEventListener('click', () => {
      if (!confirm(question)) return;
      b.disabled = true;
      o.call(path, { method: 'DELETE' }).then(reload, (e) => {
        $(error).textContent = e.message;
        b.disabled = false;
      });
    });
    return b;
  }

  // Members
  function renderMembers(members) {
    const list = $('member-list');
    if (!members.length) {
      messageRow(list, 'Nobody else sees this site yet.', 'muted', 4);
      return;
    }
    list.textContent = '';
    members.forEach((m) => {
      const tr = el('tr');
      tr.appendChild(el('td', m.email));
      tr.appendChild(el('td', ROLES[m.role] || m.role));
      tr.appendChild(el('td', m.status === 'invited' ? 'Invited until ' + String(m.expires_at || '').slice(0, 10) : 'Active'));
      const td = el('td');
      const remove = deleteButton(m.status === 'invited' ? 'Withdraw' : 'Remove',
        'Remove ' + m.email + ' from "' + site.name + '"? They lose access within seconds.',
        base() + '/members/' + encodeURIComponent(m.id), 'member-error', loadMembers);
      remove.setAttribute('aria-label', 'Remove ' + m.email);
      td.appendChild(remove);
      tr.appendChild(td);
      list.appendChild(tr);
    });
  }

  // A list panel: shown with its rows, or hidden when the route is absent or not the role's.
  function loadList(what, section, list, render) {
    const forSite = site;
    return o.call(base() + '/' + what).then((items) => {
      if (!current(forSite)) return;
      $(section).hidden = false;
      render(items);
    }, (e) => {
      if (!current(forSite)) return;
      if (e.status === 404 || e.status === 403) $(section).hidden = true;
      else messageRow($(list), 'Could not load the ' + what + ': ' + e.message, 'error-text', 4);
    });
  }
  const loadMembers = () => loadList('members', 'members', 'member-list', renderMembers);

  $('member-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const error = $('member-error');
    error.textContent = '';
    const email = $('member-email').value.trim();
    if (!email) {
      error.textContent = 'Give the email address to invite.';
      $('member-email').focus();
      return;
    }
    const button = $('member-invite');
    button.disabled = true;
    o.call(base() + '/members', { method: 'POST', body: { email, role: $('member-role').value } }).then((m) => {
      $('member-form').reset();
      $('invite-created').hidden = false;
      $('invite-link').value = m.invite_url;
      $('invite-link').focus();
      $('invite-link').select();
      return loadMembers();
    }, (err) => { error.textContent = err.message; }).then(() => { button.disabled = false; });
  });

  // Weekly report
  function loadReport() {
    const forSite = site;
    const box = $('report-weekly');
    return o.call(base() + '/report').then((r) => {
      if (!current(forSite)) return;
      box.checked = !!r.weekly;
      $('report-panel').hidden = false;
    }, () => { if (current(forSite)) $('report-panel').hidden = true; });
  }

  $('report-weekly').addEventListener('change', (e) => {
    const box = e.target;
    const status = $('report-status');
    box.disabled = true;
    status.textContent = 'Saving…';
    o.call(base() + '/report', { method: 'PUT', body: { weekly: box.checked } }).then((r) => {
      box.checked = !!r.weekly;
      status.textContent = r.weekly ? 'You get the report every Monday.' : 'No weekly report.';
    }, (err) => {
      box.checked = !box.checked;
      status.textContent = 'Could not save: ' + err.message;
    }).then(() => { box.disabled = false; });
  });

  // Alerts
  function describe(a) {
    return (a.change === 'spike' ? 'Rises' : 'Drops') + ' by ' + a.percent + '% or more';
  }

  function renderAlerts(alerts) {
    const list = $('alert-list');
    if (!alerts.length) {
      messageRow(list, 'No alerts yet.', 'muted', 4);
      return;
    }
    list.textContent = '';
    alerts.forEach((a) => {
      const tr = el('tr');
      tr.appendChild(el('td', METRICS[a.metric] || a.metric));
      tr.appendChild(el('td', describe(a)));
      tr.appendChild(el('td', a.window_hours + ' h'));
      const td = el('td');
      const del = deleteButton('Delete', 'Delete the alert on ' + (METRICS[a.metric] || a.metric).toLowerCase() + '?',
        base() + '/alerts/' + encodeURIComponent(a.id), 'alert-error', loadAlerts);
      del.setAttribute('aria-label', 'Delete alert: ' + (METRICS[a.metric] || a.metric) + ', ' + describe(a));
      td.appendChild(del);
      tr.appendChild(td);
      list.appendChild(tr);
    });
  }

  const loadAlerts = () => loadList('alerts', 'alerts', 'alert-list', renderAlerts);

  $('alert-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const error = $('alert-error');
    error.textContent = '';
    const body = {
      metric: $('alert-metric').value,
      change: $('alert-change').value,
      percent: Number($('alert-percent').value),
      window_hours: Number($('alert-window').value),
    };
    const button = $('alert-create');
    button.disabled = true;
    o.call(base() + '/alerts', { method: 'POST', body }).then(() => loadAlerts(), (err) => { error.textContent = err.message; })
      .then(() => { button.disabled = false; });
  });

  return {
    show(s) {
      site = s;
      const role = roleOf(s);
      document.body.dataset.role = role;
      ['member-error', 'alert-error', 'report-status'].forEach((id) => { $(id).textContent = ''; });
      $('invite-created').hidden = true;
      $('invite-link').value = '';
      loadReport();
      if (RANK[role] >= RANK.owner) loadMembers();
      else $('members').hidden = true;
      if (RANK[role] >= RANK.admin) loadAlerts();
      else $('alerts').hidden = true;
    },
  };
}
