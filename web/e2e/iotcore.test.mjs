// AWS IoT Core mode: POST /v1/sessions/refresh hands the browser a fresh
// SigV4-presigned WebSocket URL, and MQTT.js (in headless Chromium) takes it
// for its next connection through `transformWsUrl`.
//
// Real AWS is not reachable from tests, so two stand-ins take its place,
// named as such: an STS stand-in answering AssumeRole (the gateway's real
// STS client calls it through AWS_ENDPOINT_URL_STS) with numbered temporary
// credentials, and an IoT Core stand-in for the device gateway's WebSocket
// endpoint that checks each connection's presigned URL as IoT Core does —
// the SigV4 signature over the query with the credentials STS handed out,
// and the URL's age — then relays the connection to a real Mosquitto, where
// the gateway publishes events (HERALD_BROKER_URL). The stand-in's clock is
// compressed: a URL is stale URL_LIFE_MS after its X-Amz-Date instead of
// X-Amz-Expires (15 min), so the test need not wait for real expiry.
//
// Skips when Mosquitto is not installed.

import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { launchBrowser, mqttBundle } from './browser.mjs';
import { mosquittoMissing, startHerald, startMosquitto } from './external.mjs';
import { eventId, freePort, postEvent } from './gateway.mjs';

const missing = await mosquittoMissing();
const REGION = 'us-east-1';
const URL_LIFE_MS = 3_000;
const EMPTY_HASH = createHash('sha256').update('').digest('hex');

let mosq;
let sts;
let iot;
let gw;
let browser;
let bundle;

/** STS stand-in: AssumeRole returns credentials numbered 1, 2, … */
function startSTS() {
  const issued = new Map(); // access key id → secret
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const form = new URLSearchParams(body);
      if (form.get('Action') !== 'AssumeRole') {
        res.writeHead(400).end();
        return;
      }
      const n = issued.size + 1;
      const key = `ASIASTANDIN${String(n).padStart(9, '0')}`;
      const secret = randomBytes(20).toString('base64');
      issued.set(key, secret);
      const exp = new Date(Date.now() + 15 * 60_000).toISOString();
      res.writeHead(200, { 'Content-Type': 'text/xml' }).end(
        `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>` +
          `<Credentials><AccessKeyId>${key}</AccessKeyId><SecretAccessKey>${secret}</SecretAccessKey>` +
          `<SessionToken>token-${n}</SessionToken><Expiration>${exp}</Expiration></Credentials>` +
          `<AssumedRoleUser><AssumedRoleId>AROA:herald</AssumedRoleId><Arn>arn:aws:sts::123456789012:assumed-role/herald-browser/x</Arn></AssumedRoleUser>` +
          `</AssumeRoleResult><ResponseMetadata><RequestId>${n}</RequestId></ResponseMetadata></AssumeRoleResponse>`,
      );
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${server.address().port}`, issued, close: () => server.close() })),
  );
}

// SigV4's URI encoding: RFC 3986 unreserved characters stay, the rest is %XX.
const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
const hmac = (key, data) => createHmac('sha256', key).update(data).digest();

/**
 * Checks a presigned IoT WebSocket request as the device gateway would;
 * returns the access key id it was signed with, or throws why not.
 */
function checkPresigned(req, secrets) {
  const u = new URL(req.url, 'http://x');
  const q = u.searchParams;
  const [key, day, region, service, term] = (q.get('X-Amz-Credential') ?? '').split('/');
  const secret = secrets.get(key);
  if (!secret || region !== REGION || service !== 'iotdevicegateway' || term !== 'aws4_request') throw new Error('bad credential');
  const amzDate = q.get('X-Amz-Date') ?? '';
  const signedAt = Date.parse(amzDate.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z'));
  if (!(Date.now() - signedAt < URL_LIFE_MS)) throw new Error('expired URL');
  // The session token is added after signing (as IoT Core wants it).
  const pairs = [...q].filter(([k]) => k !== 'X-Amz-Signature' && k !== 'X-Amz-Security-Token').map(([k, v]) => [enc(k), enc(v)]);
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : 1));
  const canonical = ['GET', u.pathname, pairs.map(([k, v]) => `${k}=${v}`).join('&'), `host:${req.headers.host}\n`, 'host', EMPTY_HASH].join('\n');
  const scope = `${day}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  let k = hmac(`AWS4${secret}`, day);
  for (const part of [region, service, 'aws4_request']) k = hmac(k, part);
  if (hmac(k, toSign).toString('hex') !== q.get('X-Amz-Signature')) throw new Error('signature does not match');
  return key;
}

