// Launching browsers for the browser tests.
// - Chromium: Debian's, driven by playwright-core; headless, no sandbox (CI runs as root), none
//   of the background networking that a closed network refuses, and a normal desktop Chrome
//   User-Agent: ingest drops batches from `HeadlessChrome` as bots.
// - Firefox: Debian's firefox-esr, driven headless over WebDriver BiDi by puppeteer-core.
// - WebKit: WebKitGTK's MiniBrowser (Debian's webkit2gtk-driver) in a private Xvfb, driven over
//   classic WebDriver by the few HTTP calls below. Classic WebDriver has neither init scripts
//   nor error events: page-errors.js records uncaught exceptions, unhandled rejections and
//   console.error in the page (test pages load it first as /__errors.js; the driver injects it
//   after each navigation too), and the driver reads what it recorded before each navigation
//   and on close, and hands it to onError/onConsoleError. Scenarios that need an init script
//   do not run there.
// `openPage(engine)` hides the difference behind the few page operations the drivers use.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';

// The page side of WebKit's error hooks (see above).
const PAGE_ERRORS = readFileSync(new URL('./page-errors.js', import.meta.url), 'utf8');

// Headless Chromium says "HeadlessChrome" in its User-Agent, and ingest drops batches from
// headless browsers as bots: the tests browse as an ordinary desktop Chrome on Linux, so what
// they send is counted (and shows as desktop / Chrome / Linux).
export const USER_AGENT =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';

export function launch() {
  return chromium.launch({
    executablePath: process.env.CP_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', `--user-agent=${USER_AGENT}`],
  });
}

/// A playwright context with the desktop User-Agent the browser was launched with, so a beacon
/// sent while a page unloads (which leaves with the launch User-Agent) is the same visitor;
/// `options` as for `browser.newContext`.
export function newContext(browser, options = {}) {
  return browser.newContext({ userAgent: USER_AGENT, ...options });
}

// Chromium reports refused or failed requests as "Failed to load resource"; Firefox logs
// network errors of its own too. Those are the browser's network log, not something the page
// logged.
export function isPageError(message) {
  return message.type() === 'error' && !/^Failed to load resource|^NetworkError|Cross-Origin Request Blocked/.test(message.text());
}

/// Resolves once every chart of a dashboard page (`window.cpDashboard.charts`, Chart.js) lies
/// within the window: after a viewport change they resize on a later frame. Rejects, failing
/// the run, if one has not within 10 s.
export function chartsWithinWindow(page) {
  return page.waitForFunction(
    () => Object.values(window.cpDashboard.charts).every((c) => c.canvas.getBoundingClientRect().right <= window.innerWidth + 1),
    null,
    { timeout: 10000 },
  );
}

// For poll intervals and a scenario's deliberate pacing; never a wait for a condition.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// Opens one page of `engine` at 1280x800. Returns the page operations the drivers use:
/// goto, click, type, evaluate, waitFor (a predicate in the page), sleep, initScript (runs
/// before any page script), onError/onConsoleError/onRequest/onResponse, close.
/// `contextOptions` are added to Chromium's context (e.g. `{ proxy: { server } }`).
export async function openPage(engine, contextOptions = {}) {
  if (engine === 'chromium') {
    const browser = await launch();
    const context = await newContext(browser, { viewport: { width: 1280, height: 800 }, ...contextOptions });
    const page = await context.newPage();
    return {
      engine,
      raw: page,
      goto: (url) => page.goto(url, { waitUntil: 'load' }),
      click: (sel) => page.click(sel),
      clickAndWait: async (sel) => { await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click(sel)]); },
      type: (sel, text) => page.fill(sel, text),
      evaluate: (fn, arg) => page.evaluate(fn, arg),
      waitFor: (fn, arg) => page.waitForFunction(fn, arg, { timeout: 15000 }),
      sleep: (ms) => page.waitForTimeout(ms),
      front: () => page.bringToFront(),
      initScript: (fn, arg) => page.addInitScript(fn, arg),
      onError: (cb) => page.on('pageerror', (e) => cb(String(e))),
      onConsoleError: (cb) => page.on('console', (m) => { if (isPageError(m)) cb(m.text()); }),
      onRequest: (cb) => page.on('request', (r) => cb(r.url())),
      onResponse: (cb) => page.on('response', (r) => cb(r.url(), r.status())),
      close: async () => { await context.close(); await browser.close(); },
    };
  }
  if (engine === 'firefox') {
    const { default: puppeteer } = await import('puppeteer-core');
    const browser = await puppeteer.launch({
      browser: 'firefox',
      executablePath: process.env.CP_FIREFOX || '/usr/bin/firefox-esr',
      protocol: 'webDriverBiDi',
      headless: true,
      // A closed network: no update, telemetry or remote-settings traffic.
      extraPrefsFirefox: { 'app.update.enabled': false, 'network.captive-portal-service.enabled': false },
    });
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    return {
      engine,
      raw: page,
      goto: (url) => page.goto(url, { waitUntil: 'load' }),
      click: (sel) => page.click(sel),
      clickAndWait: async (sel) => { await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click(sel)]); },
      type: (sel, text) => page.type(sel, text),
      evaluate: (fn, arg) => page.evaluate(fn, arg),
      waitFor: (fn, arg) => page.waitForFunction(fn, { timeout: 15000 }, arg),
      sleep,
      front: () => page.bringToFront(),
      initScript: (fn, arg) => page.evaluateOnNewDocument(fn, arg),
      onError: (cb) => page.on('pageerror', (e) => cb(String(e))),
      onConsoleError: (cb) => page.on('console', (m) => { if (isPageError(m)) cb(m.text()); }),
      onRequest: (cb) => page.on('request', (r) => cb(r.url())),
      onResponse: (cb) => page.on('response', (r) => cb(r.url(), r.status())),
      close: () => browser.close(),
    };
  }
  if (engine === 'webkit') return openWebKit();
  throw new Error(`unknown engine ${engine}`);
}

