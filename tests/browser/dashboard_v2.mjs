// Drives the dashboard and the shared page in headless Chromium against the fake api
// (fake-api.mjs), one scenario per run, and prints one JSON report as the last stdout line.
// tests/tests/browser_dashboard_v2.rs starts the fake api, runs each scenario and asserts on
// the report.
//   node tests/browser/dashboard_v2.mjs <scenario> <fake-api-url> <screenshot-dir>
// Scenarios: figures, goals, filter, range, export, share, live, states, screens, account,
// attention, funnels, segments, rowFilter.
import { launch, newContext, isPageError, chartsWithinWindow } from './launch.mjs';
import { IMG, SCRIPT } from './payloads.mjs';
import fs from 'node:fs';

const [scenario, api, shots] = process.argv.slice(2);
const addDays = (d, n) => new Date(Date.parse(d + 'T00:00:00Z') + n * 86400000).toISOString().slice(0, 10);
const previousRange = (from, to) => {
  const n = Math.round((Date.parse(to) - Date.parse(from)) / 86400000) + 1;
  return { from: addDays(from, -n), to: addDays(from, -1) };
};
const TOKEN = 'fake-owner-token';
const SHARE = 'share-initial-token-0123456789abcdef';
fs.mkdirSync(shots, { recursive: true });

const out = { scenario, payloads: { IMG, SCRIPT }, pageErrors: [], consoleErrors: [], dialogs: [], requests: [] };
const browser = await launch();
const context = await newContext(browser, { viewport: { width: 1280, height: 900 }, acceptDownloads: true, locale: 'en-US' });
await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: api });
// A payload that ran would set window.__xss or open a dialog; a CSP refusal is logged here too.
await context.addInitScript(() => {
  document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));
});

// Records what `page` does; its API requests are tagged with `label`.
function watch(page, label) {
  page.on('pageerror', (e) => out.pageErrors.push(String(e)));
  page.on('console', (m) => { if (isPageError(m)) out.consoleErrors.push(m.text()); });
  page.on('dialog', async (d) => {
    out.dialogs.push(d.message());
    // The app's own confirmations are accepted; a payload's alert("1") is recorded above.
    await d.accept();
  });
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/api/')) {
      out.requests.push({ page: label || 'owner', method: r.method(), path: u.pathname, query: u.search.slice(1), auth: !!r.headers().authorization, body: r.postData() || null });
    }
  });
  return page;
}

async function ownerPage(path) {
  const page = watch(await context.newPage());
  await page.goto(`${api}/login`);
  await page.evaluate((t) => localStorage.setItem('cp_token', t), TOKEN);
  await page.goto(`${api}${path || '/dashboard'}`);
  return page;
}

// Waits until the stats of `siteId` are rendered (and the previous-period line when `prev`).
async function rendered(page, siteId, prev) {
  await page.waitForFunction(([id, prev]) => {
    const d = window.cpDashboard;
    const c = d && d.charts['series-chart'];
    return d.stats && d.stats.site_id === id && c && (!prev || c.data.datasets.length === 4) && !document.getElementById('stats').hasAttribute('aria-busy');
  }, [siteId, prev]);
}

const statsCalls = () => out.requests.filter((r) => /^\/api\/(stats\/[^/]+|public\/[^/]+\/stats)$/.test(r.path));

function read(page) {
  return page.evaluate(() => {
    const text = (id) => { const e = document.getElementById(id); return e ? e.textContent : null; };
    const shown = (id) => { const e = document.getElementById(id); return !!e && !e.closest('[hidden]') && e.getClientRects().length > 0; };
    const rows = (id) => [...document.querySelectorAll(`#${id} tr`)].map((tr) => [...tr.children].map((td) => td.textContent));
    const heads = (id) => [...document.getElementById(id).closest('table').querySelectorAll('thead th')].map((th) => th.textContent);
    const cards = {};
    document.querySelectorAll('#cards .card').forEach((c) => {
      const id = c.id.slice(5);
      cards[id] = { value: text('c-' + id), delta: text('d-' + id), cls: document.getElementById('d-' + id).className, shown: !c.hidden };
    });
    const tables = {};
    const headers = {};
    const panels = {};
    document.querySelectorAll('#stats .table-panel').forEach((p) => {
      const id = p.id.slice(2);
      tables[id] = rows('t-' + id);
      headers[id] = heads('t-' + id);
      panels[id] = !p.hidden;
    });
    const chart = (id) => {
      const c = window.cpDashboard.charts[id];
      return c ? { labels: c.data.labels, data: c.data.datasets.map((d) => d.data), names: c.data.datasets.map((d) => d.label), dashed: c.data.datasets.map((d) => !!d.borderDash) } : null;
    };
    return {
      url: location.pathname + location.search,
      cards, tables, headers, panels,
      charts: { series: chart('series-chart'), scroll: chart('scroll-chart'), clicks: chart('clicks-chart'), live: chart('live-chart') },
      stats: window.cpDashboard.stats && { from: window.cpDashboard.stats.from, to: window.cpDashboard.stats.to, site_id: window.cpDashboard.stats.site_id },
      live: { shown: shown('live'), visitors: text('live-visitors'), pages: document.getElementById('t-live-pages') ? rows('t-live-pages') : null },
      goalsManager: shown('goals-manager'),
      chip: { shown: shown('filter-bar'), text: text('filter-value') },
      error: shown('stats-error') ? text('stats-error') : null,
      links: [...document.querySelectorAll('#stats a')].map((a) => a.getAttribute('href')),
      xss: window.__xss || null,
      injected: document.querySelectorAll('#main img, #main script, #main iframe, #main object, #main embed, #main svg').length,
      handlers: [...document.querySelectorAll('*')].filter((e) => [...e.attributes].some((a) => a.name.startsWith('on'))).length,
    };
  });
}

