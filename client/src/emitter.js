// A small event emitter that behaves the same in browsers and Node: a
// listener that throws is reported on the console and never stops the
// others (or the MQTT message loop that called emit).

export class Emitter {
  #listeners = new Map();

  /**
   * Adds a listener; returns a function that removes it.
   * @param {string} type
   * @param {(...args: any[]) => void} fn
   */
  on(type, fn) {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, (set = new Set()));
    set.add(fn);
    return () => this.off(type, fn);
  }

  /** Removes a listener added with on(). */
  off(type, fn) {
    this.#listeners.get(type)?.delete(fn);
  }

  /** Calls every listener of `type`; returns whether there was one. */
  emit(type, ...args) {
    const set = this.#listeners.get(type);
    if (!set || set.size === 0) return false;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        console.error(`herald client: a "${type}" listener threw`, err);
      }
    }
    return true;
  }
}
