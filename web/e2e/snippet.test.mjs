// The Uppy page of docs/api.md ("Resumable uploads with Uppy") works as
// written: its HTML and upload.js are taken from the document, bundled with
// the documented esbuild command, put on a page of the gateway's origin and
// run in headless Chromium; a file picked in its
// input is uploaded by @uppy/aws-s3 through the gateway and its job's
// events arrive. Only the gateway URL is replaced, by the test gateway's.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { launchBrowser } from './browser.mjs';
import { repoRoot, startGateway } from './gateway.mjs';
import { makePNG, makeWAV } from './media.mjs';

const execFileP = promisify(execFile);

let gw;
let browser;
let dir;
before(async () => {
  gw = await startGateway();
  browser = await launchBrowser();
  // Inside the repository, so that the bundler finds node_modules.
  dir = await mkdtemp(path.join(repoRoot, 'test-output', 'snippet-'));
});
after(async () => {
  await browser?.close();
  await gw?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The first ```lang block after `heading` in markdown. */
function block(markdown, heading, lang) {
  const from = markdown.indexOf(heading);
  assert.ok(from >= 0, `no "${heading}" in docs/api.md`);
  const m = new RegExp('^```' + lang + '\\n([\\s\\S]*?)^```$', 'm').exec(markdown.slice(from));
  assert.ok(m, `no ${lang} block after "${heading}"`);
  return m[1];
}

test('the Uppy page of docs/api.md uploads through the gateway and follows the job', async () => {
  const doc = await readFile(path.join(repoRoot, 'docs', 'api.md'), 'utf8');
  const heading = '## Resumable uploads with Uppy';
  const html = block(doc, heading, 'html');
  const js = block(doc, heading, 'js');
  assert.match(js, /'http:\/\/127\.0\.0\.1:8080'/, 'the snippet names the gateway as documented');
  await writeFile(path.join(dir, 'index.html'), html);
  await writeFile(path.join(dir, 'upload.js'), js.replace("'http://127.0.0.1:8080'", `'${gw.url}'`));
  const cmd = /`(npx esbuild upload\.js [^`]+)`/.exec(doc.slice(doc.indexOf(heading)))?.[1];
  assert.ok(cmd, 'the bundling command is documented');
  const [bin, ...args] = cmd.split(' ');
  await execFileP(bin, args, { cwd: dir });

  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(m.text()));
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  // The page runs on the gateway's origin: a document of the gateway's
  // (its health answer) replaced by the snippet's HTML, whose script is
  // answered from the bundle. (A whole page served by Playwright would
  // count as public and be refused loopback by Chromium.)
  await page.route(`${gw.url}/upload.bundle.js`, async (route) =>
    route.fulfill({ body: await readFile(path.join(dir, 'upload.bundle.js')), contentType: 'text/javascript' }),
  );
  // The module's top-level awaits (connect, uploadEndpoint) end with this.
  const ready = page.waitForResponse((r) => r.url().endsWith('/v1/uploads/endpoint'), { timeout: 20_000 });
  await page.goto(`${gw.url}/healthz`);
  await page.setContent(html);
  await ready.catch((err) => assert.fail(`${err.message}; page errors: ${errors.join(' | ')}; console: ${logs.join(' | ')}`));
  await page.setInputFiles('#file', [
    { name: 'photo.png', mimeType: 'image/png', buffer: makePNG(400, 300) },
    { name: 'voice.wav', mimeType: 'audio/wav', buffer: makeWAV(1) },
    { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not converted here') },
  ]);
  await page.waitForFunction(
    () => [...document.querySelectorAll('#jobs li')].filter((li) => li.textContent.includes('completed')).length === 2,
    null,
    { timeout: 90_000, polling: 250 },
  );
  const items = await page.locator('#jobs li').allTextContents();
  assert.ok(items.some((t) => t.startsWith('photo.png: completed thumb-256')), items.join(' | '));
  assert.ok(items.some((t) => t.startsWith('voice.wav: completed audio-mp3')), items.join(' | '));
  assert.ok(logs.includes('photo.png job.completed') && logs.includes('voice.wav job.completed'), logs.join(' | '));
  // The text file is refused by the gateway (415) before anything is sent.
  assert.ok(logs.some((l) => l.startsWith('notes.txt: ') && /Unsupported Media Type/.test(l)), logs.join(' | '));
  assert.deepEqual(errors, []);
  await ctx.close();
});
