// On-page attention (issue 20) in real browsers against the real stack, one scenario per run;
// prints one JSON report as the last stdout line. tests/tests/browser_attention.rs starts the
// stack and a page server for tests/browser/pages/attention.html, runs a scenario and compares
// the report with what the contract says the page view must answer.
//   node tests/browser/attention_stack.mjs <scenario> <config-json>
// config: {api, landing, siteId, token, shots, engine, path (default /attention), shot}
// Scenarios:
//   visit    (chromium or firefox) a visitor clicks the CTA, bursts on an image, clicks a
//            price that does nothing, scrolls to the pricing form, starts it and leaves; after
//            each step the api's page view is polled (with a deadline) until it shows the step
//   demo     (chromium) a visitor on the api's own /demo page clicks its CTA and scrolls to the
//            bottom; the page view is polled until it shows the visit
//   overlay  (chromium) the owner filters the dashboard to the page and opens the overlay from
//            it; the overlay link, opened on the page server, paints over the live page and
//            the page sends nothing
import { launch, newContext, isPageError, openPage } from './launch.mjs';
import fs from 'node:fs';

const [scenario, configJson] = process.argv.slice(2);
const cfg = JSON.parse(configJson || '{}');
const out = { scenario, engine: cfg.engine || 'chromium', pageErrors: [], consoleErrors: [] };
const log = (msg) => console.error(`attention_stack[${scenario}]: ${msg}`);
if (cfg.shots) fs.mkdirSync(cfg.shots, { recursive: true });

const PATH = cfg.path || '/attention';

async function pageView() {
  const res = await fetch(`${cfg.api}/api/stats/${encodeURIComponent(cfg.siteId)}/page?path=${encodeURIComponent(PATH)}&timeframe=24h`,
    { headers: { Authorization: 'Bearer ' + cfg.token } });
  if (res.status !== 200) throw new Error(`page view answered ${res.status}: ${await res.text()}`);
  return res.json();
}