const fake = (path, body) => fetch(`${api}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
const owner = (path, init) => fetch(`${api}${path}`, Object.assign({}, init, { headers: Object.assign({ Authorization: 'Bearer ' + TOKEN, 'Content-Type': 'application/json' }, (init || {}).headers) }));

const scenarios = {
  // Every card, delta, table and chart of the fake's figures; then a server without v2 fields.
  async figures() {
    const page = await ownerPage();
    await rendered(page, 'site-v2', true);
    await page.waitForFunction(() => document.getElementById('live-visitors').textContent !== '–');
    out.v2 = await read(page);
    const prev = previousRange(out.v2.stats.from, out.v2.stats.to);
    out.previousRange = prev;
    out.previousSeries = (await (await owner(`/api/stats/site-v2?from=${prev.from}&to=${prev.to}`)).json()).series.map((p) => p.pageviews);
    out.expectedSeries = (await (await owner('/api/stats/site-v2?timeframe=7d')).json()).series.map((p) => p.pageviews);
    // Hover the click bars: the tooltip draws the payload on the canvas.
    const box = await page.locator('#clicks-chart').boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height * 0.6);

    await page.selectOption('#site-select', 'site-v1');
    // The previous-period line of a v1 server comes from a second (from/to) call: wait for it.
    await rendered(page, 'site-v1', true);
    await page.waitForFunction(() => document.getElementById('live').hidden && document.getElementById('goals-manager').hidden);
    out.v1 = await read(page);
    await page.goBack();
    await rendered(page, 'site-v2', true);
    out.afterBack = await read(page);
  },

  async goals() {
    const page = await ownerPage();
    await rendered(page, 'site-v2', false);
    await page.waitForFunction(() => document.querySelectorAll('#goal-list tr').length === 2);
    const list = () => page.evaluate(() => [...document.querySelectorAll('#goal-list tr')].map((tr) => [...tr.children].slice(0, 3).map((td) => td.textContent)));
    const options = () => page.evaluate(() => [...document.querySelectorAll('#goal-pick option')].map((o) => [o.value, o.textContent]));
    const errors = () => page.evaluate(() => Object.fromEntries(['name', 'kind', 'match', 'form'].map((f) => [f, document.getElementById(`goal-${f}-error`).textContent])));
    out.initial = await list();
    out.pagesOffered = await options();

    // A page picked from the top pages.
    await page.selectOption('#goal-pick', '/pricing');
    out.filledFromPick = await page.inputValue('#goal-match');
    await page.fill('#goal-name', 'Pricing visit');
    await page.click('#goal-add');
    await page.waitForFunction(() => document.querySelectorAll('#goal-list tr').length === 3);
    // A click selector, then an event name typed.
    await page.selectOption('#goal-kind', 'click');
    out.clicksOffered = await options();
    await page.selectOption('#goal-pick', 'button#cta');
    await page.fill('#goal-name', 'CTA');
    await page.click('#goal-add');
    await page.waitForFunction(() => document.querySelectorAll('#goal-list tr').length === 4);
    await page.selectOption('#goal-kind', 'event');
    out.eventsOffered = await options();
    await page.fill('#goal-name', 'Newsletter');
    await page.fill('#goal-match', 'newsletter_signup');
    await page.press('#goal-match', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('#goal-list tr').length === 5);
    out.afterCreate = await list();
    // A new goal is backfilled: its row says so.
    out.newGoalBackfill = await page.evaluate(() => [...document.querySelectorAll('#goal-list tr')].map((tr) => (tr.querySelector('.backfill') || {}).textContent || ''));
    out.posts = out.requests.filter((r) => r.method === 'POST' && r.path === '/api/sites/site-v2/goals').map((r) => JSON.parse(r.body));
    // The stats were reloaded: the new goals are in the goals table.
    await page.waitForFunction(() => document.querySelectorAll('#t-goals tr').length === 5);
    out.goalsTable = (await read(page)).tables.goals;

    // Refused by the api: the message sits next to the field it names.
    await page.selectOption('#goal-kind', 'pageview');
    await page.fill('#goal-name', 'Bad path');
    await page.fill('#goal-match', 'pricing');
    const before = out.requests.length;
    await page.click('#goal-add');
    await page.waitForFunction(() => document.getElementById('goal-match-error').textContent !== '');
    out.invalid = { errors: await errors(), focused: await page.evaluate(() => document.activeElement.id), ariaInvalid: await page.getAttribute('#goal-match', 'aria-invalid') };
    // Refused before any request: no name.
    await page.fill('#goal-name', '');
    await page.fill('#goal-match', '/x');
    const posted = out.requests.length;
    await page.click('#goal-add');
    out.missingName = { errors: await errors(), requests: out.requests.length - posted, invalidRequests: posted - before };

    // Delete, after the confirmation.
    await page.click('#goal-list tr:nth-child(3) button');
    await page.waitForFunction(() => document.querySelectorAll('#goal-list tr').length === 4);
    out.afterDelete = await list();
    out.deletes = out.requests.filter((r) => r.method === 'DELETE').map((r) => r.path);

    // Twenty goals: the form is disabled and says why.
    for (let i = (await list()).length; i < 20; i++) {
      await owner('/api/sites/site-v2/goals', { method: 'POST', body: JSON.stringify({ name: `Goal ${i}`, kind: 'event', match: `e${i}` }) });
    }
    out.twentyFirst = await (await owner('/api/sites/site-v2/goals', { method: 'POST', body: JSON.stringify({ name: 'One more', kind: 'event', match: 'x' }) })).json();
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll('#goal-list tr').length === 20);
    out.full = await page.evaluate(() => ({
      limitShown: !document.getElementById('goal-limit').hidden,
      limit: document.getElementById('goal-limit').textContent,
      disabled: ['goal-name', 'goal-kind', 'goal-match', 'goal-pick', 'goal-add'].filter((id) => document.getElementById(id).disabled),
    }));
    out.end = await read(page);
  },

  // Clicking a top page filters every call; the chip removes it; back/forward restore views.
  async filter() {
    const page = await ownerPage();
    await rendered(page, 'site-v2', true);
    const mark = () => statsCalls().length;
    const since = (n) => statsCalls().slice(n);
    let n = mark();
    await page.click('#t-pages button:text-is("/pricing")');
    await page.waitForFunction(() => document.getElementById('c-pageviews').textContent === '2.3k');
    out.filtered = await read(page);
    out.focusAfterFilter = await page.evaluate(() => document.activeElement.id);
    await page.click('[data-tf="30d"]');
    await rendered(page, 'site-v2', true);
    await page.click('#export');
    await page.waitForFunction(() => /Downloaded|Could not/.test(document.getElementById('export-status').textContent));
    out.whileFiltered = since(n).map((r) => r.query);
    out.exportWhileFiltered = out.requests.filter((r) => r.path.endsWith('/export.csv')).map((r) => r.query);
    out.urlFiltered30d = (await read(page)).url;

    await page.goBack();
    await page.waitForFunction(() => document.querySelector('[data-tf="7d"]').getAttribute('aria-pressed') === 'true');
    await rendered(page, 'site-v2', true);
    out.back1 = await read(page);
    n = mark();
    await page.goBack();
    await page.waitForFunction(() => document.getElementById('filter-bar').hidden && document.getElementById('c-pageviews').textContent === '12.3k');
    out.back2 = await read(page);
    out.afterBack2 = since(n).map((r) => r.query);
    await page.goForward();
    await page.waitForFunction(() => !document.getElementById('filter-bar').hidden && document.getElementById('c-pageviews').textContent === '2.3k');
    out.forward = await read(page);

    // The chip's remove button, from the keyboard.
    n = mark();
    await page.focus('#filter-clear');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.getElementById('filter-bar').hidden && document.getElementById('c-pageviews').textContent === '12.3k');
    out.cleared = await read(page);
    out.afterClear = since(n).map((r) => r.query);

    // A hostile path, chosen with the keyboard: filtered, shown as text, nothing runs.
    await page.focus(`#t-pages tr:nth-child(3) button`);
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.getElementById('c-pageviews').textContent === '1.2k');
    out.hostile = await read(page);
    out.hostileQuery = statsCalls().filter((r) => r.query.includes("compare")).slice(-1)[0].query;
    // The URL is shareable: a fresh page on it shows the same view.
    const again = watch(await context.newPage());
    await again.goto(`${api}${out.hostile.url}`);
    await rendered(again, 'site-v2', false);
    await again.waitForFunction(() => document.getElementById('c-pageviews').textContent === '1.2k');
    out.reopened = await read(again);
  },

  // A page filter shows the page's attention; the owner opens the overlay; a shared link shows
  // the same read-only.
  async attention() {
    const page = await ownerPage('/dashboard?site=site-v2&timeframe=30d&page=%2Fpricing');
    await rendered(page, 'site-v2', true);
    await page.waitForFunction(() => document.querySelectorAll('#attention tbody tr').length > 0);
    const readAttention = (p) => p.evaluate(() => {
      const box = document.getElementById('attention');
      return {
        shown: !box.hidden,
        title: box.querySelector('h2').textContent,
        tables: [...box.querySelectorAll('.attention-block')].map((b) => ({
          title: b.querySelector('h3').textContent,
          rows: [...b.querySelectorAll('tbody tr')].map((tr) => [...tr.children].map((td) => td.textContent)),
        })),
        scroll: [...box.querySelectorAll('.scroll-map li')].slice(0, 2).map((li) => li.textContent),
        overlayButton: [...box.querySelectorAll('button')].map((b) => b.textContent),
        xss: window.__xss || null,
        injected: box.querySelectorAll('img, script, iframe, svg').length,
      };
    });
    out.owner = await readAttention(page);
    out.pageCalls = out.requests.filter((r) => r.path === '/api/stats/site-v2/page').map((r) => r.query);
    await page.evaluate(() => { window.open = (u) => { window.__opened = u; }; });
    await page.click('#attention button:text-is("Open overlay on my page")');
    await page.waitForFunction(() => window.__opened);
    out.opened = await page.evaluate(() => window.__opened);
    out.overlayPosts = out.requests.filter((r) => r.path === '/api/sites/site-v2/overlay').map((r) => JSON.parse(r.body));
    // Unfiltered: no attention.
    await page.focus('#filter-clear');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.getElementById('attention').hidden);
    out.unfilteredHidden = true;

    const shared = watch(await context.newPage(), 'shared');
    await shared.goto(`${api}/share/share-initial-token-0123456789abcdef?timeframe=7d&page=%2Fpricing`);
    await shared.waitForFunction(() => document.querySelectorAll('#attention tbody tr').length > 0);
    out.shared = await readAttention(shared);
    out.publicCalls = out.requests.filter((r) => /^\/api\/public\/[^/]+\/page$/.test(r.path)).map((r) => r.query);
  },

  // The custom range cannot be applied while invalid.
  async range() {
    const page = await ownerPage();
    await rendered(page, 'site-v2', true);
    const state = () => page.evaluate(() => ({
      disabled: document.querySelector('#range-form button').disabled,
      message: document.getElementById('range-msg').textContent,
      max: document.querySelector('#range-form [name=to]').max,
      from: document.querySelector('#range-form [name=from]').value,
      to: document.querySelector('#range-form [name=to]').value,
    }));
    out.initial = await state();
    const today = out.initial.max;
    const day = (d, n) => new Date(Date.parse(d + 'T00:00:00Z') + n * 86400000).toISOString().slice(0, 10);
    const set = async (from, to) => {
      await page.fill('#range-form [name=from]', from);
      await page.fill('#range-form [name=to]', to);
      return state();
    };
    out.backwards = await set(day(today, -3), day(today, -5));
    out.future = await set(day(today, -3), day(today, 1));
    out.tooLong = await set(day(today, -366), today);
    out.empty = await set('', today);
    const n = statsCalls().length;
    await page.press('#range-form [name=to]', 'Enter'); // a submit while invalid does nothing
    out.requestsWhileInvalid = statsCalls().length - n;
    out.longest = await set(day(today, -365), today);
    out.valid = await set(day(today, -13), day(today, -7));
    await page.click('#range-form button');
    await page.waitForFunction(() => window.cpDashboard.stats.series.length === 7 && /from=/.test(location.search));
    await rendered(page, 'site-v2', true);
    out.applied = await read(page);
    out.appliedQuery = statsCalls().filter((r) => r.query.includes('compare')).slice(-1)[0].query;
    out.pressed = await page.evaluate(() => [...document.querySelectorAll('[data-tf]')].map((b) => b.getAttribute('aria-pressed')));
    await page.reload();
    await rendered(page, 'site-v2', true);
    out.reloaded = { state: await state(), read: await read(page) };
  },

  async export() {
    const page = await ownerPage();
    await rendered(page, 'site-v2', false);
    const download = async () => {
      const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
      const file = await dl.path();
      const call = out.requests.filter((r) => r.path.endsWith('/export.csv')).slice(-1)[0];
      const served = await (await owner(`${call.path}?${call.query}`)).text();
      await page.waitForFunction(() => /Downloaded/.test(document.getElementById('export-status').textContent));
      return { name: dl.suggestedFilename(), content: fs.readFileSync(file, 'utf8'), served, query: call.query, auth: call.auth, status: await page.textContent('#export-status') };
    };
    out.week = await download();
    await page.click('#t-pages button:text-is("/pricing")');
    await page.waitForFunction(() => document.getElementById('c-pageviews').textContent === '2.3k');
    await page.click('[data-tf="24h"]');
    await page.waitForFunction(() => window.cpDashboard.stats.granularity === 'hour');
    out.filtered = await download();
  },

  // Create, copy, rotate and revoke the public link; the shared page is read-only.
  async share() {
    const page = await ownerPage();
    await rendered(page, 'site-v2', false);
    await page.click('#share-create');
    await page.waitForFunction(() => document.getElementById('share-url').value !== '');
    const first = await page.inputValue('#share-url');
    await page.click('#share-copy');
    await page.waitForFunction(() => document.getElementById('share-copy-status').textContent === 'Copied');
    out.clipboard = await page.evaluate(() => navigator.clipboard.readText());
    out.createLabel = await page.textContent('#share-create');
    await page.click('#share-create'); // rotate, after the confirmation
    await page.waitForFunction((u) => document.getElementById('share-url').value !== u, first);
    const second = await page.inputValue('#share-url');
    out.links = [first, second];

    // The old link is gone; the new one shows the dashboard, read-only.
    const old = watch(await context.newPage(), 'old-link');
    await old.goto(first);
    await old.waitForFunction(() => !document.getElementById('invalid').hidden);
    out.oldLink = await old.evaluate(() => ({ text: document.getElementById('invalid').textContent, statsShown: !document.getElementById('site-view').hidden }));
    const shared = watch(await context.newPage(), 'shared');
    await shared.goto(second);
    await rendered(shared, 'site-v2', true);
    out.shared = await read(shared);
    out.sharedHtml = await shared.evaluate(() => document.documentElement.outerHTML);
    out.ownerOnly = await shared.evaluate(() => ['#settings-form', '#snippet', '#copy-snippet', '#goals-manager', '#goal-form', '#export', '#rotate-key',
      '#delete-site', '#share-panel', '#share-create', '#site-select', '#logout', '#account-btn', '#password-form', '#live'].filter((s) => document.querySelector(s)));
    out.sharedTokenInStorage = await shared.evaluate(() => localStorage.getItem('cp_token'));
    // Filtering works there too, with the same query.
    await shared.click('#t-pages button:text-is("/pricing")');
    await shared.waitForFunction(() => document.getElementById('c-pageviews').textContent === '2.3k');
    out.sharedFiltered = await read(shared);
    await shared.goBack();
    await shared.waitForFunction(() => document.getElementById('filter-bar').hidden && document.getElementById('c-pageviews').textContent === '12.3k');
    out.sharedBack = await read(shared);
    out.sharedRequests = out.requests.filter((q) => q.page === 'shared');

    // Revoked: the open page says so at its next load.
    await page.click('#share-revoke');
    await page.waitForFunction(() => /revoked/.test(document.getElementById('share-status').textContent));
    out.revokeStatus = await page.textContent('#share-status');
    out.linkShownAfterRevoke = await page.isVisible('#share-current');
    await shared.reload();
    await shared.waitForFunction(() => !document.getElementById('invalid').hidden);
    out.revoked = await shared.evaluate(() => ({ text: document.getElementById('invalid').textContent, statsShown: !document.getElementById('site-view').hidden, title: document.title }));
    await shared.setViewportSize({ width: 375, height: 700 });
    await shared.screenshot({ path: `${shots}/share-revoked-375.png` });
  },

  // The live counter follows the realtime figures without a reload.
  async live() {
    const page = await ownerPage();
    await page.waitForFunction(() => document.getElementById('live-visitors').textContent === '7');
    out.before = await read(page);
    await page.evaluate(() => { window.__sameDocument = true; });
    await fake('/__fake/realtime', { visitors_5m: 1234 });
    const t0 = Date.now();
    await page.waitForFunction(() => document.getElementById('live-visitors').textContent === '1.2k', null, { timeout: 15000 });
    out.waitedMs = Date.now() - t0;
    out.after = await read(page);
    out.sameDocument = await page.evaluate(() => window.__sameDocument === true);
    out.realtimeCalls = out.requests.filter((r) => r.path.endsWith('/realtime')).length;
  },

  // Loading and error states, and recovery.
  async states() {
    await fake('/__fake/delay', { ms: 1500 });
    const page = await ownerPage();
    await page.waitForFunction(() => document.querySelectorAll('#t-pages tr').length === 1);
    out.loading = await page.evaluate(() => ({
      tables: [...document.querySelectorAll('#stats tbody')].map((b) => b.textContent),
      charts: [...document.querySelectorAll('#stats .chart-box')].map((b) => b.getAttribute('data-status')),
      busy: document.getElementById('stats').getAttribute('aria-busy'),
    }));
    await rendered(page, 'site-v2', false);
    await fake('/__fake/delay', { ms: 0 });

    await fake('/__fake/fail', { stats: 1 });
    await page.click('[data-tf="30d"]');
    await page.waitForFunction(() => !document.getElementById('stats-error').hidden);
    out.failed = await page.evaluate(() => ({
      alert: document.getElementById('stats-error').textContent,
      tables: [...document.querySelectorAll('#stats .table-panel:not([hidden]) tbody')].map((b) => b.textContent),
      charts: [...document.querySelectorAll('#stats .chart-box')].map((b) => b.getAttribute('data-status')),
      cards: [...document.querySelectorAll('#cards .value')].map((v) => v.textContent),
    }));
    await page.click('#stats-error button');
    await page.waitForFunction(() => document.getElementById('stats-error').hidden && window.cpDashboard.stats.timeframe === '30d');
    out.recovered = await read(page);

    // A failed refresh keeps the figures on screen and says so.
    await fake('/__fake/fail', { stats: 1 });
    await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
    await page.waitForFunction(() => !document.getElementById('stats-error').hidden);
    out.staleAlert = await page.textContent('#stats-error');
    out.stale = await read(page);
  },

  // The account: a password change (checked in the page, refused by the server, then made:
  // the page logs in again and carries on with the new token), then a logout that asks the
  // server before it forgets the token.
  async account() {
    const page = await ownerPage();
    const tokensUsed = [];
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname.startsWith('/api/')) tokensUsed.push({ path: u.pathname, token: (r.headers().authorization || '').replace(/^Bearer /, '') || null });
    });
    await rendered(page, 'site-v2', false);
    const texts = () => page.evaluate(() => Object.fromEntries(['current-password-error', 'new-password-error', 'password-form-error', 'password-status']
      .map((id) => [id, document.getElementById(id).textContent])));
    out.panelAtFirst = { hidden: await page.isHidden('#account'), expanded: await page.getAttribute('#account-btn', 'aria-expanded') };
    await page.click('#account-btn');
    out.panelOpened = { visible: await page.isVisible('#password-form'), expanded: await page.getAttribute('#account-btn', 'aria-expanded'), focused: await page.evaluate(() => document.activeElement.id) };

    // Checked in the page first: nothing is sent.
    await page.fill('#new-password', 'short');
    await page.click('#password-save');
    out.inline = await texts();
    out.sentAfterInline = out.requests.filter((r) => r.path === '/api/auth/password').length;

    // The server refuses a wrong current password; its answer is shown as text.
    await page.fill('#current-password', 'not the password');
    await page.fill('#new-password', 'brand new pass');
    await page.click('#password-save');
    await page.waitForFunction(() => document.getElementById('current-password-error').textContent !== '');
    out.wrong = await texts();
    out.tokenAfterWrong = await page.evaluate(() => localStorage.getItem('cp_token'));
    await page.screenshot({ path: `${shots}/account-1280.png`, fullPage: false });

    // The change: every token ends; the page logs in again with the new password.
    await page.fill('#current-password', 'correct horse 1');
    await page.fill('#new-password', 'brand new pass');
    await page.click('#password-save');
    await page.waitForFunction((old) => localStorage.getItem('cp_token') && localStorage.getItem('cp_token') !== old, TOKEN);
    await page.waitForFunction(() => document.getElementById('password-status').textContent !== '');
    out.changed = Object.assign(await texts(), {
      url: new URL(page.url()).pathname,
      token: await page.evaluate(() => localStorage.getItem('cp_token')),
      fields: [await page.inputValue('#current-password'), await page.inputValue('#new-password')],
    });
    out.oldTokenAfterChange = (await owner('/api/auth/me')).status;
    // The dashboard carries on with the new token.
    const before = tokensUsed.length;
    await page.click('[data-tf="30d"]');
    await page.waitForFunction(() => window.cpDashboard.stats && window.cpDashboard.stats.timeframe === '30d');
    out.tokensAfterChange = tokensUsed.slice(before).filter((t) => t.path.startsWith('/api/stats/')).map((t) => t.token);

    // Log out: the server first, then the token is forgotten and the log-in page says so.
    const newToken = out.changed.token;
    await page.click('#logout');
    await page.waitForURL('**/login?reason=logout');
    out.loggedOut = {
      url: new URL(page.url()).pathname + new URL(page.url()).search,
      stored: await page.evaluate(() => localStorage.getItem('cp_token')),
      notice: await page.textContent('#notice'),
    };
    out.newTokenAfterLogout = (await fetch(`${api}/api/auth/me`, { headers: { Authorization: 'Bearer ' + newToken } })).status;
    out.accountCalls = out.requests.filter((r) => r.path.startsWith('/api/auth/') && r.method === 'POST')
      .map((r) => ({ path: r.path, auth: r.auth, body: r.body && JSON.parse(r.body) }));
    out.logoutToken = tokensUsed.filter((t) => t.path === '/api/auth/logout').map((t) => t.token);
  },

  // Screenshots for review at 1280 and 375 px; no horizontal scroll; keyboard reachability.
  async screens() {
    const page = await ownerPage();
    await rendered(page, 'site-v2', true);
    await page.waitForFunction(() => document.getElementById('live-visitors').textContent !== '–' && document.querySelectorAll('#goal-list tr').length > 0);
    await page.screenshot({ path: `${shots}/dashboard-v2-1280.png`, fullPage: true });

    // Tab through the page: every stop is a control, and the filter rows are among them.
    const stops = [];
    for (let i = 0; i < 200; i++) {
      await page.keyboard.press('Tab');
      stops.push(await page.evaluate(() => {
        const e = document.activeElement;
        const style = getComputedStyle(e);
        return { tag: e.tagName.toLowerCase(), id: e.id, cls: e.className, text: (e.textContent || '').slice(0, 40), outline: style.outlineStyle !== 'none' && style.outlineWidth !== '0px' };
      }));
    }
    out.tabStops = stops;

    await page.click('#t-pages button:text-is("/pricing")');
    await page.waitForFunction(() => document.getElementById('c-pageviews').textContent === '2.3k');
    await page.setViewportSize({ width: 375, height: 812 });
    await chartsWithinWindow(page);
    await page.screenshot({ path: `${shots}/dashboard-v2-375.png`, fullPage: true });
    out.dashboard375 = await overflow(page);

    const shared = watch(await context.newPage());
    await shared.goto(`${api}/share/${SHARE}`);
    await rendered(shared, 'site-v2', true);
    await shared.screenshot({ path: `${shots}/share-1280.png`, fullPage: true });
    await shared.setViewportSize({ width: 375, height: 812 });
    await chartsWithinWindow(shared);
    await shared.screenshot({ path: `${shots}/share-375.png`, fullPage: true });
    out.share375 = await overflow(shared);
  },
};

