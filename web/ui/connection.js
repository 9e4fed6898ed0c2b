// The browser's MQTT connection: one client per channel, a persistent MQTT 5
// session (clean:false + sessionExpiryInterval) so events published while the
// tab was offline are delivered on reconnect, and reconnects scheduled here
// with jittered exponential backoff instead of MQTT.js's fixed period.

import { backoffDelay } from './backoff.js';
import { brokerURL, forgetSession, getSession, remainingMs } from './session.js';
import { workerTimer } from './timers.js';

/** Connection states shown in the status pill. */
export const STATES = Object.freeze(['connecting', 'connected', 'reconnecting', 'offline']);

// CONNACK codes that mean "these credentials will never work": the token
// expired or the gateway restarted with another signing secret. MQTT 5 uses
// 0x86 bad user name or password, 0x87 not authorized, 0x85 client id not
// valid; MQTT 3.1.1 uses 4 and 5.
const AUTH_CODES = new Set([4, 5, 133, 134, 135]);

const MAX_SESSION_EXPIRY_S = 24 * 3600;

/**
 * Connection keeps one channel's subscription alive.
 * Callbacks: onState(state, detail), onMessage(topic, payload, packet), onSession(session).
 */
export class Connection {
  /**
   * @param {object} opts
   * @param {{connect: Function}} opts.mqtt the MQTT.js module
   * @param {string} opts.app
   * @param {(state: string, detail?: string) => void} [opts.onState]
   * @param {(topic: string, payload: Uint8Array, packet: object) => void} [opts.onMessage]
   * @param {(session: object) => void} [opts.onSession]
   * @param {string|URL} [opts.timerWorkerURL] keepalive timer worker (see timers.js)
   */
  constructor(opts) {
    this.mqtt = opts.mqtt;
    this.keepaliveTimer = opts.timerWorkerURL ? workerTimer(opts.timerWorkerURL) : undefined;
    this.app = opts.app;
    this.onState = opts.onState ?? (() => {});
    this.onMessage = opts.onMessage ?? (() => {});
    this.onSession = opts.onSession ?? (() => {});
    this.session = null;
    this.client = null;
    this.attempt = 0;
    this.timer = null;
    this.state = null;
    this.subscribed = false;
    this.stopped = false;
  }

  setState(state, detail = '') {
    this.state = state;
    this.onState(state, detail);
  }

  /** Mints or reuses the session and opens the MQTT connection. */
  async start() {
    this.setState('connecting');
    try {
      await this.openSession(false);
    } catch (err) {
      this.setState('reconnecting', `session: ${err.message}`);
      this.schedule();
    }
    this.watchNetwork();
  }

  async openSession(fresh) {
    const session = await getSession(this.app, { fresh });
    this.session = session;
    this.onSession(session);
    this.openClient();
  }

  openClient() {
    if (this.client) this.client.end(true);
    const s = this.session;
    const expiry = Math.max(60, Math.min(MAX_SESSION_EXPIRY_S, Math.floor(remainingMs(s) / 1000)));
    const client = this.mqtt.connect(brokerURL(s), {
      clientId: s.clientId || s.channel,
      username: s.app,
      password: s.token,
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: expiry },
      keepalive: 60,
      connectTimeout: 15_000,
      // 0 disables MQTT.js's fixed-period reconnect; schedule() does it with jitter.
      reconnectPeriod: 0,
      // The ACL gives browsers no publish rights; nothing is ever queued.
      queueQoSZero: false,
      ...(this.keepaliveTimer ? { timerVariant: this.keepaliveTimer } : {}),
    });
    this.client = client;
    this.subscribed = false;
    this.lastError = '';

    client.on('connect', (connack) => this.handleConnect(client, connack));
    client.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet));
    client.on('error', (err) => {
      this.lastError = err.message;
      if (AUTH_CODES.has(err.code)) this.authFailed = true;
    });
    client.on('close', () => {
      if (client !== this.client || this.stopped) return;
      this.schedule();
    });
  }

  handleConnect(client, connack) {
    if (client !== this.client) return;
    this.attempt = 0;
    this.authFailed = false;
    this.setState('connected', connack?.sessionPresent ? 'session resumed' : 'new session');
    // Subscribe on the first connection of this page (which also replays
    // retained final job events) and whenever the broker lost the session.
    if (!this.subscribed || !connack?.sessionPresent) {
      const topic = `apps/${this.session.app}/channels/${this.session.channel}/#`;
      client.subscribe(topic, { qos: 1 }, (err, granted) => {
        if (err || !granted?.length || granted[0].qos >= 128) {
          const code = err?.packet?.granted?.[0] ?? granted?.[0]?.qos;
          this.setState('connected', `subscribe refused (reason ${code}): ${err?.message ?? ''}`);
          return;
        }
        this.subscribed = true;
      });
    }
  }

  /** Schedules the next reconnect attempt after a jittered delay. */
  schedule() {
    if (this.stopped || this.timer) return;
    if (typeof navigator !== 'undefined' && navigator.onLine === false) {
      this.setState('offline', 'browser is offline');
      return; // the 'online' event resumes
    }
    const delay = backoffDelay(this.attempt++);
    const why = this.lastError ? `${this.lastError}; ` : '';
    this.setState('reconnecting', `${why}retry in ${(delay / 1000).toFixed(1)} s`);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.reconnectNow();
    }, delay);
  }

  async reconnectNow() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = null;
    const expired = !this.session || remainingMs(this.session) < 5_000;
    if (expired || this.authFailed) {
      // The old token cannot work again: a new session means a new channel.
      forgetSession();
      try {
        await this.openSession(true);
      } catch (err) {
        this.lastError = `session: ${err.message}`;
        this.schedule();
      }
      return;
    }
    this.client.reconnect();
  }

  watchNetwork() {
    if (typeof window === 'undefined') return;
    window.addEventListener('offline', () => {
      if (this.state !== 'connected') this.setState('offline', 'browser is offline');
    });
    window.addEventListener('online', () => {
      if (this.state === 'connected') return;
      this.attempt = 0;
      this.reconnectNow();
    });
  }

  /** Closes the connection for good (page unload, tests). */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.client) this.client.end(true);
  }
}
