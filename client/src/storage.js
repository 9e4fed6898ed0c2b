// Where a session is kept between page loads: sessionStorage in a browser tab
// (so a reload keeps the channel, and with it the persistent MQTT session),
// memory elsewhere. Any object with getItem/setItem/removeItem will do.

/** @returns {{getItem(k: string): string|null, setItem(k: string, v: string): void, removeItem(k: string): void}} */
export function defaultStorage() {
  try {
    if (typeof sessionStorage !== 'undefined') {
      const probe = '__herald_probe__';
      sessionStorage.setItem(probe, '1');
      sessionStorage.removeItem(probe);
      return sessionStorage;
    }
  } catch {
    // Storage disabled (private mode, sandboxed frame): memory below.
  }
  return memoryStorage();
}

/** A Web Storage stand-in that lives as long as the page or process. */
export function memoryStorage() {
  const m = new Map();
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => void m.set(k, String(v)),
    removeItem: (k) => void m.delete(k),
  };
}

/** Reads a JSON value; a corrupt or missing entry is null. */
export function load(storage, key) {
  try {
    return JSON.parse(storage.getItem(key) ?? 'null');
  } catch {
    return null;
  }
}

/** Writes a JSON value; a full or disabled storage is not an error. */
export function save(storage, key, value) {
  try {
    if (value === null) storage.removeItem(key);
    else storage.setItem(key, JSON.stringify(value));
  } catch {
    // Quota or disabled storage: the session still works for this page.
  }
}
