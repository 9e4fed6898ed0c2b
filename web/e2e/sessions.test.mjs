// Session lifecycle with MQTT.js in headless Chromium, against a gateway
// whose app "short" gives tokens a 6 s life:
//  - a connection ends when its token expires: MQTT 5 gets DISCONNECT 0xA0,
//    MQTT 3.1.1 a close, and the expired token is refused by refresh;
//  - refresh on the open socket: POST /v1/sessions/refresh, then MQTT 5 AUTH
//    (method herald-token) with the new token: the connection outlives the
//    first token and every event posted throughout arrives;
//  - refresh by reconnecting: MQTT 3.1.1 with a persistent session takes the
//    new token as its password; the broker closes the old connection at the
//    first token's expiry, MQTT.js reconnects, and the events posted while it
//    was away arrive from the session;
//  - revocation: DELETE /v1/sessions/{channel} closes the connection within a
//    second (DISCONNECT 0x98); reconnecting is refused (CONNACK 0x8A) and so is
//    refresh (401 token_revoked).
//
// MQTT.js is bundled for the page with esbuild (browser.mjs), the way the
// demo page bundles it. Always starts its own gateway.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { launchBrowser, mqttBundle } from './browser.mjs';
import { startHerald } from './external.mjs';
import { eventId, mintSession, postEvent } from './gateway.mjs';

const TTL_MS = 6_000;
const APP = 'short';
const KEY = `short_${randomBytes(18).toString('base64url')}`;

let dir;
let gw;
let browser;
let bundle;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'herald-sessions-'));
  const cfg = path.join(dir, 'herald.yaml');
  await writeFile(
    cfg,
    [
      'apps:',
      `  - id: ${APP}`,
      `    apiKey: ${KEY}`,
      `    secret: ${randomBytes(24).toString('base64url')}`,
      '    origins: ["*"]',
      '    allowAnonymous: true',
      `    sessionTTL: ${TTL_MS / 1000}s`,
      '',
    ].join('\n'),
  );
  [gw, browser, bundle] = await Promise.all([startHerald({ HERALD_CONFIG: cfg }), launchBrowser(), mqttBundle()]);
});

