// Dedicated worker that ticks MQTT.js's keepalive timers. Browsers throttle
// timers of background tabs (down to one wake-up a minute), which would let a
// 60 s keepalive lapse; timers inside a dedicated worker keep their pace.
// Served as its own same-origin file because the gateway's CSP (rightly)
// refuses blob: workers, which is what MQTT.js's default timer uses.

const timers = new Map();

self.addEventListener('message', (e) => {
  const { op, id, ms } = e.data ?? {};
  if (op === 'set') {
    timers.set(id, setInterval(() => self.postMessage(id), ms));
  } else if (op === 'clear') {
    clearInterval(timers.get(id));
    timers.delete(id);
  }
});
