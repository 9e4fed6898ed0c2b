// Every shell command in README.md and docs/api.md, run as written against
// a gateway started the way `make run` starts it (`bin/herald serve` with
// nothing set, state under ./data), with each output checked against the
// "# …" lines under its command ("…" stands for any text).
//
// The gateway and the commands run in a network namespace of their own
// (`unshare --net`), so the documented ports 8080 and 4566 are free and
// nothing is rewritten. `make` and `docker` commands are not run: the first
// are what runs this test, the second need a Docker daemon.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { heraldBinary, repoRoot } from './gateway.mjs';

const DOCS = ['README.md', 'docs/api.md'];
const SKIP = /^(make|docker)\s/;

/**
 * The commands of a Markdown file's ```sh blocks, each with the output
 * lines documented under it. A command continues over lines while a quote
 * is open or a line ends with a backslash.
 */
export function shellCommands(markdown) {
  const out = [];
  const blocks = markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm);
  for (const [, body] of blocks) {
    const lines = body.split('\n');
    let cur = null;
    let pending = '';
    for (const line of lines) {
      if (pending) {
        pending += `\n${line}`;
        if (complete(pending)) {
          cur = { command: pending, expect: [] };
          out.push(cur);
          pending = '';
        }
        continue;
      }
      if (line.trim() === '') {
        cur = null;
        continue;
      }
      if (line.startsWith('#')) {
        if (cur) cur.expect.push(line.replace(/^# ?/, ''));
        continue;
      }
      if (complete(line)) {
        cur = { command: line, expect: [] };
        out.push(cur);
      } else {
        pending = line;
      }
    }
    assert.equal(pending, '', `unterminated command in a sh block: ${pending}`);
  }
  return out;
}

// Whether a command is complete: no quote left open, no trailing backslash.
function complete(text) {
  let quote = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote === "'") {
      if (c === "'") quote = '';
    } else if (c === '\\') {
      i++;
    } else if (quote === '"') {
      if (c === '"') quote = '';
    } else if (c === "'" || c === '"') {
      quote = c;
    }
  }
  return quote === '' && !/\\$/.test(text);
}

/** A documented output line as a whole-line pattern ("…" is any text). */
function linePattern(doc) {
  return new RegExp(`^${doc.split('…').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

/** A bash script running the commands, each bracketed by markers. */
function script(commands) {
  const lines = ['set -o pipefail'];
  commands.forEach((c, i) => {
    lines.push(`echo "@@@ ${i}"`, c.command, `echo "@@@ ${i} rc=$?"`);
  });
  return `${lines.join('\n')}\n`;
}

let tmp;
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'herald-readme-'));
});
after(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

test('README.md and docs/api.md commands run as written after make run', async (t) => {
  try {
    await promisify(execFile)('unshare', ['--net', '--fork', 'true']);
  } catch (err) {
    t.skip(`needs a private network namespace (root and unshare) for ports 8080 and 4566: ${err.message}`);
    return;
  }
  const bin = await heraldBinary(tmp);
  const work = path.join(tmp, 'repo');
  await mkdir(path.join(work, 'bin'), { recursive: true });
  await symlink(bin, path.join(work, 'bin', 'herald'));

  const docs = [];
  for (const doc of DOCS) {
    const commands = shellCommands(await readFile(path.join(repoRoot, doc), 'utf8'));
    const run = commands.filter((c) => !SKIP.test(c.command));
    for (const c of commands) if (SKIP.test(c.command)) t.diagnostic(`${doc}: not run: ${c.command}`);
    const name = doc.replace(/\W/g, '_');
    await writeFile(path.join(tmp, `${name}.sh`), script(run));
    docs.push({ doc, name, run });
  }
  const runner = [
    'ip link set lo up',
    `cd ${JSON.stringify(work)}`,
    'bin/herald serve > ../gateway.log 2>&1 &',
    'gw=$!',
    'for i in $(seq 1 600); do bin/herald healthcheck >/dev/null 2>&1 && break; sleep 0.1; done',
    ...docs.map((d) => `bash ../${d.name}.sh > ../${d.name}.out 2> ../${d.name}.err`),
    'kill $gw; wait $gw',
  ].join('\n');
  await writeFile(path.join(tmp, 'runner.sh'), `${runner}\n`);
  // A fresh shell: no HERALD_* settings, as after `make run` in a new terminal.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HERALD_') && !k.startsWith('AWS_')));
  env.HOME = tmp;
  const child = spawn('unshare', ['--net', '--fork', 'bash', path.join(tmp, 'runner.sh')], { cwd: tmp, env, stdio: 'inherit' });
  const code = await new Promise((resolve) => child.on('exit', resolve));
  assert.equal(code, 0, `runner exited ${code}`);

  const gatewayLog = await readFile(path.join(tmp, 'gateway.log'), 'utf8').catch(() => '');
  for (const { doc, name, run } of docs) {
    const out = await readFile(path.join(tmp, `${name}.out`), 'utf8');
    const err = await readFile(path.join(tmp, `${name}.err`), 'utf8');
    run.forEach((c, i) => {
      const m = new RegExp(`^@@@ ${i}\\n([\\s\\S]*?)^@@@ ${i} rc=(\\d+)$`, 'm').exec(out);
      const ctx = `${doc}: ${c.command}\nstderr:\n${err}\ngateway log (tail):\n${gatewayLog.slice(-3000)}`;
      assert.ok(m, `no output markers for ${ctx}`);
      assert.equal(m[2], '0', `exit status ${m[2]}: ${ctx}\nstdout: ${m[1]}`);
      if (c.expect.length === 0) return;
      const got = m[1].split('\n').filter((l) => l !== '');
      assert.equal(got.length, c.expect.length, `output lines of ${ctx}\ngot:\n${got.join('\n')}\nwant:\n${c.expect.join('\n')}`);
      c.expect.forEach((want, j) => assert.match(got[j], linePattern(want), `${doc}: ${c.command}`));
    });
    t.diagnostic(`${doc}: ${run.length} commands ran, ${run.filter((c) => c.expect.length).length} outputs checked`);
  }
});
