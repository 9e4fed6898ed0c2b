// Unit tests of the client's pure parts (no gateway, no browser): backoff,
// dedupe, envelope parsing, job state and the job API.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backoffDelay, Deduper, Jobs, JobView, jobIdOfTopic, parseEnvelope } from '../src/index.js';

describe('backoffDelay', () => {
  test('stays within [0, min(cap, base·2^n)] and reaches the cap', () => {
    const cases = [
      { attempt: 0, rnd: 0.999999, want: 500 },
      { attempt: 1, rnd: 0.999999, want: 1000 },
      { attempt: 3, rnd: 0.999999, want: 4000 },
      { attempt: 10, rnd: 0.999999, want: 30_000 },
      { attempt: 1e6, rnd: 0.999999, want: 30_000 },
      { attempt: 5, rnd: 0, want: 0 },
    ];
    for (const c of cases) {
      const got = backoffDelay(c.attempt, { random: () => c.rnd });
      assert.equal(got, c.want, `attempt ${c.attempt}`);
    }
  });

  test('spreads clients out (full jitter)', () => {
    const got = new Set(Array.from({ length: 200 }, () => backoffDelay(6)));
    assert.ok(got.size > 50, `only ${got.size} distinct delays out of 200`);
    for (const d of got) assert.ok(d >= 0 && d <= 30_000, String(d));
  });
});

describe('Deduper', () => {
  test('accepts an id once and forgets the oldest beyond its limit', () => {
    const d = new Deduper(2);
    assert.equal(d.accept('a'), true);
    assert.equal(d.accept('a'), false);
    assert.equal(d.accept('b'), true);
    assert.equal(d.accept('c'), true); // evicts a
    assert.equal(d.accept('a'), true);
    assert.equal(d.accept(undefined), true, 'events without id are shown, not dropped');
  });
});

describe('parseEnvelope', () => {
  const enc = (s) => new TextEncoder().encode(s);
  const cases = [
    { in: enc('{"v":1,"type":"x.a","id":"e1"}'), ok: true },
    { in: '{"type":"x.a"}', ok: true },
    { in: enc('not json'), ok: false },
    { in: enc('[1]'), ok: false },
    { in: enc('null'), ok: false },
    { in: enc('{"id":"e"}'), ok: false },
  ];
  for (const c of cases) {
    test(`${typeof c.in === 'string' ? c.in : new TextDecoder().decode(c.in)}`, () => {
      const got = parseEnvelope(c.in);
      assert.equal(Boolean(got.env), c.ok, JSON.stringify(got));
    });
  }
});

describe('JobView', () => {
  const ev = (seq, type, extra = {}) => ({ v: 1, id: `e${seq}${type}`, jobId: 'j', seq, type, ...extra });

  test('walks accepted → progress → completed', () => {
    const j = new JobView('j');
    j.apply(ev(1, 'job.accepted'));
    assert.equal(j.state, 'accepted');
    j.apply(ev(2, 'job.progress', { progress: { done: 1, total: 3 } }));
    assert.equal(j.state, 'progress');
    assert.deepEqual(j.progress, { done: 1, total: 3 });
    j.apply(ev(3, 'job.completed', { outputs: [{ name: 'thumb' }] }));
    assert.equal(j.state, 'completed');
    assert.deepEqual(j.outputs, [{ name: 'thumb' }]);
  });

  test('out-of-order and late events do not move the job back', () => {
    const j = new JobView('j');
    j.apply(ev(3, 'job.completed', { outputs: [] }));
    j.apply(ev(2, 'job.progress', { progress: { done: 2, total: 3 } }));
    j.apply(ev(1, 'job.accepted'));
    assert.equal(j.state, 'completed');
    assert.deepEqual(j.events.map((e) => e.seq), [1, 2, 3], 'timeline sorted by seq');
  });

  test('a lower seq progress after a higher one is ignored', () => {
    const j = new JobView('j');
    j.apply(ev(3, 'job.progress', { progress: { done: 2, total: 3 } }));
    j.apply(ev(2, 'job.progress', { progress: { done: 1, total: 3 } }));
    assert.deepEqual(j.progress, { done: 2, total: 3 });
  });

  test('failure keeps its error', () => {
    const j = new JobView('j');
    j.apply(ev(1, 'job.accepted'));
    j.apply(ev(2, 'job.failed', { error: { code: 'unsupported_format', message: 'nope' } }));
    assert.equal(j.state, 'failed');
    assert.equal(j.error.code, 'unsupported_format');
  });
});

describe('Jobs', () => {
  const ev = (seq, type, extra = {}) => ({ v: 1, id: `e${seq}${type}`, jobId: 'j', seq, type, ...extra });

  test('on() replays what arrived before it, by seq, then follows', () => {
    const jobs = new Jobs();
    jobs.apply(ev(2, 'job.progress', { progress: { done: 1, total: 2 } }));
    jobs.apply(ev(1, 'job.accepted'));
    const got = [];
    const off = jobs.on('j', (env, view) => got.push(`${env.seq}:${view.state}`));
    jobs.apply(ev(3, 'job.completed', { outputs: [] }));
    off();
    jobs.apply(ev(4, 'job.progress'));
    assert.deepEqual(got, ['1:progress', '2:progress', '3:completed']);
  });

  test('"*" follows every job; a throwing listener does not stop the others', () => {
    const jobs = new Jobs();
    const got = [];
    jobs.on('*', () => {
      throw new Error('listener bug');
    });
    jobs.on('*', (env) => got.push(env.jobId));
    const orig = console.error;
    console.error = () => {};
    try {
      jobs.apply({ ...ev(1, 'job.accepted'), jobId: 'a' });
      jobs.apply({ ...ev(1, 'job.accepted'), jobId: 'b' });
    } finally {
      console.error = orig;
    }
    assert.deepEqual(got, ['a', 'b']);
  });

  test('events() iterates to the terminal event, also when it came first', async () => {
    const jobs = new Jobs();
    setTimeout(() => {
      jobs.apply(ev(1, 'job.accepted'));
      jobs.apply(ev(2, 'job.failed', { error: { code: 'unsupported_format' } }));
      jobs.apply(ev(3, 'job.progress'));
    }, 5);
    const types = [];
    for await (const env of jobs.events('j')) types.push(env.type);
    assert.deepEqual(types, ['job.accepted', 'job.failed']);
    const again = [];
    for await (const env of jobs.events('j')) again.push(env.seq);
    assert.deepEqual(again, [1, 2], 'replay stops at the terminal event');
    assert.equal((await jobs.wait('j')).type, 'job.failed');
  });

  test('events() ends with the abort reason', async () => {
    const jobs = new Jobs();
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('gave up')), 5);
    await assert.rejects(jobs.wait('never', { signal: ac.signal }), /gave up/);
  });

  test('remembers at most `limit` jobs, finished ones go first', () => {
    const jobs = new Jobs(2);
    jobs.apply({ ...ev(1, 'job.completed'), jobId: 'done' });
    jobs.apply({ ...ev(1, 'job.accepted'), jobId: 'running' });
    jobs.apply({ ...ev(1, 'job.accepted'), jobId: 'new' });
    assert.deepEqual(jobs.all().map((v) => v.jobId), ['running', 'new']);
  });
});

describe('jobIdOfTopic', () => {
  test('only job topics carry a job id', () => {
    assert.equal(jobIdOfTopic('apps/demo/channels/c/jobs/j1'), 'j1');
    assert.equal(jobIdOfTopic('apps/demo/channels/c/events'), '');
    assert.equal(jobIdOfTopic('apps/demo/channels/c/jobs/j1/x'), '');
  });
});
