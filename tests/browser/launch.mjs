// Launching Debian's Chromium for the browser tests: headless, no sandbox (CI runs as root),
// and none of the background networking that a closed network refuses.
import { chromium } from 'playwright-core';

export function launch() {
  return chromium.launch({
    executablePath: process.env.CP_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

// Chromium reports refused or failed requests as "Failed to load resource"; that is the
// browser's network log, not something the page logged.
export function isPageError(message) {
  return message.type() === 'error' && !message.text().startsWith('Failed to load resource');
}
