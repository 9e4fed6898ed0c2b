// The job API: follow one job's events by id, in the order that makes sense
// (a listener added late still sees what already arrived), or iterate them
// until the job completes or fails.

import { isTerminal, JobView } from './events.js';

/**
 * Jobs keeps a JobView per job seen on the channel (the most recent `limit`
 * jobs) and hands their events to listeners and iterators.
 */
export class Jobs {
  #views = new Map(); // jobId -> JobView, insertion order = age
  #listeners = new Map(); // jobId -> Set<fn>
  #any = new Set();
  #limit;

  /** @param {number} [limit] how many jobs to remember */
  constructor(limit = 1000) {
    this.#limit = limit;
  }

  /** The state of a job seen so far, or undefined. */
  get(jobId) {
    return this.#views.get(jobId);
  }

  /** Every job seen, oldest first. */
  all() {
    return [...this.#views.values()];
  }

  /**
   * Calls fn(event, view) for each event of the job: first those already
   * received (by seq), then each new one. Returns a function that stops it.
   * With jobId '*', every job's events.
   */
  on(jobId, fn) {
    if (jobId === '*') {
      this.#any.add(fn);
      return () => this.#any.delete(fn);
    }
    let set = this.#listeners.get(jobId);
    if (!set) this.#listeners.set(jobId, (set = new Set()));
    set.add(fn);
    const view = this.#views.get(jobId);
    if (view) for (const env of [...view.events]) safeCall(fn, env, view);
    return () => {
      set.delete(fn);
      if (set.size === 0 && this.#listeners.get(jobId) === set) this.#listeners.delete(jobId);
    };
  }

  /**
   * The job's events as an async iterator that ends after its terminal
   * event (job.completed or job.failed), or when `signal` aborts (the
   * iterator then throws the abort reason).
   * @param {string} jobId
   * @param {{signal?: AbortSignal}} [opts]
   */
  events(jobId, opts = {}) {
    const queue = [];
    let wake = null;
    let done = false;
    let failure = null;
    const push = () => {
      if (wake) {
        const w = wake;
        wake = null;
        w();
      }
    };
    let off = () => {};
    const abort = () => {
      failure = opts.signal.reason ?? new Error('aborted');
      off();
      push();
    };
    if (opts.signal?.aborted) failure = opts.signal.reason ?? new Error('aborted');
    else {
      opts.signal?.addEventListener('abort', abort, { once: true });
      off = this.on(jobId, (env) => {
        queue.push(env);
        push();
      });
    }
    const finish = () => {
      done = true;
      off();
      opts.signal?.removeEventListener('abort', abort);
    };
    return {
      [Symbol.asyncIterator]() {
        return this;
      },
      async next() {
        for (;;) {
          if (done) return { value: undefined, done: true };
          if (queue.length) {
            const env = queue.shift();
            if (env.type === 'job.completed' || env.type === 'job.failed') finish();
            return { value: env, done: false };
          }
          if (failure) {
            finish();
            throw failure;
          }
          await new Promise((r) => (wake = r));
        }
      },
      async return() {
        finish();
        return { value: undefined, done: true };
      },
    };
  }

  /**
   * Resolves with the job's terminal event (job.completed or job.failed).
   * @param {string} jobId
   * @param {{signal?: AbortSignal}} [opts]
   */
  async wait(jobId, opts = {}) {
    let last;
    for await (const env of this.events(jobId, opts)) last = env;
    return last;
  }

  /** Applies a job event (already deduplicated). @internal */
  apply(env, meta) {
    let view = this.#views.get(env.jobId);
    if (!view) {
      view = new JobView(env.jobId);
      this.#views.set(env.jobId, view);
      this.#evict();
    }
    view.apply(env);
    for (const fn of [...(this.#listeners.get(env.jobId) ?? [])]) safeCall(fn, env, view, meta);
    for (const fn of [...this.#any]) safeCall(fn, env, view, meta);
  }

  #evict() {
    for (const [id, view] of this.#views) {
      if (this.#views.size <= this.#limit) return;
      // Jobs someone listens to, or still running, are kept longest.
      if (this.#listeners.has(id) || !isTerminal(view.state)) continue;
      this.#views.delete(id);
    }
    while (this.#views.size > this.#limit) this.#views.delete(this.#views.keys().next().value);
  }
}

function safeCall(fn, ...args) {
  try {
    fn(...args);
  } catch (err) {
    console.error('herald client: a job listener threw', err);
  }
}
