// @heraldgw/client in headless Chromium, as bundled into the demo page
// (window.herald.client): dedupe, the job API and token renewal through the
// page's own client. demo.test.mjs and upload.test.mjs cover what the page
// shows from it, reconnects and uploads.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser } from './browser.mjs';
import { eventId, postEvent, startGateway } from './gateway.mjs';

let gw;
let browser;
let page;

before(async () => {
  gw = await startGateway();
  browser = await launchBrowser();
  page = await (await browser.newContext()).newPage();
  await page.goto(`${gw.url}/`);
  await page.waitForFunction(() => window.herald?.client?.state === 'connected', null, { timeout: 20_000 });
});

after(async () => {
  await browser?.close();
  await gw?.stop();
});

test('the page client hands on a redelivered event once', async () => {
  const channel = await page.evaluate(() => window.herald.client.channel);
  await page.evaluate(() => {
    window.seen = [];
    window.herald.client.on('event', (env) => window.seen.push(env.id));
  });
  const env = { v: 1, type: 'x.twice', id: eventId(), channel, seq: 1 };
  assert.equal((await postEvent(gw, env)).status, 202);
  assert.equal((await postEvent(gw, env)).status, 202);
  await page.waitForFunction(() => window.herald.client.duplicates >= 1, null, { timeout: 10_000 });
  assert.deepEqual(await page.evaluate(() => window.seen), [env.id]);
});

test('jobs.events() in the page iterates a job to completion', async () => {
  const channel = await page.evaluate(() => window.herald.client.channel);
  const jobId = `job_${eventId().slice(4, 14)}`;
  const done = page.evaluate(async (id) => {
    const types = [];
    for await (const env of window.herald.client.jobs.events(id)) types.push(env.type);
    return types;
  }, jobId);
  const base = { v: 1, jobId, channel };
  await postEvent(gw, { ...base, type: 'job.accepted', id: eventId(), seq: 1 });
  await postEvent(gw, { ...base, type: 'job.failed', id: eventId(), seq: 2, error: { code: 'unsupported_format', message: 'not an image' } });
  assert.deepEqual(await done, ['job.accepted', 'job.failed']);
  await page.waitForSelector(`article.job[data-job-id="${jobId}"][data-state="failed"]`, { timeout: 5_000 });
});

test('refresh() in the page renews the token on the same channel', async (t) => {
  const before = await page.evaluate(() => ({ ...window.herald.client.session }));
  const probe = await fetch(`${gw.url}/v1/sessions/refresh`, { method: 'POST', headers: { Authorization: `Bearer ${before.token}` } });
  await probe.arrayBuffer();
  if (probe.status === 404 || probe.status === 405) {
    t.skip('this gateway has no POST /v1/sessions/refresh');
    return;
  }
  const after = await page.evaluate(() => window.herald.client.refresh());
  assert.equal(after.channel, before.channel);
  assert.notEqual(after.token, before.token);
  assert.equal(await page.evaluate(() => document.querySelector('#expires').dataset.reason), 'refreshed');
});

test('with the demo app turned off, the page says why it has no session', async () => {
  const off = await startGateway({
    config: `demo: false
apps:
  - id: shop
    apiKey: shop-app-api-key-0123456789
    secret: shop-app-secret-0123456789-0123456789
`,
  });
  const context = await browser.newContext();
  try {
    const p = await context.newPage();
    await p.goto(`${off.url}/`);
    await p.waitForSelector('#app-problem:not([hidden])', { timeout: 15_000 });
    assert.match(await p.textContent('#app-problem-text'), /no "demo" app.*demo: false/s);
    await p.goto(`${off.url}/?app=shop`);
    await p.waitForSelector('#app-problem:not([hidden])', { timeout: 15_000 });
    assert.match(await p.textContent('#app-problem-text'), /refuses sessions for app "shop"/);
    assert.ok(!off.output().includes('demo=http'), 'the ready line offers no demo page');
  } finally {
    await context.close();
    await off.stop();
  }
});
