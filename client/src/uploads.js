// Direct-to-bucket uploads: the gateway presigns a POST for one exact key and
// the file goes straight to S3 (or localaws). After that nothing is asked
// about the job: its events arrive over MQTT.

import { call } from './api.js';

// Browsers leave File.type empty for formats they do not know (PSD, often
// TIFF on some systems); the presigned policy pins a content type, so guess.
const TYPES_BY_EXT = {
  tif: 'image/tiff',
  tiff: 'image/tiff',
  psd: 'image/vnd.adobe.photoshop',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  gif: 'image/gif',
  heic: 'image/heic',
  wav: 'audio/wav',
  mp3: 'audio/mpeg',
  flac: 'audio/flac',
  ogg: 'audio/ogg',
  m4a: 'audio/mp4',
  mp4: 'video/mp4',
  mov: 'video/quicktime',
};

/** The content type to declare for `file`. */
export function contentTypeOf(file) {
  if (file.type) return file.type;
  const ext = (file.name.split('.').pop() || '').toLowerCase();
  return TYPES_BY_EXT[ext] ?? 'application/octet-stream';
}

/** An upload to the bucket that did not succeed. */
export class UploadError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = 'UploadError';
    this.code = code;
  }
}

/**
 * Sends `file` to a presigned POST target: XMLHttpRequest where it exists
 * (only XHR reports upload progress), fetch elsewhere (Node).
 * @param {{url: string, fields: Record<string,string>}} grant
 * @param {Blob & {name?: string}} file
 * @param {{onProgress?: (loaded: number, total: number) => void, signal?: AbortSignal, fetch?: typeof fetch}} [opts]
 */
export function postToBucket(grant, file, opts = {}) {
  const form = new FormData();
  for (const [k, v] of Object.entries(grant.fields ?? {})) form.append(k, v);
  // S3 ignores every field after `file`, so it must come last.
  form.append('file', file, file.name ?? 'file');
  if (typeof XMLHttpRequest === 'undefined') return postWithFetch(grant.url, form, file, opts);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', grant.url);
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) opts.onProgress?.(e.loaded, e.total);
    });
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve();
      else reject(s3Error(xhr.status, xhr.statusText, xhr.responseText));
    });
    xhr.addEventListener('error', () => reject(new UploadError('network_error', 'the bucket could not be reached (network or CORS)')));
    xhr.addEventListener('timeout', () => reject(new UploadError('timeout', 'the upload timed out')));
    xhr.addEventListener('abort', () => reject(new UploadError('aborted', 'the upload was cancelled')));
    opts.signal?.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(form);
  });
}

async function postWithFetch(url, form, file, opts) {
  let res;
  try {
    res = await (opts.fetch ?? fetch)(url, { method: 'POST', body: form, signal: opts.signal });
  } catch (err) {
    throw new UploadError('network_error', `the bucket could not be reached: ${err.message}`);
  }
  const text = await res.text();
  if (!res.ok) throw s3Error(res.status, res.statusText, text);
  opts.onProgress?.(file.size, file.size);
}

// S3 answers errors as <Error><Code>…</Code><Message>…</Message></Error>.
function s3Error(status, statusText, body) {
  const text = body || '';
  const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? `http_${status}`;
  const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? (statusText || 'upload refused');
  return new UploadError(code, message);
}

/**
 * Asks the gateway for a presigned POST: POST /v1/uploads with the session
 * token. The content type is guessed from the name when not given.
 * @param {{baseURL: string, fetch: typeof fetch}} http
 * @param {string} token
 * @param {{filename: string, contentType?: string, size: number}} req
 */
export function createUpload(http, token, req) {
  const contentType = req.contentType || contentTypeOf({ name: req.filename, type: '' });
  return call(http, '/v1/uploads', { bearer: token, body: { filename: req.filename, contentType, size: req.size }, ok: [200, 201] });
}

/**
 * Asks for an upload endpoint for Uppy's @uppy/aws-s3 (Companion mode):
 * POST /v1/uploads/endpoint with the session token. The answer's
 * companionEndpoint carries an upload token in its path, since @uppy/aws-s3
 * sends no headers of its caller's; the limits are the app's.
 * @param {{baseURL: string, fetch: typeof fetch}} http
 * @param {string} token
 */
export function createUploadEndpoint(http, token) {
  return call(http, '/v1/uploads/endpoint', { bearer: token, ok: [200, 201] });
}

/** The job id in an upload key uploads/{app}/{channel}/{jobId}/{filename}, or ''. */
export function jobIdOfKey(key) {
  const parts = typeof key === 'string' ? key.split('/') : [];
  return parts.length === 5 && parts[0] === 'uploads' ? parts[3] : '';
}
