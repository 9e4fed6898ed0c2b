// Job cards: one <article class="job"> per job, driven by the upload's own
// progress until the file is in the bucket and by MQTT job events after that.
// Nothing here asks the server anything: the events carry the whole state.

import { JobView } from '@heraldgw/client';
import { formatBytes, h } from './dom.js';

/** Owns the job cards inside #jobs. */
export class JobBoard {
  /** @param {HTMLElement} container */
  constructor(container, empty) {
    this.container = container;
    this.empty = empty;
    this.jobs = new Map();
  }

  get(jobId) {
    let job = this.jobs.get(jobId);
    if (!job) {
      job = { view: new JobView(jobId), el: h('article', { class: 'job', dataset: { jobId } }), filename: '', upload: null };
      this.jobs.set(jobId, job);
      this.container.prepend(job.el);
      if (this.empty) this.empty.hidden = true;
    }
    return job;
  }

  /** A card for a file whose upload is starting. */
  startUpload(jobId, file) {
    const job = this.get(jobId);
    job.filename = file.name;
    job.size = file.size;
    job.upload = { loaded: 0, total: file.size, done: false };
    this.render(job);
    return job;
  }

  uploadProgress(jobId, loaded, total) {
    const job = this.get(jobId);
    job.upload = { loaded, total: total || job.size, done: false };
    // A retried or resumed upload is going again.
    job.uploadError = null;
    this.render(job);
  }

  uploadDone(jobId) {
    const job = this.get(jobId);
    job.upload = { ...job.upload, loaded: job.upload?.total ?? 0, done: true };
    this.render(job);
  }

  /**
   * The browser saw the upload fail. Job events that still arrive win: the
   * bucket may have stored the file while its answer was lost or blocked
   * (CORS), and the events are the truth about the job.
   */
  uploadFailed(jobId, code, message) {
    const job = this.get(jobId);
    job.uploadError = { code, message };
    this.render(job);
  }

  /**
   * Drops the card of an upload that was cancelled or replaced before any
   * event of its job arrived; a job with events keeps its card.
   */
  forget(jobId) {
    const job = this.jobs.get(jobId);
    if (!job || job.view.state !== 'pending') return;
    job.el.remove();
    this.jobs.delete(jobId);
    if (this.empty && this.jobs.size === 0) this.empty.hidden = false;
  }

  /**
   * Shows the client's view of a job after one of its events; creates the
   * card for jobs started elsewhere (POST /v1/jobs, another service).
   * @param {JobView} view
   */
  show(view) {
    const job = this.get(view.jobId);
    job.view = view;
    this.render(job);
  }

  render(job) {
    const v = job.view;
    const state = cardState(job);
    const error = state === 'failed' ? (v.error ?? job.uploadError) : null;
    const name = job.filename || filenameFromKey(v.input?.key) || v.jobId;
    const el = job.el;
    el.dataset.state = state;
    const parts = [
      h(
        'header',
        { class: 'job-head' },
        h('span', { class: 'job-name', title: name }, name),
        h('span', { class: `job-state state-${state}` }, stateLabel(state)),
      ),
      h('div', { class: 'job-meta' }, h('code', { class: 'job-id' }, v.jobId), job.size ? ` · ${formatBytes(job.size)}` : null),
      this.progressBar(job),
      state === 'completed' ? renderOutputs(v.outputs) : null,
      error
        ? h(
            'div',
            { class: 'job-error', role: 'alert' },
            h('code', { class: 'error-code' }, error.code ?? 'error'),
            ' ',
            h('span', { class: 'error-message' }, error.message ?? ''),
          )
        : null,
      h('div', { class: 'job-timeline' }, v.events.map((e) => h('span', { class: 'tick', title: e.time ?? '' }, `${e.seq ?? '?'} ${e.type.replace(/^job\./, '')}`))),
    ];
    el.replaceChildren(...parts.filter(Boolean));
  }

