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

/**
 * Picks files in the demo page's Uppy Dashboard as a person would (through
 * "add more" once files are listed). `files` is what Playwright's
 * setInputFiles takes: paths or {name, mimeType, buffer}.
 */
export async function addFiles(page, files) {
  const input = page.locator('input.uppy-Dashboard-input[name="files[]"]').first();
  if ((await input.count()) === 0) await page.locator('.uppy-DashboardContent-addMore').click();
  await input.setInputFiles(files);
}
