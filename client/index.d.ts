// Type declarations of @heraldgw/client.

/** What POST /v1/sessions (and /v1/sessions/refresh) answers. */
export interface Session {
  app: string;
  channel: string;
  clientId: string;
  topic: string;
  token: string;
  /** RFC 3339 time the token stops working. */
  expiresAt: string;
  mqtt: { url: string; protocolVersion: number };
}

/** An object in S3 (the job's input). */
export interface StoredObject {
  bucket: string;
  key: string;
  size: number;
  contentType?: string;
}

/** One converted output of a job. */
export interface JobOutput {
  name: string;
  key: string;
  url?: string;
  contentType?: string;
  width?: number;
  height?: number;
  /** Seconds (audio, video). */
  duration?: number;
  bytes?: number;
}

/** The event envelope published to a channel. */
export interface Envelope {
  v: number;
  type: 'job.accepted' | 'job.progress' | 'job.completed' | 'job.failed' | `x.${string}` | (string & {});
  id: string;
  jobId?: string;
  app: string;
  channel: string;
  seq: number;
  time: string;
  input?: StoredObject;
  outputs?: JobOutput[];
  progress?: { done: number; total: number };
  error?: { code: string; message?: string };
  data?: unknown;
}

/** Where and how an event arrived. */
export interface EventMeta {
  topic: string;
  /** A retained final job event replayed on subscribe. */
  retained: boolean;
}

export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'offline' | 'closed';
export declare const STATES: readonly ConnectionState[];

export type JobState = 'pending' | 'accepted' | 'progress' | 'completed' | 'failed';
export declare const JOB_STATES: readonly JobState[];

/** Why a "session" event fired. */
export type SessionReason = 'given' | 'resumed' | 'minted' | 'refreshed' | 'replaced';

/** Web Storage-like store for the session (sessionStorage by default in a page). */
export interface SessionStorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface BackoffOptions {
  /** First ceiling, ms (default 500). */
  baseMs?: number;
  /** Largest delay, ms (default 30000). */
  capMs?: number;
  random?: () => number;
}

export interface HeraldClientOptions {
  /** The app id (the tenant). */
  app: string;
  /** Gateway base URL, e.g. "https://herald.example.com"; defaults to the page's origin. */
  baseURL?: string;
  /**
   * The app's API key, to mint sessions for apps without anonymous sessions.
   * Only for trusted code (a Node service or test), never in a browser.
   */
  apiKey?: string;
  /** A session minted elsewhere (your backend with the app's API key). */
  session?: Session;
  /** Called whenever a new session is needed instead of POST /v1/sessions. */
  getSession?: () => Promise<Session>;
  /** Where the session is kept across reloads; null keeps it in memory only. */
  storage?: SessionStorageLike | null;
  /**
   * Offer MQTT 5 re-authentication to Herald's own broker (served on the
   * gateway's host), so a renewed token reaches the live connection (default true).
   */
  reauthenticate?: boolean;
  /** Renew the token this long before it expires (default: a tenth of its life, 5 s–5 min). */
  refreshMarginMs?: number;
  backoff?: BackoffOptions;
  /** How many event ids to remember for dedupe (default 5000). */
  dedupeLimit?: number;
  /** How many jobs to keep state for (default 1000). */
  jobLimit?: number;
  /** Extra MQTT.js connect options (e.g. timerVariant: workerTimer(url)). */
  mqttOptions?: Record<string, unknown>;
  /** The MQTT.js module to use (default: the bundled dependency). */
  mqtt?: { connect: (url: string, opts: Record<string, unknown>) => unknown };
  fetch?: typeof fetch;
}

export interface UploadRequest {
  filename: string;
  contentType?: string;
  size: number;
}

/** A presigned POST (POST /v1/uploads). */
export interface UploadGrant {
  jobId: string;
  key: string;
  url: string;
  fields: Record<string, string>;
  maxBytes: number;
  expiresAt: string;
}

/** An endpoint for @uppy/aws-s3 (POST /v1/uploads/endpoint) with the app's limits. */
export interface UploadEndpoint {
  /** Pass as @uppy/aws-s3's `companionEndpoint`; it carries an upload token. */
  companionEndpoint: string;
  expiresAt: string;
  /** The largest file sent in one request (Companion's /s3/params). */
  maxUploadBytes: number;
  /** The largest file sent in parts. */
  maxObjectBytes: number;
  /** Allowed content types ("image/*" style); empty: whatever is converted. */
  allowedTypes: string[];
}

export interface UploadOptions {
  contentType?: string;
  onGrant?: (grant: UploadGrant) => void;
  onProgress?: (loaded: number, total: number) => void;
  signal?: AbortSignal;
}

export interface ClientEvents {
  event: (env: Envelope, meta: EventMeta) => void;
  state: (state: ConnectionState, detail: string) => void;
  session: (session: Session, reason: SessionReason) => void;
  /** The live connection took the renewed token (MQTT 5 re-authentication). */
  reauthenticated: (session: Session) => void;
  duplicate: (env: Envelope) => void;
  invalid: (info: { topic: string; error: string }) => void;
  error: (err: Error) => void;
}

