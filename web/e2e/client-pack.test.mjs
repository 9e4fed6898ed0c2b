// `npm pack` of @heraldgw/client gives a tarball that installs into a fresh
// project and works there against a real gateway (Node, ESM, with its types).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot, startGateway } from './gateway.mjs';

const run = promisify(execFile);
let gw;
let tmp;

before(async () => {
  gw = await startGateway();
  tmp = await mkdtemp(path.join(os.tmpdir(), 'herald-pack-'));
});

after(async () => {
  await gw?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

test('npm pack produces a tarball that installs and connects', async () => {
  const { stdout } = await run('npm', ['pack', './client', '--pack-destination', tmp, '--json'], { cwd: repoRoot });
  const [info] = JSON.parse(stdout);
  const files = info.files.map((f) => f.path).sort();
  for (const want of ['index.d.ts', 'package.json', 'README.md', 'src/client.js', 'src/index.js', 'timer-worker.js']) {
    assert.ok(files.includes(want), `${want} missing from the tarball: ${files}`);
  }
  assert.ok(!files.some((f) => f.startsWith('test/')), `tests shipped: ${files}`);

  const app = path.join(tmp, 'app');
  await mkdir(app);
  await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'pack-check', private: true, type: 'module' }));
  // The dependencies are in npm's cache after the repository's `npm ci`.
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', path.join(tmp, info.filename)], { cwd: app, maxBuffer: 16 << 20 });
  await writeFile(
    path.join(app, 'check.mjs'),
    `import { HeraldClient, memoryStorage } from '@heraldgw/client';
const [base, key] = process.argv.slice(2);
const client = new HeraldClient({ baseURL: base, app: 'demo', storage: memoryStorage() });
const got = new Promise((resolve) => client.on('event', resolve));
await client.connect({ signal: AbortSignal.timeout(20000) });
const res = await fetch(base + '/v1/events', { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + key },
  body: JSON.stringify({ v: 1, type: 'x.packed', id: 'evt_packed_1', channel: client.channel, seq: 1 }) });
if (res.status !== 202) throw new Error('publish: ' + res.status);
const env = await got;
console.log(JSON.stringify({ type: env.type, id: env.id }));
client.close();
`,
  );
  const out = await run(process.execPath, ['check.mjs', gw.url, gw.apiKey], { cwd: app, timeout: 60_000 });
  assert.deepEqual(JSON.parse(out.stdout.trim()), { type: 'x.packed', id: 'evt_packed_1' });
});