/** IoT Core stand-in: checks the presigned URL, then relays to Mosquitto's WebSocket listener. */
function startIoT(secrets, wsPort) {
  const attempts = []; // {key, ok, why}
  const relayed = new Set();
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => {
    let key;
    try {
      key = checkPresigned(req, secrets);
    } catch (err) {
      attempts.push({ ok: false, why: err.message });
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    attempts.push({ ok: true, key });
    const up = net.connect(wsPort, '127.0.0.1', () => {
      const lines = [`GET /mqtt HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) up.write(head);
      socket.pipe(up).pipe(socket);
    });
    const pair = { socket, up };
    relayed.add(pair);
    const drop = () => {
      relayed.delete(pair);
      socket.destroy();
      up.destroy();
    };
    socket.on('error', drop).on('close', drop);
    up.on('error', drop).on('close', drop);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: server.address().port,
        attempts,
        // Ends every relayed connection, as a network drop would.
        dropAll: () => [...relayed].forEach(({ socket, up }) => (socket.destroy(), up.destroy())),
        close: () => server.close(),
      }),
    ),
  );
}

before(async () => {
  if (missing) return;
  // allSettled, so that after() can stop whatever did start when one part fails
  // (a half-started set would keep the test process alive).
  const started = await Promise.allSettled([startMosquitto(), startSTS(), launchBrowser(), mqttBundle()]);
  [mosq, sts, browser, bundle] = started.map((r) => (r.status === 'fulfilled' ? r.value : undefined));
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  iot = await startIoT(sts.issued, mosq.wsPort);
  gw = await startHerald({
    HERALD_BROKER_MODE: 'iot-core',
    HERALD_BROKER_URL: `mqtt://127.0.0.1:${mosq.tcpPort}`,
    HERALD_BROKER_USERNAME: mosq.user,
    HERALD_BROKER_PASSWORD: mosq.password,
    HERALD_IOT_ENDPOINT: `127.0.0.1:${iot.port}`,
    HERALD_IOT_BROWSER_ROLE_ARN: 'arn:aws:iam::123456789012:role/herald-browser',
    HERALD_AWS_REGION: REGION,
    AWS_ENDPOINT_URL_STS: sts.url,
    AWS_ACCESS_KEY_ID: 'AKIDGATEWAYSTANDIN',
    AWS_SECRET_ACCESS_KEY: 'gateway-secret',
    AWS_REGION: REGION,
    AWS_EC2_METADATA_DISABLED: 'true',
  });
});

after(async () => {
  await browser?.close();
  await gw?.stop();
  iot?.close();
  sts?.close();
  await mosq?.stop();
});

test('IoT Core: refresh returns a fresh presigned URL that MQTT.js reconnects with (transformWsUrl)', { skip: missing ?? false }, async () => {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${gw.url}/healthz`);
  await page.addScriptTag({ content: bundle });

  const first = await page.evaluate(async () => {
    const res = await fetch('/v1/sessions', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"app":"demo"}' });
    const s = await res.json();
    const log = { ids: [], connacks: [], closes: [], urls: [] };
    window.herald = { session: s, log };
    const client = window.mqtt.connect(s.mqtt.url, {
      clientId: s.clientId,
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
      reconnectPeriod: 300,
      // Each (re)connection takes the newest presigned URL. The stand-in
      // speaks plain ws:// on loopback; IoT Core itself is wss://.
      transformWsUrl: () => {
        const u = window.herald.session.mqtt.url.replace(/^wss:/, 'ws:');
        log.urls.push(u);
        return u;
      },
    });
    client.on('connect', (ack) => log.connacks.push({ sessionPresent: ack.sessionPresent }));
    client.on('close', () => log.closes.push(Date.now()));
    client.on('message', (_t, p) => log.ids.push(JSON.parse(new TextDecoder().decode(p)).id));
    await new Promise((resolve, reject) => (client.once('connect', resolve), client.once('error', reject)));
    await client.subscribeAsync(s.topic, { qos: 1 });
    window.herald.client = client;
    return s;
  });
  assert.match(first.mqtt.url, /^wss:\/\/127\.0\.0\.1:\d+\/mqtt\?X-Amz-Algorithm=AWS4-HMAC-SHA256&/);

  const before = eventId();
  assert.equal((await postEvent(gw, { v: 1, type: 'x.before', id: before, channel: first.channel, seq: 1 })).status, 202);
  await page.waitForFunction((id) => window.herald.log.ids.includes(id), before, { timeout: 10_000 });

  // Once the first URL is stale (the stand-in now refuses it, as IoT Core
  // would an expired one), renew: same channel, new token, and a URL signed
  // anew with new credentials.
  await new Promise((r) => setTimeout(r, URL_LIFE_MS));
  const stale = await page.evaluate(
    (u) =>
      new Promise((resolve) => {
        const ws = new WebSocket(u, 'mqtt');
        ws.onopen = () => (ws.close(), resolve('open'));
        ws.onerror = () => resolve('refused');
      }),
    first.mqtt.url.replace(/^wss:/, 'ws:'),
  );
  assert.equal(stale, 'refused', 'the first URL is stale');
  const renewed = await page.evaluate(async () => {
    const res = await fetch('/v1/sessions/refresh', { method: 'POST', headers: { Authorization: `Bearer ${window.herald.session.token}` } });
    const s = await res.json();
    if (res.status === 200) window.herald.session = s;
    return { status: res.status, s };
  });
  assert.equal(renewed.status, 200, JSON.stringify(renewed.s));
  assert.equal(renewed.s.channel, first.channel);
  const key = (u) => new URL(u).searchParams.get('X-Amz-Credential').split('/')[0];
  assert.notEqual(key(renewed.s.mqtt.url), key(first.mqtt.url), 'the refreshed URL is signed with new credentials');

  // The connection drops; MQTT.js reconnects with the refreshed URL and
  // resumes its persistent session, which kept what was sent meanwhile.
  iot.dropAll();
  const during = eventId();
  assert.equal((await postEvent(gw, { v: 1, type: 'x.during', id: during, channel: first.channel, seq: 2 })).status, 202);
  await page.waitForFunction(() => window.herald.log.connacks.length >= 2, null, { timeout: 10_000 }).catch(async (err) => {
    throw new Error(`${err.message}: ${JSON.stringify(await page.evaluate(() => window.herald.log))} ${JSON.stringify(iot.attempts)}`);
  });
  await page.waitForFunction((id) => window.herald.log.ids.includes(id), during, { timeout: 10_000 }).catch(async (err) => {
    throw new Error(`${err.message}: ${JSON.stringify(await page.evaluate(() => window.herald.log))} ${JSON.stringify(iot.attempts)}\n${gw.output().slice(-3000)}`);
  });

  const log = await page.evaluate(() => window.herald.log);
  const okKeys = iot.attempts.filter((a) => a.ok).map((a) => a.key);
  assert.deepEqual(okKeys.slice(-2), [key(first.mqtt.url), key(renewed.s.mqtt.url)], JSON.stringify(iot.attempts));
  assert.equal(log.urls.at(-1), renewed.s.mqtt.url.replace(/^wss:/, 'ws:'), 'the reconnect used the refreshed URL');
  assert.equal(log.connacks.at(-1).sessionPresent, true, 'the persistent session was resumed');

  console.log(`# IoT Core stand-in saw ${iot.attempts.length} connections: ${JSON.stringify(iot.attempts)}`);
});
