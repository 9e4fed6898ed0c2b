// The gateway's HTTP API as the client uses it: minting, refreshing and
// upload grants. Errors carry the API's {"error":{"code","message"}} body.

/** An HTTP API error: `status`, the stable `code` and the message. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
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

/**
 * A JSON call to the gateway.
 * @param {{baseURL: string, fetch: typeof fetch}} http
 * @param {string} path
 * @param {{method?: string, bearer?: string, body?: unknown, ok: number[], signal?: AbortSignal}} opts
 */
export async function call(http, path, opts) {
  const headers = { Accept: 'application/json' };
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  if (opts.bearer) headers.Authorization = `Bearer ${opts.bearer}`;
  const res = await http.fetch(new URL(path, http.baseURL).href, {
    method: opts.method ?? 'POST',
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: opts.signal,
  });
  if (!opts.ok.includes(res.status)) throw await apiError(res);
  return res.json();
}

/** POST /v1/sessions: a new channel and token (anonymous, or with the app's API key). */
export function mintSession(http, app, apiKey, signal) {
  return call(http, '/v1/sessions', { bearer: apiKey, body: { app }, ok: [200, 201], signal });
}

/** POST /v1/sessions/refresh: a new token for the same channel. */
export function refreshSession(http, token, signal) {
  return call(http, '/v1/sessions/refresh', { bearer: token, ok: [200, 201], signal });
}

/** Milliseconds until the session's token expires (Infinity when unknown). */
export function remainingMs(session, now = Date.now()) {
  const t = Date.parse(session?.expiresAt ?? '');
  return Number.isFinite(t) ? t - now : Infinity;
}

/**
 * The WebSocket URL of the broker: the session's mqtt.url when absolute
 * (ws:// or wss://), otherwise resolved against the gateway's base URL.
 */
export function brokerURL(session, baseURL) {
  const raw = session?.mqtt?.url;
  if (typeof raw === 'string' && /^wss?:\/\//i.test(raw)) return raw;
  const u = new URL(typeof raw === 'string' && raw !== '' ? raw : '/mqtt', baseURL);
  u.protocol = u.protocol === 'https:' || u.protocol === 'wss:' ? 'wss:' : 'ws:';
  return u.href;
}

/** Checks that a session body has what connecting needs. */
export function checkSession(s) {
  for (const k of ['app', 'channel', 'token']) {
    if (typeof s?.[k] !== 'string' || s[k] === '') throw new TypeError(`session has no "${k}"`);
  }
  return s;
}
