// The demo page in headless Chromium (playwright-core driving the system's
// chromium): it connects, shows events posted to /v1/events live, renders job
// cards from job events alone, survives a reload on the same channel and gets
// the events sent while it was away.

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { launchBrowser } from './browser.mjs';
import { eventId, outputDir, postEvent, startGateway } from './gateway.mjs';
import { makePNG, makeWAV } from './media.mjs';

let gw;
let browser;
let media; // serves the sample "outputs" a job.completed event points at
let mediaURL;

before(async () => {
  gw = await startGateway();
  assert.ok(gw.apiKey, 'HERALD_DEMO_API_KEY must hold the demo app key of the gateway at HERALD_URL');
  const files = {
    '/thumb-256.png': ['image/png', makePNG(256, 171)],
    '/waveform.png': ['image/png', makePNG(600, 120)],
    '/audio.wav': ['audio/wav', makeWAV(1.5)],
  };
  media = http.createServer((req, res) => {
    const f = files[new URL(req.url, 'http://x').pathname];
    if (!f) return res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': f[0], 'Content-Length': f[1].length }).end(f[1]);
  });
  await new Promise((resolve) => media.listen(0, '127.0.0.1', resolve));
  mediaURL = `http://127.0.0.1:${media.address().port}`;
  browser = await launchBrowser();
  await mkdir(outputDir, { recursive: true });
});

after(async () => {
  await browser?.close();
  media?.close();
  await gw?.stop();
});

/** Opens the demo page and collects its errors. */
async function openPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
  });
  await page.goto(`${gw.url}/`);
  return { context, page, errors };
}

async function waitConnected(page) {
  try {
    await page.waitForSelector('#status[data-state="connected"]', { timeout: 20_000 });
  } catch (err) {
    const state = await page.locator('#status').getAttribute('data-state');
    const detail = await page.locator('#status-detail').textContent();
    const noBundle = await page.locator('#bundle-missing').isVisible();
    throw new Error(`page not connected: state=${state} detail=${detail} bundleMissing=${noBundle}`, { cause: err });
  }
}

async function post(env) {
  const res = await postEvent(gw, { v: 1, time: new Date().toISOString(), ...env });
  assert.equal(res.status, 202, `POST /v1/events ${env.type}: ${JSON.stringify(res.body)}`);
}

