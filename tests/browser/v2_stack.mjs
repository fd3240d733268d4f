// Drives real browsers against the real stack for the v2 features (conversions, live view,
// page filter, sharing), one scenario per run, and prints one JSON report as the last stdout
// line. tests/tests/browser_v2_stack.rs starts the stack and a page server for the landing
// pages, seeds what it needs through the api and ingest, runs a scenario and compares the
// report with the api's answers.
//   node tests/browser/v2_stack.mjs <scenario> <config-json>
// config: {api, landing, siteId, token, key, shots, engine, page}: `landing` is the page
// server's base URL; `engine` (visit only) chromium or firefox; `page` (filter only) the top
// page to click.
// Scenarios:
//   visit   a visitor converts on the landing page (late snippet, queued calls, data-cp-event
//           button, outbound link with an icon, signup form with values, thank-you page);
//           reports every batch body the browser sent, captured by request interception
//   live    the owner's dashboard is open; another browser visits a tracked page; the live
//           counter moves without a reload
//   filter  a click on a top page filters the dashboard; the chip removes the filter; back
//   share   a public link created in the UI, opened in a fresh context, then revoked
//   screens the owner's dashboard at 1280 and 375 px
//   imports a Plausible export zip (config `zip`: its path) uploaded in the dashboard; listed
//           running then done, the cards follow; a bad zip listed failed with its file and
//           line; the import deleted in the UI; the panel at 375 px
import { launch, isPageError, newContext, openPage } from './launch.mjs';
import fs from 'node:fs';
import http from 'node:http';

const [scenario, configJson] = process.argv.slice(2);
const cfg = JSON.parse(configJson || '{}');
const out = { scenario, pageErrors: [], consoleErrors: [], windowErrors: [], dialogs: [] };
const log = (msg) => console.error(`v2_stack[${scenario}]: ${msg}`);
const isBatch = (url) => url.includes('/api/events/batch');
if (cfg.shots) fs.mkdirSync(cfg.shots, { recursive: true });

// Collects what reaches the page's error handlers (an init script: before any page script).
function collectErrors() {
  window.__errors = [];
  window.addEventListener('error', (e) => window.__errors.push(String(e.message || e)));
  window.addEventListener('unhandledrejection', (e) => window.__errors.push('rejection: ' + String(e.reason)));
}

// ---------------------------------------------------------------------------------------------
// The visitor (issue 9): Chromium through playwright-core or Firefox over WebDriver BiDi.
//
// Request interception, so the report holds the exact body of every request to ingest:
// - Firefox: the BiDi network events, bodies read with network.getData (puppeteer's
//   fetchPostData); they include what sendBeacon sends while a page unloads.
// - Chromium: the DevTools protocol (and so playwright's request events and routes) never
//   reports a request a document sends while it unloads, though the browser sends it: the
//   snippet's sendBeacon on pagehide would go unseen. So the visitor's context goes through a
//   recording HTTP proxy of the driver's, which forwards everything unchanged to the real
//   ingest (same client address, User-Agent and Origin).

