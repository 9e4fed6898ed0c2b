// The live event log: one <li> per distinct event, newest first.

import { formatTime, h } from './dom.js';

const MAX_ITEMS = 500;

/** Renders events into the #events list. */
export class EventLog {
  /** @param {HTMLElement} list the <ol id="events"> */
  constructor(list, empty) {
    this.list = list;
    this.empty = empty;
    this.count = 0;
  }

  /**
   * @param {object} env the parsed envelope
   * @param {string} topic the MQTT topic it came on
   * @param {{retained?: boolean}} [flags]
   */
  add(env, topic, flags = {}) {
    const details = { ...env };
    for (const k of ['v', 'type', 'id', 'time', 'app', 'channel', 'jobId', 'seq']) delete details[k];
    const kind = (env.type.split('.')[0] || 'event').replace(/[^a-z0-9_-]/gi, '');
    const li = h(
      'li',
      {
        class: `event event-${kind}`,
        dataset: {
          eventId: env.id ?? '',
          type: env.type,
          jobId: env.jobId ?? '',
          seq: env.seq ?? '',
        },
      },
      h(
        'div',
        { class: 'event-head' },
        h('span', { class: `badge badge-${kind}` }, env.type),
        h('time', { datetime: env.time ?? '', title: env.time ?? '' }, formatTime(env.time)),
        env.jobId ? h('span', { class: 'job-ref', title: 'job id' }, env.jobId) : null,
        Number.isFinite(env.seq) ? h('span', { class: 'seq' }, `#${env.seq}`) : null,
        flags.retained ? h('span', { class: 'flag' }, 'retained') : null,
      ),
      h('div', { class: 'event-meta' }, h('code', null, env.id ?? '(no id)'), ' on ', h('code', null, topic)),
      Object.keys(details).length ? h('pre', { class: 'event-details' }, JSON.stringify(details, null, 2)) : null,
    );
    this.list.prepend(li);
    this.count++;
    while (this.list.children.length > MAX_ITEMS) this.list.lastElementChild.remove();
    if (this.empty) this.empty.hidden = true;
    return li;
  }

  /** Logs a payload that could not be parsed, so it is not silently lost. */
  addInvalid(topic, reason) {
    const li = h(
      'li',
      { class: 'event event-invalid', dataset: { type: 'invalid' } },
      h('div', { class: 'event-head' }, h('span', { class: 'badge badge-invalid' }, 'invalid'), h('time', null, formatTime())),
      h('div', { class: 'event-meta' }, reason, ' on ', h('code', null, topic)),
    );
    this.list.prepend(li);
    if (this.empty) this.empty.hidden = true;
  }
}
