// Browser session: POST /v1/sessions mints a channel and a token; the answer
// is kept in sessionStorage so a reload of the tab keeps its channel (and so
// its persistent MQTT session) until the token expires.

const STORAGE_KEY = 'herald.session';
// A stored session this close to expiry is not worth reusing: the broker
// would refuse the token before the next reconnect.
const MIN_REMAINING_MS = 60_000;

/** An HTTP API error, carrying the `{"error":{"code","message"}}` body. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(`${code}: ${message}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** Reads the error body of a failed response into an ApiError. */
export async function apiError(res) {
  let code = `http_${res.status}`;
  let message = res.statusText || 'request failed';
  try {
    const body = await res.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch {
    // Not JSON (a proxy's error page, say): keep the status line.
  }
  return new ApiError(res.status, code, message);
}

/** Milliseconds until the session's token expires (negative when past). */
export function remainingMs(session, now = Date.now()) {
  const t = Date.parse(session?.expiresAt ?? '');
  return Number.isFinite(t) ? t - now : Infinity;
}

function load(app) {
  try {
    const s = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? 'null');
    if (s && s.app === app && s.channel && s.token && remainingMs(s) > MIN_REMAINING_MS) return s;
  } catch {
    // Corrupt entry: mint a new session below.
  }
  return null;
}

/** Forgets the stored session (after the broker refused its token). */
export function forgetSession() {
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // Storage disabled: nothing was stored.
  }
}

/**
 * Returns the tab's session for `app`, reusing a stored one when still valid.
 * @param {string} app
 * @param {{fresh?: boolean, fetchImpl?: typeof fetch}} [opts]
 */
export async function getSession(app, opts = {}) {
  if (!opts.fresh) {
    const stored = load(app);
    if (stored) return { ...stored, reused: true };
  }
  const res = await (opts.fetchImpl ?? fetch)('/v1/sessions', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ app }),
  });
  if (res.status !== 201 && res.status !== 200) throw await apiError(res);
  const session = await res.json();
  try {
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
  } catch {
    // Private mode or quota: the session still works for this page view.
  }
  return { ...session, reused: false };
}

/**
 * The WebSocket URL to reach the broker: the session's mqtt.url when absolute
 * (ws:// or wss://), otherwise resolved against the page, so a gateway behind
 * a TLS proxy is reached with wss://.
 */
export function brokerURL(session, loc = window.location) {
  const raw = session?.mqtt?.url;
  const wsScheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  if (typeof raw === 'string' && /^wss?:\/\//i.test(raw)) return raw;
  const u = new URL(typeof raw === 'string' && raw !== '' ? raw : '/mqtt', loc.href);
  if (u.protocol === 'http:' || u.protocol === 'https:') u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') u.protocol = wsScheme;
  return u.href;
}
