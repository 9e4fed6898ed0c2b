// Shared helper for the end-to-end tests: the gateway under test.
//
// With HERALD_URL set (and HERALD_DEMO_API_KEY for the demo app's key) the
// tests use that running gateway. Otherwise each test file starts its own
// `herald serve` on free loopback ports with a throwaway data directory: the
// binary from HERALD_BIN, or one built here with `go build ./cmd/herald`.

import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** The repository root (web/e2e/../..). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Directory for screenshots and other artefacts (TEST_OUTPUT_DIR or ./test-output). */
export const outputDir = path.resolve(process.env.TEST_OUTPUT_DIR || path.join(repoRoot, 'test-output'));

/**
 * Returns a TCP port on 127.0.0.1 that was free a moment ago, for a server
 * started later (often another process). Where there is room it is taken
 * below the kernel's ephemeral range: client sockets take ephemeral ports,
 * so under load a port the kernel handed out as free was often some
 * connection's local port by the time the server bound it.
 */
export async function freePort() {
  const low = ephemeralLow();
  if (low - FIXED_LOW >= 1000) {
    for (let i = 0; i < 100; i++) {
      const port = FIXED_LOW + Math.floor(Math.random() * (low - FIXED_LOW));
      if (await bindable(port)) return port;
    }
  }
  return listenOnce(0);
}

/** The lowest port freePort picks: above well-known and most registered service ports. */
const FIXED_LOW = 20000;

function ephemeralLow() {
  try {
    const [low] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return Number.isInteger(low) ? low : 0;
  } catch {
    return 0;
  }
}

async function bindable(port) {
  try {
    await listenOnce(port);
    return true;
  } catch {
    return false;
  }
}

/** Listens on 127.0.0.1:port, closes again and resolves with the port bound. */
function listenOnce(port) {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(port, '127.0.0.1', () => {
      const bound = srv.address().port;
      srv.close(() => resolve(bound));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The herald binary under test: HERALD_BIN, or one built into dir. */
export async function heraldBinary(dir) {
  return process.env.HERALD_BIN ? path.resolve(process.env.HERALD_BIN) : buildBinary(dir);
}

async function buildBinary(dir) {
  // The page is embedded into the binary, so bundle it first.
  await execFileP('npm', ['run', '--silent', 'build'], { cwd: repoRoot, maxBuffer: 16 << 20 });
  const out = path.join(dir, 'herald');
  await execFileP('go', ['build', '-o', out, './cmd/herald'], { cwd: repoRoot, maxBuffer: 16 << 20 });
  return out;
}

/**
 * A gateway the tests talk to.
 * @typedef {{url: string, apiKey: string, external: boolean, output: () => string, stop: () => Promise<void>}} Gateway
 */

/**
 * Starts (or attaches to) the gateway. `config` is YAML written to a file
 * passed with --config; `env` adds variables. A test that needs either
 * cannot use a running gateway (HERALD_URL) and starts its own.
 * @param {{readyTimeoutMs?: number, config?: string, env?: Record<string, string>}} [opts]
 * @returns {Promise<Gateway>}
 */
export async function startGateway(opts = {}) {
  if (process.env.HERALD_URL && !opts.config && !opts.env) {
    return {
      url: process.env.HERALD_URL.replace(/\/+$/, ''),
      apiKey: process.env.HERALD_DEMO_API_KEY ?? '',
      external: true,
      output: () => '',
      stop: async () => {},
    };
  }

  const tmp = await mkdtemp(path.join(os.tmpdir(), 'herald-e2e-'));
  // Resolve a relative HERALD_BIN against the caller's directory: the child
  // runs in a temp dir.
  const bin = await heraldBinary(tmp);
  const httpPort = await freePort();
  const awsPort = await freePort();
  const apiKey = `demo_${randomBytes(18).toString('base64url')}`;
  const url = `http://127.0.0.1:${httpPort}`;
  const dataDir = path.join(tmp, 'data');

  const args = ['serve', '--http-addr', `127.0.0.1:${httpPort}`, '--data-dir', dataDir];
  if (opts.config) {
    const file = path.join(tmp, 'herald.yaml');
    await writeFile(file, opts.config);
    args.push('--config', file);
  }
  const child = spawn(bin, args, {
    cwd: tmp,
    env: { ...process.env, HERALD_DEMO_API_KEY: apiKey, HERALD_LOCALAWS_ADDR: `127.0.0.1:${awsPort}`, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk) => {
    output += chunk;
    if (output.length > 1 << 20) output = output.slice(-(1 << 19)); // bounded
  };
  child.stdout.setEncoding('utf8').on('data', keep);
  child.stderr.setEncoding('utf8').on('data', keep);
  let exited = null;
  const exit = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve((exited = { code, signal })));
    // A spawn failure (missing binary) emits 'error' and no 'exit'.
    child.on('error', (err) => {
      output += `spawn ${bin}: ${err.message}\n`;
      resolve((exited = { code: null, signal: null, error: err.message }));
    });
  });

  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(timer);
    }
    await rm(tmp, { recursive: true, force: true });
  };

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`herald serve exited early (${JSON.stringify(exited)}):\n${output}`);
    }
    try {
      const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`herald serve not ready at ${url}/readyz within the timeout:\n${output}`);
    }
    await sleep(150);
  }
  return { url, apiKey, external: false, dataDir, output: () => output, stop };
}

/** POST /v1/sessions for `app`; returns the parsed 201 body. */
export async function mintSession(gw, app = 'demo') {
  const res = await fetch(`${gw.url}/v1/sessions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ app }),
  });
  const body = await res.json();
  if (res.status !== 201) throw new Error(`POST /v1/sessions: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/** A unique event id in the envelope's style. */
export function eventId() {
  return `evt_${randomBytes(12).toString('base64url')}`;
}

/** POST /v1/events with the app's API key; returns {status, body}. */
export async function postEvent(gw, envelope, apiKey = gw.apiKey) {
  const res = await fetch(`${gw.url}/v1/events`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${apiKey}` },
    body: JSON.stringify(envelope),
  });
  const text = await res.text();
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {
    // keep the text for the assertion message
  }
  return { status: res.status, body };
}

/** The absolute WebSocket URL of the broker for a session. */
export function brokerURL(gw, session) {
  const raw = session?.mqtt?.url;
  if (typeof raw === 'string' && /^wss?:\/\//.test(raw)) return raw;
  const u = new URL(raw || '/mqtt', gw.url);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
}

/**
 * Waits for client's CONNACK. Rejects with the CONNACK error, or when the
 * connection closes without one or none comes within 15 s (MQTT.js's
 * connectAsync would wait forever with reconnectPeriod 0); the client is
 * ended then.
 */
export async function connected(client) {
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no CONNACK within 15 s')), 15_000);
    const done = (fn) => (arg) => {
      clearTimeout(timer);
      client.off('connect', onConnect);
      client.off('error', onError);
      client.off('close', onClose);
      fn(arg);
    };
    const onConnect = done(() => resolve());
    const onError = done((err) => reject(err));
    const onClose = done(() => reject(new Error('connection closed before CONNACK')));
    client.on('connect', onConnect);
    client.on('error', onError);
    client.on('close', onClose);
  }).catch((err) => {
    client.end(true);
    throw err;
  });
}