// Issue 21: funnels, segments and one-click filters.
Object.assign(scenarios, {
  // The chart of a funnel over the range, another funnel still backfilling, the editor's
  // refusals next to the step they name, a new funnel, and deleting one.
  async funnels() {
    const page = await ownerPage();
    await rendered(page, 'site-v2', false);
    await page.waitForFunction(() => document.querySelectorAll('#funnel-chart .funnel-step').length === 3);
    const chart = () => page.evaluate(() => ({
      steps: [...document.querySelectorAll('#funnel-chart .funnel-step')].map((li) => {
        const t = (sel) => { const e = li.querySelector(sel); return e ? e.textContent : null; };
        return { no: t('.step-no'), kind: t('.step-kind'), match: t('.step-match'), sessions: t('.step-sessions'), prev: t('.step-prev'), start: t('.step-start'), drop: t('.step-drop'), share: li.querySelector('.step-bar').style.getPropertyValue('--share') };
      }),
      label: document.querySelector('#funnel-chart ol').getAttribute('aria-label'),
      backfill: document.getElementById('funnel-backfill').hidden ? null : document.getElementById('funnel-backfill').textContent.replace(/\s+/g, ' ').trim(),
      chosen: document.getElementById('funnel-select').value,
      options: [...document.querySelectorAll('#funnel-select option')].map((o) => o.textContent),
    }));
    const list = () => page.evaluate(() => [...document.querySelectorAll('#funnel-list tr')].map((tr) => [...tr.children].map((td) => td.textContent)));
    const funnelCalls = () => out.requests.filter((r) => /^\/api\/stats\/site-v2\/funnels\//.test(r.path)).map((r) => r.path + '?' + r.query);
    out.first = await chart();
    out.list = await list();
    // The chart follows the range.
    await page.click('[data-tf="30d"]');
    await page.waitForFunction(() => window.cpDashboard.stats.timeframe === '30d');
    await page.waitForFunction(() => document.querySelectorAll('#funnel-chart .funnel-step').length === 3);
    out.callsAfter30d = funnelCalls();
    // A funnel still counting past data, with hostile strings.
    await page.selectOption('#funnel-select', 'funnel-2');
    await page.waitForFunction(() => document.querySelectorAll('#funnel-chart .funnel-step').length === 2);
    out.second = await chart();
    out.secondView = await read(page);

    const errors = () => page.evaluate(() => ({
      name: document.getElementById('funnel-name-error').textContent,
      steps: [...document.querySelectorAll('#funnel-steps .field-error')].map((p) => p.textContent),
      form: document.getElementById('funnel-form-error').textContent,
      focused: document.activeElement.id,
      invalid: [...document.querySelectorAll('#funnel-form [aria-invalid="true"]')].map((e) => e.id),
    }));
    const posts = () => out.requests.filter((r) => r.method === 'POST' && r.path === '/api/sites/site-v2/funnels').length;
    // Refused in the page: no name, an empty match.
    await page.fill('#funnel-step-0-match', '/');
    await page.click('#funnel-save');
    out.inline = await errors();
    out.postsAfterInline = await posts();
    // Refused by the api: the message goes to the step it names.
    await page.fill('#funnel-name', 'Trial funnel');
    await page.fill('#funnel-step-1-match', 'pricing');
    await page.click('#funnel-save');
    await page.waitForFunction(() => document.getElementById('funnel-step-1-error').textContent !== '');
    out.refused = await errors();
    await page.setViewportSize({ width: 375, height: 812 });
    await page.locator('#funnels').screenshot({ path: `${shots}/funnels-375.png` });
    out.funnels375 = await overflow(page);
    await page.setViewportSize({ width: 1280, height: 900 });
    // Fixed, with a third step: created, chosen, counting past data.
    await page.fill('#funnel-step-1-match', '/pricing');
    await page.click('#funnel-add-step');
    out.focusAfterAdd = await page.evaluate(() => document.activeElement.id);
    await page.selectOption('#funnel-step-2-kind', 'event');
    await page.fill('#funnel-step-2-match', 'Trial started');
    await page.click('#funnel-save');
    await page.waitForFunction(() => document.querySelectorAll('#funnel-list tr').length === 3 && document.getElementById('funnel-select').value === 'funnel-3');
    await page.waitForFunction(() => document.querySelectorAll('#funnel-chart .funnel-step').length === 3 && !document.getElementById('funnel-backfill').hidden);
    out.created = { chart: await chart(), list: await list(), errors: await errors(), name: await page.inputValue('#funnel-name'), rows: await page.evaluate(() => document.querySelectorAll('#funnel-steps li').length) };
    out.posts = out.requests.filter((r) => r.method === 'POST' && r.path === '/api/sites/site-v2/funnels').map((r) => JSON.parse(r.body));
    // Deleted after the confirmation.
    await page.click('#funnel-list tr:nth-child(2) button');
    await page.waitForFunction(() => document.querySelectorAll('#funnel-list tr').length === 2);
    out.afterDelete = await list();
    out.deletes = out.requests.filter((r) => r.method === 'DELETE').map((r) => r.path);
    out.end = await read(page);
  },

  // The segment picker: every stats call, the URL and history carry `segment=`; the chip names
  // it; the editor refuses next to the condition named and creates; deleting the segment shown
  // goes back to all visitors.
  async segments() {
    const page = await ownerPage();
    await rendered(page, 'site-v2', true);
    await page.waitForFunction(() => !document.getElementById('segment-picker').hidden && document.querySelectorAll('#segment-select option').length === 3);
    const picker = () => page.evaluate(() => ({
      options: [...document.querySelectorAll('#segment-select option')].map((o) => [o.value, o.textContent]),
      value: document.getElementById('segment-select').value,
      chip: !document.getElementById('segment-bar').hidden,
      name: document.getElementById('segment-chip-name').textContent,
      backfill: !document.getElementById('segment-chip-backfill').hidden,
    }));
    out.initial = await picker();
    let n = statsCalls().length;
    await page.selectOption('#segment-select', 'seg-1');
    await page.waitForFunction(() => document.getElementById('c-pageviews').textContent === '3.2k');
    await rendered(page, 'site-v2', true);
    out.chosen = { picker: await picker(), read: await read(page), calls: statsCalls().slice(n).map((r) => r.query) };
    n = statsCalls().length;
    await page.click('[data-tf="30d"]');
    await page.waitForFunction(() => window.cpDashboard.stats.timeframe === '30d');
    await rendered(page, 'site-v2', true);
    out.month = { url: (await read(page)).url, calls: statsCalls().slice(n).map((r) => r.query), picker: await picker() };
    await page.goBack();
    await page.waitForFunction(() => document.querySelector('[data-tf="7d"]').getAttribute('aria-pressed') === 'true');
    await rendered(page, 'site-v2', true);
    out.back1 = { url: (await read(page)).url, picker: await picker() };
    n = statsCalls().length;
    await page.goBack();
    await page.waitForFunction(() => document.getElementById('segment-bar').hidden && document.getElementById('c-pageviews').textContent === '12.3k');
    out.back2 = { url: (await read(page)).url, picker: await picker(), calls: statsCalls().slice(n).map((r) => r.query) };
    // A hostile name, still counting past data; the chip's button goes back to all visitors.
    await page.selectOption('#segment-select', 'seg-2');
    await page.waitForFunction(() => !document.getElementById('segment-chip-backfill').hidden);
    out.hostile = { picker: await picker(), read: await read(page) };
    await page.click('#segment-clear');
    await page.waitForFunction(() => document.getElementById('segment-bar').hidden && document.getElementById('c-pageviews').textContent === '12.3k');
    out.cleared = { url: (await read(page)).url, picker: await picker(), focused: await page.evaluate(() => document.activeElement.id) };

    // The editor.
    const errors = () => page.evaluate(() => ({
      name: document.getElementById('segment-name-error').textContent,
      conditions: [...document.querySelectorAll('#segment-conditions .field-error')].map((p) => p.textContent),
      form: document.getElementById('segment-form-error').textContent,
      focused: document.activeElement.id,
      invalid: [...document.querySelectorAll('#segment-form [aria-invalid="true"]')].map((e) => e.id),
    }));
    const list = () => page.evaluate(() => [...document.querySelectorAll('#segment-list tr')].map((tr) => [...tr.children].map((td) => td.textContent)));
    out.list = await list();
    await page.fill('#segment-name', 'Germany');
    await page.selectOption('#segment-condition-0-dimension', 'country');
    await page.fill('#segment-condition-0-value', 'Germany');
    await page.click('#segment-save');
    await page.waitForFunction(() => document.getElementById('segment-condition-0-error').textContent !== '');
    out.refused = await errors();
    await page.fill('#segment-condition-0-value', 'DE');
    await page.click('#segment-add-condition');
    await page.selectOption('#segment-condition-1-dimension', 'device');
    await page.selectOption('#segment-condition-1-op', 'is_not');
    await page.fill('#segment-condition-1-value', 'mobile');
    await page.click('#segment-save');
    await page.waitForFunction(() => document.querySelectorAll('#segment-list tr').length === 3);
    out.created = { list: await list(), picker: await picker(), errors: await errors(), status: await page.textContent('#segment-status') };
    out.posts = out.requests.filter((r) => r.method === 'POST' && r.path === '/api/sites/site-v2/segments').map((r) => JSON.parse(r.body));
    // Deleting the segment on screen shows all visitors again.
    await page.selectOption('#segment-select', 'seg-3');
    await page.waitForFunction(() => document.getElementById('c-pageviews').textContent === '3.2k');
    await page.click('#segment-list tr:nth-child(3) button');
    await page.waitForFunction(() => document.querySelectorAll('#segment-list tr').length === 2 && document.getElementById('segment-bar').hidden);
    await page.waitForFunction(() => document.getElementById('c-pageviews').textContent === '12.3k');
    out.afterDelete = { url: (await read(page)).url, picker: await picker(), list: await list() };
    out.deletes = out.requests.filter((r) => r.method === 'DELETE').map((r) => r.path);
    out.end = await read(page);
  },

  // Clicking a row of an attribution table filters by its value: calls, URL, chip, history;
  // a page filter and a one-click filter replace each other.
  async rowFilter() {
    const page = await ownerPage();
    await rendered(page, 'site-v2', true);
    const mark = () => statsCalls().length;
    const since = (n) => statsCalls().slice(n).map((r) => r.query);
    const chip = () => page.evaluate(() => ({
      shown: !document.getElementById('filter-bar').hidden,
      label: document.getElementById('filter-label').textContent,
      value: document.getElementById('filter-value').textContent,
      clear: document.getElementById('filter-clear').getAttribute('aria-label'),
      note: document.getElementById('filter-note').hidden ? null : document.getElementById('filter-note').textContent,
      clicksChart: !document.getElementById('clicks-chart').closest('[hidden]'),
    }));
    out.otherRowButtons = await page.evaluate(() => document.querySelectorAll('#t-referrers tr:last-child button').length);
    let n = mark();
    await page.click('#t-referrers button:text-is("google.com")');
    await page.waitForFunction(() => document.getElementById('c-pageviews').textContent === '4.6k');
    await rendered(page, 'site-v2', true);
    out.source = { read: await read(page), chip: await chip(), focused: await page.evaluate(() => document.activeElement.id), calls: since(n) };
    n = mark();
    await page.click('[data-tf="30d"]');
    await page.waitForFunction(() => window.cpDashboard.stats.timeframe === '30d');
    await rendered(page, 'site-v2', true);
    out.month = { url: (await read(page)).url, calls: since(n) };
    // A top page replaces the filter (the api takes one or the other).
    n = mark();
    await page.click('#t-pages button:text-is("/pricing")');
    await page.waitForFunction(() => document.getElementById('c-pageviews').textContent === '2.3k');
    out.page = { read: await read(page), chip: await chip(), calls: since(n) };
    // Back: the source filter again; back: 7 days, still filtered; back: unfiltered.
    await page.goBack();
    await page.waitForFunction(() => document.getElementById('c-pageviews').textContent === '4.6k');
    out.back1 = { url: (await read(page)).url, chip: await chip() };
    await page.goBack();
    await page.waitForFunction(() => document.querySelector('[data-tf="7d"]').getAttribute('aria-pressed') === 'true');
    await rendered(page, 'site-v2', true);
    out.back2 = { url: (await read(page)).url, chip: await chip() };
    n = mark();
    await page.goBack();
    await page.waitForFunction(() => document.getElementById('filter-bar').hidden && document.getElementById('c-pageviews').textContent === '12.3k');
    out.back3 = { read: await read(page), chip: await chip(), calls: since(n) };
    // A country from the keyboard, then a device: the value is the api's, not the label.
    await page.focus('#t-countries tr:nth-child(1) button');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => /filter=country/.test(location.search) && document.getElementById('c-pageviews').textContent === '4.6k');
    out.country = { url: (await read(page)).url, chip: await chip() };
    await page.click('#filter-clear');
    await page.waitForFunction(() => document.getElementById('filter-bar').hidden && document.getElementById('c-pageviews').textContent === '12.3k');
    await page.click('#t-devices button:text-is("Desktop")');
    await page.waitForFunction(() => /filter=device/.test(location.search) && document.getElementById('c-pageviews').textContent === '4.6k');
    out.device = { url: (await read(page)).url, chip: await chip() };
    // A hostile campaign: encoded, shown as text, inert; the URL reopens the same view.
    await page.click('#filter-clear');
    await page.waitForFunction(() => document.getElementById('filter-bar').hidden && document.getElementById('c-pageviews').textContent === '12.3k');
    await page.click('#t-campaigns tr:nth-child(3) button');
    await page.waitForFunction(() => /filter=campaign/.test(location.search) && document.getElementById('c-pageviews').textContent === '4.6k');
    out.hostile = { read: await read(page), chip: await chip(), query: statsCalls().filter((r) => r.query.includes('compare')).slice(-1)[0].query };
    await page.setViewportSize({ width: 375, height: 812 });
    await chartsWithinWindow(page);
    await page.screenshot({ path: `${shots}/row-filter-375.png`, fullPage: true });
    out.filtered375 = await overflow(page);
    const again = watch(await context.newPage());
    await again.goto(`${api}${out.hostile.read.url}`);
    await rendered(again, 'site-v2', false);
    await again.waitForFunction(() => document.getElementById('c-pageviews').textContent === '4.6k');
    out.reopened = { read: await read(again), chip: await (async () => again.evaluate(() => document.getElementById('filter-value').textContent))() };
  },
});

