// Drives a real headless browser through one tracker scenario and prints what it saw as JSON
// on the last line of stdout. The Rust test that runs it owns the servers and checks what
// arrived (the stats of a real stack, or the exact request bodies a capture endpoint kept).
//   node tests/browser/tracker.mjs <scenario> <page-url> [chromium|firefox|webkit]
// Full-stack scenarios: main, spa, burst, offline (waits for "RESUMED" on stdin after printing
// "KEPT"). Privacy: dnt, gpc, dnt-window (window.doNotTrack, old Safari's). Conversions, against the test's capture site (<page-url> is its
// base): conversions, loading, hostile, retry; and throws, a page whose errors every engine
// must report. WebKit (classic WebDriver) runs these five; it has no init scripts, so the
// privacy scenarios need Chromium or Firefox.
import { openPage } from './launch.mjs';
import http from 'node:http';
import readline from 'node:readline';

const [scenario, pageUrl, engine = 'chromium'] = process.argv.slice(2);
const out = { engine, consoleErrors: [], pageErrors: [], windowErrors: [], batchRequests: 0, accepted: 0 };
let page;
const isBatch = (url) => url.includes('/api/events/batch');
const log = (msg) => console.error(`driver[${engine}]: ${msg}`);

// Waits until the snippet has started on the current page.
const snippetStarted = () => page.waitFor(() => window.__cp === 1);

// Polls `done` (in the driver) every 50 ms until it holds; throws naming `what` after `ms`.
async function until(what, done, ms = 15000) {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    // The poll interval of this deadline loop.
    await new Promise((r) => setTimeout(r, 50));
  }
}

const scenarios = {
  async main() {
    const started = Date.now();
    await page.goto(pageUrl);
    // Scroll to the bottom in steps, as a reader would.
    for (let i = 0; i < 40; i++) {
      const atBottom = await page.evaluate(() => {
        window.scrollBy(0, 500);
        return window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 1;
      });
      // Pacing: a reader's pause between scroll steps, not a wait for a condition.
      await page.sleep(120);
      if (atBottom) break;
    }
    await page.click('#cta');
    await page.click('#cta');
    await page.click('[data-plan="pro"]');
    // Pacing: the visit lasts 3 s on purpose; the visible time the stats report is measured
    // against it.
    const left = 3000 - (Date.now() - started);
    if (left > 0) await page.sleep(left);
    return started;
  },
  async spa() {
    await page.goto(pageUrl);
    await snippetStarted();
    // The snippet wraps pushState: the second pageview is queued before this returns.
    await page.evaluate(() => history.pushState({}, '', '/spa/second?tab=1'));
    await page.click('#cta');
  },
  async burst() {
    // More than 10 events at once, with scrolling in between: the 10-event flush must not
    // recurse or lose anything.
    await page.goto(pageUrl);
    for (let i = 0; i < 25; i++) {
      await page.click('#cta');
      if (i % 5 === 0) await page.evaluate(() => window.scrollBy(0, 700));
    }
    // The pageview and the first 19 clicks went out in two batches of ten while the page was
    // open; the last six leave with the page.
    await until('the two full batches to be accepted', () => out.accepted >= 2);
  },
  async offline() {
    let failed = 0;
    page.raw.on('requestfailed', (r) => { if (isBatch(r.url())) failed++; });
    await page.goto(pageUrl);
    await page.click('#cta');
    // The 5 s flush fails against the stopped ingest; the batch is kept for a retry.
    await until('the flush to fail against the stopped ingest', () => failed > 0);
    log('kept');
    console.log('KEPT');
    const rl = readline.createInterface({ input: process.stdin });
    for await (const line of rl) if (line.trim() === 'RESUMED') break;
    await until('the kept batch to be accepted', () => out.accepted > 0, 30000);
    log(`accepted ${out.accepted} after resume`);
  },

  // A visitor of a landing page: a queued stub call, a data-cp-event button clicked on its
  // icon, an outbound link (new tab) clicked on its icon, a page-code event after a hash
  // change, then the signup form filled with values that must never leave the page, and the
  // thank-you page with its own queued Signup event.
  async conversions() {
    await page.goto(`${pageUrl}/landing?utm_source=newsletter#access_token=FRAGMENT-SECRET`);
    await snippetStarted();
    await page.click('#hero-cta .icon');
    await page.click('a.docs svg');
    // The link opened a tab; the visitor comes back to this one.
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
    await snippetStarted();
    await collectWindowErrors();
  },
  // The snippet injected after the load event (stub calls queued before it, data-variant on
  // the injected tag beating the meta tag), then an async snippet on the next page.
  async loading() {
    await page.goto(`${pageUrl}/late`);
    await snippetStarted();
    await page.click('#after');
    await collectWindowErrors();
    await page.goto(`${pageUrl}/async`);
    await snippetStarted();
  },
  // Page code and markup at their worst: bad names and props, duplicate ids, no ids, forms
  // whose fields shadow DOM properties, mailto and same-host links, SPA navigation with
  // fragments.
  async hostile() {
    await page.goto(`${pageUrl}/hostile#start`);
    await snippetStarted();
    await page.click('header.top #cta');
    await page.click('footer.bottom #cta');
    await page.click('a.deep svg');
    await page.click('a.mail');
    await page.click('a.same');
    await page.click('#clobber button');
    await page.click('form.newsletter button');
    await page.evaluate(() => {
      const cp = window.convertpulse;
      cp(null);
      cp('');
      cp();
      cp('N'.repeat(100));
      cp('Props', {
        ok: 'yes', n: 1.5, b: false, nan: NaN, inf: Infinity, obj: {}, arr: [1], nul: null, undef: undefined,
        'bad key': 1, ['k'.repeat(41)]: 1, 'dotted.key-1': 'x', long: 'x'.repeat(300), emoji: 'e'.repeat(199) + '\u{1F600}',
        big: 10n, fn() {},
      });
      const many = {};
      for (let i = 1; i <= 12; i++) many[`k${i}`] = i;
      cp('Many', many);
      cp('String props', 'not-an-object');
      const evil = {};
      Object.defineProperty(evil, 'boom', { enumerable: true, get() { throw new Error('boom'); } });
      cp('Throws', evil);
      cp({ toString() { throw new Error('name'); } });
    });
    await page.evaluate(() => {
      history.pushState({}, '', '/hostile/next#frag');
      history.replaceState({}, '', '/hostile/next?tab=2');
      location.hash = 'again';
    });
    await page.evaluate(() => window.convertpulse('After navigation'));
    await collectWindowErrors();
  },
  // Errors the checks must catch (pages/throws.html): logged, rejected and thrown while the
  // page loads and on a click; then one thrown on a page that did not load /__errors.js.
  async throws() {
    await page.goto(`${pageUrl}/throws`);
    await page.waitFor(() => window.__errors.length >= 2);
    await page.click('#boom');
    await page.waitFor(() => window.__errors.length >= 3);
    await page.goto(`${pageUrl}/elsewhere`);
    await page.evaluate(() => { setTimeout(() => { throw new Error('thrown on a page without the collector'); }); });
    await page.waitFor(() => (window.__errors || []).length >= 1);
  },
  // The capture endpoint answers 429, then 503, then 202: ten events make a batch at once,
  // retried with the same batch_id until accepted.
  async retry() {
    await page.goto(`${pageUrl}/plain`);
    await snippetStarted();
    for (let i = 0; i < 9; i++) await page.click('#cta');
    const deadline = Date.now() + 20000;
    while (Date.now() < deadline) {
      const res = await fetch(`${pageUrl}/__captured`).then((r) => r.json());
      if (res.accepted > 0) break;
      // The poll interval of this deadline loop.
      await page.sleep(100);
    }
    // The page learns of the acceptance when the answer reaches it, a moment after the server
    // counted it; leaving before that rightly hands the batch to sendBeacon once more (the
    // server keeps one per batch_id). Wait until the page has the third answer whole.
    await page.waitFor(() => performance.getEntriesByType('resource')
      .filter((e) => e.name.includes('/api/events/batch') && e.responseEnd > 0).length >= 3);
    await collectWindowErrors();
  },
};

