// Uploads on the demo page: Uppy's Dashboard (progress, pause/resume, retry,
// cancel, an error on each file) with @uppy/aws-s3 speaking the Companion
// protocol to the gateway, which signs each request for this channel. Small
// files go up in one presigned POST, big ones in parts that survive a
// dropped connection. Job cards follow the upload's own progress until the
// file is in the bucket; after that only MQTT events fill them.

import AwsS3 from '@uppy/aws-s3';
import Uppy from '@uppy/core';
import Dashboard from '@uppy/dashboard';
import { jobIdOfKey } from '@heraldgw/client';
import { formatBytes, h } from './dom.js';

const MiB = 1024 * 1024;

/**
 * @param {{client: import('@heraldgw/client').HeraldClient, target: HTMLElement, jobs: import('./jobs.js').JobBoard, refusals: Refusals}} opts
 */
export function createUploader({ client, target, jobs, refusals }) {
  const uppy = new Uppy({
    id: 'herald',
    autoProceed: true,
    // An empty file would be refused by the bucket's policy after the
    // fact; say so before anything is sent.
    onBeforeFileAdded: (file) => {
      if (file.size === 0) {
        refusals.add(file.name, 'is empty (0 bytes): there is nothing to convert');
        return false;
      }
      return true;
    },
  });
  uppy.use(Dashboard, {
    target,
    inline: true,
    width: '100%',
    height: 320,
    showProgressDetails: true,
    proudlyDisplayPoweredByUppy: false,
    // Previews would make the browser read and decode whole files of
    // hundreds of MiB; the job cards show the converted thumbnails.
    disableThumbnailGenerator: true,
    disabled: true,
    note: 'TIFF, PSD, PNG, JPEG, WAV… straight to the bucket; results arrive over MQTT.',
  });

  const fileJobs = new Map(); // Uppy file id -> job id
  function link(file, key) {
    const jobId = jobIdOfKey(key);
    if (!jobId) return '';
    const prev = fileJobs.get(file.id);
    if (prev !== jobId) {
      // A single-request upload retried gets a new key (and job).
      if (prev) jobs.forget(prev);
      fileJobs.set(file.id, jobId);
      jobs.startUpload(jobId, file);
    }
    return jobId;
  }

  // The declared size lets the gateway refuse a file over the limit
  // before its first byte is sent.
  uppy.on('file-added', (file) => uppy.setFileMeta(file.id, { size: file.size }));
  uppy.on('restriction-failed', (file, err) => refusals.add(file?.name ?? 'a file', err.message));
  uppy.on('upload-progress', (file, progress) => {
    const jobId = link(file, uppy.getFile(file.id)?.s3Multipart?.key);
    if (jobId) jobs.uploadProgress(jobId, progress.bytesUploaded, progress.bytesTotal ?? file.size);
  });
  uppy.on('upload-success', (file, response) => {
    const jobId = link(file, response?.body?.key);
    if (jobId) jobs.uploadDone(jobId);
  });
  uppy.on('upload-error', (file, err) => {
    const jobId = file ? fileJobs.get(file.id) : '';
    const message = explain(err.message, endpoint);
    if (jobId) jobs.uploadFailed(jobId, 'upload_failed', message);
    else refusals.add(file?.name ?? 'a file', message);
  });
  uppy.on('file-removed', (file) => {
    const jobId = fileJobs.get(file.id);
    fileJobs.delete(file.id);
    if (jobId) jobs.forget(jobId);
  });
  // Parts already in the bucket are not sent again: @uppy/aws-s3 asks
  // which it holds (ListParts) and goes on from there.
  uppy.on('back-online', () => uppy.retryAll());

  let channel = '';
  let endpoint = null;
  /**
   * Asks for an upload endpoint of the current session: the first time, for
   * a new channel, and when the one in use has less than an hour left (it
   * is not swapped under an upload in progress; the next session event
   * tries again).
   */
  async function useSession(session) {
    if (!session) return endpoint;
    const fresh = endpoint && Date.parse(endpoint.expiresAt) - Date.now() > 3600_000;
    if (session.channel === channel && fresh) return endpoint;
    if (endpoint && session.channel === channel && Object.keys(uppy.getState().currentUploads).length > 0) return endpoint;
    channel = session.channel;
    try {
      endpoint = await client.uploadEndpoint();
    } catch (err) {
      const hint = err.status === 404 || err.code === 'unavailable' ? ' (this gateway runs without uploads)' : '';
      refusals.add('Uploads', `unavailable: ${err.message}${hint}`);
      uppy.getPlugin('Dashboard')?.setOptions({ disabled: true });
      return null;
    }
    const old = uppy.getPlugin('AwsS3');
    if (old) uppy.removePlugin(old);
    uppy.use(AwsS3, {
      companionEndpoint: endpoint.companionEndpoint,
      // One request up to Uppy's usual 100 MiB (or the app's smaller
      // single-upload limit), parts above.
      shouldUseMultipart: (file) => (file.size ?? 0) > Math.min(100 * MiB, endpoint.maxUploadBytes),
    });
    uppy.setOptions({
      restrictions: {
        maxFileSize: endpoint.maxObjectBytes,
        allowedFileTypes: endpoint.allowedTypes.length ? endpoint.allowedTypes : null,
      },
    });
    uppy.getPlugin('Dashboard')?.setOptions({ disabled: false });
    return endpoint;
  }

  return { uppy, useSession, get endpoint() { return endpoint; } };
}

// @uppy/aws-s3 reports a refusal of the gateway by its status text only
// ("Companion request failed: Request Entity Too Large"); say what the
// gateway checks.
const HINTS = {
  'Request Entity Too Large': (ep) => `the file is over this app's limit of ${formatBytes(ep?.maxObjectBytes)}`,
  'Unsupported Media Type': (ep) => (ep?.allowedTypes?.length ? `this app takes ${ep.allowedTypes.join(', ')}` : 'this type of file is not converted here'),
  Forbidden: () => 'the upload is not this session’s, or this page’s origin is not allowed',
  Unauthorized: () => 'the session has ended: reload the page',
  'Not Found': () => 'the upload is gone (completed, aborted or expired): remove the file and add it again',
};

function explain(message, ep) {
  const status = /^Companion request failed: (.+)$/.exec(message)?.[1];
  const hint = status && HINTS[status]?.(ep);
  return hint ? `${message}: ${hint}` : message;
}

/** A list of files that were refused, one line each: no message hides another. */
export class Refusals {
  /** @param {HTMLElement} list */
  constructor(list, max = 20) {
    this.list = list;
    this.max = max;
  }

  add(name, message) {
    // Uppy may report one failure twice in a row.
    const now = Date.now();
    const same = [...this.list.children].some((li) => li.dataset.file === name && li.dataset.message === message && now - Number(li.dataset.at) < 1000);
    if (same) return;
    this.list.prepend(h('li', { class: 'refusal', dataset: { file: name, message, at: String(now) } }, h('strong', null, name), ` ${message}`));
    while (this.list.children.length > this.max) this.list.lastElementChild.remove();
    this.list.hidden = false;
  }
}