const MINIBROWSER = process.env.CP_MINIBROWSER || '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

async function openWebKit() {
  // Xvfb picks a free display itself and reports it on fd 3: parallel tests cannot collide.
  const xvfb = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', '1280x1024x24', '-nolisten', 'tcp'],
    { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
  const display = await new Promise((resolve, reject) => {
    let buf = '';
    xvfb.stdio[3].on('data', (d) => { buf += d; if (buf.includes('\n')) resolve(buf.trim()); });
    xvfb.on('error', reject);
    xvfb.on('exit', (code) => reject(new Error(`Xvfb exited with ${code}`)));
  });
  const port = await freePort();
  const driver = spawn('WebKitWebDriver', [`--port=${port}`], { env: { ...process.env, DISPLAY: `:${display}` }, stdio: 'ignore' });
  const stop = () => { driver.kill(); xvfb.kill(); };
  const base = `http://127.0.0.1:${port}`;
  const wd = async (method, path, body) => {
    const res = await fetch(base + path, { method, headers: { 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
    const json = await res.json();
    if (json.value && json.value.error) throw new Error(`${method} ${path}: ${json.value.error}: ${json.value.message}`);
    return json.value;
  };
  try {
    for (let i = 0; ; i++) {
      try { if ((await wd('GET', '/status')).ready) break; } catch (e) { if (i > 100) throw e; }
      // The poll interval of this bounded loop (about 10 s).
      await sleep(100);
    }
    const session = await wd('POST', '/session', {
      capabilities: { alwaysMatch: { 'webkitgtk:browserOptions': { binary: MINIBROWSER, args: ['--automation'] } } },
    });
    const sid = `/session/${session.sessionId}`;
    await wd('POST', `${sid}/window/rect`, { width: 1280, height: 800 });
    const exec = (fn, arg) => wd('POST', `${sid}/execute/sync`, { script: `return (${fn}).apply(null, arguments)`, args: arg === undefined ? [] : [arg] });
    const find = async (sel) => Object.values(await wd('POST', `${sid}/element`, { using: 'css selector', value: sel }))[0];
    const waitFor = async (fn, arg) => {
      const deadline = Date.now() + 15000;
      for (;;) {
        try { if (await exec(fn, arg)) return; } catch (e) { /* mid-navigation */ }
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${fn}`);
        // The poll interval of this deadline loop.
        await sleep(50);
      }
    };
    const click = async (sel) => { await wd('POST', `${sid}/element/${await find(sel)}/click`, {}); };
    // Error hooks: what page-errors.js recorded on the current page and was not handed over
    // yet goes to the callbacks. Called before anything replaces the page (its records go with
    // it) and on close; a page that cannot be read fails the run rather than hide its errors.
    const errorHooks = [];
    const consoleHooks = [];
    const collect = async () => {
      const got = await exec(() => {
        const w = window;
        const read = w.__pageErrorsRead || (w.__pageErrorsRead = { errors: 0, console: 0 });
        const errors = (w.__errors || []).slice(read.errors);
        const logged = (w.__consoleErrors || []).slice(read.console);
        read.errors += errors.length;
        read.console += logged.length;
        return { errors, logged };
      });
      for (const e of got.errors) for (const cb of errorHooks) cb(e);
      for (const t of got.logged) for (const cb of consoleHooks) cb(t);
    };
    const watch = () => wd('POST', `${sid}/execute/sync`, { script: PAGE_ERRORS, args: [] });
    return {
      engine: 'webkit',
      goto: async (url) => {
        await collect();
        await wd('POST', `${sid}/url`, { url });
        await watch();
      },
      click,
      clickAndWait: async (sel) => {
        await collect();
        await exec(() => { window.__leaving = 1; });
        await click(sel);
        await waitFor(() => !window.__leaving && document.readyState === 'complete');
        await watch();
      },
      type: async (sel, text) => { await wd('POST', `${sid}/element/${await find(sel)}/value`, { text }); },
      evaluate: exec,
      waitFor,
      sleep,
      // A tab opened by a link does not take WebDriver's focus: nothing to do.
      front: async () => {},
      initScript: async () => {},
      onError: (cb) => { errorHooks.push(cb); },
      onConsoleError: (cb) => { consoleHooks.push(cb); },
      // Classic WebDriver does not show the page's requests: counts of them stay 0 there, and
      // the scenarios that assert them (the privacy ones) do not run on WebKit.
      onRequest: () => {},
      onResponse: () => {},
      close: async () => {
        try {
          await collect();
          await wd('DELETE', sid);
        } finally {
          stop();
        }
      },
    };
  } catch (e) {
    stop();
    throw e;
  }
}