  progressBar(job) {
    const v = job.view;
    let fraction = null;
    let label = '';
    let kind = 'upload';
    if (cardState(job) === 'uploading' && job.upload) {
      fraction = job.upload.total ? job.upload.loaded / job.upload.total : 0;
      label = job.upload.done
        ? 'Uploaded, waiting for the processor…'
        : `Uploading ${Math.round(fraction * 100)}% (${formatBytes(job.upload.loaded)} of ${formatBytes(job.upload.total)})`;
    } else if (v.state === 'accepted') {
      fraction = 0;
      kind = 'work';
      label = 'Accepted, converting…';
    } else if (v.state === 'progress' && v.progress) {
      const { done = 0, total = 0 } = v.progress;
      fraction = total ? done / total : 0;
      kind = 'work';
      label = `Converting: ${done} of ${total} steps`;
    } else {
      return null;
    }
    const pct = Math.max(0, Math.min(100, Math.round(fraction * 100)));
    return h(
      'div',
      { class: `progress progress-${kind}` },
      h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': String(pct) },
        h('div', { class: 'bar-fill', style: `width:${pct}%` })),
      h('div', { class: 'bar-label' }, label),
    );
  }
}

// A job with no event yet is still uploading (or its upload failed).
function cardState(job) {
  if (job.view.state !== 'pending') return job.view.state;
  return job.uploadError ? 'failed' : 'uploading';
}

function stateLabel(state) {
  return { uploading: 'uploading', accepted: 'accepted', progress: 'converting', completed: 'done', failed: 'failed' }[state] ?? state;
}

/** The file name at the end of an S3 key (keys arrive URL-encoded, + is a space). */
export function filenameFromKey(key) {
  if (typeof key !== 'string' || key === '') return '';
  const last = key.split('/').pop();
  try {
    return decodeURIComponent(last.replace(/\+/g, ' '));
  } catch {
    return last;
  }
}

function renderOutputs(outputs) {
  if (!outputs.length) return h('p', { class: 'outputs-none' }, 'Completed with no outputs.');
  return h('div', { class: 'outputs' }, outputs.map(renderOutput));
}

function renderOutput(o) {
  const type = String(o.contentType ?? '');
  const url = safeURL(o.url);
  let media;
  if (url && type.startsWith('image/')) {
    media = h('a', { href: url, target: '_blank', rel: 'noopener' }, h('img', { src: url, alt: o.name ?? 'output', loading: 'lazy' }));
  } else if (url && type.startsWith('audio/')) {
    media = h('audio', { controls: true, preload: 'metadata', src: url });
  } else if (url && type.startsWith('video/')) {
    media = h('video', { controls: true, preload: 'metadata', src: url });
  } else if (url) {
    media = h('a', { class: 'output-link', href: url, target: '_blank', rel: 'noopener' }, 'download');
  }
  const facts = [
    type,
    Number.isFinite(o.width) && Number.isFinite(o.height) ? `${o.width}×${o.height}` : null,
    formatDuration(o),
    Number.isFinite(o.bytes) ? formatBytes(o.bytes) : null,
  ].filter(Boolean);
  // Very wide images (waveforms) get a whole row so they stay readable.
  const wide = type.startsWith('image/') && o.width > 0 && o.height > 0 && o.width / o.height >= 3;
  // Outputs of one name may come in several formats: show the file name.
  const label = filenameFromKey(o.key) || o.name || 'output';
  return h(
    'figure',
    { class: `output output-${type.split('/')[0] || 'file'}${wide ? ' output-wide' : ''}`, dataset: { name: o.name ?? '', contentType: type } },
    media,
    h('figcaption', null, h('strong', { title: o.name ?? '' }, label), h('span', { class: 'facts' }, facts.join(' · '))),
  );
}

// Accepts `duration` (seconds), `durationSeconds` or `durationMs`; the
// envelope example in the design lists none, so be liberal.
function formatDuration(o) {
  let s = null;
  if (Number.isFinite(o.duration)) s = o.duration;
  else if (Number.isFinite(o.durationSeconds)) s = o.durationSeconds;
  else if (Number.isFinite(o.durationMs)) s = o.durationMs / 1000;
  if (s === null) return null;
  return s >= 60 ? `${Math.floor(s / 60)}:${String(Math.round(s % 60)).padStart(2, '0')} min` : `${s.toFixed(2)} s`;
}

// Only http(s) URLs are put into src/href: an event is data, not code.
function safeURL(raw) {
  if (typeof raw !== 'string') return '';
  try {
    const u = new URL(raw, window.location.href);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : '';
  } catch {
    return '';
  }
}
