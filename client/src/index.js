// @heraldgw/client — the browser (and Node) side of a Herald gateway.

export { HeraldClient, STATES } from './client.js';
export { ApiError, brokerURL, remainingMs } from './api.js';
export { backoffDelay, BACKOFF_DEFAULTS } from './backoff.js';
export { Deduper, JobView, JOB_STATES, isTerminal, jobIdOfTopic, parseEnvelope, stateForType } from './events.js';
export { Jobs } from './jobs.js';
export { memoryStorage } from './storage.js';
export { contentTypeOf, jobIdOfKey, postToBucket, UploadError } from './uploads.js';
export { workerTimer } from './timers.js';
