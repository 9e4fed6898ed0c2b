// HeraldClient: one browser session on a Herald gateway. It mints or resumes
// the session, keeps one MQTT.js connection on the session's channel with a
// persistent MQTT 5 session (clean:false, so events sent while away arrive on
// reconnect), renews the token before it expires, reconnects with jittered
// exponential backoff, and hands each event on once, by its id.

import mqttDefault from 'mqtt';
import { brokerURL, checkSession, mintSession, refreshSession, remainingMs } from './api.js';
import { backoffDelay } from './backoff.js';
import { Emitter } from './emitter.js';
import { Deduper, jobIdOfTopic, parseEnvelope } from './events.js';
import { Jobs } from './jobs.js';
import { defaultStorage, load, save } from './storage.js';
import { createUpload, createUploadEndpoint, postToBucket } from './uploads.js';

// CONNACK codes meaning "these credentials will never work": MQTT 5 0x85
// client id not valid, 0x86 bad user name or password, 0x87 not authorized,
// 0x8A banned (a revoked channel); MQTT 3.1.1 4 and 5.
const AUTH_CODES = new Set([4, 5, 0x85, 0x86, 0x87, 0x8a]);
// DISCONNECT 0xA0 (maximum connect time): the broker ended the connection
// because its token expired.
const TOKEN_EXPIRED = 0xa0;
// DISCONNECT 0x98 (administrative action): Herald revoked the channel. The
// client asks for a session at once instead of presenting the token again;
// the answer (token_revoked) ends it.
const REVOKED = 0x98;
// Herald's broker renews a live connection's token with MQTT 5
// re-authentication (AUTH 0x19) when the client connected with this
// authentication method. A broker that does not know it answers CONNACK
// 0x8C (bad authentication method); the client then connects without it.
const AUTH_METHOD = 'herald-token';
const BAD_AUTH_METHOD = 0x8c;
const MAX_SESSION_EXPIRY_S = 24 * 3600;

/** Connection states, as reported by the "state" event. */
export const STATES = Object.freeze(['idle', 'connecting', 'connected', 'reconnecting', 'offline', 'closed']);

export class HeraldClient {
  #opts;
  #http;
  #emitter = new Emitter();
  #dedupe;
  #storage;
  #storageKey;
  #mqtt;
  #client = null;
  #clientToken = '';
  #state = 'idle';
  #attempt = 0;
  #retryTimer = null;
  #refreshTimer = null;
  #refreshing = null;
  #refreshUnsupported = false;
  #authFailed = false;
  #reauthUnsupported = false;
  #clientReauth = false;
  #margin = 60_000;
  #lastError = '';
  #subscribed = false;
  #closed = false;
  #ready = null;
  #offNetwork = () => {};

  /**
   * @param {import('../index').HeraldClientOptions} opts
   */
  constructor(opts) {
    if (!opts || typeof opts.app !== 'string' || opts.app === '') throw new TypeError('HeraldClient: options.app is required');
    const baseURL = opts.baseURL ?? globalThis.location?.origin;
    if (!baseURL) throw new TypeError('HeraldClient: options.baseURL is required outside a browser page');
    this.#opts = opts;
    this.#http = { baseURL: new URL(baseURL).href, fetch: opts.fetch ?? globalThis.fetch.bind(globalThis) };
    this.#dedupe = new Deduper(opts.dedupeLimit ?? 5000);
    this.#storage = opts.storage === null ? null : (opts.storage ?? defaultStorage());
    this.#storageKey = `herald.session:${opts.app}@${new URL(this.#http.baseURL).host}`;
    this.#mqtt = opts.mqtt ?? mqttDefault;
    /** The current session (null before the first one). */
    this.session = opts.session ? checkSession(opts.session) : null;
    /** Events dropped because their id was seen before. */
    this.duplicates = 0;
    /** Follow jobs: jobs.on(jobId, fn), jobs.events(jobId), jobs.wait(jobId). */
    this.jobs = new Jobs(opts.jobLimit ?? 1000);
  }

  /** The connection state (see STATES). */
  get state() {
    return this.#state;
  }

  /** The session's channel, once there is a session. */
  get channel() {
    return this.session?.channel ?? null;
  }