// A forward proxy for plain http that keeps every POST to ingest's batch route.
async function recordingProxy(batches) {
  const server = http.createServer((req, res) => {
    let target;
    try { target = new URL(req.url); } catch (e) { res.writeHead(400); res.end(); return; }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const seen = req.method === 'POST' && isBatch(target.pathname)
        ? { method: req.method, url: req.url, userAgent: req.headers['user-agent'], body: body.toString('utf8') } : null;
      if (seen) batches.push(seen);
      const headers = { ...req.headers };
      delete headers['proxy-connection'];
      delete headers['proxy-authorization'];
      const up = http.request({ host: target.hostname, port: target.port, path: target.pathname + target.search, method: req.method, headers }, (r) => {
        if (seen) seen.status = r.statusCode;
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      up.on('error', (e) => {
        if (seen) seen.status = `proxy error: ${e}`;
        res.writeHead(502);
        res.end();
      });
      up.end(body);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}

async function visit() {
  out.engine = cfg.engine;
  out.batches = [];
  const pending = [];
  let proxy = null;
  let page;
  if (cfg.engine === 'chromium') {
    out.capture = 'recording proxy';
    proxy = await recordingProxy(out.batches);
    page = await openPage('chromium', { proxy: { server: proxy.url } });
  } else {
    out.capture = 'WebDriver BiDi network events';
    page = await openPage(cfg.engine);
    page.raw.on('request', (r) => {
      if (!isBatch(r.url())) return;
      const seen = { method: r.method(), url: r.url() };
      out.batches.push(seen);
      pending.push(r.fetchPostData().then((b) => { seen.body = b == null ? null : String(b); }, (e) => { seen.bodyError = String(e); }));
    });
    page.raw.on('response', (r) => {
      const seen = isBatch(r.url()) && out.batches.find((b) => b.url === r.url() && b.status == null);
      if (seen) seen.status = r.status();
    });
  }
  const sent = () => Promise.all(pending).then(() => out.batches.filter((b) => b.body).map((b) => b.body));
  try {
    page.onError((e) => out.pageErrors.push(e));
    page.onConsoleError((t) => out.consoleErrors.push(t));
    await page.initScript(collectErrors);

    const landing = `${cfg.landing}/landing?utm_source=newsletter&utm_medium=email&utm_campaign=spring_launch#access_token=FRAGMENT-SECRET`;
    await page.goto(landing);
    // The tag manager adds the snippet after the load event; the stub has queued a call by
    // then (the page notes the queue's length as it adds the tag).
    await page.waitFor(() => window.__cp === 1);
    out.queuedBeforeSnippet = await page.evaluate(() => window.__queuedBeforeSnippet ?? null);
    // The data-cp-event button twice, on its icon: two events, one goal completion.
    await page.click('#hero-cta .icon');
    await page.click('#hero-cta .icon');
    // The outbound link, on its icon; it opens a tab, and the visitor comes back.
    await page.click('a.docs svg');
    await page.front();
    await page.evaluate(() => {
      location.hash = 'pricing';
      window.convertpulse('Pricing viewed', { plan: 'pro', annual: true, seats: 3 });
    });
    await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
    await page.type('#signup [name=email]', 'jane.secret@example.com');
    await page.type('#signup [name=full_name]', 'Jane Secretname');
    await page.type('#signup [name=password]', 'Hunter2-Secret!');
    await page.clickAndWait('#signup button[type=submit]');
    await page.waitFor(() => window.__cp === 1);
    out.thankYouUrl = await page.evaluate(() => location.pathname);
    out.windowErrors.push(...await page.evaluate(() => window.__errors || []));
    out.userAgent = await page.evaluate(() => navigator.userAgent);
    // Leaving hands what is left to sendBeacon.
    await page.goto('about:blank');
    // Until the thank-you page's Signup has been sent and answered (a deadline, not a fixed
    // wait).
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline) {
      const bodies = await sent();
      if (bodies.some((b) => b.includes('"Signup"')) && out.batches.every((b) => b.status != null)) break;
      // The poll interval of this deadline loop.
      await page.sleep(100);
    }
    await sent();
  } finally {
    await page.close().catch(() => {});
    if (proxy) await proxy.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The owner's dashboard (issue 10), Chromium.

let browser;

function watch(page, label) {
  page.on('pageerror', (e) => out.pageErrors.push(`${label}: ${e}`));
  page.on('console', (m) => { if (isPageError(m)) out.consoleErrors.push(`${label}: ${m.text()}`); });
  page.on('dialog', async (d) => { out.dialogs.push(d.message()); await d.accept(); });
  return page;
}

// A logged-in owner: the token in localStorage under the key the app's own log-in uses.
async function ownerPage(viewport) {
  const context = await newContext(browser, { viewport: viewport || { width: 1280, height: 900 } });
  const page = watch(await context.newPage(), 'owner');
  page.requests = [];
  page.on('request', (r) => { const u = new URL(r.url()); if (u.pathname.startsWith('/api/')) page.requests.push(r.method() + ' ' + u.pathname + u.search); });
  await page.goto(`${cfg.api}/login`);
  await page.evaluate((t) => localStorage.setItem('cp_token', t), cfg.token);
  await page.goto(`${cfg.api}/dashboard?site=${encodeURIComponent(cfg.siteId)}`);
  await rendered(page);
  return page;
}

// The stats of the current view are on screen (not loading, not dimmed).
async function rendered(page) {
  await page.waitForFunction((id) => {
    const d = window.cpDashboard;
    const stats = document.getElementById('stats');
    return d && d.stats && d.stats.site_id === id && d.charts['series-chart'] && !stats.hasAttribute('aria-busy') && !stats.classList.contains('busy');
  }, cfg.siteId, { timeout: 20000 });
}

// The next two frames: charts resize on the frame after a viewport change.
const frames = (page) => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));

function read(page) {
  return page.evaluate(() => {
    const text = (id) => { const e = document.getElementById(id); return e ? e.textContent : null; };
    const shown = (id) => { const e = document.getElementById(id); return !!e && !e.closest('[hidden]') && e.getClientRects().length > 0; };
    const rows = (id) => [...document.querySelectorAll(`#${id} tr`)].map((tr) => [...tr.children].map((td) => td.textContent));
    const cards = {};
    document.querySelectorAll('#cards .card').forEach((c) => {
      const id = c.id.slice(5);
      cards[id] = { value: text('c-' + id), exact: document.getElementById('c-' + id).title, delta: text('d-' + id), shown: !c.hidden };
    });
    const tables = {};
    document.querySelectorAll('#stats .table-panel').forEach((p) => { if (!p.hidden) tables[p.id.slice(2)] = rows('t-' + p.id.slice(2)); });
    const series = window.cpDashboard.charts['series-chart'];
    const liveChart = window.cpDashboard.charts['live-chart'];
    return {
      url: location.pathname + location.search,
      cards,
      tables,
      series: series ? series.data.datasets.slice(0, 3).map((d) => d.data) : null,
      chip: { shown: shown('filter-bar'), text: text('filter-value') },
      error: shown('stats-error') ? text('stats-error') : null,
      live: { shown: shown('live'), visitors: text('live-visitors'), pages: document.getElementById('t-live-pages') ? rows('t-live-pages') : null, perMinute: liveChart ? liveChart.data.datasets[0].data : null },
    };
  });
}

// Whether the page scrolls sideways at its current width, and what sticks out.
function overflow(page) {
  return page.evaluate(() => ({
    scrolls: document.documentElement.scrollWidth > window.innerWidth + 1,
    sticking: [...document.querySelectorAll('body *')]
      .filter((e) => !e.closest('.table-wrap') && e.getBoundingClientRect().right > window.innerWidth + 1)
      .slice(0, 5).map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`),
  }));
}

// Figures broken over two lines ("100.0" above "%"): numeric cells and card values whose text
// takes more than one line box.
function wrappedNumbers(page) {
  return page.evaluate(() => [...document.querySelectorAll('#stats td.num, #cards .value')].filter((e) => {
    const range = document.createRange();
    range.selectNodeContents(e);
    return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size > 1;
  }).map((e) => `${(e.closest('tbody') || e).id}: ${e.textContent}`));
}

// A visitor in a context of its own opens a tracked page, clicks, and leaves.
async function trackedVisit() {
  const context = await newContext(browser, { viewport: { width: 1280, height: 800 } });
  const page = watch(await context.newPage(), 'visitor');
  await page.addInitScript(collectErrors);
  await page.goto(`${cfg.landing}/landing?utm_source=live_test`);
  await page.waitForFunction(() => window.__cp === 1, null, { timeout: 15000 });
  await page.click('#hero-cta');
  out.windowErrors.push(...await page.evaluate(() => window.__errors || []));
  await page.goto('about:blank');
  await context.close();
}

const scenarios = {
  visit,

  async live() {
    const page = await ownerPage();
    await page.waitForFunction(() => /^\d+$/.test(document.getElementById('live-visitors').textContent), null, { timeout: 20000 });
    out.before = await read(page);
    await page.evaluate(() => { window.__sameDocument = true; });
    const t0 = Date.now();
    await trackedVisit();
    out.visitMs = Date.now() - t0;
    const t1 = Date.now();
    await page.waitForFunction((before) => document.getElementById('live-visitors').textContent !== before,
      out.before.live.visitors, { timeout: 20000 });
    out.movedAfterMs = Date.now() - t1;
    out.after = await read(page);
    out.sameDocument = await page.evaluate(() => window.__sameDocument === true);
    out.realtimeCalls = page.requests.filter((r) => /\/realtime$/.test(r)).length;
    out.reloads = page.requests.filter((r) => r === 'GET /api/auth/me').length;
  },

  async filter() {
    const page = await ownerPage();
    out.before = await read(page);
    await page.click(`#t-pages button:text-is("${cfg.page}")`);
    await page.waitForFunction(() => /[?&]page=/.test(location.search));
    await rendered(page);
    out.filtered = await read(page);
    out.filteredCalls = page.requests.filter((r) => r.startsWith('GET /api/stats/') && r.includes('page='));
    await page.screenshot({ path: `${cfg.shots}/stack-dashboard-filtered-1280.png`, fullPage: true });
    await page.click('#filter-clear');
    await page.waitForFunction(() => !/[?&]page=/.test(location.search) && document.getElementById('filter-bar').hidden);
    await rendered(page);
    out.cleared = await read(page);
    // The filtered view is a history entry: back restores it.
    await page.goBack();
    await page.waitForFunction(() => /[?&]page=/.test(location.search) && !document.getElementById('filter-bar').hidden);
    await rendered(page);
    out.back = await read(page);
  },

  async share() {
    const owner = await ownerPage();
    await owner.waitForFunction(() => /^\d+$/.test(document.getElementById('live-visitors').textContent), null, { timeout: 20000 });
    out.owner = await read(owner);
    await owner.click('#share-create');
    await owner.waitForFunction(() => document.getElementById('share-url').value !== '');
    out.link = await owner.inputValue('#share-url');

    // Someone without an account, in a fresh context: no token anywhere.
    const context = await newContext(browser, { viewport: { width: 1280, height: 900 } });
    const shared = watch(await context.newPage(), 'shared');
    out.sharedRequests = [];
    shared.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname.startsWith('/api/')) out.sharedRequests.push({ path: u.pathname, auth: !!r.headers().authorization });
    });
    await shared.goto(out.link);
    await rendered(shared);
    out.shared = await read(shared);
    out.sharedPage = await shared.evaluate((key) => {
      const visible = (e) => !e.closest('[hidden]') && e.getClientRects().length > 0;
      const owner = ['#settings-form', '#snippet', '#copy-snippet', '#goals-manager', '#goal-form', '#goal-list', '#export',
        '#rotate-key', '#delete-site', '#share-panel', '#share-create', '#share-revoke', '#site-select', '#new-site-btn', '#logout', '#account-btn', '#password-form', '#live'];
      return {
        ownerOnly: owner.filter((s) => document.querySelector(s)),
        keyInHtml: document.documentElement.outerHTML.includes(key),
        keyInText: document.body.innerText.includes(key),
        snippetText: /convertpulse\.js|data-key/.test(document.body.innerText),
        editable: [...document.querySelectorAll('#stats input, #stats textarea, #stats select, form:not(#range-form)')].filter(visible).length,
        token: localStorage.getItem('cp_token'),
        badge: (document.querySelector('.badge') || {}).textContent || null,
      };
    }, cfg.key);
    await shared.screenshot({ path: `${cfg.shots}/stack-share-1280.png`, fullPage: true });
    await shared.setViewportSize({ width: 375, height: 812 });
    await frames(shared);
    await shared.screenshot({ path: `${cfg.shots}/stack-share-375.png`, fullPage: true });
    out.share375 = await overflow(shared);
    out.share375.wrapped = await wrappedNumbers(shared);
    await shared.setViewportSize({ width: 1280, height: 900 });

    // Revoked in the UI (after the app's confirmation); the open page says so at its next load.
    await owner.click('#share-revoke');
    await owner.waitForFunction(() => /revoked/.test(document.getElementById('share-status').textContent));
    out.revokeStatus = await owner.textContent('#share-status');
    const t0 = Date.now();
    const deadline = t0 + 10000;
    for (;;) {
      await shared.reload();
      const invalid = await shared.waitForFunction(() => !document.getElementById('invalid').hidden || window.cpDashboard.stats, null, { timeout: 10000 })
        .then(() => shared.evaluate(() => !document.getElementById('invalid').hidden));
      if (invalid || Date.now() > deadline) break;
    }
    out.revokedAfterMs = Date.now() - t0;
    out.revoked = await shared.evaluate(() => ({
      invalidShown: !document.getElementById('invalid').hidden,
      text: document.getElementById('invalid').textContent.replace(/\s+/g, ' ').trim(),
      statsShown: !document.getElementById('site-view').hidden,
      title: document.title,
    }));
    await shared.screenshot({ path: `${cfg.shots}/stack-share-revoked-1280.png` });
  },

  async imports() {
    const page = await ownerPage();
    const rows = () => page.evaluate(() => [...document.querySelectorAll('#import-list tr')].map((tr) => [...tr.children].map((td) => td.textContent)));
    await page.waitForFunction(() => document.querySelectorAll('#import-list tr').length === 1);
    out.initial = await rows();
    out.before = await read(page);
    // Nothing chosen: said inline, nothing sent.
    const sent = () => page.requests.filter((r) => r.startsWith('POST ') && r.endsWith('/imports')).length;
    await page.click('#import-upload');
    out.inline = await page.textContent('#import-error');
    out.postsAfterInline = sent();
    await page.setInputFiles('#import-file', cfg.zip);
    await page.click('#import-upload');
    await page.waitForFunction(() => [...document.querySelectorAll('#import-list td')].some((td) => td.textContent === 'Done'), null, { timeout: 30000 });
    out.done = await rows();
    // The stats reload once the import is done.
    await page.waitForFunction((want) => window.cpDashboard.stats && window.cpDashboard.stats.summary.pageviews === want, cfg.pageviews, { timeout: 20000 });
    await rendered(page);
    out.after = await read(page);
    await page.setInputFiles('#import-file', cfg.badZip);
    await page.click('#import-upload');
    await page.waitForFunction(() => [...document.querySelectorAll('#import-list td')].some((td) => td.textContent === 'Failed'), null, { timeout: 20000 });
    out.failed = await rows();
    await page.setViewportSize({ width: 375, height: 812 });
    await frames(page);
    await page.locator('#imports').screenshot({ path: `${cfg.shots}/stack-imports-375.png` });
    out.narrow = await overflow(page);
    await page.setViewportSize({ width: 1280, height: 900 });
    // Deleted in the UI (after the app's confirmation): the row goes and the stats follow.
    await page.click('#import-list tr:first-child button');
    await page.waitForFunction(() => document.querySelectorAll('#import-list tr').length === 1);
    await page.waitForFunction(() => window.cpDashboard.stats && window.cpDashboard.stats.summary.pageviews === 0, null, { timeout: 20000 });
    await rendered(page);
    out.afterDelete = await rows();
    out.deleted = await read(page);
  },

  async screens() {
    const page = await ownerPage();
    await page.waitForFunction(() => /^\d+$/.test(document.getElementById('live-visitors').textContent) &&
      document.querySelectorAll('#goal-list tr').length > 0 && window.cpDashboard.charts['series-chart'].data.datasets.length === 4,
    null, { timeout: 20000 });
    out.view = await read(page);
    await page.screenshot({ path: `${cfg.shots}/stack-dashboard-1280.png`, fullPage: true });
    out.at1280 = await overflow(page);
    out.at1280.wrapped = await wrappedNumbers(page);
    await page.setViewportSize({ width: 375, height: 812 });
    await frames(page);
    await page.screenshot({ path: `${cfg.shots}/stack-dashboard-375.png`, fullPage: true });
    out.at375 = await overflow(page);
    out.at375.wrapped = await wrappedNumbers(page);
  },
};

try {
  if (!scenarios[scenario]) throw new Error(`unknown scenario ${scenario}`);
  if (scenario !== 'visit') browser = await launch();
  log(`start ${JSON.stringify({ api: cfg.api, landing: cfg.landing, engine: cfg.engine })}`);
  await scenarios[scenario]();
} catch (e) {
  out.driverError = String(e && e.stack || e);
} finally {
  if (browser) await browser.close().catch(() => {});
}
console.log(JSON.stringify(out));
process.exit(0);
