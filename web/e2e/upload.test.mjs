// Upload end to end in headless Chromium: the page's Uppy asks the gateway
// (GET …/s3/params, Companion's protocol) for a presigned POST, sends each
// file (TIFF, PSD, WAV) straight to the bucket, and its job cards reach
// "completed" from MQTT events alone. The network log shows that nothing
// polls: after the upload, the page's only requests are the GETs of the
// outputs it displays.
//
// Needs the processor role. It skips when POST /v1/uploads/endpoint answers
// 404 or 503 "unavailable" (a gateway without uploads).

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { addFiles, launchBrowser } from './browser.mjs';
import { outputDir, startGateway } from './gateway.mjs';
import { makePSD, makeTIFF, makeWAV } from './media.mjs';

let gw;
let browser;
before(async () => {
  gw = await startGateway();
  browser = await launchBrowser();
  await mkdir(outputDir, { recursive: true });
});
after(async () => {
  await browser?.close();
  await gw?.stop();
});

const FILES = [
  { name: 'gradient photo.tif', mimeType: 'image/tiff', buffer: makeTIFF(900, 600), kind: 'image' },
  { name: 'layered.psd', mimeType: 'image/vnd.adobe.photoshop', buffer: makePSD(640, 480), kind: 'image' },
  { name: 'tone.wav', mimeType: 'audio/wav', buffer: makeWAV(2), kind: 'audio' },
];

test('uploads go straight to the bucket and job cards complete from MQTT events only', async (t) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  const requests = [];
  page.on('request', (req) => requests.push({ method: req.method(), url: req.url(), type: req.resourceType() }));
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));

  await page.goto(`${gw.url}/`);
  await page.waitForSelector('#status[data-state="connected"]', { timeout: 20_000 });
  const session = await page.evaluate(() => window.herald.session);

  // Probe: is the upload API there at all?
  const probe = await fetch(`${gw.url}/v1/uploads/endpoint`, { method: 'POST', headers: { Authorization: `Bearer ${session.token}` } });
  const probeBody = await probe.json().catch(() => ({}));
  if (probe.status === 404 || (probe.status === 503 && probeBody?.error?.code === 'unavailable')) {
    t.skip(`POST /v1/uploads/endpoint answered ${probe.status} ${JSON.stringify(probeBody)}: this gateway has no upload support yet`);
    await context.close();
    return;
  }
  assert.equal(probe.status, 201, `POST /v1/uploads/endpoint probe: ${JSON.stringify(probeBody)}`);
  await page.waitForSelector('#uploader[data-ready="true"]', { timeout: 20_000 });

  const startIndex = requests.length;
  await addFiles(page, FILES.map(({ name, mimeType, buffer }) => ({ name, mimeType, buffer })));

  // Every card ends completed (a failed card fails the test with its error).
  const cards = page.locator('.job');
  await page.waitForFunction((n) => document.querySelectorAll('.job').length === n, FILES.length, { timeout: 20_000 });
  try {
    await page.waitForFunction(
      () => [...document.querySelectorAll('.job')].every((c) => ['completed', 'failed'].includes(c.dataset.state)),
      null,
      { timeout: 120_000, polling: 250 },
    );
  } finally {
    await page.screenshot({ path: path.join(outputDir, 'upload.png'), fullPage: true });
  }
  const states = await cards.evaluateAll((els) =>
    els.map((e) => ({ name: e.querySelector('.job-name')?.textContent, state: e.dataset.state, error: e.querySelector('.job-error')?.textContent })),
  );
  for (const s of states) assert.equal(s.state, 'completed', `${s.name}: ${s.error ?? s.state}`);

  for (const f of FILES) {
    const card = page.locator('.job', { has: page.locator('.job-name', { hasText: f.name }) });
    if (f.kind === 'image') assert.ok((await card.locator('img').count()) >= 1, `${f.name}: no image output`);
    else assert.ok((await card.locator('audio[controls]').count()) >= 1, `${f.name}: no audio output`);
  }
  await page.waitForFunction(() => [...document.querySelectorAll('.job img')].every((i) => i.complete && i.naturalWidth > 0), null, {
    timeout: 20_000,
  });

  // Nobody polls: after the files were picked, the gateway saw one GET
  // …/s3/params per file and nothing else; the bucket got one POST per file;
  // every other request is a GET of a converted output, each fetched once.
  const after = requests.slice(startIndex).filter((r) => /^https?:/.test(r.url));
  const gwOrigin = new URL(gw.url).origin;
  const toGateway = after.filter((r) => new URL(r.url).origin === gwOrigin);
  // GET /v1/jobs/{jobId} exists for services; the page never asks it.
  const jobReads = toGateway.filter((r) => new URL(r.url).pathname.startsWith('/v1/jobs'));
  assert.deepEqual(jobReads.map((r) => r.url), [], 'the page polled the jobs API');
  assert.deepEqual(
    toGateway.map((r) => `${r.method} ${new URL(r.url).pathname.replace(/^\/v1\/uploads\/[^/]+\//, '/v1/uploads/{token}/')}`),
    FILES.map(() => 'GET /v1/uploads/{token}/s3/params'),
  );
  const others = after.filter((r) => new URL(r.url).origin !== gwOrigin);
  const posts = others.filter((r) => r.method === 'POST');
  assert.equal(posts.length, FILES.length, `bucket POSTs: ${posts.map((r) => r.url).join(', ')}`);
  const gets = others.filter((r) => r.method === 'GET');
  for (const g of gets) assert.match(decodeURIComponent(new URL(g.url).pathname), /converted\//, `unexpected GET ${g.url}`);
  const seen = new Set();
  // <audio> fetches its source in byte ranges, so media may repeat.
  for (const g of gets.filter((r) => r.type !== 'media')) {
    const key = `${g.method} ${g.url}`;
    assert.ok(!seen.has(key), `fetched twice: ${g.url}`);
    seen.add(key);
  }
  assert.equal(sockets.length, 1, `one WebSocket for the whole run: ${sockets.join(', ')}`);
  assert.deepEqual(errors, []);
  await context.close();
});