  /** The underlying MQTT.js client of the current connection (or null). */
  get mqttClient() {
    return this.#client;
  }

  /**
   * Adds a listener: "event" (envelope, meta), "state" (state, detail),
   * "session" (session, reason), "reauthenticated" (session: the live
   * connection took the renewed token), "duplicate" (envelope), "invalid"
   * ({topic, error}), "error" (Error). Returns a function that removes it.
   */
  on(type, fn) {
    return this.#emitter.on(type, fn);
  }

  /** Removes a listener added with on(). */
  off(type, fn) {
    this.#emitter.off(type, fn);
  }

  /**
   * Starts the client: gets a session (given, stored, refreshed or minted)
   * and connects. Resolves once subscribed to the channel the first time;
   * failures before that are retried with backoff, so pass a signal to give
   * up waiting (the client keeps trying until close()).
   * @param {{signal?: AbortSignal}} [opts]
   */
  connect(opts = {}) {
    if (this.#closed) return Promise.reject(new Error('HeraldClient: closed'));
    if (!this.#ready) {
      const ready = { done: false };
      ready.promise = new Promise((resolve, reject) => Object.assign(ready, { resolve, reject }));
      // A caller that never awaits connect() must not see an unhandled rejection on close().
      ready.promise.catch(() => {});
      this.#ready = ready;
      this.#watchNetwork();
      this.#start();
    }
    const ready = this.#ready.promise;
    if (!opts.signal) return ready;
    return new Promise((resolve, reject) => {
      const abort = () => reject(opts.signal.reason ?? new Error('aborted'));
      if (opts.signal.aborted) return abort();
      opts.signal.addEventListener('abort', abort, { once: true });
      ready.then(resolve, reject).finally(() => opts.signal.removeEventListener('abort', abort));
    });
  }

  /** Closes the connection for good and stops every timer. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#refreshTimer);
    this.#offNetwork();
    if (this.#client) this.#client.end(true);
    this.#client = null;
    if (this.#ready && !this.#ready.done) {
      this.#ready.done = true;
      this.#ready.reject(new Error('HeraldClient: closed before connecting'));
    }
    this.#setState('closed');
  }

  /**
   * Renews the token now (POST /v1/sessions/refresh): same channel, new
   * token and expiry. The live connection stays up: on Herald's broker it
   * takes the new token by MQTT 5 re-authentication; elsewhere the broker
   * ends it when the old token expires and the client reconnects at once
   * with the new one. Resolves with the new session.
   */
  refresh() {
    if (!this.session) return Promise.reject(new Error('HeraldClient: no session to refresh'));
    if (!this.#refreshing) {
      this.#refreshing = refreshSession(this.#http, this.session.token)
        .then((s) => {
          this.#useSession(checkSession(s), 'refreshed');
          this.#reauthenticate();
          return this.session;
        })
        .finally(() => (this.#refreshing = null));
    }
    return this.#refreshing;
  }

  /**
   * Asks for a presigned POST (POST /v1/uploads with the session token).
   * @param {{filename: string, contentType?: string, size: number}} req
   */
  async createUpload(req) {
    await this.#sessionReady();
    return createUpload(this.#http, this.session.token, req);
  }

  /**
   * An endpoint for Uppy's @uppy/aws-s3 (`companionEndpoint`) with the app's
   * upload limits: POST /v1/uploads/endpoint with the session token.
   */
  async uploadEndpoint() {
    await this.#sessionReady();
    return createUploadEndpoint(this.#http, this.session.token);
  }

  /**
   * Uploads a file straight to the bucket; resolves with the grant (its
   * jobId names the job whose events follow on the channel).
   * @param {Blob & {name?: string, type?: string}} file
   * @param {{onProgress?: (loaded: number, total: number) => void, onGrant?: (grant: object) => void, signal?: AbortSignal, contentType?: string}} [opts]
   */
  async upload(file, opts = {}) {
    const grant = await this.createUpload({
      filename: file.name ?? 'file',
      contentType: opts.contentType ?? (file.type || undefined),
      size: file.size,
    });
    opts.onGrant?.(grant);
    await postToBucket(grant, file, { onProgress: opts.onProgress, signal: opts.signal, fetch: this.#http.fetch });
    return grant;
  }

  // --- session --------------------------------------------------------------

  async #sessionReady() {
    if (this.session && remainingMs(this.session) > 0) return;
    await this.#obtainSession();
  }

  /** Stored or given session if still good; refreshed if close to expiry; else minted. */
  async #obtainSession() {
    const s = this.session ?? this.#loadStored();
    const margin = this.#marginFor(s);
    if (s && remainingMs(s) > margin && !this.#authFailed) {
      this.#useSession(s, s === this.session ? 'given' : 'resumed');
      return;
    }
    if (s && remainingMs(s) > 0 && !this.#refreshUnsupported) {
      this.session = s;
      try {
        await this.refresh();
        return;
      } catch (err) {
        this.#noteRefreshFailure(err);
        // The app revoked this channel: its decision stands; no new session.
        if (err?.code === 'token_revoked') throw err;
      }
    }
    await this.#newSession();
  }

  async #newSession() {
    const s = this.#opts.getSession
      ? await this.#opts.getSession()
      : await mintSession(this.#http, this.#opts.app, this.#opts.apiKey);
    const replaced = this.session && this.session.channel !== s.channel;
    this.#useSession(checkSession(s), replaced ? 'replaced' : 'minted');
  }

  #useSession(s, reason) {
    this.session = s;
    this.#margin = this.#marginFor(s);
    this.#authFailed = false;
    if (this.#storage) save(this.#storage, this.#storageKey, s);
    this.#scheduleRefresh();
    this.#emitter.emit('session', s, reason);
  }

  #loadStored() {
    if (!this.#storage) return null;
    const s = load(this.#storage, this.#storageKey);
    if (!s || s.app !== this.#opts.app || !s.channel || !s.token || remainingMs(s) <= 0) return null;
    return s;
  }

  /**
   * How long before expiry to renew a session just obtained: a tenth of
   * what is left of its token (its whole life when fresh), 5 s to 5 min.
   */
  #marginFor(s) {
    if (this.#opts.refreshMarginMs !== undefined) return this.#opts.refreshMarginMs;
    const left = remainingMs(s);
    if (!Number.isFinite(left)) return 60_000;
    return Math.max(5_000, Math.min(300_000, left / 10));
  }

  /** The renewal margin of the current session. */
  #refreshMargin() {
    return this.#margin;
  }

  #scheduleRefresh() {
    clearTimeout(this.#refreshTimer);
    if (this.#closed || this.#refreshUnsupported || !this.session) return;
    const left = remainingMs(this.session);
    if (!Number.isFinite(left)) return;
    const margin = this.#refreshMargin();
    // setTimeout holds at most 2^31-1 ms; a longer wait is re-armed.
    const wait = Math.min(Math.max(0, left - margin), 2 ** 31 - 1);
    this.#refreshTimer = setTimeout(() => this.#refreshDue(), wait);
  }

  async #refreshDue() {
    if (this.#closed) return;
    if (remainingMs(this.session) > this.#refreshMargin() + 1000) return this.#scheduleRefresh();
    try {
      await this.refresh();
    } catch (err) {
      this.#noteRefreshFailure(err);
      if (this.#refreshUnsupported || remainingMs(this.session) <= 0) return;
      // A network blip: try again soon, well before the token runs out.
      clearTimeout(this.#refreshTimer);
      const wait = Math.min(backoffDelay(2), Math.max(1000, remainingMs(this.session) / 4));
      this.#refreshTimer = setTimeout(() => this.#refreshDue(), wait);
    }
  }

  #noteRefreshFailure(err) {
    // 404/405: a gateway without refresh. 401: the token expired (a new
    // session is minted when the old one ends) or the channel was revoked
    // (the client stops: see #revoked).
    if (err?.status === 404 || err?.status === 405) this.#refreshUnsupported = true;
    if (err?.status === 401) this.#authFailed = true;
    this.#emitter.emit('error', err);
  }

  // --- connection -----------------------------------------------------------

  async #start() {
    this.#setState('connecting');
    try {
      await this.#obtainSession();
      this.#open();
    } catch (err) {
      this.#sessionFailed(err);
    }
  }

  #open() {
    if (this.#closed) return;
    if (this.#client) this.#client.end(true);
    const s = this.session;
    const expiry = Math.max(60, Math.min(MAX_SESSION_EXPIRY_S, Math.floor(remainingMs(s) / 1000) || MAX_SESSION_EXPIRY_S));
    const url = brokerURL(s, this.#http.baseURL);
    const reauth = this.#reauthPossible(url);
    const properties = { sessionExpiryInterval: expiry };
    if (reauth) properties.authenticationMethod = AUTH_METHOD;
    const client = this.#mqtt.connect(url, {
      clientId: s.clientId || s.channel,
      username: s.app,
      password: s.token,
      protocolVersion: 5,
      clean: false,
      properties,
      keepalive: 60,
      connectTimeout: 15_000,
      // 0 turns off MQTT.js's fixed-period reconnect: #schedule() does it
      // with jitter, so the browsers of a restarted gateway spread out.
      reconnectPeriod: 0,
      // Browser tokens may not publish; nothing is ever queued.
      queueQoSZero: false,
      ...(this.#opts.mqttOptions ?? {}),
    });
    this.#client = client;
    this.#clientToken = s.token;
    this.#clientReauth = reauth;
    this.#lastError = '';
    let disconnectReason = null;
    client.on('connect', (connack) => this.#onConnect(client, connack));
    client.on('message', (topic, payload, packet) => this.#onMessage(topic, payload, packet));
    client.on('error', (err) => {
      this.#lastError = err.message;
      if (AUTH_CODES.has(err.code)) this.#authFailed = true;
      if (err.code === BAD_AUTH_METHOD && reauth) {
        this.#reauthUnsupported = true;
        this.#attempt = 0;
      }
    });
    client.on('disconnect', (packet) => {
      disconnectReason = packet?.reasonCode ?? null;
      this.#lastError = `broker disconnected (reason ${disconnectReason})`;
    });
    client.on('close', () => {
      if (client !== this.#client || this.#closed) return;
      if (disconnectReason === TOKEN_EXPIRED || disconnectReason === REVOKED) this.#attempt = 0;
      if (disconnectReason === REVOKED) this.#authFailed = true;
      const retryNow = disconnectReason === TOKEN_EXPIRED || disconnectReason === REVOKED || this.#clientToken !== this.session?.token || (this.#reauthUnsupported && this.#clientReauth);
      this.#schedule(retryNow);
    });
  }

  /**
   * Whether to offer re-authentication: Herald's own broker is served on
   * the gateway's host (/mqtt); AWS IoT Core and other brokers are not,
   * and may refuse an authentication method they do not know.
   */
  #reauthPossible(url) {
    if (this.#reauthUnsupported || this.#opts.reauthenticate === false) return false;
    try {
      return new URL(url).host === new URL(this.#http.baseURL).host;
    } catch {
      return false;
    }
  }

  /** Hands the renewed token to the live connection (MQTT 5 AUTH 0x19). */
  #reauthenticate() {
    const client = this.#client;
    const token = this.session?.token;
    // MQTT.js 5.16 has no public call for AUTH; _sendPacket is how its own
    // handlers send one. Without it the reconnect path still renews.
    if (!client?.connected || !this.#clientReauth || typeof client._sendPacket !== 'function' || !token) return;
    const onPacket = (packet) => {
      if (packet?.cmd !== 'auth') return;
      client.off('packetreceive', onPacket);
      if (packet.reasonCode === 0 && client === this.#client) {
        this.#clientToken = token;
        this.#emitter.emit('reauthenticated', this.session);
      }
    };
    client.on('packetreceive', onPacket);
    client._sendPacket({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: AUTH_METHOD, authenticationData: token } });
  }

  #onConnect(client, connack) {
    if (client !== this.#client) return;
    this.#attempt = 0;
    this.#authFailed = false;
    // Subscribe on the first connection (which also replays retained final
    // job events) and whenever the broker did not keep the session.
    if (this.#subscribed && connack?.sessionPresent) {
      this.#connected('session resumed');
      return;
    }
    const s = this.session;
    const filter = s.topic || `apps/${s.app}/channels/${s.channel}/#`;
    client.subscribe(filter, { qos: 1 }, (err, granted) => {
      if (client !== this.#client) return;
      const code = granted?.[0]?.qos;
      if (err || code === undefined || code >= 0x80) {
        const e = new Error(`subscribe to ${filter} refused (reason ${code ?? err?.message})`);
        this.#emitter.emit('error', e);
        this.#setState('connected', e.message);
        return;
      }
      this.#subscribed = true;
      this.#connected(connack?.sessionPresent ? 'session resumed' : 'new session');
    });
  }

  #connected(detail) {
    this.#setState('connected', detail);
    if (this.#ready && !this.#ready.done) {
      this.#ready.done = true;
      this.#ready.resolve(this);
    }
  }

  #onMessage(topic, payload, packet) {
    const parsed = parseEnvelope(payload);
    if (parsed.error) {
      this.#emitter.emit('invalid', { topic, error: parsed.error });
      return;
    }
    let env = parsed.env;
    if (!this.#dedupe.accept(env.id)) {
      this.duplicates++;
      this.#emitter.emit('duplicate', env);
      return;
    }
    const jobId = env.jobId || jobIdOfTopic(topic);
    if (jobId && !env.jobId) env = { ...env, jobId };
    const meta = { topic, retained: Boolean(packet?.retain) };
    this.#emitter.emit('event', env, meta);
    if (jobId && typeof env.type === 'string' && env.type.startsWith('job.')) this.jobs.apply(env, meta);
  }

  /** Schedules the next connection attempt after a jittered delay. */
  #schedule(now = false) {
    if (this.#closed || this.#retryTimer) return;
    if (typeof navigator !== 'undefined' && navigator.onLine === false) {
      this.#setState('offline', 'the browser is offline');
      return; // the 'online' event resumes
    }
    const delay = now ? 0 : backoffDelay(this.#attempt++, this.#opts.backoff);
    const why = this.#lastError ? `${this.#lastError}; ` : '';
    this.#setState('reconnecting', `${why}retry in ${(delay / 1000).toFixed(1)} s`);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#reconnect();
    }, delay);
  }

  async #reconnect() {
    if (this.#closed) return;
    try {
      // A token the broker refused, or one about to run out, is renewed
      // first (same channel); if that fails a new session is minted.
      if (this.#authFailed || !this.session || remainingMs(this.session) < this.#refreshMargin()) {
        await this.#obtainSession();
      }
      this.#open();
    } catch (err) {
      this.#sessionFailed(err);
    }
  }

  /** Obtaining a session failed: stop for good if revoked, else retry later. */
  #sessionFailed(err) {
    if (err?.code === 'token_revoked') {
      this.#revoked();
      return;
    }
    this.#lastError = `session: ${err.message}`;
    this.#emitter.emit('error', err);
    this.#schedule();
  }

  /** The channel was revoked (DELETE /v1/sessions/{channel}): stop for good. */
  #revoked() {
    if (this.#storage) save(this.#storage, this.#storageKey, null);
    this.close();
    this.#setState('closed', 'the session was revoked');
  }

  #watchNetwork() {
    if (typeof window === 'undefined' || typeof window.addEventListener !== 'function') return;
    const offline = () => {
      if (this.#state !== 'connected') this.#setState('offline', 'the browser is offline');
    };
    const online = () => {
      if (this.#state === 'connected' || this.#closed) return;
      this.#attempt = 0;
      clearTimeout(this.#retryTimer);
      this.#retryTimer = null;
      this.#reconnect();
    };
    // A tab that slept past its refresh time renews as soon as it wakes.
    const visible = () => {
      if (document.visibilityState === 'visible' && this.session && remainingMs(this.session) < this.#refreshMargin()) {
        this.#refreshDue();
      }
    };
    window.addEventListener('offline', offline);
    window.addEventListener('online', online);
    if (typeof document !== 'undefined') document.addEventListener('visibilitychange', visible);
    this.#offNetwork = () => {
      window.removeEventListener('offline', offline);
      window.removeEventListener('online', online);
      if (typeof document !== 'undefined') document.removeEventListener('visibilitychange', visible);
    };
  }

  #setState(state, detail = '') {
    this.#state = state;
    this.#emitter.emit('state', state, detail);
  }
}
