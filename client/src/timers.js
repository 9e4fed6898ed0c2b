// An MQTT.js `timerVariant` (an object with set/clear, interval semantics)
// backed by timer-worker.js, falling back to the page's own setInterval when
// the worker cannot start (CSP, missing file, old browser).

/**
 * @param {string|URL} workerURL
 * @returns {{set: (fn: () => void, ms: number) => number, clear: (id: number) => void}}
 */
export function workerTimer(workerURL) {
  const timers = new Map(); // id -> {fn, ms, native}
  let nextId = 1;
  let worker = null;
  try {
    worker = new Worker(workerURL);
  } catch {
    worker = null;
  }
  const goNative = () => {
    if (worker) worker.terminate();
    worker = null;
    for (const t of timers.values()) {
      if (t.native === undefined) t.native = setInterval(t.fn, t.ms);
    }
  };
  if (worker) {
    worker.addEventListener('message', (e) => timers.get(e.data)?.fn());
    worker.addEventListener('error', goNative);
  }
  return {
    set(fn, ms) {
      const id = nextId++;
      const t = { fn, ms, native: undefined };
      timers.set(id, t);
      if (worker) worker.postMessage({ op: 'set', id, ms });
      else t.native = setInterval(fn, ms);
      return id;
    },
    clear(id) {
      const t = timers.get(id);
      if (!t) return;
      timers.delete(id);
      if (t.native !== undefined) clearInterval(t.native);
      if (worker) worker.postMessage({ op: 'clear', id });
    },
  };
}
