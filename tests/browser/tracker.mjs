// Drives real headless Chromium through one tracker scenario and prints what it saw as JSON
// on the last line of stdout. The Rust test that runs it owns the stack and checks the stats.
//   node tests/browser/tracker.mjs <scenario> <page-url>
// Scenarios: main, spa, burst, dnt, gpc, offline (waits for "RESUMED" on stdin after printing "KEPT").
import { launch, isPageError, USER_AGENT } from './launch.mjs';
import readline from 'node:readline';

const [scenario, pageUrl] = process.argv.slice(2);
const browser = await launch();
const out = { consoleErrors: [], pageErrors: [], windowErrors: [], batchRequests: 0, accepted: 0 };
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, userAgent: USER_AGENT });
  const page = await context.newPage();
  page.on('console', (m) => { if (isPageError(m)) out.consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => out.pageErrors.push(String(e)));
  page.on('request', (r) => { if (r.url().includes('/api/events/batch')) out.batchRequests++; });
  page.on('response', (r) => { if (r.url().includes('/api/events/batch') && r.status() === 202) out.accepted++; });
  await page.addInitScript((s) => {
    window.__errors = [];
    window.addEventListener('error', (e) => window.__errors.push(String(e.message || e)));
    window.addEventListener('unhandledrejection', (e) => window.__errors.push('rejection: ' + String(e.reason)));
    if (s === 'dnt') Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1' });
    if (s === 'gpc') Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true });
  }, scenario);

  const started = Date.now();
  console.error(`driver: ${scenario} loading ${pageUrl}`);
  await page.goto(pageUrl, { waitUntil: 'load' });
  console.error('driver: loaded');
  const collectWindowErrors = async () => { out.windowErrors = await page.evaluate(() => window.__errors); };

  if (scenario === 'main') {
    // Scroll to the bottom in steps, as a reader would.
    for (let i = 0; i < 40; i++) {
      const atBottom = await page.evaluate(() => {
        window.scrollBy(0, 500);
        return window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 1;
      });
      await page.waitForTimeout(120);
      if (atBottom) break;
    }
    await page.click('#cta');
    await page.click('#cta');
    await page.click('[data-plan="pro"]');
    const left = 3000 - (Date.now() - started);
    if (left > 0) await page.waitForTimeout(left);
  } else if (scenario === 'spa') {
    await page.waitForTimeout(300);
    await page.evaluate(() => history.pushState({}, '', '/spa/second?tab=1'));
    await page.waitForTimeout(300);
    await page.click('#cta');
  } else if (scenario === 'burst') {
    // More than 10 events at once, with scrolling in between: the 10-event flush must not
    // recurse or lose anything.
    for (let i = 0; i < 25; i++) {
      await page.click('#cta');
      if (i % 5 === 0) await page.evaluate(() => window.scrollBy(0, 700));
    }
    await page.waitForTimeout(300);
  } else if (scenario === 'dnt' || scenario === 'gpc') {
    await page.click('#cta');
    await page.waitForTimeout(300);
  } else if (scenario === 'offline') {
    await page.click('#cta');
    // The 5 s flush fails against the stopped ingest; the batch is kept for a retry.
    await page.waitForTimeout(6500);
    console.error('driver: kept');
    console.log('KEPT');
    const rl = readline.createInterface({ input: process.stdin });
    for await (const line of rl) if (line.trim() === 'RESUMED') break;
    const deadline = Date.now() + 30000;
    while (out.accepted === 0 && Date.now() < deadline) await page.waitForTimeout(100);
    console.error(`driver: accepted ${out.accepted} after resume`);
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
  await collectWindowErrors();
  out.visibleMs = Date.now() - started;
  // Hiding the page: navigating away fires visibilitychange and pagehide, and the snippet
  // hands what is left to sendBeacon.
  await page.goto('about:blank');
  await page.waitForTimeout(300);
  await context.close();
} catch (e) {
  out.driverError = String(e && e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(0);
