// Headless Chromium for the page tests: the system's chromium driven by
// playwright-core (which downloads no browser of its own).

import { chromium } from 'playwright-core';

/** Launch options; CHROMIUM_PATH overrides the executable. */
export const chromiumOptions = {
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  args: [
    '--headless=new',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
};

/** Starts the browser. */
export function launchBrowser() {
  return chromium.launch(chromiumOptions);
}
