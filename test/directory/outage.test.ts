// Invariant 1, fail closed: when slapd is down nobody is authenticated, the
// failure says the directory is unavailable (503) rather than "wrong password",
// status() says so too, and everything works again once slapd is back, with no
// restart of Vellum. These tests stop and start the one slapd, so they run in order.

import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openDirectory, type Directory, type DirectorySettings } from '../../src/directory/index.ts';
import { errorCatalog, isVellumError } from '../../src/kernel/index.ts';
import { PEOPLE, personDn } from '../env/people.ts';
import { sshaHash, startSlapd, type Slapd } from '../env/slapd.ts';
import { countConnections, directorySettings, eventually, failure } from '../support/directory.ts';

const run = promisify(execFile);

let dir: string;
let slapd: Slapd;
let settings: DirectorySettings;
let directory: Directory;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vellum-outage-'));
  slapd = await startSlapd({ dir });
  settings = directorySettings(slapd, 1000);
  directory = await openDirectory(settings);
});

test.after.always(async () => {
  await directory?.close();
  await slapd?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test.serial('1 fail closed: with slapd stopped, a correct password gets DIRECTORY_UNAVAILABLE (503), never a login', async (t) => {
  const before = await directory.authenticate('sam', PEOPLE.sam.password);
  await slapd.stop();
  try {
    const started = performance.now();
    const e = await failure(directory.authenticate('sam', PEOPLE.sam.password));
    t.true(isVellumError(e, 'DIRECTORY_UNAVAILABLE'), String(e));
    t.is((e as { status?: number }).status, 503);
    t.true((e as Error).message.startsWith(errorCatalog.DIRECTORY_UNAVAILABLE.message));
    t.true(performance.now() - started < 1000 + 500, 'refused connections fail fast, within the timeout');
    // A wrong password is not reported as "wrong" either: nobody can tell while LDAP is down.
    const wrong = await failure(directory.authenticate('sam', 'wrong'));
    t.true(isVellumError(wrong, 'DIRECTORY_UNAVAILABLE'), String(wrong));
    const status = await directory.status();
    t.false(status.ok);
    t.true(status.detail.includes(slapd.url), status.detail);
  } finally {
    await slapd.start();
  }
  const after = await directory.authenticate('sam', PEOPLE.sam.password);
  t.is(after.id, before.id, 'same data after the restart');
});

test.serial('11.10(d) an empty password is refused as AUTH_FAILED before any bind: even with slapd down it is not DIRECTORY_UNAVAILABLE', async (t) => {
  await slapd.stop();
  try {
    const empty = await failure(directory.authenticate('sam', ''));
    t.true(isVellumError(empty, 'AUTH_FAILED'), String(empty));
    // Control: the same call with a password does reach for the (stopped) server.
    const real = await failure(directory.authenticate('sam', PEOPLE.sam.password));
    t.true(isVellumError(real, 'DIRECTORY_UNAVAILABLE'), String(real));
  } finally {
    await slapd.start();
  }
});

test.serial('recovery: after slapd.start() the same Directory authenticates again and status() is ok, on the same port', async (t) => {
  await slapd.stop();
  t.false((await directory.status()).ok);
  await slapd.start();
  const status = await directory.status();
  t.true(status.ok, status.detail);
  const principal = await directory.authenticate('dana', PEOPLE.dana.password);
  t.is(principal.displayName, PEOPLE.dana.displayName);
  t.is(slapd.url, settings.url);
});

test.serial('a directory that accepts connections but never answers times out as DIRECTORY_UNAVAILABLE', async (t) => {
  const { createServer } = await import('node:net');
  const sockets: import('node:net').Socket[] = [];
  const silent = createServer((socket) => { sockets.push(socket); }); // accepts, says nothing
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const port = (silent.address() as { port: number }).port;
  const d = await openDirectory({ ...settings, url: `ldap://127.0.0.1:${port}`, timeoutMs: 300 });
  try {
    const started = performance.now();
    const e = await failure(d.authenticate('sam', PEOPLE.sam.password));
    const elapsed = performance.now() - started;
    t.true(isVellumError(e, 'DIRECTORY_UNAVAILABLE'), String(e));
    t.regex((e as Error).message, /timed out/i);
    t.true(elapsed >= 250 && elapsed < 2000, `gave up after ${elapsed.toFixed(0)} ms`);
    t.false((await d.status()).ok);
  } finally {
    await d.close();
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => silent.close(resolve));
  }
});

test.serial('11.100(a) a login that matches two entries is refused, even with the right password for one of them', async (t) => {
  // A second uid=sam, elsewhere under ou=people, with sam's own password.
  const ldif = [
    `dn: ou=contractors,${slapd.userBase}`, 'objectClass: organizationalUnit', 'ou: contractors', '',
    `dn: uid=sam,ou=contractors,${slapd.userBase}`, 'objectClass: inetOrgPerson', 'uid: sam', 'cn: Sam Contractor', 'sn: Contractor',
    `userPassword: ${sshaHash(PEOPLE.sam.password)}`, '',
  ].join('\n');
  await ldapmodify(['-a'], ldif);
  try {
    const e = await failure(directory.authenticate('sam', PEOPLE.sam.password));
    t.true(isVellumError(e, 'AUTH_FAILED'), String(e));
    t.is((e as Error).message, errorCatalog.AUTH_FAILED.message);
  } finally {
    await ldapmodify([], `dn: uid=sam,ou=contractors,${slapd.userBase}\nchangetype: delete\n\ndn: ou=contractors,${slapd.userBase}\nchangetype: delete\n`);
  }
  t.is((await directory.authenticate('sam', PEOPLE.sam.password)).dn, personDn('sam'));
});

test.serial('group changes in LDAP show on the next login (no stale group cache)', async (t) => {
  const group = `cn=demo-001-monitors,${slapd.groupBase}`;
  t.deepEqual((await directory.authenticate('nora', PEOPLE.nora.password)).groups, []);
  await ldapmodify([], `dn: ${group}\nchangetype: modify\nadd: member\nmember: ${personDn('nora')}\n`);
  try {
    t.deepEqual((await directory.authenticate('nora', PEOPLE.nora.password)).groups, [group]);
  } finally {
    await ldapmodify([], `dn: ${group}\nchangetype: modify\ndelete: member\nmember: ${personDn('nora')}\n`);
  }
  t.deepEqual((await directory.authenticate('nora', PEOPLE.nora.password)).groups, []);
});

/** ldapmodify as the rootdn, LDIF on stdin. */
async function ldapmodify(extra: string[], ldif: string): Promise<void> {
  const child = run('ldapmodify', ['-x', '-H', slapd.url, '-D', slapd.rootDn, '-w', slapd.rootPassword, ...extra]);
  child.child.stdin?.end(ldif);
  await child;
}

// The pool of service connections, watched through a relay that counts connections.

test.serial('pool: service connections are reused; every password check binds on a connection of its own', async (t) => {
  const relay = await countConnections(slapd.port);
  const d = await openDirectory({ ...settings, url: relay.url, poolSize: 2 });
  try {
    const id = (await d.authenticate('sam', PEOPLE.sam.password)).id;
    t.is(relay.opened, 2, 'one service connection and one for the bind as sam');
    for (let i = 0; i < 5; i++) t.truthy(await d.lookup(id));
    t.is(relay.opened, 2, 'lookups reuse the pooled service connection');
    for (let i = 0; i < 3; i++) await d.authenticate('dana', PEOPLE.dana.password);
    t.is(relay.opened, 5, 'each password check opened its own connection; the service connection was reused');
    await eventually(() => relay.open === 1); // user-bind connections are closed after use
  } finally {
    await d.close();
    await relay.close();
  }
});

test.serial('pool: at most poolSize service connections however many callers; an idle one is closed after poolIdleMs', async (t) => {
  const relay = await countConnections(slapd.port);
  const d = await openDirectory({ ...settings, url: relay.url, poolSize: 2, poolIdleMs: 200 });
  try {
    const id = (await d.authenticate('mona', PEOPLE.mona.password)).id;
    const openedBefore = relay.opened;
    const found = await Promise.all(Array.from({ length: 12 }, () => d.lookup(id)));
    t.true(found.every((p) => p?.id === id));
    t.true(relay.opened - openedBefore <= 1, `at most one more service connection (pool of 2): ${relay.opened - openedBefore}`);
    t.true(relay.open <= 2);
    await eventually(() => relay.open === 0);
    t.truthy(await d.lookup(id), 'and a new one is opened when needed');
  } finally {
    await d.close();
    await relay.close();
  }
});

test.serial('pool: a dropped connection is discarded, never reused unbound; the next call connects and binds again', async (t) => {
  const relay = await countConnections(slapd.port);
  const d = await openDirectory({ ...settings, url: relay.url, poolSize: 1 });
  try {
    const id = (await d.authenticate('audrey', PEOPLE.audrey.password)).id;
    relay.dropAll();
    await eventually(() => relay.open === 0);
    const opened = relay.opened;
    // With an anonymous connection the search would find nobody (anonymous reads nothing here): null.
    const again = await d.lookup(id);
    t.is(again?.login, 'audrey');
    t.is(relay.opened, opened + 1);
    t.true((await d.status()).ok);
  } finally {
    await d.close();
    await relay.close();
  }
});

test.serial('pool: with slapd stopped, pooled connections do not hide the outage (503), and the pool recovers after start', async (t) => {
  const d = await openDirectory({ ...settings, poolSize: 2 });
  try {
    const id = (await d.authenticate('sam', PEOPLE.sam.password)).id;
    await slapd.stop();
    try {
      t.true(isVellumError(await failure(d.lookup(id)), 'DIRECTORY_UNAVAILABLE'));
      t.true(isVellumError(await failure(d.authenticate('sam', PEOPLE.sam.password)), 'DIRECTORY_UNAVAILABLE'));
    } finally {
      await slapd.start();
    }
    t.is((await d.lookup(id))?.login, 'sam');
    t.is((await d.authenticate('sam', PEOPLE.sam.password)).id, id);
  } finally {
    await d.close();
  }
});