// Issue 22: experiments, revenue, time to conversion, entry and exit pages, event properties.
Object.assign(scenarios, {
  async experiments() {
    await fake('/__fake/v3', { on: true });
    const page = await ownerPage();
    await rendered(page, 'site-v2', true);
    await page.waitForFunction(() => document.getElementById('c-revenue').textContent !== '–' && !document.getElementById('p-ttc').hidden);
    const extra = () => page.evaluate(() => ({
      note: document.getElementById('experiment-note').hidden ? null : document.getElementById('experiment-note').textContent,
      noteWarning: document.getElementById('experiment-note').classList.contains('warning'),
      bars: [...document.querySelectorAll('#t-variants .ci-range')].map((b) => [b.style.left, b.style.width]),
      ticks: [...document.querySelectorAll('#t-variants .ci-rate')].map((b) => b.style.left),
      sparks: [...document.querySelectorAll('#t-referrers .ttc-spark')].map((s) => s.getAttribute('aria-label')),
      ttc: [...document.querySelectorAll('#ttc-bars li')].map((li) => [li.querySelector('.ttc-label').textContent, li.querySelector('.ttc-fill').style.width, li.querySelector('.num').textContent]),
      ttcShown: !document.getElementById('p-ttc').hidden,
      revenueCard: document.getElementById('c-revenue').textContent,
      revenueShown: !document.getElementById('card-revenue').hidden,
    }));
    out.view = await read(page);
    out.extra = await extra();
    // A custom event's row opens its properties, for the dashboard's range.
    const eventCalls = () => out.requests.filter((r) => /\/events\//.test(r.path)).map((r) => r.path + '?' + r.query);
    await page.click('#t-events tr:nth-child(1)');
    await page.waitForFunction(() => document.querySelectorAll('#event-props .prop-block').length === 2);
    const props = () => page.evaluate(() => ({
      title: document.getElementById('h-event-props').textContent,
      count: document.querySelector('#event-props p').textContent,
      blocks: [...document.querySelectorAll('#event-props .prop-block')].map((b) => [b.querySelector('h3').textContent, [...b.querySelectorAll('li')].map((li) => [...li.children].map((c) => c.textContent))]),
      active: [...document.querySelectorAll('#t-events tr.active')].map((tr) => tr.firstChild.textContent),
    }));
    out.props = await props();
    await page.click('[data-tf="30d"]');
    await page.waitForFunction(() => window.cpDashboard.stats.timeframe === '30d');
    await rendered(page, 'site-v2', true);
    await page.waitForFunction(() => document.querySelectorAll('#event-props .prop-block').length === 2);
    out.eventCalls = eventCalls();
    // An event without properties, from the keyboard.
    await page.focus('#t-events tr:nth-child(3) button');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => /outbound/.test(document.getElementById('h-event-props').textContent) && !/Loading/.test(document.getElementById('event-props').textContent));
    out.noProps = await props();
    await page.click('#event-props-close');
    out.closed = await page.evaluate(() => document.getElementById('p-event-props').hidden);
    out.end = await read(page);
    await page.setViewportSize({ width: 375, height: 800 });
    await page.locator('#p-variants').screenshot({ path: `${shots}/variants-375.png` });
    out.narrow = await overflow(page);
    // A balanced split with too few conversions says so instead.
    await fake('/__fake/v3', { on: true, srm: 0.42, enough: false });
    await page.click('[data-tf="7d"]');
    await page.waitForFunction(() => window.cpDashboard.stats.timeframe === '7d' && window.cpDashboard.stats.experiment.enough_data === false);
    await rendered(page, 'site-v2', true);
    out.early = await extra();
  },
});