/** Polls `check` (every 200 ms) until it returns something, or fails after `ms` naming `what`. */
async function until(what, check, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const got = await check();
    if (got) return got;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}; the page view: ${JSON.stringify(await pageView())}`);
    // The poll interval of this deadline loop.
    await new Promise((r) => setTimeout(r, 200));
  }
}

// Where the snippet puts a click at an element's centre: its cell of the 20 × 50 map, computed
// the way the snippet (fractions to 3 decimals) and the aggregator (floor, capped) do.
function cellsOf(selectors) {
  const de = document.documentElement;
  const frac = (v, of) => Math.min(1, Math.round((v / of) * 1e3) / 1e3);
  return selectors.map((sel) => {
    const r = document.querySelector(sel).getBoundingClientRect();
    const x = frac(Math.floor(r.left + r.width / 2) + window.scrollX, de.scrollWidth);
    const y = frac(Math.floor(r.top + r.height / 2) + window.scrollY, de.scrollHeight);
    return [Math.min(19, Math.floor(x * 20)), Math.min(49, Math.floor(y * 50))];
  });
}

async function visit() {
  const page = await openPage(cfg.engine);
  try {
    page.onError((e) => out.pageErrors.push(e));
    page.onConsoleError((t) => out.consoleErrors.push(t));
    await page.goto(`${cfg.landing}${PATH}`);
    await page.waitFor(() => window.__cp === 1);
    out.cells = await page.evaluate(cellsOf, ['#buy', 'img.hero', 'div.price']);
    await page.click('#buy');
    // A burst: three clicks at one spot, well within 700 ms.
    await page.click('img.hero');
    await page.click('img.hero');
    await page.click('img.hero');
    await page.click('div.price');
    // The dead click leaves a second later, with the next batch; the hero has been in view the
    // whole time, so that batch reports it seen.
    out.first = await until('the dead click and the hero in the page view',
      async () => { const v = await pageView(); return v.dead_clicks.length > 0 && v.sections.some((s) => s.name === 'hero') ? v : null; });
    await page.evaluate(() => window.scrollTo(0, document.getElementById('pricing').offsetTop - 100));
    out.depth = await page.evaluate(() => {
      const de = document.documentElement;
      return Math.min(100, Math.ceil(((window.pageYOffset + window.innerHeight) / Math.max(de.scrollHeight, document.body.scrollHeight)) * 100));
    });
    // Focus only: a field's value is never read, and no click is needed to start a form.
    await page.evaluate(() => document.querySelector('#signup [name=email]').focus());
    out.second = await until('the pricing section seen and the form started',
      async () => { const v = await pageView(); return v.sections.some((s) => s.name === 'pricing') && v.forms.length > 0 ? v : null; });
    out.windowErrors = await page.evaluate(() => window.__errors || []);
    // Leaving abandons the started form.
    await page.goto('about:blank');
    out.final = await until('the form abandoned at its email field',
      async () => { const v = await pageView(); return v.forms.length > 0 && v.forms[0].abandons.length > 0 ? v : null; });
  } finally {
    await page.close().catch(() => {});
  }
}

async function demo() {
  const page = await openPage('chromium');
  try {
    page.onError((e) => out.pageErrors.push(e));
    page.onConsoleError((t) => out.consoleErrors.push(t));
    // The demo page has no error collector of its own: one goes in before any page script.
    await page.initScript(() => {
      window.__errors = [];
      window.addEventListener('error', (e) => window.__errors.push(String(e.message || e)));
      window.addEventListener('unhandledrejection', (e) => window.__errors.push('rejection: ' + String(e.reason)));
    });
    await page.goto(`${cfg.landing}${PATH}`);
    await page.waitFor(() => window.__cp === 1);
    await page.click('#cta');
    await page.evaluate(() => window.scrollTo(0, document.getElementById('pricing').offsetTop));
    await page.click('button[data-plan=pro]');
    out.seen = await until('the demo visit in the page view',
      async () => { const v = await pageView(); return v.pageviews > 0 && v.sections.length > 0 && v.click_map.cells.length > 0 ? v : null; });
    out.windowErrors = await page.evaluate(() => window.__errors || []);
    await page.goto('about:blank');
  } finally {
    await page.close().catch(() => {});
  }
}

async function overlay() {
  const browser = await launch();
  try {
    const context = await newContext(browser, { viewport: { width: 1280, height: 900 } });
    const owner = await context.newPage();
    owner.on('pageerror', (e) => out.pageErrors.push(`owner: ${e}`));
    owner.on('console', (m) => { if (isPageError(m)) out.consoleErrors.push(`owner: ${m.text()}`); });
    await owner.goto(`${cfg.api}/login`);
    await owner.evaluate((t) => localStorage.setItem('cp_token', t), cfg.token);
    await owner.goto(`${cfg.api}/dashboard?site=${encodeURIComponent(cfg.siteId)}&timeframe=24h&page=${encodeURIComponent(PATH)}`);
    await owner.waitForFunction(() => document.querySelectorAll('#attention tbody tr').length > 0, null, { timeout: 20000 });
    out.dashboard = await owner.evaluate(() => ({
      title: document.querySelector('#attention h2').textContent,
      sections: [...document.querySelectorAll('#attention .attention-block')][1].querySelectorAll('tbody tr').length,
    }));
    await owner.screenshot({ path: `${cfg.shots}/stack-attention-dashboard-1280.png`, fullPage: true });
    await owner.evaluate(() => { window.open = (u) => { window.__opened = u; }; });
    await owner.click('#attention button:text-is("Open overlay on my page")');
    await owner.waitForFunction(() => window.__opened, null, { timeout: 10000 });
    out.link = await owner.evaluate(() => window.__opened);

    // The link names the site's domain; the page server is that host on a port of the test's.
    const link = new URL(out.link);
    const local = `${cfg.landing}${link.pathname}${link.search}`;
    const visitor = await context.newPage();
    out.requests = [];
    visitor.on('request', (r) => out.requests.push(new URL(r.url()).pathname));
    visitor.on('pageerror', (e) => out.pageErrors.push(`overlay: ${e}`));
    visitor.on('console', (m) => { if (isPageError(m)) out.consoleErrors.push(`overlay: ${m.text()}`); });
    await visitor.goto(local);
    await visitor.waitForFunction(() => document.querySelectorAll('[data-cp-layer=clicks] > div').length > 0, null, { timeout: 15000 });
    const painted = () => visitor.evaluate(() => {
      const shown = (name) => { const l = document.querySelector(`[data-cp-layer=${name}]`); return !!l && !l.hidden; };
      return {
        cells: document.querySelectorAll('[data-cp-layer=clicks] > div').length,
        bands: [...document.querySelectorAll('[data-cp-layer=scroll] > div')].filter((d) => /%$/.test(d.textContent)).length,
        folds: [...document.querySelectorAll('[data-cp-layer=scroll] > div')].filter((d) => /reached here$/.test(d.textContent)).map((d) => d.textContent),
        labels: [...document.querySelectorAll('[data-cp-layer=sections] > div')].map((d) => d.textContent),
        layers: { clicks: shown('clicks'), scroll: shown('scroll'), sections: shown('sections') },
      };
    });
    out.painted = await painted();
    await visitor.screenshot({ path: `${cfg.shots}/stack-attention-${cfg.shot || 'overlay'}-1280.png` });
    // The panel's switch hides a layer; Close removes everything.
    await visitor.click('input[data-layer=clicks]');
    out.afterSwitch = await painted();
    await visitor.click('button:text-is("Close")');
    out.afterClose = await visitor.evaluate(() => document.querySelectorAll('[data-cp-overlay], [data-cp-layer]').length);
    out.windowErrors = await visitor.evaluate(() => window.__errors || []);
  } finally {
    await browser.close().catch(() => {});
  }
}

const scenarios = { visit, demo, overlay };

try {
  if (!scenarios[scenario]) throw new Error(`unknown scenario ${scenario}`);
  log(`start ${JSON.stringify({ api: cfg.api, landing: cfg.landing, engine: cfg.engine })}`);
  await scenarios[scenario]();
} catch (e) {
  out.driverError = String((e && e.stack) || e);
}
console.log(JSON.stringify(out));
process.exit(0);