// The same page and calls under each privacy signal: nothing may be sent, nothing thrown,
// and page code calling convertpulse() without the stub must not break.
for (const s of ['dnt', 'gpc', 'dnt-window']) {
  scenarios[s] = async () => {
    await page.goto(pageUrl);
    await page.click('#cta');
    await page.evaluate(() => window.convertpulse('Blocked', { a: 1 }));
    // Nothing to wait for here: the snippet would send these at its next flush, which the
    // page's departure (leave) forces.
  };
}

// Navigates away, which fires visibilitychange and pagehide: the snippet hands what is left to
// sendBeacon. Returns once a beacon the page queued after the snippet's own (to a server of
// this driver) has arrived, so the browser is not closed on what it was still sending, and a
// test that nothing was sent has looked long enough.
async function leave() {
  let arrived;
  const received = new Promise((resolve) => { arrived = resolve; });
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => { res.writeHead(204, { 'access-control-allow-origin': '*' }); res.end(); arrived(); });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${server.address().port}/left`;
    // Added after the snippet's listener, so it runs after it.
    await page.evaluate((u) => { addEventListener('pagehide', () => navigator.sendBeacon(u, 'left')); }, url);
    await page.goto('about:blank');
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('the page\'s last beacon did not arrive within 10 s')), 10000);
    });
    await Promise.race([received, late]).finally(() => clearTimeout(timer));
  } finally {
    server.close();
  }
}

async function collectWindowErrors() {
  out.windowErrors.push(...await page.evaluate(() => window.__errors || []));
}

try {
  if (!scenarios[scenario]) throw new Error(`unknown scenario ${scenario}`);
  page = await openPage(engine);
  page.onError((e) => out.pageErrors.push(e));
  page.onConsoleError((t) => out.consoleErrors.push(t));
  page.onRequest((url) => { if (isBatch(url)) out.batchRequests++; });
  page.onResponse((url, status) => { if (isBatch(url) && status === 202) out.accepted++; });
  await page.initScript((s) => {
    window.__errors = [];
    window.addEventListener('error', (e) => window.__errors.push(String(e.message || e)));
    window.addEventListener('unhandledrejection', (e) => window.__errors.push('rejection: ' + String(e.reason)));
    if (s === 'dnt') Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1' });
    if (s === 'gpc') Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true });
    // The legacy signal of old Safari (which runs ES2018): window.doNotTrack. IE's
    // navigator.msDoNotTrack is not read: IE cannot run the snippet at all.
    if (s === 'dnt-window') Object.defineProperty(window, 'doNotTrack', { get: () => '1' });
  }, scenario);

  log(`${scenario} on ${pageUrl}`);
  const started = (await scenarios[scenario]()) || null;
  if (!['conversions', 'loading', 'hostile', 'retry'].includes(scenario)) await collectWindowErrors();
  if (started) out.visibleMs = Date.now() - started;
  out.userAgent = await page.evaluate(() => navigator.userAgent);
  await leave();
} catch (e) {
  out.driverError = String(e && e.stack || e);
} finally {
  if (page) await page.close().catch(() => {});
}
console.log(JSON.stringify(out));
process.exit(0);
