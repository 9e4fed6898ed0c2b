// Entry point of the demo page (bundled by esbuild into web/static/dist/app.js).
// Flow: mint a session → connect MQTT.js to the broker on the channel → show
// every event live; uploads go straight to the bucket and their job cards
// follow the job's MQTT events alone.

import mqtt from 'mqtt';
import { Connection } from './connection.js';
import { Deduper, parseEnvelope } from './events.js';
import { JobBoard } from './jobs.js';
import { EventLog } from './log.js';
import { contentTypeOf, postToBucket, requestUpload } from './upload.js';

const $ = (sel) => document.querySelector(sel);

const params = new URLSearchParams(window.location.search);
const app = params.get('app') || 'demo';

const statusEl = $('#status');
const detailEl = $('#status-detail');
const channelEl = $('#channel');
const topicEl = $('#topic');
const expiresEl = $('#expires');
const uploadMsg = $('#upload-message');

const log = new EventLog($('#events'), $('#events-empty'));
const jobs = new JobBoard($('#jobs'), $('#jobs-empty'));
const deduper = new Deduper();

const STATUS_TEXT = { connecting: 'Connecting', connected: 'Connected', reconnecting: 'Reconnecting', offline: 'Offline' };

// Test and console hooks. `client` follows reconnects that mint a new session.
const herald = {
  app,
  channel: null,
  session: null,
  connection: null,
  get client() {
    return this.connection?.client ?? null;
  },
  duplicates: 0,
};
window.herald = herald;

function setStatus(state, detail) {
  statusEl.dataset.state = state;
  statusEl.textContent = STATUS_TEXT[state] ?? state;
  detailEl.textContent = detail ?? '';
  document.body.dataset.connection = state;
}

function showSession(session) {
  herald.channel = session.channel;
  herald.session = session;
  channelEl.textContent = session.channel;
  channelEl.dataset.channel = session.channel;
  topicEl.textContent = session.topic || `apps/${session.app}/channels/${session.channel}/#`;
  expiresEl.textContent = session.expiresAt ? new Date(session.expiresAt).toLocaleString() : '—';
  expiresEl.title = session.expiresAt ?? '';
  $('#try-curl').textContent = curlExample(session);
  $('#upload').classList.remove('disabled');
  $('#file').disabled = false;
}

function curlExample(session) {
  const body = JSON.stringify({ v: 1, type: 'x.hello', id: 'evt_hello_1', channel: session.channel, seq: 1, data: { message: 'hi' } });
  return `curl -X POST ${window.location.origin}/v1/events \\\n  -H 'Content-Type: application/json' -H "Authorization: Bearer $HERALD_DEMO_API_KEY" \\\n  -d '${body}'`;
}

function onMessage(topic, payload, packet) {
  const parsed = parseEnvelope(payload);
  if (parsed.error) {
    log.addInvalid(topic, parsed.error);
    return;
  }
  const env = parsed.env;
  if (!deduper.accept(env.id)) {
    herald.duplicates++;
    return;
  }
  log.add(env, topic, { retained: packet?.retain });
  const m = /^apps\/[^/]+\/channels\/[^/]+\/jobs\/([^/]+)$/.exec(topic);
  if (env.type.startsWith('job.') && (env.jobId || m)) {
    jobs.apply(env.jobId ? env : { ...env, jobId: m[1] });
  }
}

const connection = new Connection({
  mqtt,
  app,
  onState: setStatus,
  onMessage,
  onSession: showSession,
  // Built beside this bundle (see the build script in package.json).
  timerWorkerURL: new URL('./timer-worker.js', import.meta.url),
});
herald.connection = connection;
connection.start();

// --- uploads ---------------------------------------------------------------

function say(text, kind = 'info') {
  uploadMsg.textContent = text;
  uploadMsg.dataset.kind = kind;
  uploadMsg.hidden = !text;
}

async function uploadFile(file) {
  const session = herald.session;
  if (!session) {
    say('No session yet: wait for the connection.', 'error');
    return;
  }
  let target;
  try {
    target = await requestUpload(session, file);
  } catch (err) {
    const hint = err.status === 404 || err.code === 'unavailable' ? ' (this gateway runs without uploads)' : '';
    say(`${file.name}: ${err.message}${hint}`, 'error');
    return;
  }
  say('');
  jobs.startUpload(target.jobId, file);
  if (Number.isFinite(target.maxBytes) && target.maxBytes > 0 && file.size > target.maxBytes) {
    jobs.uploadFailed(target.jobId, 'too_large', `the file is larger than the ${target.maxBytes} bytes allowed`);
    return;
  }
  try {
    await postToBucket(target, file, (loaded, total) => jobs.uploadProgress(target.jobId, loaded, total));
    jobs.uploadDone(target.jobId);
  } catch (err) {
    jobs.uploadFailed(target.jobId, err.code ?? 'upload_failed', err.message);
  }
}

function uploadAll(files) {
  for (const file of files) uploadFile(file);
}

const drop = $('#upload');
const input = $('#file');
input.addEventListener('change', () => {
  uploadAll([...input.files]);
  input.value = '';
});
for (const type of ['dragenter', 'dragover']) {
  drop.addEventListener(type, (e) => {
    e.preventDefault();
    drop.classList.add('dragging');
  });
}
for (const type of ['dragleave', 'drop']) {
  drop.addEventListener(type, () => drop.classList.remove('dragging'));
}
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  if (herald.session) uploadAll([...(e.dataTransfer?.files ?? [])]);
});

$('#copy-channel').addEventListener('click', async () => {
  if (!herald.channel) return;
  try {
    await navigator.clipboard.writeText(herald.channel);
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

// Exposed for tests that feed a File directly.
herald.upload = uploadFile;
herald.contentTypeOf = contentTypeOf;
