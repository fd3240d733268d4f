// Drives the web app in headless Chromium: sign up through the form, create a site in the UI,
// then (after the Rust test sent batches) read what the dashboard shows. Prints one JSON report
// as the last stdout line. Protocol on stdin/stdout:
//   prints  SITE {"id":..., "token":...}    after the site exists
//   reads   SENT <pageviews> <expired-token> once batches are in
//   node tests/browser/dashboard.mjs <api-url> <screenshot-dir>
import { launch, newContext, isPageError, chartsWithinWindow } from './launch.mjs';
import readline from 'node:readline';
import fs from 'node:fs';

const [api, shots] = process.argv.slice(2);
fs.mkdirSync(shots, { recursive: true });
const rl = readline.createInterface({ input: process.stdin });
const lines = rl[Symbol.asyncIterator]();
const browser = await launch();
const out = { pageErrors: [], consoleErrors: [], dialogs: [], statsRequests: [] };
try {
  const context = await newContext(browser, { viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: api });
  const page = await context.newPage();
  page.on('pageerror', (e) => out.pageErrors.push(String(e)));
  page.on('console', (m) => { if (isPageError(m)) out.consoleErrors.push(m.text()); });
  page.on('dialog', async (d) => {
    // The app's own confirmations are expected; anything else is a payload firing.
    out.dialogs.push(d.type() + ': ' + d.message());
    await d.accept();
  });
  page.on('request', (r) => { if (r.url().includes('/api/stats/')) out.statsRequests.push(r.url()); });

  await page.goto(`${api}/`);
  await page.screenshot({ path: `${shots}/landing-1280.png`, fullPage: true });
  await page.goto(`${api}/register`);
  await page.screenshot({ path: `${shots}/register-1280.png` });
  // Inline validation first.
  await page.fill('#email', 'not-an-email');
  await page.fill('#password', 'short');
  await page.click('button[type=submit]');
  out.inlineErrors = [await page.textContent('#email-error'), await page.textContent('#password-error')];
  const email = `ui-${Date.now()}@example.com`;
  await page.fill('#email', email);
  await page.fill('#password', 'correct horse 1');
  await page.click('button[type=submit]');
  await page.waitForURL('**/dashboard');

  await page.waitForSelector('#create-site:not([hidden])');
  await page.fill('#create-form [name=name]', 'Shop landing');
  await page.fill('#create-form [name=domain]', 'example.com');
  await page.fill('#create-form [name=timezone]', 'Europe/Berlin');
  await page.click('#create-form button[type=submit]');
  await page.waitForSelector('#site-view:not([hidden])');
  await page.waitForFunction(() => document.getElementById('snippet').textContent.includes('data-key='));
  out.snippet = await page.textContent('#snippet');
  await page.click('#copy-snippet');
  await page.waitForFunction(() => document.getElementById('copy-status').textContent === 'Copied');
  out.clipboard = await page.evaluate(() => navigator.clipboard.readText());
  // The empty state follows the site's first stats call, which may still be on its way.
  out.emptyStateShown = await page.waitForSelector('#empty', { state: 'visible', timeout: 10000 }).then(() => true, () => false);
  const site = await page.evaluate(() => ({ id: window.cpDashboard.site.id, token: localStorage.getItem('cp_token') }));
  console.log('SITE ' + JSON.stringify(site));

  const sent = (await lines.next()).value.trim().split(' ');
  const expected = sent[1];
  const expiredToken = sent[2];
  // Refresh (as the 10 s timer would) until the cards show the new numbers.
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    await page.click('[data-tf="7d"]');
    // Each refresh is given 400 ms to show them (the poll interval of this deadline loop).
    const shown = await page
      .waitForFunction((want) => document.getElementById('c-pageviews').textContent.replace(/,/g, '') === want, expected, { timeout: 400 })
      .then(() => true, () => false);
    if (shown) break;
  }
  const read = () => page.evaluate(() => {
    const text = (id) => document.getElementById(id).textContent;
    const rows = (id) => [...document.querySelectorAll(`#${id} tr`)].map((tr) => [...tr.children].map((td) => td.textContent));
    const chart = (id) => {
      const c = window.cpDashboard.charts[id];
      return c ? { labels: c.data.labels, data: c.data.datasets.map((d) => d.data) } : null;
    };
    return {
      cards: Object.fromEntries(['c-pageviews', 'c-visitors', 'c-sessions', 'c-clicks', 'c-scroll', 'c-time'].map((id) => [id, text(id)])),
      charts: { series: chart('series-chart'), scroll: chart('scroll-chart'), clicks: chart('clicks-chart') },
      tables: { pages: rows('t-pages'), referrers: rows('t-referrers'), clicks: rows('t-clicks') },
      links: [...document.querySelectorAll('#t-referrers a')].map((a) => a.getAttribute('href')),
      injectedElements: document.querySelectorAll('#main img, #main script:not([src])').length,
      xss: window.__xss || null,
      updated: text('updated'),
      emptyShown: !document.getElementById('empty').hidden,
    };
  });
  out.week = await read();
  // Hover the first click bar so the tooltip (drawn on canvas) renders the payload text too.
  await page.locator('#clicks-chart').scrollIntoViewIfNeeded();
  const box = await page.locator('#clicks-chart').boundingBox();
  // A horizontal bar spans from its base to x, centred on y (CSS pixels of the canvas).
  const bar = await page.evaluate(() => {
    const { base, x, y } = window.cpDashboard.charts['clicks-chart'].getDatasetMeta(0).data[0];
    return { x: (base + x) / 2, y };
  });
  await page.mouse.move(box.x + bar.x, box.y + bar.y);
  await page.waitForFunction(() => window.cpDashboard.charts['clicks-chart'].tooltip.getActiveElements().length > 0);
  await page.screenshot({ path: `${shots}/dashboard-1280.png`, fullPage: true });

  await page.click('[data-tf="24h"]');
  await page.waitForFunction(() => window.cpDashboard.stats && window.cpDashboard.stats.granularity === 'hour');
  out.day = await read();

  await page.setViewportSize({ width: 375, height: 800 });
  await chartsWithinWindow(page);
  await page.screenshot({ path: `${shots}/dashboard-375.png`, fullPage: true });
  out.overflowAt375 = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  out.overflowing = await page.evaluate(() => [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
    .slice(0, 5).map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`));

  await page.click('#logout');
  await page.waitForURL('**/login**');
  out.afterLogout = page.url();
  await page.screenshot({ path: `${shots}/login-375.png` });
  await page.goto(`${api}/`);
  await page.screenshot({ path: `${shots}/landing-375.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(`${api}/login`);
  await page.screenshot({ path: `${shots}/login-1280.png` });

  await page.evaluate((t) => localStorage.setItem('cp_token', t), expiredToken);
  await page.goto(`${api}/dashboard`);
  await page.waitForURL('**/login**');
  out.afterExpired = page.url();
  out.expiredNotice = await page.textContent('#notice');
  out.xssAtEnd = await page.evaluate(() => window.__xss || null);
  await context.close();
} catch (e) {
  out.driverError = String(e && e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(0);
