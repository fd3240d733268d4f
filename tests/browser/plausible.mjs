// Plausible's own official tracker (npm `@plausible-analytics/tracker`, as installed) on a
// page of the test's page server, pointed at ingest's `POST /api/event`, in Debian's Chromium.
//   node tests/browser/plausible.mjs <config-json>
// config: {page}: the page that loads the tracker (`init` with the endpoint and the domain).
// The visitor lands, signs up (a custom event with props), buys (revenue), scrolls to the end,
// stays a few seconds, then follows a link to a second page and leaves it (engagement events).
// Prints one JSON report as the last stdout line: the status of every request to /api/event
// that Chromium reports (not those sent while a page unloads).
// The tracker sends nothing under automation (`navigator.webdriver`): Chromium is launched
// without the automation flag, with an ordinary desktop User-Agent (ingest drops headless ones).
import { chromium } from 'playwright-core';
import { USER_AGENT, isPageError } from './launch.mjs';

const cfg = JSON.parse(process.argv[2] || '{}');
const out = { events: [], pageErrors: [], consoleErrors: [] };
let browser;
try {
  browser = await chromium.launch({
    executablePath: process.env.CP_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-blink-features=AutomationControlled',
      `--user-agent=${USER_AGENT}`],
  });
  const context = await browser.newContext({ userAgent: USER_AGENT, viewport: { width: 1280, height: 700 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => out.pageErrors.push(String(e)));
  page.on('console', (m) => { if (isPageError(m)) out.consoleErrors.push(m.text()); });
  page.on('requestfinished', async (r) => {
    if (!r.url().endsWith('/api/event')) return;
    const res = await r.response();
    out.events.push({ body: JSON.parse(r.postData() || '{}'), status: res ? res.status() : null });
  });
  const sent = (pred) => page.waitForFunction(() => true).then(async () => {
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline) {
      if (out.events.some(pred)) return;
      await page.waitForTimeout(50);
    }
    throw new Error('timed out waiting for an event: ' + JSON.stringify(out.events.map((e) => e.body.n)));
  });
  await page.goto(cfg.page);
  await sent((e) => e.body.n === 'pageview');
  out.webdriver = await page.evaluate(() => navigator.webdriver);
  await page.click('#signup');
  await sent((e) => e.body.n === 'Signup');
  await page.click('#buy');
  await sent((e) => e.body.n === 'Purchase');
  await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  // Engaged time accrues while the page is visible and focused.
  await page.waitForTimeout(3500);
  // Leaving the page sends its engagement (with `fetch` keepalive as the page unloads, which
  // Chromium's DevTools events do not report: the test reads it from the stats instead).
  await page.click('#next');
  await sent((e) => e.body.n === 'pageview' && e.body.u.endsWith('/pricing'));
  await page.waitForTimeout(1500);
  await page.goto('about:blank');
} catch (e) {
  out.driverError = String(e && e.stack || e);
} finally {
  if (browser) await browser.close().catch(() => {});
}
console.log(JSON.stringify(out));