after(async () => {
  await browser?.close();
  await gw?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A page on the gateway's origin with MQTT.js loaded. */
async function openPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${gw.url}/healthz`);
  await page.addScriptTag({ content: bundle });
  return { page, close: () => context.close() };
}

function wsURL(session) {
  const u = new URL(session.mqtt.url, gw.url);
  u.protocol = u.protocol === 'https:' || u.protocol === 'wss:' ? 'wss:' : 'ws:';
  return u.href;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Posts an x.tick event to channel every `every` ms for `ms` ms; resolves with the ids posted. */
// Timing: tokens live TTL_MS, truncated to whole seconds, so the first
// expires 5–6 s after minting. The tests renew at 3 s (the new token lasts
// until 8–9 s) and post until 7 s: past the first expiry, before the second.
async function postTicks(channel, ms, every = 150) {
  const ids = [];
  const end = Date.now() + ms;
  for (let seq = 1; Date.now() < end; seq++) {
    const id = eventId();
    const res = await postEvent(gw, { v: 1, type: 'x.tick', id, channel, seq }, KEY);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    ids.push(id);
    await sleep(every);
  }
  return ids;
}

// Page side: connect and subscribe, recording everything that happens. The
// function runs in the browser; `window.mqtt` is the bundled MQTT.js.
async function pageConnect({ url, session, protocolVersion, reauth, reconnectPeriod = 0 }) {
  const log = { ids: [], disconnects: [], closes: [], connacks: [], errors: [], auths: [] };
  const props = protocolVersion === 5 ? { sessionExpiryInterval: 3600 } : undefined;
  if (reauth) props.authenticationMethod = 'herald-token';
  const client = window.mqtt.connect(url, {
    clientId: session.clientId,
    username: session.app,
    password: session.token,
    protocolVersion,
    clean: false,
    properties: props,
    reconnectPeriod,
    connectTimeout: 10_000,
  });
  client.handleAuth = (packet, cb) => {
    log.auths.push({ code: packet.reasonCode, method: packet.properties?.authenticationMethod, at: Date.now() });
    cb();
  };
  client.on('message', (_t, payload) => log.ids.push(JSON.parse(new TextDecoder().decode(payload)).id));
  client.on('disconnect', (p) => log.disconnects.push({ code: p.reasonCode, at: Date.now() }));
  client.on('close', () => log.closes.push(Date.now()));
  client.on('error', (e) => log.errors.push({ code: e.code, message: e.message, at: Date.now() }));
  client.on('connect', (ack) => log.connacks.push({ sessionPresent: ack.sessionPresent, at: Date.now() }));
  await new Promise((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  await client.subscribeAsync(session.topic, { qos: 1 });
  window.herald = { client, log, session };
}

const pageLog = (page) => page.evaluate(() => ({ ...window.herald.log, now: Date.now() }));

test('a connection ends when its token expires: MQTT 5 DISCONNECT 0xA0, MQTT 3.1.1 a close', async () => {
  const { page, close } = await openPage();
  try {
    const s5 = await mintSession(gw, APP);
    const s3 = await mintSession(gw, APP);
    await page.evaluate(pageConnect, { url: wsURL(s5), session: s5, protocolVersion: 5 });
    const p3 = await (await browser.newContext()).newPage();
    await p3.goto(`${gw.url}/healthz`);
    await p3.addScriptTag({ content: bundle });
    await p3.evaluate(pageConnect, { url: wsURL(s3), session: s3, protocolVersion: 4 });

    await page.waitForFunction(() => window.herald.log.closes.length > 0, null, { timeout: TTL_MS + 5_000 });
    await p3.waitForFunction(() => window.herald.log.closes.length > 0, null, { timeout: 5_000 });
    const l5 = await pageLog(page);
    const l3 = await pageLog(p3);
    await p3.context().close();

    assert.deepEqual(
      l5.disconnects.map((d) => d.code),
      [0xa0],
      `MQTT 5: ${JSON.stringify(l5)}`,
    );
    const late5 = l5.disconnects[0].at - Date.parse(s5.expiresAt);
    const late3 = l3.closes[0] - Date.parse(s3.expiresAt);
    console.log(`# MQTT 5 DISCONNECT 0xA0 ${late5} ms after the token's expiry; MQTT 3.1.1 closed ${late3} ms after`);
    assert.ok(late5 >= -50 && late5 < 1_000, `MQTT 5 ended ${late5} ms after expiry`);
    assert.equal(l3.disconnects.length, 0, 'MQTT 3.1.1 has no server DISCONNECT');
    assert.ok(late3 >= -50 && late3 < 1_000, `MQTT 3.1.1 ended ${late3} ms after expiry`);

    const refused = await page.evaluate(async (token) => {
      const res = await fetch('/v1/sessions/refresh', { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
      return { status: res.status, body: await res.json() };
    }, s5.token);
    assert.equal(refused.status, 401);
    assert.equal(refused.body.error.code, 'token_expired');
  } finally {
    await close();
  }
});

test('refresh on the open socket: MQTT 5 AUTH with the new token, nothing dropped', async () => {
  const { page, close } = await openPage();
  try {
    const s = await mintSession(gw, APP);
    await page.evaluate(pageConnect, { url: wsURL(s), session: s, protocolVersion: 5, reauth: true });
    const posting = postTicks(s.channel, TTL_MS + 1_000);
    await sleep(3_000);
    const renewed = await page.evaluate(async () => {
      const { client, session } = window.herald;
      const res = await fetch('/v1/sessions/refresh', { method: 'POST', headers: { Authorization: `Bearer ${session.token}` } });
      const next = await res.json();
      if (res.status !== 200) return { status: res.status, next };
      // MQTT.js has no public call for a client-initiated re-authentication.
      client._sendPacket({
        cmd: 'auth',
        reasonCode: 0x19,
        properties: { authenticationMethod: 'herald-token', authenticationData: window.Buffer.from(next.token) },
      });
      client.options.password = next.token;
      return { status: res.status, next };
    });
    assert.equal(renewed.status, 200, JSON.stringify(renewed.next));
    assert.equal(renewed.next.channel, s.channel, 'refresh keeps the channel');
    assert.ok(Date.parse(renewed.next.expiresAt) > Date.parse(s.expiresAt));
    const ids = await posting;
    await page.waitForFunction((n) => window.herald.log.ids.length >= n, ids.length, { timeout: 5_000 }).catch(() => {});
    const log = await pageLog(page);
    assert.deepEqual(log.auths.map((a) => [a.code, a.method]), [[0, 'herald-token']], 'AUTH success from the broker');
    assert.deepEqual(log.disconnects, [], 'no DISCONNECT');
    assert.deepEqual(log.closes, [], 'the socket stayed open');
    assert.ok(log.now > Date.parse(s.expiresAt) + 500, 'the test ran past the first token');
    assert.deepEqual([...new Set(log.ids)], ids, 'every event, in order');
    console.log(`# ${ids.length} events over ${(TTL_MS + 1_000) / 1000} s on one socket across a re-authentication`);
  } finally {
    await close();
  }
});

test('refresh by reconnecting: MQTT 3.1.1 persistent session, nothing lost', async () => {
  const { page, close } = await openPage();
  try {
    const s = await mintSession(gw, APP);
    await page.evaluate(pageConnect, { url: wsURL(s), session: s, protocolVersion: 4, reconnectPeriod: 300 });
    const posting = postTicks(s.channel, TTL_MS + 1_000);
    await sleep(3_000);
    const status = await page.evaluate(async () => {
      const { client, session } = window.herald;
      const res = await fetch('/v1/sessions/refresh', { method: 'POST', headers: { Authorization: `Bearer ${session.token}` } });
      const next = await res.json();
      if (res.status === 200) client.options.password = next.token; // used by the next CONNECT
      return res.status;
    });
    assert.equal(status, 200);
    const ids = await posting;
    await page.waitForFunction((n) => new Set(window.herald.log.ids).size >= n, ids.length, { timeout: 5_000 }).catch(() => {});
    const log = await pageLog(page);
    assert.equal(log.closes.length, 1, `one close at the first token's expiry: ${JSON.stringify(log)}`);
    assert.ok(Math.abs(log.closes[0] - Date.parse(s.expiresAt)) < 1_000, 'closed at the token expiry');
    assert.equal(log.connacks.length, 2);
    assert.equal(log.connacks[1].sessionPresent, true, 'the reconnect resumed the persistent session');
    const got = new Set(log.ids);
    const missing = ids.filter((id) => !got.has(id));
    assert.deepEqual(missing, [], `events lost across the reconnect (${missing.length} of ${ids.length})`);
    const away = log.connacks[1].at - log.closes[0];
    console.log(`# reconnected ${away} ms after the close; ${ids.length} events, ${log.ids.length - got.size} redelivered`);
  } finally {
    await close();
  }
});

test('revocation: DISCONNECT 0x98 within a second, then CONNACK 0x8A and 401 token_revoked', async () => {
  const { page, close } = await openPage();
  try {
    const s = await mintSession(gw, APP);
    await page.evaluate(pageConnect, { url: wsURL(s), session: s, protocolVersion: 5, reconnectPeriod: 300 });
    const start = Date.now();
    const res = await fetch(`${gw.url}/v1/sessions/${s.channel}`, { method: 'DELETE', headers: { Authorization: `Bearer ${KEY}` } });
    assert.equal(res.status, 204);
    await page.waitForFunction(() => window.herald.log.errors.some((e) => e.code === 0x8a), null, { timeout: 5_000 });
    const log = await pageLog(page);
    assert.deepEqual(log.disconnects.map((d) => d.code), [0x98], JSON.stringify(log));
    const took = log.disconnects[0].at - start;
    console.log(`# DISCONNECT 0x98 reached the page ${took} ms after DELETE was sent`);
    assert.ok(took < 1_000, `revoked connection closed after ${took} ms`);
    const refresh = await page.evaluate(async (token) => {
      const r = await fetch('/v1/sessions/refresh', { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
      return { status: r.status, body: await r.json() };
    }, s.token);
    assert.equal(refresh.status, 401);
    assert.equal(refresh.body.error.code, 'token_revoked');
  } finally {
    await close();
  }
});
