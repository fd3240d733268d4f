// Launching Debian's Chromium for the browser tests: headless, no sandbox (CI runs as root),
// and none of the background networking that a closed network refuses.
import { chromium } from 'playwright-core';

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

// Chromium reports refused or failed requests as "Failed to load resource"; that is the
// browser's network log, not something the page logged.
export function isPageError(message) {
  return message.type() === 'error' && !message.text().startsWith('Failed to load resource');
}
