// Resumable uploads in headless Chromium with the real @uppy/aws-s3 (bundled
// in the demo page, Companion mode against the gateway's /v1/uploads routes):
//
// 1. A 300 MiB TIFF goes to localaws in 5 MiB parts. The network is cut
//    (DevTools offline emulation) a quarter of the way, failing the upload,
//    and restored; later the upload is paused and resumed. Each time it
//    resumes from the bucket's list of parts and completes without sending
//    a finished part again — counted both in the browser's network log and
//    by localaws (herald_localaws_s3_upload_parts_total) — and the job card
//    reaches "completed" from MQTT events.
// 2. The same page sends a small file in one presigned POST (/s3/params);
//    signing a part of another channel's upload answers 403; a file over the
//    app's limit or of a type it does not take is refused before any byte
//    is sent, by Uppy's restrictions and, with those lifted, by the gateway;
//    an empty file is refused with a message that says so; each refused
//    file has its own line.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { addFiles, launchBrowser } from './browser.mjs';
import { mintSession, outputDir, startGateway } from './gateway.mjs';
import { makePNG, writeTIFF } from './media.mjs';

const MiB = 1024 * 1024;
const LIMIT = 350 * MiB;

let gw;
let browser;
let tmp;
before(async () => {
  // The demo app with a smaller object limit and a type allow-list, so that
  // refusals can be shown with files a test can make.
  gw = await startGateway({
    config: `apps:
  - id: demo
    apiKey: "demo_${randomBytes(18).toString('base64url')}"
    secret: "${randomBytes(32).toString('base64url')}"
    origins: ["*"]
    allowAnonymous: true
    maxObjectBytes: ${LIMIT}
    allowedTypes: ["image/*", "audio/*"]
`,
  });
  browser = await launchBrowser();
  tmp = await mkdtemp(path.join(os.tmpdir(), 'herald-uppy-'));
  await mkdir(outputDir, { recursive: true });
});
after(async () => {
  await browser?.close();
  await gw?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** localaws's count of UploadPart requests by result, from the gateway's /metrics. */
async function partsCounted(result = 'stored') {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const m = new RegExp(`^herald_localaws_s3_upload_parts_total\\{result="${result}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** Opens the demo page and waits until Uppy has its upload endpoint. */
async function openPage(ctx) {
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  await page.goto(`${gw.url}/`);
  await page.waitForSelector('#status[data-state="connected"]', { timeout: 20_000 });
  await page.waitForSelector('#uploader[data-ready="true"]', { timeout: 20_000 });
  return { page, errors };
}

const isListParts = (call) => /^GET \/v1\/uploads\/\{token\}\/s3\/multipart\/[^/]+$/.test(call);
const isBucket = (url) => new URL(url).origin !== new URL(gw.url).origin;

test('a 300 MiB file goes up in parts, resumes after the network is cut without resending parts, and completes over MQTT', async () => {
  const file = path.join(tmp, 'poster scan.tif');
  const size = await writeTIFF(file, 8192, 9600); // RGBA: 300 MiB of pixels
  const partSize = 5 * MiB; // @uppy/aws-s3's chunk for files under 48.8 GiB
  const nParts = Math.ceil(size / partSize);

  const ctx = await browser.newContext({ viewport: { width: 1280, height: 1100 } });
  const { page, errors } = await openPage(ctx);
  const sent = new Map(); // part number -> PUTs sent
  const stored = new Map(); // part number -> PUTs answered 200
  const gatewayCalls = [];
  let cutAt = null; // part numbers stored before the first interruption
  const sentAfterCut = []; // part numbers sent since, in order
  const partOf = (url) => Number(new URL(url).searchParams.get('partNumber'));
  page.on('request', (req) => {
    if (req.method() === 'PUT' && isBucket(req.url())) {
      const n = partOf(req.url());
      sent.set(n, (sent.get(n) ?? 0) + 1);
      if (cutAt) sentAfterCut.push(n);
    } else if (!isBucket(req.url())) {
      gatewayCalls.push(`${req.method()} ${new URL(req.url()).pathname.replace(/\/v1\/uploads\/[^/]+\/s3/, '/v1/uploads/{token}/s3')}`);
    }
  });
  page.on('requestfinished', async (req) => {
    if (req.method() !== 'PUT' || !isBucket(req.url())) return;
    const res = await req.response();
    if (res?.status() === 200) stored.set(partOf(req.url()), (stored.get(partOf(req.url())) ?? 0) + 1);
  });
  const before = await partsCounted();
  // The network is cut a quarter of the way: the browser goes offline as it
  // asks for the next part's URL, which fails.
  const cutPart = Math.ceil(nParts / 4) + 1;
  let cut;
  const cutDone = new Promise((resolve) => (cut = resolve));
  await page.route(/\/s3\/multipart\/[^/?]+\/\d+\?/, async (route) => {
    if (cutAt || !new URL(route.request().url()).pathname.endsWith(`/${cutPart}`)) return route.continue();
    await ctx.setOffline(true);
    cutAt = new Set(stored.keys());
    cut();
    return route.abort('internetdisconnected');
  });

  await addFiles(page, file);
  const waitStored = async (n) => {
    const deadline = Date.now() + 120_000;
    while (stored.size < n) {
      assert.ok(Date.now() < deadline, `only ${stored.size} parts stored in 2 min`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  // The upload stops with an error; back online, the page retries, and
  // @uppy/aws-s3 asks the gateway which parts the bucket holds (ListParts)
  // and goes on.
  await cutDone;
  const interruptions = [cutAt];
  await page.waitForFunction(() => window.herald.uppy.getFiles()[0]?.error, null, { timeout: 30_000 });
  await page.waitForTimeout(1000);
  assert.equal(stored.size, cutAt.size, 'parts were stored while the browser was offline');
  await page.screenshot({ path: path.join(outputDir, 'uppy-offline.png'), fullPage: true });
  const listsBefore = gatewayCalls.filter(isListParts).length;
  await ctx.setOffline(false);
  await waitStored(cutAt.size + 2);
  assert.equal(gatewayCalls.filter(isListParts).length, listsBefore + 1, 'the resume after the cut asked for the parts held');
  // Pause and resume at half way: the part in flight is abandoned, and the
  // resume starts from the bucket's list of parts.
  await waitStored(nParts / 2);
  const fileId = await page.evaluate(() => window.herald.uppy.getFiles()[0].id);
  await page.evaluate((id) => window.herald.uppy.pauseResume(id), fileId);
  interruptions.push(new Set(stored.keys()));
  await page.waitForTimeout(1000);
  await page.evaluate((id) => window.herald.uppy.pauseResume(id), fileId);

  const card = page.locator('.job', { has: page.locator('.job-name', { hasText: 'poster scan.tif' }) });
  try {
    await card.waitFor({ timeout: 60_000 });
    // A card marked failed by the upload error turns back to uploading on
    // the resume; only the job's own events end it.
    await page.waitForFunction(
      () => document.querySelector('.job')?.dataset.state === 'completed' || document.querySelector('.job .tick')?.textContent.includes('failed'),
      null,
      { timeout: 240_000, polling: 250 },
    );
  } finally {
    await page.screenshot({ path: path.join(outputDir, 'uppy-resumed.png'), fullPage: true });
  }
  const state = await card.getAttribute('data-state');
  assert.equal(state, 'completed', `job card: ${await card.locator('.job-error').textContent().catch(() => state)}`);
  assert.ok((await card.locator('img').count()) >= 1, 'the completed card shows the converted images');

  // localaws stored each part exactly once. (The browser may not see the
  // answer for a part stored just as the upload paused; the resume learns
  // of it from ListParts and does not send it again.)
  assert.equal((await partsCounted()) - before, nParts, 'localaws stored a part more than once, or missed one');
  for (let n = 1; n <= nParts; n++) assert.ok(sent.has(n), `part ${n} was never sent; sent ${[...sent.keys()]}; gateway ${gatewayCalls.join(", ")}`);
  for (const [n, c] of stored) assert.equal(c, 1, `part ${n} stored ${c} times`);
  assert.ok(cutAt.size >= nParts / 4 && cutAt.size < nParts, `cut after ${cutAt.size} of ${nParts} parts`);
  // A part stored before an interruption is never sent after it.
  const resent = sentAfterCut.filter((n) => cutAt.has(n));
  assert.deepEqual(resent, [], 'parts finished before the cut were sent again');
  for (const n of interruptions[1]) assert.equal(sent.get(n), 1, `part ${n}, stored before the pause, was sent ${sent.get(n)} times`);
  // Both resumes asked which parts the bucket holds (ListParts).
  assert.ok(gatewayCalls.filter(isListParts).length >= 2, `ListParts in ${gatewayCalls.join(', ')}`);
  assert.ok(gatewayCalls.includes('POST /v1/uploads/{token}/s3/multipart'));
  assert.ok(!gatewayCalls.some((c) => c.startsWith('GET /v1/jobs')), 'the page polled the jobs API');
  console.log(`# ${nParts} parts of ${partSize} bytes; offline after ${cutAt.size}, paused after ${interruptions[1].size}; ` +
    `PUTs sent ${[...sent.values()].reduce((a, b) => a + b, 0)}, stored ${nParts}; localaws failed parts ${await partsCounted('failed')}`);
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('small files go in one POST; another channel is refused; oversize and wrong types are refused before any byte is sent', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 1100 } });
  const { page, errors } = await openPage(ctx);
  const requests = [];
  page.on('request', (req) => requests.push({ method: req.method(), url: req.url() }));
  const responses = [];
  page.on('response', (res) => responses.push({ method: res.request().method(), url: res.url(), status: res.status() }));
  const partsBefore = await partsCounted();

  // A small image: one presigned POST through /s3/params, then MQTT.
  await addFiles(page, { name: 'small photo.png', mimeType: 'image/png', buffer: makePNG(320, 200) });
  const card = page.locator('.job', { has: page.locator('.job-name', { hasText: 'small photo.png' }) });
  await card.waitFor({ timeout: 30_000 });
  await page.waitForFunction(() => document.querySelector('.job')?.dataset.state === 'completed', null, { timeout: 60_000, polling: 250 });
  const params = requests.filter((r) => /\/v1\/uploads\/[^/]+\/s3\/params\?/.test(r.url));
  assert.equal(params.length, 1, 'one GET …/s3/params');
  assert.equal(new URL(params[0].url).searchParams.get('type'), 'image/png');
  assert.equal(requests.filter((r) => r.method === 'POST' && isBucket(r.url)).length, 1, 'one POST to the bucket');
  assert.ok(!requests.some((r) => r.method === 'PUT'), 'a small file was sent in parts');

  // Another channel's upload: its key is not this session's, so signing a
  // part of it is refused.
  const other = await mintSession(gw);
  const created = await fetch(`${gw.url}/v1/uploads/s3/multipart`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${other.token}` },
    body: JSON.stringify({ filename: 'theirs.tif', type: 'image/tiff', metadata: {} }),
  });
  assert.equal(created.status, 200);
  const theirs = await created.json();
  const status = await page.evaluate(async ({ uploadId, key }) => {
    const ep = (await window.herald.client.uploadEndpoint()).companionEndpoint;
    const res = await fetch(`${ep}/s3/multipart/${encodeURIComponent(uploadId)}/1?${new URLSearchParams({ key })}`);
    return res.status;
  }, theirs);
  assert.equal(status, 403, 'signing a part of another channel’s upload');

  // Too big and the wrong type: Uppy's restrictions (from the endpoint's
  // limits) refuse them as they are added. The big file is sparse: nothing
  // reads it.
  const huge = path.join(tmp, 'huge.tif');
  await writeFile(huge, '');
  await truncate(huge, LIMIT + MiB);
  const mark = requests.length;
  await addFiles(page, huge);
  await addFiles(page, { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not an image') });
  // An empty file is refused with a message that says so.
  await addFiles(page, { name: 'empty.png', mimeType: 'image/png', buffer: Buffer.alloc(0) });
  await page.waitForFunction(() => document.querySelectorAll('#upload-errors li').length >= 3, null, { timeout: 10_000 });
  // One line per file: no message hides another.
  const refusals = await page.locator('#upload-errors li').allTextContents();
  assert.ok(refusals.some((t) => t.startsWith('huge.tif') && /exceeds/i.test(t)), `refusals: ${refusals}`);
  assert.ok(refusals.some((t) => t.startsWith('notes.txt')), `refusals: ${refusals}`);
  assert.ok(refusals.includes('empty.png is empty (0 bytes): there is nothing to convert'), `refusals: ${refusals}`);
  const sentSince = requests.slice(mark).filter((r) => /^https?:/.test(r.url));
  assert.deepEqual(sentSince.map((r) => `${r.method} ${r.url}`), [], 'a refused file made a request');

  // With the page's restrictions lifted, the gateway refuses them itself
  // before any byte goes to the bucket: the declared size and the type
  // are checked when the upload is created.
  await page.evaluate(() => window.herald.uppy.setOptions({ restrictions: { maxFileSize: null, allowedFileTypes: null } }));
  const mark2 = responses.length;
  await addFiles(page, huge);
  await addFiles(page, { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not an image') });
  await page.waitForFunction(() => window.herald.uppy.getFiles().filter((f) => f.error).length >= 2, null, { timeout: 20_000 });
  const refused = responses.slice(mark2).filter((r) => !isBucket(r.url));
  assert.ok(refused.some((r) => r.method === 'POST' && /\/s3\/multipart$/.test(new URL(r.url).pathname) && r.status === 413), 'the big file: 413 on create');
  assert.ok(refused.some((r) => /\/s3\/params$/.test(new URL(r.url).pathname) && r.status === 415), 'the text file: 415 on params');
  assert.deepEqual(responses.slice(mark2).filter((r) => isBucket(r.url)), [], 'bytes went to the bucket');
  assert.equal(await partsCounted(), partsBefore, 'localaws stored parts');
  // Each file shows its own error.
  const perFile = await page.evaluate(() => window.herald.uppy.getFiles().filter((f) => f.error).map((f) => f.name));
  assert.deepEqual(perFile.sort(), ['huge.tif', 'notes.txt']);
  await page.screenshot({ path: path.join(outputDir, 'uppy-refusals.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await ctx.close();
});