/** The state of one job as seen from its events. */
export declare class JobView {
  constructor(jobId: string);
  readonly jobId: string;
  state: JobState;
  lastSeq: number;
  /** Every event of the job, sorted by seq. */
  events: Envelope[];
  progress: { done: number; total: number } | null;
  outputs: JobOutput[];
  error: { code: string; message?: string } | null;
  input: StoredObject | null;
  /** Applies an event; returns whether the visible state changed. */
  apply(env: Envelope): boolean;
}

export type JobListener = (env: Envelope, view: JobView, meta?: EventMeta) => void;

export declare class Jobs {
  constructor(limit?: number);
  /** The state of a job seen so far. */
  get(jobId: string): JobView | undefined;
  /** Every job seen, oldest first. */
  all(): JobView[];
  /**
   * Calls fn for each event of the job: those already received first, then
   * each new one. jobId "*" follows every job. Returns a function that stops it.
   */
  on(jobId: string, fn: JobListener): () => void;
  /** The job's events, ending after job.completed or job.failed. */
  events(jobId: string, opts?: { signal?: AbortSignal }): AsyncIterableIterator<Envelope>;
  /** The job's terminal event (job.completed or job.failed). */
  wait(jobId: string, opts?: { signal?: AbortSignal }): Promise<Envelope>;
}

export declare class HeraldClient {
  constructor(opts: HeraldClientOptions);
  /** The current session, or null before the first one. */
  session: Session | null;
  /** Events dropped because their id was seen before. */
  duplicates: number;
  readonly jobs: Jobs;
  readonly state: ConnectionState;
  readonly channel: string | null;
  /** The MQTT.js client of the current connection. */
  readonly mqttClient: unknown;
  on<K extends keyof ClientEvents>(type: K, fn: ClientEvents[K]): () => void;
  off<K extends keyof ClientEvents>(type: K, fn: ClientEvents[K]): void;
  /** Gets a session and connects; resolves once subscribed to the channel. */
  connect(opts?: { signal?: AbortSignal }): Promise<HeraldClient>;
  /** Renews the token now: same channel, new token. */
  refresh(): Promise<Session>;
  createUpload(req: UploadRequest): Promise<UploadGrant>;
  /** An endpoint for Uppy's @uppy/aws-s3 (`companionEndpoint`) and the app's upload limits. */
  uploadEndpoint(): Promise<UploadEndpoint>;
  /** Uploads straight to the bucket; resolves with the grant (grant.jobId is the job). */
  upload(file: Blob & { name?: string }, opts?: UploadOptions): Promise<UploadGrant>;
  close(): void;
}

/** An HTTP API error with the gateway's stable code. */
export declare class ApiError extends Error {
  constructor(status: number, code: string, message: string);
  readonly status: number;
  readonly code: string;
}

/** A bucket upload that did not succeed (S3's error code, or network_error, timeout, aborted). */
export declare class UploadError extends Error {
  constructor(code: string, message: string);
  readonly code: string;
}

/** Remembers the last `limit` event ids. */
export declare class Deduper {
  constructor(limit?: number);
  /** True the first time an id is offered. */
  accept(id: unknown): boolean;
}

export declare const BACKOFF_DEFAULTS: Readonly<{ baseMs: number; capMs: number }>;
/** Full-jitter exponential backoff: a delay in [0, min(cap, base·2^attempt)]. */
export declare function backoffDelay(attempt: number, opts?: BackoffOptions): number;
export declare function parseEnvelope(payload: Uint8Array | string): { env: Envelope; error?: undefined } | { env?: undefined; error: string };
export declare function stateForType(type: string): JobState | null;
export declare function isTerminal(state: string): boolean;
export declare function jobIdOfTopic(topic: string): string;
/** Milliseconds until the session's token expires (Infinity when unknown). */
export declare function remainingMs(session: Pick<Session, 'expiresAt'> | null | undefined, now?: number): number;
export declare function brokerURL(session: Pick<Session, 'mqtt'> | null | undefined, baseURL: string): string;
export declare function memoryStorage(): SessionStorageLike;
/** The content type to declare for a file (guessed from its name when the browser leaves it empty). */
export declare function contentTypeOf(file: { name: string; type?: string }): string;
/** The job id in an upload key uploads/{app}/{channel}/{jobId}/{filename}, or "". */
export declare function jobIdOfKey(key: string): string;
export declare function postToBucket(
  grant: Pick<UploadGrant, 'url' | 'fields'>,
  file: Blob & { name?: string },
  opts?: { onProgress?: (loaded: number, total: number) => void; signal?: AbortSignal; fetch?: typeof fetch },
): Promise<void>;
/** An MQTT.js timerVariant ticking in a dedicated worker (serve timer-worker.js from the package). */
export declare function workerTimer(workerURL: string | URL): { set(fn: () => void, ms: number): number; clear(id: number): void };
