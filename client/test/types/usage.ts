// Compiled (never run) by types.test.mjs: the package's declarations must
// describe the API as the README uses it, under strict settings.

import { ApiError, HeraldClient, type Envelope, type JobView, type Session, type UploadGrant } from '@heraldgw/client';

async function main(file: File): Promise<void> {
  const client = new HeraldClient({ app: 'demo', baseURL: 'http://localhost:8080', backoff: { baseMs: 250 } });
  const off = client.on('event', (env: Envelope, meta) => {
    const retained: boolean = meta.retained;
    console.log(env.type, env.id, retained);
  });
  client.on('state', (state, detail) => console.log(state.toUpperCase(), detail));
  client.on('session', (s: Session, reason) => console.log(s.channel, reason === 'refreshed'));
  client.on('error', (err) => {
    if (err instanceof ApiError) console.log(err.status, err.code);
  });
  await client.connect({ signal: AbortSignal.timeout(10_000) });
  const channel: string | null = client.channel;
  console.log(channel);

  const grant: UploadGrant = await client.upload(file, { onProgress: (loaded: number, total: number) => console.log(loaded / total) });
  const stop = client.jobs.on(grant.jobId, (env: Envelope, view: JobView) => console.log(env.seq, view.state, view.outputs.length));
  for await (const env of client.jobs.events(grant.jobId)) {
    if (env.type === 'job.progress') console.log(env.progress?.done);
  }
  const final: Envelope = await client.jobs.wait(grant.jobId);
  console.log(final.outputs?.map((o) => o.url));
  const renewed: Session = await client.refresh();
  console.log(renewed.expiresAt);
  stop();
  off();
  client.close();
}

void main;