// Issue 23: Stats API keys.
Object.assign(scenarios, {
  async apiKeys() {
    const page = await ownerPage();
    await rendered(page, 'site-v2', true);
    await page.waitForFunction(() => document.querySelectorAll('#key-list tr').length === 1 && !/Loading/.test(document.getElementById('key-list').textContent));
    const rows = () => page.evaluate(() => [...document.querySelectorAll('#key-list tr')].map((tr) => [...tr.children].map((td) => td.textContent)));
    out.initial = await rows();
    const posts = () => out.requests.filter((r) => r.method === 'POST' && r.path === '/api/keys').map((r) => JSON.parse(r.body));
    // Refused in the page: nothing sent.
    await page.click('#key-create');
    out.inline = await page.evaluate(() => ({ error: document.getElementById('key-name-error').textContent, focused: document.activeElement.id }));
    out.postsAfterInline = posts().length;
    // This site only, then all sites.
    await page.fill('#key-name', 'Weekly ' + SCRIPT_TEXT);
    await page.click('#key-create');
    await page.waitForFunction(() => !document.getElementById('key-created').hidden && document.querySelectorAll('#key-list tr').length === 2);
    out.created = await page.evaluate(() => ({ key: document.getElementById('key-value').value, focused: document.activeElement.id, name: document.getElementById('key-name').value }));
    await page.fill('#key-name', 'Everything');
    await page.selectOption('#key-scope', '*');
    await page.click('#key-create');
    await page.waitForFunction(() => document.querySelectorAll('#key-list tr').length === 3);
    out.posts = posts();
    out.afterCreate = await rows();
    // Deleted after the confirmation.
    await page.click('#key-list tr:nth-child(1) button');
    await page.waitForFunction(() => document.querySelectorAll('#key-list tr').length === 2);
    out.deletes = out.requests.filter((r) => r.method === 'DELETE' && r.path.startsWith('/api/keys/')).map((r) => r.path);
    out.afterDelete = await rows();
    out.end = await read(page);
    await page.setViewportSize({ width: 375, height: 800 });
    await page.locator('#api-keys').screenshot({ path: `${shots}/api-keys-375.png` });
    out.narrow = await overflow(page);
  },
});
// Issue 24: members, the weekly report and alerts; what each role is shown.
Object.assign(scenarios, {
  async team() {
    const page = await ownerPage();
    await rendered(page, 'site-v2', true);
    const loaded = (id, n) => page.waitForFunction(([id, n]) => document.querySelectorAll('#' + id + ' tr').length === n && !/Loading/.test(document.getElementById(id).textContent), [id, n]);
    await loaded('member-list', 2);
    await loaded('alert-list', 1);
    const rows = (id) => page.evaluate((id) => [...document.querySelectorAll('#' + id + ' tr')].map((tr) => [...tr.children].map((td) => td.textContent)), id);
    const bodies = (method, suffix) => out.requests.filter((r) => r.method === method && r.path.endsWith(suffix)).map((r) => (r.body ? JSON.parse(r.body) : r.path));
    out.members = await rows('member-list');
    out.alerts = await rows('alert-list');
    out.weekly = await page.evaluate(() => document.getElementById('report-weekly').checked);
    // Invite: an empty address is refused in the page; a good one shows its link.
    await page.click('#member-invite');
    out.inlineMember = await page.evaluate(() => ({ error: document.getElementById('member-error').textContent, focused: document.activeElement.id }));
    await page.fill('#member-email', 'Carol@Example.com');
    await page.selectOption('#member-role', 'admin');
    await page.click('#member-invite');
    await loaded('member-list', 3);
    out.invite = await page.evaluate(() => ({ link: document.getElementById('invite-link').value, shown: !document.getElementById('invite-created').hidden, focused: document.activeElement.id }));
    out.afterInvite = await rows('member-list');
    out.memberPosts = bodies('POST', '/members');
    // Remove the pending viewer (after the confirmation).
    await page.click('#member-list tr:nth-child(2) button');
    await loaded('member-list', 2);
    out.memberDeletes = bodies('DELETE', '/members/mem-2');
    out.afterRemove = await rows('member-list');
    // The weekly report, on.
    await page.check('#report-weekly');
    await page.waitForFunction(() => /Monday/.test(document.getElementById('report-status').textContent));
    out.reportPuts = bodies('PUT', '/report');
    out.reportStatus = await page.evaluate(() => document.getElementById('report-status').textContent);
    // Alerts: the server's refusal shown as it is; then added; then the first deleted.
    await page.fill('#alert-percent', '5');
    await page.click('#alert-create');
    await page.waitForFunction(() => document.getElementById('alert-error').textContent !== '');
    out.alertRefused = await page.evaluate(() => document.getElementById('alert-error').textContent);
    await page.selectOption('#alert-metric', 'visitors');
    await page.selectOption('#alert-change', 'spike');
    await page.fill('#alert-percent', '50');
    await page.fill('#alert-window', '3');
    await page.click('#alert-create');
    await loaded('alert-list', 2);
    out.alertPosts = bodies('POST', '/alerts');
    out.afterAlert = await rows('alert-list');
    await page.click('#alert-list tr:nth-child(1) button');
    await loaded('alert-list', 1);
    out.alertDeletes = bodies('DELETE', '/alerts/alert-1');
    out.afterAlertDelete = await rows('alert-list');
    await page.setViewportSize({ width: 375, height: 800 });
    for (const id of ['members', 'report-panel', 'alerts']) await page.locator('#' + id).screenshot({ path: `${shots}/${id}-375.png` });
    out.narrow = await overflow(page);
    out.end = await read(page);
    // What each role is shown, after a reload as that role.
    const shown = () => page.evaluate(() => Object.fromEntries(['members', 'report-panel', 'alerts', 'settings-form', 'rotate-key', 'share-panel', 'goal-form', 'import-form']
      .map((id) => [id, !!document.getElementById(id) && document.getElementById(id).getClientRects().length > 0])
      // The Delete buttons of the lists: [shown, in all].
      .concat(['goal-list', 'funnel-list', 'segment-list', 'import-list'].map((id) => {
        const buttons = [...document.querySelectorAll(`#${id} button.danger-btn`)];
        return [id + ' delete', [buttons.filter((b) => b.getClientRects().length > 0).length, buttons.length]];
      }))));
    out.roles = { owner: await shown() };
    for (const role of ['admin', 'viewer']) {
      const from = out.requests.length;
      await fake('/__fake/role', { role });
      await page.reload();
      await rendered(page, 'site-v2', true);
      await page.waitForFunction(() => !document.getElementById('report-panel').hidden);
      if (role === 'admin') await loaded('alert-list', 1);
      out.roles[role] = await shown();
      out.teamCalls = Object.assign(out.teamCalls || {}, { [role]: out.requests.slice(from).filter((r) => /\/(members|alerts|report)$/.test(r.path)).map((r) => r.method + ' ' + r.path) });
    }
  },
});
const SCRIPT_TEXT = '<b>bold</b>';

// Whether the page scrolls sideways, and what sticks out.
function overflow(page) {
  return page.evaluate(() => ({
    scrolls: document.documentElement.scrollWidth > window.innerWidth + 1,
    sticking: [...document.querySelectorAll('body *')]
      .filter((e) => !e.closest('.table-wrap') && e.getBoundingClientRect().right > window.innerWidth + 1)
      .slice(0, 5).map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`),
  }));
}

try {
  if (!scenarios[scenario]) throw new Error(`unknown scenario ${scenario}`);
  await scenarios[scenario]();
  out.xssAtEnd = await Promise.all(context.pages().map((p) => p.evaluate(() => window.__xss || null).catch(() => null)));
} catch (e) {
  out.driverError = String(e && e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(0);
