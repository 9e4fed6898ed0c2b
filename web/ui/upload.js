// Direct-to-bucket uploads: the gateway presigns a POST for one exact key and
// the browser sends the file straight to S3 (or localaws). After that the page
// makes no more requests for the job; its events arrive over MQTT.

import { apiError } from './session.js';

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

/**
 * Asks the gateway for a presigned POST: POST /v1/uploads.
 * @returns {Promise<{jobId: string, key: string, url: string, fields: Record<string,string>, maxBytes: number, expiresAt: string}>}
 */
export async function requestUpload(session, file) {
  const res = await fetch('/v1/uploads', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${session.token}` },
    body: JSON.stringify({ filename: file.name, contentType: contentTypeOf(file), size: file.size }),
  });
  if (res.status !== 201 && res.status !== 200) throw await apiError(res);
  return res.json();
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
 * Sends `file` to the presigned POST target. XMLHttpRequest rather than fetch
 * because only XHR reports upload progress.
 * @param {{url: string, fields: Record<string,string>}} target
 * @param {File} file
 * @param {(loaded: number, total: number) => void} onProgress
 */
export function postToBucket(target, file, onProgress) {
  const form = new FormData();
  for (const [k, v] of Object.entries(target.fields ?? {})) form.append(k, v);
  // S3 ignores every field after `file`, so it must come last.
  form.append('file', file, file.name);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', target.url);
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) onProgress(e.loaded, e.total);
    });
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve();
      else reject(s3Error(xhr));
    });
    xhr.addEventListener('error', () => reject(new UploadError('network_error', 'the bucket could not be reached (network or CORS)')));
    xhr.addEventListener('timeout', () => reject(new UploadError('timeout', 'the upload timed out')));
    xhr.send(form);
  });
}

// S3 answers errors as <Error><Code>…</Code><Message>…</Message></Error>.
function s3Error(xhr) {
  const text = xhr.responseText || '';
  const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? `http_${xhr.status}`;
  const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? (xhr.statusText || 'upload refused');
  return new UploadError(code, message);
}
