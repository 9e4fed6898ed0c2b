// Helpers for the external-broker end-to-end tests: a real Mosquitto with a
// password listener (for the gateway's publisher) and a WebSocket listener
// (for browsers), and a `herald serve` started with extra environment
// (HERALD_BROKER_MODE=mqtt and friends).

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, repoRoot } from './gateway.mjs';

const execFileP = promisify(execFile);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Where Debian installs the broker. */
export const MOSQUITTO = '/usr/sbin/mosquitto';
const MOSQUITTO_PASSWD = '/usr/bin/mosquitto_passwd';

/** Resolves to a reason the broker cannot run here, or null. */
export async function mosquittoMissing() {
  for (const f of [MOSQUITTO, MOSQUITTO_PASSWD]) {
    try {
      await access(f);
    } catch {
      return `${f} is not installed (apt-get install mosquitto)`;
    }
  }
  return null;
}

/** Spawns a long-running child, keeping a bounded tail of its output. */
function spawnKept(bin, args, opts) {
  const child = spawn(bin, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk) => {
    output += chunk;
    if (output.length > 1 << 20) output = output.slice(-(1 << 19));
  };
  child.stdout.setEncoding('utf8').on('data', keep);
  child.stderr.setEncoding('utf8').on('data', keep);
  let exited = null;
  const exit = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve((exited = { code, signal })));
    // A binary that cannot be spawned emits only 'error'.
    child.on('error', (err) => resolve((exited = { error: err.message })));
  });
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(timer);
    }
  };
  return { output: () => output, exited: () => exited, stop };
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * A Mosquitto on loopback.
 * @typedef {{tcpPort: number, wsPort: number, user: string, password: string, output: () => string, stop: () => Promise<void>}} Mosquitto
 */

/**
 * Starts Mosquitto with a config in a temporary directory:
 *  - a TCP listener that needs `user`/`password` (the gateway publishes here);
 *  - a WebSocket listener for browsers: anonymous, but an ACL lets a client
 *    only read `apps/+/channels/<its client id>/#`, as Herald's own broker
 *    does for browser tokens.
 * @returns {Promise<Mosquitto>}
 */
export async function startMosquitto() {
  // A port found free can be taken by another process before Mosquitto binds
  // it; then Mosquitto exits at once and a fresh pair of ports is tried.
  let last;
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      return await startMosquittoOnce();
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

async function startMosquittoOnce() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'herald-mosquitto-'));
  const user = 'herald';
  const password = randomBytes(12).toString('base64url');
  await execFileP(MOSQUITTO_PASSWD, ['-b', '-c', path.join(dir, 'passwd'), user, password]);
  // %c is the client id: a browser's client id is its channel.
  await writeFile(path.join(dir, 'acl'), `user ${user}\ntopic readwrite apps/#\n\npattern read apps/+/channels/%c/#\n`);
  const [tcpPort, wsPort] = [await freePort(), await freePort()];
  const conf = [
    // As root Mosquitto would switch to user "mosquitto", which cannot read
    // the private temporary directory.
    process.getuid?.() === 0 ? 'user root' : '',
    'per_listener_settings true',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    '',
    `listener ${tcpPort} 127.0.0.1`,
    'allow_anonymous false',
    `password_file ${dir}/passwd`,
    `acl_file ${dir}/acl`,
    '',
    `listener ${wsPort} 127.0.0.1`,
    'protocol websockets',
    'allow_anonymous true',
    `acl_file ${dir}/acl`,
    '',
  ].join('\n');
  await writeFile(path.join(dir, 'mosquitto.conf'), conf);
  const proc = spawnKept(MOSQUITTO, ['-c', path.join(dir, 'mosquitto.conf')], { cwd: dir });
  const stop = async () => {
    await proc.stop();
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  for (const port of [tcpPort, wsPort]) {
    while (!(await canConnect(port))) {
      if (proc.exited() || Date.now() > deadline) {
        const out = proc.output();
        await stop();
        throw new Error(`mosquitto not listening on ${port}:\n${out}`);
      }
      await sleep(20);
    }
  }
  return { tcpPort, wsPort, user, password, output: proc.output, stop };
}

async function buildBinary(dir) {
  // The page is embedded into the binary, so bundle it first.
  await execFileP('npm', ['run', '--silent', 'build'], { cwd: repoRoot, maxBuffer: 16 << 20 });
  const out = path.join(dir, 'herald');
  await execFileP('go', ['build', '-o', out, './cmd/herald'], { cwd: repoRoot, maxBuffer: 16 << 20 });
  return out;
}

/**
 * Starts `herald serve` (all roles unless env says otherwise) on free
 * loopback ports with a throwaway data directory and `env` added to the
 * environment; resolves once /readyz answers 200. Uses HERALD_BIN or builds
 * the binary.
 * @param {Record<string, string>} env
 * @returns {Promise<import('./gateway.mjs').Gateway>}
 */
export async function startHerald(env, { readyTimeoutMs = 60_000 } = {}) {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'herald-e2e-'));
  // The child runs in its own directory: resolve a relative HERALD_BIN here.
  const bin = process.env.HERALD_BIN ? path.resolve(process.env.HERALD_BIN) : await buildBinary(tmp);
  const httpPort = await freePort();
  const awsPort = await freePort();
  const apiKey = `demo_${randomBytes(18).toString('base64url')}`;
  const url = `http://127.0.0.1:${httpPort}`;
  const proc = spawnKept(bin, ['serve', '--http-addr', `127.0.0.1:${httpPort}`, '--data-dir', path.join(tmp, 'data')], {
    cwd: tmp,
    env: { ...process.env, HERALD_DEMO_API_KEY: apiKey, HERALD_LOCALAWS_ADDR: `127.0.0.1:${awsPort}`, ...env },
  });
  const stop = async () => {
    await proc.stop();
    await rm(tmp, { recursive: true, force: true });
  };
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (proc.exited()) {
      const out = proc.output();
      await stop();
      throw new Error(`herald serve exited early (${JSON.stringify(proc.exited())}):\n${out}`);
    }
    try {
      const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      const out = proc.output();
      await stop();
      throw new Error(`herald serve not ready at ${url}/readyz within ${readyTimeoutMs} ms:\n${out}`);
    }
    await sleep(150);
  }
  return { url, apiKey, external: false, output: proc.output, stop };
}
