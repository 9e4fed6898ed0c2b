// MQTT.js against Mosquitto, with Herald in external-broker mode
// (HERALD_BROKER_MODE=mqtt): the gateway hands browsers Mosquitto's
// WebSocket URL in POST /v1/sessions, and its processor publishes job
// events to Mosquitto's password listener through the external bridge. A
// browser session uploads a real PNG through the presigned POST and learns
// how the job went from Mosquitto alone; coming back later it still gets the
// retained final event.
//
// Always starts its own Mosquitto and gateway (HERALD_URL is ignored); skips
// when Mosquitto is not installed.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import mqtt from 'mqtt';
import { connected, mintSession } from './gateway.mjs';
import { mosquittoMissing, startHerald, startMosquitto } from './external.mjs';
import { makePNG } from './media.mjs';

const missing = await mosquittoMissing();

let broker;
let gw;
const clients = new Set();
before(async () => {
  if (missing) return;
  broker = await startMosquitto();
  gw = await startHerald({
    HERALD_BROKER_MODE: 'mqtt',
    HERALD_BROKER_URL: `mqtt://127.0.0.1:${broker.tcpPort}`,
    HERALD_BROKER_USERNAME: broker.user,
    HERALD_BROKER_PASSWORD: broker.password,
    HERALD_BROKER_BROWSER_URL: `ws://127.0.0.1:${broker.wsPort}`,
  });
});
after(async () => {
  await Promise.all([...clients].map((c) => c.endAsync(true).catch(() => {})));
  await gw?.stop();
  await broker?.stop();
});

/** Connects MQTT.js the way the demo page does; rejects on a refused or closed connection. */
async function connect(session) {
  const client = mqtt.connect(session.mqtt.url, {
    clientId: session.clientId,
    username: session.app,
    password: session.token,
    protocolVersion: session.mqtt.protocolVersion,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
  });
  clients.add(client);
  await connected(client);
  return client;
}

/** Collects job events by id (delivery is at least once) until one is final. */
function collectUntilFinal(client, ms) {
  const events = new Map();
  const order = [];
  const stray = [];
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('message', onMessage);
      reject(new Error(`no final event within ${ms} ms; got ${JSON.stringify(order)}`));
    }, ms);
    function onMessage(topic, payload, packet) {
      let env;
      try {
        env = JSON.parse(payload.toString('utf8'));
      } catch {
        stray.push({ topic, payload: payload.toString('utf8') });
        return;
      }
      if (events.has(env.id)) return;
      events.set(env.id, { topic, env, retain: packet.retain });
      order.push(`${env.type}#${env.seq}`);
      if (env.type === 'job.completed' || env.type === 'job.failed') {
        clearTimeout(timer);
        client.off('message', onMessage);
        resolve();
      }
    }
    client.on('message', onMessage);
  });
  return { events, order, stray, done };
}

/** POST /v1/uploads with the session token, then the browser's multipart POST to the bucket. */
async function upload(session, filename, type, bytes) {
  const res = await fetch(`${gw.url}/v1/uploads`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${session.token}` },
    body: JSON.stringify({ filename, contentType: type, size: bytes.length }),
  });
  const grant = await res.json();
  assert.equal(res.status, 201, `POST /v1/uploads: ${JSON.stringify(grant)}`);
  const form = new FormData();
  for (const [k, v] of Object.entries(grant.fields)) form.append(k, v);
  form.append('file', new Blob([bytes], { type }), filename);
  const put = await fetch(grant.url, { method: 'POST', body: form });
  assert.equal(put.status, 204, `POST to the bucket: ${put.status} ${await put.text()}`);
  return grant;
}

test('MQTT.js on Mosquitto gets its job events from the processor through the external bridge', { skip: missing ?? false }, async (t) => {
  const session = await mintSession(gw);
  assert.equal(session.mqtt.url, `ws://127.0.0.1:${broker.wsPort}`, 'the session points the browser at Mosquitto');
  assert.equal(session.clientId, session.channel);

  const client = await connect(session);
  const granted = await client.subscribeAsync(session.topic, { qos: 1 });
  assert.equal(granted[0].qos, 1, `SUBACK for ${session.topic}: ${JSON.stringify(granted)}`);
  const collected = collectUntilFinal(client, 60_000);

  const png = makePNG(640, 400);
  const started = Date.now();
  const grant = await upload(session, 'photo.png', 'image/png', png);
  await collected.done;
  t.diagnostic(`job ${grant.jobId}: ${collected.order.join(', ')} over Mosquitto in ${Date.now() - started} ms`);

  const { events, order, stray } = collected;
  assert.deepEqual(stray, []);
  const all = [...events.values()];
  for (const { topic, env } of all) {
    assert.equal(env.app, 'demo');
    assert.equal(env.channel, session.channel, `foreign event ${JSON.stringify(env)}`);
    assert.equal(env.jobId, grant.jobId);
    assert.equal(topic, `apps/demo/channels/${session.channel}/jobs/${grant.jobId}`);
  }
  assert.equal(all[0].env.type, 'job.accepted', `first event: ${order.join(', ')}`);
  assert.equal(all[0].env.seq, 1);
  assert.ok(all[0].env.input.key.endsWith('/photo.png'), `input ${JSON.stringify(all[0].env.input)}`);
  const final = all.at(-1).env;
  assert.equal(final.type, 'job.completed', `final event ${JSON.stringify(final.error ?? final)} after ${order.join(', ')}`);
  assert.ok(final.seq > all[0].env.seq);
  assert.ok(final.outputs.length >= 1, 'completed without outputs');
  for (const o of final.outputs) {
    const res = await fetch(o.url);
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(res.status, 200, `GET ${o.name}: ${res.status}`);
    assert.equal(res.headers.get('content-type'), o.contentType);
    assert.equal(body.length, o.bytes);
    assert.ok(Math.max(o.width, o.height) <= 1024 && o.width > 0, `${o.name} ${o.width}×${o.height}`);
  }

  // A browser that comes back after the job ended still learns it: the
  // final event is retained on Mosquitto.
  await client.endAsync();
  const again = await connect(session);
  const replay = collectUntilFinal(again, 10_000);
  await again.subscribeAsync(session.topic, { qos: 1 });
  await replay.done;
  const retained = [...replay.events.values()].at(-1);
  assert.equal(retained.env.id, final.id);
  assert.equal(retained.retain, true, 'the final event arrives as a retained message');
});
