// Entry point of the demo page (bundled by esbuild into web/static/dist/app.js).
// Everything that talks to the gateway is @heraldgw/client: it mints or
// resumes the session, keeps the MQTT connection, renews the token, dedupes
// events and follows jobs. This file only renders what it reports.

import { contentTypeOf, HeraldClient, workerTimer } from '@heraldgw/client';
import { JobBoard } from './jobs.js';
import { EventLog } from './log.js';
import { createUploader, Refusals } from './uploader.js';

const $ = (sel) => document.querySelector(sel);

const params = new URLSearchParams(window.location.search);
const app = params.get('app') || 'demo';

const statusEl = $('#status');
const detailEl = $('#status-detail');
const channelEl = $('#channel');
const topicEl = $('#topic');
const expiresEl = $('#expires');

const log = new EventLog($('#events'), $('#events-empty'));
const jobs = new JobBoard($('#jobs'), $('#jobs-empty'));

const STATUS_TEXT = { idle: 'Starting', connecting: 'Connecting', connected: 'Connected', reconnecting: 'Reconnecting', offline: 'Offline', closed: 'Closed' };

const client = new HeraldClient({
  app,
  // Keepalive ticks from a worker: background tabs throttle page timers.
  // Built beside this bundle (see the build script in package.json).
  mqttOptions: { timerVariant: workerTimer(new URL('./timer-worker.js', import.meta.url)) },
});

// Test and console hooks.
const herald = {
  app,
  client,
  get channel() {
    return client.channel;
  },
  get session() {
    return client.session;
  },
  get duplicates() {
    return client.duplicates;
  },
};
window.herald = herald;

function setStatus(state, detail) {
  statusEl.dataset.state = state;
  statusEl.textContent = STATUS_TEXT[state] ?? state;
  detailEl.textContent = detail ?? '';
  document.body.dataset.connection = state;
}

function showSession(session, reason) {
  channelEl.textContent = session.channel;
  channelEl.dataset.channel = session.channel;
  topicEl.textContent = session.topic || `apps/${session.app}/channels/${session.channel}/#`;
  expiresEl.textContent = session.expiresAt ? new Date(session.expiresAt).toLocaleString() : '—';
  expiresEl.title = session.expiresAt ?? '';
  expiresEl.dataset.reason = reason;
  $('#try-curl').textContent = curlExample(session);
  uploader.useSession(session).then((ep) => {
    if (ep) $('#uploader').dataset.ready = 'true';
  });
}

function curlExample(session) {
  const body = JSON.stringify({ v: 1, type: 'x.hello', id: 'evt_hello_1', channel: session.channel, seq: 1, data: { message: 'hi' } });
  return `curl -X POST ${window.location.origin}/v1/events \\\n  -H 'Content-Type: application/json' -H "Authorization: Bearer $(cat data/demo-api-key)" \\\n  -d '${body}'`;
}

// A session the gateway refuses for good (no such app, no anonymous
// sessions) is said plainly instead of a page retrying silently.
function showAppProblem(err) {
  let text = '';
  if (err?.name === 'ApiError' && err.status === 404 && /unknown app/.test(err.message)) {
    text = app === 'demo'
      ? 'This gateway has no "demo" app: it is turned off in its configuration (demo: false, HERALD_DEMO=false). Open this page as /?app=<id> for an app that allows anonymous sessions from this origin.'
      : `This gateway has no app "${app}". Check the ?app= parameter.`;
  } else if (err?.name === 'ApiError' && (err.status === 401 || err.status === 403)) {
    text = `The gateway refuses sessions for app "${app}" from this page (${err.code}: ${err.message}). The app must allow anonymous sessions and this origin.`;
  }
  if (!text) return;
  $('#app-problem-text').textContent = text;
  $('#app-problem').hidden = false;
}

const uploader = createUploader({ client, target: $('#uploader'), jobs, refusals: new Refusals($('#upload-errors')) });
herald.uppy = uploader.uppy;

client.on('state', setStatus);
client.on('error', showAppProblem);
client.on('session', () => ($('#app-problem').hidden = true));
client.on('session', showSession);
client.on('event', (env, meta) => log.add(env, meta.topic, { retained: meta.retained }));
client.on('invalid', ({ topic, error }) => log.addInvalid(topic, error));
client.jobs.on('*', (env, view) => jobs.show(view));
client.connect().catch(() => {
  // Only close() rejects; the state pill shows everything else.
});

$('#copy-channel').addEventListener('click', async () => {
  if (!client.channel) return;
  try {
    await navigator.clipboard.writeText(client.channel);
    $('#copy-channel').textContent = 'Copied';
    setTimeout(() => ($('#copy-channel').textContent = 'Copy'), 1500);
  } catch {
    // Clipboard needs a secure context; the id is selectable text anyway.
  }
});

$('#clear-log').addEventListener('click', () => {
  $('#events').replaceChildren();
  $('#events-empty').hidden = false;
});

herald.contentTypeOf = contentTypeOf;
