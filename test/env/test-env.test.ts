// startTestEnv: slapd and a SoftHSM2 token in one directory; close() stops
// slapd and removes the directory unless asked to keep it (the demo keeps it,
// and gets the same directory and token back on the next run); a start that
// fails half-way cleans up what it started.

import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PEOPLE, personDn } from './people.ts';
import { freePort } from './slapd.ts';
import { startTestEnv } from './test-env.ts';

const run = promisify(execFile);

const whoami = (url: string, dn: string, password: string) => run('ldapwhoami', ['-x', '-H', url, '-D', dn, '-w', password]);

test.serial('a default environment lives in a fresh temporary directory that close() removes; close() is idempotent', async (t) => {
  const env = await startTestEnv();
  try {
    t.true(env.dir.startsWith(tmpdir()));
    t.is(env.people, PEOPLE);
    t.is((await whoami(env.ldap.url, personDn('sam'), PEOPLE.sam.password)).stdout.trim(), `dn:${personDn('sam')}`);
    t.true(existsSync(env.hsm.conf));
    const { stdout } = await run('softhsm2-util', ['--show-slots'], { env: { ...process.env, SOFTHSM2_CONF: env.hsm.conf } });
    t.regex(stdout, new RegExp(`Label:\\s+${env.hsm.tokenLabel}\\s*$`, 'm'));
  } finally {
    await env.close();
  }
  t.false(existsSync(env.dir));
  await t.throwsAsync(whoami(env.ldap.url, personDn('sam'), PEOPLE.sam.password), { message: /Can't contact LDAP server/ });
  await env.close();
});

test.serial('keep: true leaves the directory, and the next start reuses its data and token (the demo keeps state)', async (t) => {
  const parent = await mkdtemp(join(tmpdir(), 'vellum-env-test-'));
  const dir = join(parent, 'env');
  try {
    const first = await startTestEnv({ dir, keep: true });
    const uuid = async (url: string) => (await run('ldapsearch', ['-x', '-LLL', '-H', url, '-D', first.ldap.serviceDn, '-w', first.ldap.servicePassword,
      '-b', first.ldap.userBase, '(uid=sam)', 'entryUUID'])).stdout;
    const before = await uuid(first.ldap.url);
    await first.close();
    t.true(existsSync(join(dir, 'ldap', 'db', 'data.mdb')));
    t.true(existsSync(join(dir, 'hsm', 'tokens')));
    const second = await startTestEnv({ dir, keep: true });
    try {
      t.is(await uuid(second.ldap.url), before, 'same directory entries, same entryUUIDs');
    } finally {
      await second.close();
    }
    t.true(existsSync(dir));
  } finally {
    await rm(parent, { recursive: true, force: true });
  }
});

test.serial('a start that fails (LDAP port taken) stops what it started, removes the directory and rethrows', async (t) => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as { port: number }).port;
  const parent = await mkdtemp(join(tmpdir(), 'vellum-env-test-'));
  const dir = join(parent, 'env');
  try {
    await t.throwsAsync(startTestEnv({ dir, ldapPort: port }), { message: /Address already in use/ });
    t.false(existsSync(dir));
  } finally {
    await new Promise((resolve) => blocker.close(resolve));
    await rm(parent, { recursive: true, force: true });
  }
});

test.serial('a start that fails after slapd is up (the HSM step) stops slapd again before rethrowing', async (t) => {
  const parent = await mkdtemp(join(tmpdir(), 'vellum-env-test-'));
  const dir = join(parent, 'env');
  const port = await freePort();
  try {
    await mkdir(dir);
    await writeFile(join(dir, 'hsm'), 'a file where the token directory should go');
    const lines: string[] = [];
    await t.throwsAsync(startTestEnv({ dir, ldapPort: port, log: (line) => lines.push(line) }), { message: /hsm/ });
    t.true(lines.some((line) => line.includes('slapd starting')), 'slapd did start');
    await t.throwsAsync(whoami(`ldap://127.0.0.1:${port}`, personDn('sam'), PEOPLE.sam.password), { message: /Can't contact LDAP server/ });
    t.false(existsSync(dir));
  } finally {
    await rm(parent, { recursive: true, force: true });
  }
});
