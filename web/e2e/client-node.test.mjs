// @heraldgw/client in Node against a real gateway: session, MQTT.js
// connection, dedupe, the job API, uploads, resume, reconnect with backoff,
// token renewal (or, on a gateway without POST /v1/sessions/refresh, a new
// session when the token runs out) and clear errors.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ApiError, HeraldClient, memoryStorage } from '@heraldgw/client';
import { eventId, postEvent, startGateway } from './gateway.mjs';
import { makePNG } from './media.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves with the first value `fn` returns that is not undefined. */
async function until(what, fn, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A client that records what it reports. */
function recorder(client) {
  const rec = { events: [], sessions: [], states: [], errors: [] };
  client.on('event', (env) => rec.events.push(env));
  client.on('session', (s, reason) => rec.sessions.push({ channel: s.channel, token: s.token, expiresAt: s.expiresAt, reason }));
  client.on('state', (state) => rec.states.push(state));
  client.on('error', (err) => rec.errors.push(err));
  return rec;
}

describe('client in Node, demo app', () => {
  let gw;
  const clients = [];
  const make = (opts = {}) => {
    const c = new HeraldClient({ baseURL: gw.url, app: 'demo', storage: memoryStorage(), backoff: { baseMs: 50, capMs: 500 }, ...opts });
    clients.push(c);
    return c;
  };

  before(async () => {
    gw = await startGateway();
  });
  after(async () => {
    for (const c of clients) c.close();
    await gw?.stop();
  });

  /** The broker's count of CONNECTs refused because the channel is revoked. */
  const revokedConnects = async () => {
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    const m = /^herald_broker_connects_refused_total\{reason="revoked"\} (\d+)/m.exec(text);
    return m ? Number(m[1]) : 0;
  };

  test('connects on a fresh channel and gets each event once', async () => {
    const client = make();
    const rec = recorder(client);
    await client.connect({ signal: AbortSignal.timeout(20_000) });
    assert.equal(client.state, 'connected');
    assert.match(client.channel, /^[A-Za-z0-9_-]{22}$/);
    assert.deepEqual(rec.sessions.map((s) => s.reason), ['minted']);
    const env = { v: 1, type: 'x.hello', id: eventId(), channel: client.channel, seq: 1, data: { hi: 1 } };
    for (let i = 0; i < 3; i++) assert.equal((await postEvent(gw, env)).status, 202);
    await until('the event', () => rec.events.length === 1);
    await until('two duplicates', () => client.duplicates === 2);
    await sleep(200);
    assert.equal(rec.events.length, 1, 'a redelivered id is handed on once');
    assert.deepEqual(rec.events[0].data, { hi: 1 });
  });

  test('jobs: on() replays, events() iterates to completion, wait() gives the final event', async () => {
    const client = make();
    await client.connect({ signal: AbortSignal.timeout(20_000) });
    const jobId = `job_${eventId().slice(4, 14)}`;
    const base = { v: 1, jobId, channel: client.channel };
    const iter = (async () => {
      const types = [];
      for await (const env of client.jobs.events(jobId)) types.push(env.type);
      return types;
    })();
    const waited = client.jobs.wait(jobId);
    await postEvent(gw, { ...base, type: 'job.accepted', id: eventId(), seq: 1 });
    await postEvent(gw, { ...base, type: 'job.progress', id: eventId(), seq: 2, progress: { done: 1, total: 2 } });
    await postEvent(gw, { ...base, type: 'job.completed', id: eventId(), seq: 3, outputs: [{ name: 'thumb', key: 'converted/x.webp', contentType: 'image/webp', bytes: 10 }] });
    assert.deepEqual(await iter, ['job.accepted', 'job.progress', 'job.completed']);
    const final = await waited;
    assert.equal(final.type, 'job.completed');
    assert.equal(client.jobs.get(jobId).state, 'completed');
    const late = [];
    client.jobs.on(jobId, (env, view) => late.push(`${env.seq}:${view.state}`));
    assert.deepEqual(late, ['1:completed', '2:completed', '3:completed'], 'a late listener sees the whole job');
  });

  test('uploads a file straight to the bucket and follows its job to completion', async () => {
    const client = make();
    await client.connect({ signal: AbortSignal.timeout(20_000) });
    const file = new File([makePNG(320, 200)], 'node-upload.png', { type: 'image/png' });
    const progress = [];
    const grant = await client.upload(file, { onProgress: (loaded, total) => progress.push([loaded, total]) });
    assert.ok(grant.jobId && grant.key.endsWith('/node-upload.png'), JSON.stringify(grant));
    const final = await client.jobs.wait(grant.jobId, { signal: AbortSignal.timeout(60_000) });
    assert.equal(final.type, 'job.completed', JSON.stringify(final));
    assert.ok(final.outputs.length >= 2, JSON.stringify(final.outputs));
    assert.deepEqual(progress.at(-1), [file.size, file.size]);
  });

  test('a second client with the same storage resumes the channel and gets what was sent meanwhile', async () => {
    const storage = memoryStorage();
    const first = make({ storage });
    await first.connect({ signal: AbortSignal.timeout(20_000) });
    const channel = first.channel;
    first.close();
    const id = eventId();
    assert.equal((await postEvent(gw, { v: 1, type: 'x.missed', id, channel, seq: 1 })).status, 202);
    const second = make({ storage });
    const rec = recorder(second);
    await second.connect({ signal: AbortSignal.timeout(20_000) });
    assert.equal(second.channel, channel);
    assert.equal(rec.sessions[0].reason, 'resumed');
    await until('the event sent while away', () => rec.events.some((e) => e.id === id));
  });

  test('reconnects with backoff after the socket drops, without losing events', async () => {
    const client = make();
    const rec = recorder(client);
    await client.connect({ signal: AbortSignal.timeout(20_000) });
    const before = rec.states.length;
    client.mqttClient.stream.destroy();
    const id = eventId();
    assert.equal((await postEvent(gw, { v: 1, type: 'x.during', id, channel: client.channel, seq: 1 })).status, 202);
    await until('reconnected', () => rec.states.slice(before).includes('reconnecting') && client.state === 'connected');
    await until('the event sent during the gap', () => rec.events.some((e) => e.id === id));
  });

  test('a revoked channel ends the client for good (no new session behind the app\'s back)', async (t) => {
    const client = make();
    const rec = recorder(client);
    await client.connect({ signal: AbortSignal.timeout(20_000) });
    const refusedBefore = await revokedConnects();
    const res = await fetch(`${gw.url}/v1/sessions/${client.channel}`, { method: 'DELETE', headers: { Authorization: `Bearer ${gw.apiKey}` } });
    await res.arrayBuffer();
    if (res.status === 404 || res.status === 405) return t.skip('this gateway has no DELETE /v1/sessions/{channel}');
    assert.equal(res.status, 204);
    await until('closed', () => client.state === 'closed', 15_000);
    assert.ok(rec.errors.some((e) => e.code === 'token_revoked'), rec.errors.map((e) => e.message).join('; '));
    // DISCONNECT 0x98 sends it to the session endpoint at once: it never
    // presents the revoked token to the broker again (CONNACK 0x8A).
    assert.equal(await revokedConnects(), refusedBefore, 'CONNECTs with the revoked token');
    assert.deepEqual(rec.sessions.map((s) => s.reason), ['minted']);
  });

  test('an unknown app is a clear ApiError and connect() gives up on its signal', async () => {
    const client = make({ app: 'no-such-app' });
    const rec = recorder(client);
    await assert.rejects(client.connect({ signal: AbortSignal.timeout(1_500) }), { name: 'TimeoutError' });
    const err = rec.errors.find((e) => e instanceof ApiError);
    assert.ok(err, 'an ApiError was reported');
    assert.equal(err.code, 'not_found');
    assert.equal(err.status, 404);
    assert.equal(client.state, 'reconnecting');
    client.close();
    assert.equal(client.state, 'closed');
  });
});

describe('client in Node, token lifetime', () => {
  const TTL_S = 10;
  let gw;
  let refreshSupported;
  const config = `apps:
  - id: short
    apiKey: short-app-api-key-0123456789
    secret: short-app-secret-0123456789-0123456789
    origins: ["*"]
    allowAnonymous: true
    sessionTTL: ${TTL_S}s
`;
  before(async () => {
    gw = await startGateway({ config });
    // Does this gateway renew tokens? (POST /v1/sessions/refresh)
    const s = await (await fetch(`${gw.url}/v1/sessions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"app":"short"}' })).json();
    const res = await fetch(`${gw.url}/v1/sessions/refresh`, { method: 'POST', headers: { Authorization: `Bearer ${s.token}` } });
    await res.arrayBuffer();
    refreshSupported = res.status !== 404 && res.status !== 405;
  });
  after(async () => {
    await gw?.stop();
  });

  /** A client of the short-lived app that records what it reports. */
  function shortClient(opts = {}) {
    const client = new HeraldClient({ baseURL: gw.url, app: 'short', storage: null, backoff: { baseMs: 50, capMs: 500 }, ...opts });
    const rec = recorder(client);
    rec.reauth = 0;
    client.on('reauthenticated', () => rec.reauth++);
    return { client, rec };
  }

  /** Waits past the first token's expiry, then checks an event still arrives on the channel. */
  async function survivesExpiry(client, rec, first) {
    await sleep(Math.max(0, Date.parse(first.expiresAt) - Date.now()) + 1_500);
    const id = eventId();
    await postEvent(gw, { v: 1, type: 'x.after', id, channel: first.channel, seq: 1 }, 'short-app-api-key-0123456789');
    await until('the event after the first token expired', () => rec.events.some((e) => e.id === id));
    assert.equal(client.channel, first.channel);
    assert.ok(!rec.sessions.some((s) => s.reason === 'replaced'), JSON.stringify(rec.sessions));
  }

  test('renews the token on the live connection (MQTT 5 re-authentication), same channel, no reconnect', async (t) => {
    if (!refreshSupported) return t.skip('this gateway has no POST /v1/sessions/refresh');
    const { client, rec } = shortClient();
    try {
      await client.connect({ signal: AbortSignal.timeout(20_000) });
      const first = rec.sessions[0];
      // The margin is a tenth of the lifetime, at least 5 s: renewal at ~5 s.
      await until('a renewed token', () => rec.sessions.find((s) => s.reason === 'refreshed'), 15_000);
      const renewed = rec.sessions.find((s) => s.reason === 'refreshed');
      assert.equal(renewed.channel, first.channel, 'refresh keeps the channel');
      assert.notEqual(renewed.token, first.token);
      assert.ok(Date.parse(renewed.expiresAt) > Date.parse(first.expiresAt));
      await until('re-authenticated', () => rec.reauth > 0, 5_000);
      const statesBefore = rec.states.length;
      await survivesExpiry(client, rec, first);
      assert.deepEqual(rec.states.slice(statesBefore).filter((s) => s !== 'connected'), [], 'the connection never dropped');
    } finally {
      client.close();
    }
  });

  test('without re-authentication the broker ends the connection at expiry and the client is back at once with the renewed token', async (t) => {
    if (!refreshSupported) return t.skip('this gateway has no POST /v1/sessions/refresh');
    const { client, rec } = shortClient({ reauthenticate: false });
    try {
      await client.connect({ signal: AbortSignal.timeout(20_000) });
      const first = rec.sessions[0];
      await until('a renewed token', () => rec.sessions.find((s) => s.reason === 'refreshed'), 15_000);
      await survivesExpiry(client, rec, first);
      assert.ok(rec.states.includes('reconnecting'), 'the broker ended the connection at the old expiry');
      assert.equal(rec.reauth, 0);
    } finally {
      client.close();
    }
  });

  test('without refresh, a token that ran out is replaced by a new session', async (t) => {
    if (refreshSupported) return t.skip('this gateway renews tokens');
    const { client, rec } = shortClient();
    try {
      await client.connect({ signal: AbortSignal.timeout(20_000) });
      const first = rec.sessions[0];
      await sleep(Math.max(0, Date.parse(first.expiresAt) - Date.now()) + 500);
      client.mqttClient.stream.destroy();
      await until('a new session', () => rec.sessions.find((s) => s.reason === 'replaced'), 15_000);
      await until('connected again', () => client.state === 'connected');
      assert.notEqual(client.channel, first.channel);
      const id = eventId();
      await postEvent(gw, { v: 1, type: 'x.after', id, channel: client.channel, seq: 1 }, 'short-app-api-key-0123456789');
      await until('an event on the new channel', () => rec.events.some((e) => e.id === id));
    } finally {
      client.close();
    }
  });
});
