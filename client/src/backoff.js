// Reconnect delays: exponential backoff with "full jitter" (a uniformly random
// delay between 0 and the exponential ceiling). MQTT.js only offers a fixed
// reconnectPeriod, which makes every browser of a restarted gateway come back
// in lockstep; spreading them out is the whole point of this module.

/** Default backoff settings, in milliseconds. */
export const BACKOFF_DEFAULTS = Object.freeze({ baseMs: 500, capMs: 30_000 });

/**
 * The delay before reconnect attempt number `attempt` (0 for the first retry).
 * @param {number} attempt
 * @param {{baseMs?: number, capMs?: number, random?: () => number}} [opts]
 * @returns {number} milliseconds, an integer in [0, min(capMs, baseMs * 2^attempt)]
 */
export function backoffDelay(attempt, opts = {}) {
  const baseMs = opts.baseMs ?? BACKOFF_DEFAULTS.baseMs;
  const capMs = opts.capMs ?? BACKOFF_DEFAULTS.capMs;
  const random = opts.random ?? Math.random;
  // Clamp the exponent so 2^n cannot overflow into Infinity on long outages.
  const n = Math.max(0, Math.min(attempt | 0, 30));
  const ceiling = Math.min(capMs, baseMs * 2 ** n);
  return Math.floor(random() * (ceiling + 1));
}