test('the demo page connects, shows events live and renders job cards', async () => {
  const { context, page, errors } = await openPage();
  await waitConnected(page);

  const channel = (await page.locator('#channel').textContent()).trim();
  assert.match(channel, /^[A-Za-z0-9_-]{22}$/);
  assert.equal(await page.evaluate(() => window.herald.channel), channel);
  assert.equal(await page.evaluate(() => window.herald.app), 'demo');
  assert.equal(await page.evaluate(() => window.herald.client.mqttClient.options.protocolVersion), 5);

  // An x.* event shows up in the log with its id, type and details.
  const hello = eventId();
  await post({ type: 'x.hello', id: hello, channel, seq: 1, data: { message: 'hello from the test' } });
  const li = page.locator(`#events li[data-event-id="${hello}"]`);
  await li.waitFor({ timeout: 10_000 });
  assert.equal(await li.getAttribute('data-type'), 'x.hello');
  assert.match(await li.textContent(), /hello from the test/);

  // At-least-once delivery: the same id twice is shown once.
  await post({ type: 'x.hello', id: hello, channel, seq: 1, data: { message: 'hello from the test' } });
  const marker = eventId();
  await post({ type: 'x.marker', id: marker, channel, seq: 2 });
  await page.locator(`#events li[data-event-id="${marker}"]`).waitFor({ timeout: 10_000 });
  assert.equal(await page.locator(`#events li[data-event-id="${hello}"]`).count(), 1);

  // A job driven by events alone: accepted → progress → completed, with a
  // late, lower-seq progress that must not move the card back.
  const jobId = 'job_demo_ok';
  const card = page.locator(`.job[data-job-id="${jobId}"]`);
  const input = { bucket: 'herald', key: `uploads/demo/${channel}/${jobId}/Sunset+over+sea.tif`, size: 482133, contentType: 'image/tiff' };
  await post({ type: 'job.accepted', id: eventId(), jobId, channel, seq: 1, input });
  await post({ type: 'job.progress', id: eventId(), jobId, channel, seq: 2, progress: { done: 1, total: 3 } });
  await page.locator(`.job[data-job-id="${jobId}"][data-state="progress"]`).waitFor({ timeout: 10_000 });
  assert.match(await card.textContent(), /1 of 3/);
  const outputs = [
    { name: 'thumb-256', key: `converted/demo/${channel}/${jobId}/thumb-256.png`, url: `${mediaURL}/thumb-256.png`, contentType: 'image/png', width: 256, height: 171, bytes: 9876 },
    { name: 'waveform', key: `converted/demo/${channel}/${jobId}/waveform.png`, url: `${mediaURL}/waveform.png`, contentType: 'image/png', width: 600, height: 120, bytes: 5120 },
    { name: 'preview', key: `converted/demo/${channel}/${jobId}/preview.wav`, url: `${mediaURL}/audio.wav`, contentType: 'audio/wav', duration: 1.5, bytes: 66194 },
  ];
  await post({ type: 'job.completed', id: eventId(), jobId, channel, seq: 4, outputs });
  await post({ type: 'job.progress', id: eventId(), jobId, channel, seq: 3, progress: { done: 2, total: 3 } });
  await page.locator(`#events li[data-job-id="${jobId}"][data-seq="3"]`).waitFor({ timeout: 10_000 });
  assert.equal(await card.getAttribute('data-state'), 'completed');
  assert.equal(await card.locator('img').count(), 2);
  assert.equal(await card.locator('audio[controls]').count(), 1);
  assert.match(await card.textContent(), /256×171/);
  assert.match(await card.textContent(), /1\.50 s/);
  assert.match(await card.locator('.job-name').textContent(), /Sunset over sea\.tif/);
  await page.waitForFunction(() => [...document.querySelectorAll('.job img')].every((i) => i.complete && i.naturalWidth > 0));

  // A failed job shows its error code and message.
  const failedId = 'job_demo_bad';
  await post({ type: 'job.accepted', id: eventId(), jobId: failedId, channel, seq: 1 });
  await post({ type: 'job.failed', id: eventId(), jobId: failedId, channel, seq: 2, error: { code: 'unsupported_format', message: 'no converter for application/x-foo' } });
  const failed = page.locator(`.job[data-job-id="${failedId}"][data-state="failed"]`);
  await failed.waitFor({ timeout: 10_000 });
  assert.equal((await failed.locator('.error-code').textContent()).trim(), 'unsupported_format');
  assert.match(await failed.locator('.error-message').textContent(), /no converter/);

  const shot = path.join(outputDir, 'demo.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});

test('a reload keeps the channel and events sent while away arrive on return', async () => {
  const { context, page, errors } = await openPage();
  await waitConnected(page);
  const channel = (await page.locator('#channel').textContent()).trim();

  // Same tab, same session: the stored session is reused after a reload.
  await page.reload();
  await waitConnected(page);
  assert.equal((await page.locator('#channel').textContent()).trim(), channel);

  // Leave the page (its WebSocket closes), send, come back: the persistent
  // MQTT session (clean:false) holds the QoS 1 event for the channel.
  const jobId = 'job_while_away';
  await page.goto('about:blank');
  const away = eventId();
  await post({ type: 'x.while-away', id: away, channel, seq: 1 });
  await post({ type: 'job.completed', id: eventId(), jobId, channel, seq: 1, outputs: [] });
  await page.goBack();
  await waitConnected(page);
  assert.equal((await page.locator('#channel').textContent()).trim(), channel);
  await page.locator(`#events li[data-event-id="${away}"]`).waitFor({ timeout: 10_000 });
  await page.locator(`.job[data-job-id="${jobId}"][data-state="completed"]`).waitFor({ timeout: 10_000 });
  await page.screenshot({ path: path.join(outputDir, 'demo-after-return.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});

test('a dropped connection reconnects by itself with the same session; offline waits for the network', async () => {
  const { context, page, errors } = await openPage();
  await waitConnected(page);
  const channel = (await page.locator('#channel').textContent()).trim();
  await page.evaluate(() => {
    window.stateLog = [];
    const status = document.querySelector('#status');
    new MutationObserver(() => window.stateLog.push(status.dataset.state)).observe(status, { attributes: true });
  });

  // Drop the socket under MQTT.js: the page's own backoff brings it back and
  // the broker kept the session, so an event sent in the gap arrives.
  const gap = eventId();
  await page.evaluate(() => window.herald.client.mqttClient.stream.destroy());
  await post({ type: 'x.in-the-gap', id: gap, channel, seq: 1 });
  await page.locator(`#events li[data-event-id="${gap}"]`).waitFor({ timeout: 30_000 });
  await waitConnected(page);
  const log = await page.evaluate(() => window.stateLog);
  assert.ok(log.includes('reconnecting'), `states: ${log}`);
  assert.equal((await page.locator('#channel').textContent()).trim(), channel);

  // Without network the page says offline and does not spin; back online it reconnects.
  await context.setOffline(true);
  await page.evaluate(() => window.herald.client.mqttClient.stream.destroy());
  await page.waitForSelector('#status[data-state="offline"]', { timeout: 10_000 });
  await context.setOffline(false);
  await waitConnected(page);
  const after = eventId();
  await post({ type: 'x.back-online', id: after, channel, seq: 2 });
  await page.locator(`#events li[data-event-id="${after}"]`).waitFor({ timeout: 10_000 });
  assert.deepEqual(errors.filter((e) => !/ERR_INTERNET_DISCONNECTED/.test(e)), []);
  await context.close();
});
