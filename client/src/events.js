// Event bookkeeping: de-duplication by envelope id (MQTT delivery is
// at-least-once, and retained final events come back on every subscribe) and
// per-job state that only moves forward by `seq`.

/** Job states, in the order a job normally walks through them. */
export const JOB_STATES = Object.freeze(['pending', 'accepted', 'progress', 'completed', 'failed']);

const TERMINAL = new Set(['completed', 'failed']);

/** Whether a job state is final (completed or failed). */
export function isTerminal(state) {
  return TERMINAL.has(state);
}

/** The job id of a channel topic `apps/{app}/channels/{channel}/jobs/{jobId}`, or ''. */
export function jobIdOfTopic(topic) {
  const m = /^apps\/[^/]+\/channels\/[^/]+\/jobs\/([^/]+)$/.exec(topic ?? '');
  return m ? m[1] : '';
}

/** Maps an event type to the job state it puts the job in. */
export function stateForType(type) {
  switch (type) {
    case 'job.accepted':
      return 'accepted';
    case 'job.progress':
      return 'progress';
    case 'job.completed':
      return 'completed';
    case 'job.failed':
      return 'failed';
    default:
      return null;
  }
}

/**
 * Remembers the ids of the last `limit` events so a redelivery is recognised.
 * A bounded insertion-ordered Set keeps memory flat on a tab left open for days.
 */
export class Deduper {
  constructor(limit = 5000) {
    this.limit = limit;
    this.seen = new Set();
  }

  /** Returns true the first time `id` is offered, false afterwards. */
  accept(id) {
    if (typeof id !== 'string' || id === '') return true; // cannot dedupe; show it
    if (this.seen.has(id)) return false;
    this.seen.add(id);
    if (this.seen.size > this.limit) {
      this.seen.delete(this.seen.values().next().value);
    }
    return true;
  }
}

/**
 * Parses an MQTT payload into an envelope, or returns an error string.
 * @param {Uint8Array|string} payload
 */
export function parseEnvelope(payload) {
  let text = payload;
  if (typeof payload !== 'string') text = new TextDecoder().decode(payload);
  let env;
  try {
    env = JSON.parse(text);
  } catch (err) {
    return { error: `not JSON: ${err.message}` };
  }
  if (env === null || typeof env !== 'object' || Array.isArray(env)) {
    return { error: 'not a JSON object' };
  }
  if (typeof env.type !== 'string') return { error: 'missing "type"' };
  return { env };
}

/**
 * The state of one job as seen from its events. Events may arrive out of
 * order (a redelivered progress after the completion); the job follows the
 * event with the highest seq, and a terminal state is never left.
 */
export class JobView {
  constructor(jobId) {
    this.jobId = jobId;
    this.state = 'pending';
    this.lastSeq = -Infinity;
    this.events = []; // sorted by seq
    this.progress = null;
    this.outputs = [];
    this.error = null;
    this.input = null;
  }

  /**
   * Applies an event; returns true when the visible state changed.
   * @param {object} env a job.* envelope for this job
   */
  apply(env) {
    const seq = Number.isFinite(env.seq) ? env.seq : this.events.length;
    insertSorted(this.events, env, seq);
    if (env.input && !this.input) this.input = env.input;
    const next = stateForType(env.type);
    if (!next) return false;
    if (TERMINAL.has(this.state) && !TERMINAL.has(next)) return false;
    if (seq < this.lastSeq && !(TERMINAL.has(next) && !TERMINAL.has(this.state))) return false;
    this.lastSeq = Math.max(this.lastSeq, seq);
    this.state = next;
    if (env.progress) this.progress = env.progress;
    if (next === 'completed') {
      this.outputs = Array.isArray(env.outputs) ? env.outputs : [];
      if (this.progress && Number.isFinite(this.progress.total)) {
        this.progress = { done: this.progress.total, total: this.progress.total };
      }
    }
    if (next === 'failed') this.error = env.error ?? { code: 'unknown', message: '' };
    return true;
  }
}

function insertSorted(list, env, seq) {
  let i = list.length;
  while (i > 0 && (list[i - 1].seq ?? 0) > seq) i--;
  list.splice(i, 0, env);
}
