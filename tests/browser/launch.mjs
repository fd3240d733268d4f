// Launching browsers for the browser tests.
// - Chromium: Debian's, driven by playwright-core; headless, no sandbox (CI runs as root), none
//   of the background networking that a closed network refuses, and a normal desktop Chrome
//   User-Agent: ingest drops batches from `HeadlessChrome` as bots.
// - Firefox: Debian's firefox-esr, driven headless over WebDriver BiDi by puppeteer-core.
// `openPage(engine)` hides the difference behind the few page operations the drivers use.
import { chromium } from 'playwright-core';

export const ENGINES = ['chromium', 'firefox'];

export function launch() {
  return chromium.launch({
    executablePath: process.env.CP_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

/// The User-Agent of a desktop Chrome of the same version as `browser` (a playwright Browser).
export function desktopUserAgent(browser) {
  return `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${browser.version()} Safari/537.36`;
}

/// A playwright context with a desktop User-Agent; `options` as for `browser.newContext`.
export function newContext(browser, options = {}) {
  return browser.newContext({ userAgent: desktopUserAgent(browser), ...options });
}

// Chromium reports refused or failed requests as "Failed to load resource"; Firefox logs
// network errors of its own too. Those are the browser's network log, not something the page
// logged.
export function isPageError(message) {
  return message.type() === 'error' && !/^Failed to load resource|^NetworkError|Cross-Origin Request Blocked/.test(message.text());
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// Opens one page of `engine` at 1280x800. Returns the page operations the drivers use:
/// goto, click, type, evaluate, waitFor (a predicate in the page), sleep, initScript (runs
/// before any page script), onError/onConsoleError/onRequest/onResponse, close.
export async function openPage(engine) {
  if (engine === 'chromium') {
    const browser = await launch();
    const context = await newContext(browser, { viewport: { width: 1280, height: 800 } });
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
  throw new Error(`unknown engine ${engine}`);
}
