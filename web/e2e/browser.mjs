// Headless Chromium for the page tests: the system's chromium driven by
// playwright-core (which downloads no browser of its own).

import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { repoRoot } from './gateway.mjs';

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

/**
 * MQTT.js (and the Buffer it uses) as a classic script for a page, bundled
 * by esbuild the way the demo page bundles it: window.mqtt, window.Buffer.
 */
export async function mqttBundle() {
  const out = await build({
    stdin: {
      contents: "import mqtt from 'mqtt'; import { Buffer } from 'buffer'; globalThis.mqtt = mqtt; globalThis.Buffer = Buffer;",
      resolveDir: repoRoot,
      loader: 'js',
    },
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: 'es2020',
    logLevel: 'silent',
  });
  return out.outputFiles[0].text;
}
