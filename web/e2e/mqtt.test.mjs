// MQTT.js (the browser's client library, here under Node) against the
// gateway's /mqtt WebSocket, with MQTT 5 and MQTT 3.1.1: a browser session
// receives what a service posts to /v1/events, and the broker refuses
// everything a browser token does not allow.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { brokerURL, connected, eventId, mintSession, postEvent, startGateway } from './gateway.mjs';

let gw;
before(async () => {
  gw = await startGateway();
});
after(async () => {
  await gw?.stop();
});

const clients = new Set();
after(async () => {
  await Promise.all([...clients].map((c) => c.endAsync(true).catch(() => {})));
});

/**
 * Connects like the demo page does, with the given protocol version. Rejects
 * with the CONNACK error, or when the connection closes without one (MQTT.js's
 * connectAsync would otherwise wait forever with reconnectPeriod 0).
 */
async function connect(session, protocolVersion, overrides = {}) {
  const client = mqtt.connect(brokerURL(gw, session), {
    clientId: session.channel,
    username: session.app,
    password: session.token,
    protocolVersion,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ...overrides,
  });
  clients.add(client);
  await connected(client);
  return client;
}

/** Resolves with the first message whose JSON id is `id`, or rejects after `ms`. */
function waitForEvent(client, id, ms = 10_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('message', onMessage);
      reject(new Error(`no message with id ${id} within ${ms} ms`));
    }, ms);
    function onMessage(topic, payload, packet) {
      let env;
      try {
        env = JSON.parse(payload.toString('utf8'));
      } catch {
        return;
      }
      if (env.id !== id) return;
      clearTimeout(timer);
      client.off('message', onMessage);
      resolve({ topic, env, packet });
    }
    client.on('message', onMessage);
  });
}

/** Resolves true if the client closes within `ms`. */
function closesWithin(client, ms) {
  return new Promise((resolve) => {
    if (!client.connected) return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    client.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

for (const protocolVersion of [5, 4]) {
  const label = protocolVersion === 5 ? 'MQTT 5' : 'MQTT 3.1.1';

  describe(`${label} over /mqtt`, () => {
    test('a session receives an event posted to /v1/events on its channel', async () => {
      assert.ok(gw.apiKey, 'HERALD_DEMO_API_KEY must hold the demo app key of the gateway at HERALD_URL');
      const session = await mintSession(gw);
      assert.equal(session.app, 'demo');
      assert.match(session.channel, /^[A-Za-z0-9_-]{22}$/);
      assert.equal(session.clientId, session.channel);

      const client = await connect(session, protocolVersion);
      const filter = `apps/demo/channels/${session.channel}/#`;
      const granted = await client.subscribeAsync(filter, { qos: 1 });
      assert.equal(granted[0].topic, filter);
      assert.equal(granted[0].qos, 1);

      const id = eventId();
      const envelope = { v: 1, type: 'x.hello', id, channel: session.channel, seq: 1, time: new Date().toISOString(), data: { message: 'hello' } };
      const arrival = waitForEvent(client, id);
      const res = await postEvent(gw, envelope);
      assert.equal(res.status, 202, `POST /v1/events: ${JSON.stringify(res.body)}`);

      const { topic, env, packet } = await arrival;
      assert.equal(topic, `apps/demo/channels/${session.channel}/events`);
      assert.equal(env.type, 'x.hello');
      assert.equal(env.channel, session.channel);
      assert.equal(env.app, 'demo', 'the gateway stamps the app the key belongs to');
      assert.deepEqual(env.data, { message: 'hello' });
      assert.equal(packet.qos, 1);
    });

    test('a wrong token is refused in CONNACK', async () => {
      const session = await mintSession(gw);
      const bad = { ...session, token: `${session.token.slice(0, -4)}AAAA` };
      // MQTT 5: 0x86 bad user name or password / 0x87 not authorized; 3.1.1: 4 / 5.
      const codes = protocolVersion === 5 ? [134, 135] : [4, 5];
      await assert.rejects(connect(bad, protocolVersion), (err) => {
        assert.ok(codes.includes(err.code), `CONNACK code ${err.code} (${err.message}) not in ${codes}`);
        return true;
      });
    });

    test('a token is refused with another client id', async () => {
      const session = await mintSession(gw);
      const other = await mintSession(gw);
      // MQTT 5: 0x85 client identifier not valid, 0x86, 0x87; 3.1.1: 2, 4, 5.
      const codes = protocolVersion === 5 ? [133, 134, 135] : [2, 4, 5];
      await assert.rejects(connect(session, protocolVersion, { clientId: other.channel }), (err) => {
        assert.ok(codes.includes(err.code), `CONNACK code ${err.code} (${err.message}) not in ${codes}`);
        return true;
      });
    });

    test("subscribing to another channel is refused in SUBACK", async () => {
      const session = await mintSession(gw);
      const other = await mintSession(gw);
      const client = await connect(session, protocolVersion);
      // MQTT 5: 0x87 not authorized; 3.1.1 has only 0x80 failure.
      const want = protocolVersion === 5 ? 135 : 128;
      for (const filter of [`apps/demo/channels/${other.channel}/#`, 'apps/demo/#', '#']) {
        await assert.rejects(client.subscribeAsync(filter, { qos: 1 }), (err) => {
          // MQTT.js puts the SUBACK in err.packet (err.code on older versions).
          const got = err.packet?.granted?.[0] ?? err.code;
          assert.equal(got, want, `SUBACK for ${filter}: ${err.message}`);
          return true;
        });
      }
      // The refusals leave the connection usable for its own channel.
      const granted = await client.subscribeAsync(`apps/demo/channels/${session.channel}/events`, { qos: 1 });
      assert.equal(granted[0].qos, 1);
    });

    test('a browser token cannot publish, even to its own channel', async () => {
      assert.ok(gw.apiKey, 'HERALD_DEMO_API_KEY must hold the demo app key of the gateway at HERALD_URL');
      const session = await mintSession(gw);
      // A service connection watches the channel, so a delivery would be seen
      // even if the broker drops the browser's connection.
      const observer = await connect(
        { app: 'demo', channel: `svc-e2e-${eventId().slice(4, 16)}`, token: gw.apiKey, mqtt: session.mqtt },
        protocolVersion,
      );
      await observer.subscribeAsync(`apps/demo/channels/${session.channel}/#`, { qos: 1 });
      const client = await connect(session, protocolVersion);
      const id = eventId();
      const forged = JSON.stringify({ v: 1, type: 'job.completed', id, channel: session.channel, seq: 1 });
      const delivered = waitForEvent(observer, id, 2_000).then(
        () => true,
        () => false,
      );
      const outcome = await Promise.race([
        client.publishAsync(`apps/demo/channels/${session.channel}/events`, forged, { qos: 1 }).then(
          () => 'acked',
          (err) => err,
        ),
        closesWithin(client, 3_000).then((closed) => (closed ? 'closed' : 'no answer')),
      ]);
      if (protocolVersion === 5) {
        // MQTT 5 can say no: PUBACK 0x87 (or the broker disconnects).
        assert.ok(outcome === 'closed' || outcome?.code === 135, `MQTT 5 publish outcome: ${outcome?.message ?? outcome}`);
      } else {
        // 3.1.1 has no negative PUBACK: the broker drops the message or the connection.
        assert.ok(['acked', 'closed'].includes(outcome) || outcome instanceof Error, `outcome: ${outcome}`);
      }
      assert.equal(await delivered, false, 'the forged message was delivered');
    });
  });
}
