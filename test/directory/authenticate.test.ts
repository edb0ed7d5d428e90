// The Directory against a real slapd (test/env/slapd.ts), seeded with the demo
// people: who gets in, with which immutable id, name and groups, and who does
// not. Part 11 §11.10(d) (access limited to authorised individuals), §11.100(a)
// (an identity is unique to one person), §11.300 (controls on id/password
// combinations). Each test here only reads, so they run concurrently.

import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openDirectory, type Directory, type DirectorySettings } from '../../src/directory/index.ts';
import { MAX_LOGIN_LENGTH, formatId } from '../../src/directory/ldap-directory.ts';
import { errorCatalog, isVellumError, type Principal } from '../../src/kernel/index.ts';
import { GROUPS, PEOPLE, type Person } from '../env/people.ts';
import { startSlapd, type Slapd } from '../env/slapd.ts';
import { directorySettings, failure } from '../support/directory.ts';

const run = promisify(execFile);

let dir: string;
let slapd: Slapd;
let settings: DirectorySettings;
let directory: Directory;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vellum-directory-'));
  slapd = await startSlapd({ dir, tls: true });
  settings = directorySettings(slapd, 3000);
  directory = await openDirectory(settings);
});

test.after.always(async () => {
  await directory?.close();
  await slapd?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** entryUUID of uid=LOGIN as the real ldapsearch (ldap-utils) prints it. */
async function entryUuidFromLdapsearch(login: string): Promise<string> {
  const { stdout } = await run('ldapsearch', [
    '-x', '-LLL', '-H', slapd.url, '-D', slapd.serviceDn, '-w', slapd.servicePassword,
    '-b', slapd.userBase, `(uid=${login})`, 'entryUUID',
  ]);
  const match = /^entryUUID: (\S+)$/m.exec(stdout);
  if (!match?.[1]) throw new Error(`ldapsearch found no entryUUID for ${login}:\n${stdout}`);
  return match[1];
}

const AUTH_FAILED_MESSAGE = errorCatalog.AUTH_FAILED.message;

for (const person of Object.values(PEOPLE) as Person[]) {
  test(`11.10(d)/11.100(a) ${person.login} signs in with their own password and gets their entryUUID, name and groups`, async (t) => {
    const principal: Principal = await directory.authenticate(person.login, person.password);
    t.is(principal.id, await entryUuidFromLdapsearch(person.login));
    t.regex(principal.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    t.is(principal.login, person.login);
    t.is(principal.dn, `uid=${person.login},${slapd.userBase}`);
    t.is(principal.displayName, person.displayName);
    const expected = person.groups.map((cn) => GROUPS[cn as keyof typeof GROUPS].dn);
    t.deepEqual([...principal.groups].sort(), [...expected].sort());
  });
}

test('11.100(a) every seeded person has a different immutable id', async (t) => {
  const ids = await Promise.all((Object.values(PEOPLE) as Person[]).map(async (p) => (await directory.authenticate(p.login, p.password)).id));
  t.is(new Set(ids).size, ids.length);
});

test('a password with ":", "+", "/", a space and non-ASCII letters works unchanged (pat)', async (t) => {
  t.regex(PEOPLE.pat.password, /:/);
  t.regex(PEOPLE.pat.password, /[^\x00-\x7f]/);
  const principal = await directory.authenticate('pat', PEOPLE.pat.password);
  t.is(principal.login, 'pat');
  // The same password normalised differently (NFD) or cut at ':' is a different password.
  await t.throwsAsync(directory.authenticate('pat', PEOPLE.pat.password.normalize('NFD')), { message: AUTH_FAILED_MESSAGE });
  await t.throwsAsync(directory.authenticate('pat', PEOPLE.pat.password.split(':')[0]!), { message: AUTH_FAILED_MESSAGE });
});

test('nora, in no group, signs in with groups []', async (t) => {
  const principal = await directory.authenticate('nora', PEOPLE.nora.password);
  t.deepEqual(principal.groups, []);
  t.is(principal.displayName, 'Nora Nogroup');
});

test('11.10(d) a wrong password is refused with AUTH_FAILED', async (t) => {
  const e = await failure(directory.authenticate('sam', 'sam-Sponsor-2025'));
  t.true(isVellumError(e, 'AUTH_FAILED'));
  t.is((e as Error).message, AUTH_FAILED_MESSAGE);
});

test('11.10(d) another person\'s password is refused', async (t) => {
  await t.throwsAsync(directory.authenticate('sam', PEOPLE.dana.password), { message: AUTH_FAILED_MESSAGE });
});

test('11.300 an unknown login fails exactly like a wrong password (no hint which one was wrong)', async (t) => {
  const unknown = await failure(directory.authenticate('mallory', 'sam-Sponsor-2026'));
  const wrong = await failure(directory.authenticate('sam', 'not-the-password'));
  t.true(isVellumError(unknown, 'AUTH_FAILED'));
  t.true(isVellumError(wrong, 'AUTH_FAILED'));
  t.is((unknown as Error).message, (wrong as Error).message);
  t.is((unknown as { detail?: string }).detail, (wrong as { detail?: string }).detail);
  t.is((unknown as { status?: number }).status, 401);
});

test('the login is matched as LDAP matches uid (case-insensitively) and reported in the directory\'s spelling', async (t) => {
  const principal = await directory.authenticate('SAM', PEOPLE.sam.password);
  t.is(principal.login, 'sam');
  t.is(principal.id, await entryUuidFromLdapsearch('sam'));
});

const injections = [
  'sam)(uid=*', '*', 'sam*', 'sa*', '*)(|(uid=*', 'sam)(|(objectClass=*)', 's*m', '(uid=sam)', '(', ')', 'sam\\2a', '\\2a', 'sam\\', 'sam\\00',
  'uid=sam,ou=people,dc=vellum,dc=test', 'sam,ou=people', `sam${' '.repeat(MAX_LOGIN_LENGTH - 3)}x`, '*'.repeat(MAX_LOGIN_LENGTH),
];
for (const login of injections) {
  test(`11.10(d) LDAP filter injection in the login is just a wrong login: ${JSON.stringify(login)} with sam's password is refused`, async (t) => {
    const e = await failure(directory.authenticate(login, PEOPLE.sam.password));
    t.true(isVellumError(e, 'AUTH_FAILED'), String(e));
  });
}

test('11.10(d) no injected login signs anyone in with any person\'s password (never another person)', async (t) => {
  for (const login of injections) {
    for (const person of Object.values(PEOPLE) as Person[]) {
      const e = await failure(directory.authenticate(login, person.password));
      t.true(isVellumError(e, 'AUTH_FAILED'), `${JSON.stringify(login.slice(0, 40))} with ${person.login}'s password: ${String(e)}`);
    }
  }
});

test('11.10(d) an empty password is refused before any bind (an empty simple bind would be anonymous)', async (t) => {
  // A listener that counts connections stands in for the directory: if anything
  // were sent, it would see a connection.
  const connections: Socket[] = [];
  const server: Server = createServer((socket) => { connections.push(socket); socket.destroy(); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const spy = await openDirectory({ ...settings, url: `ldap://127.0.0.1:${port}` });
  try {
    for (const login of ['sam', 'nobody']) {
      const e = await failure(spy.authenticate(login, ''));
      t.true(isVellumError(e, 'AUTH_FAILED'), String(e));
      t.is((e as Error).message, AUTH_FAILED_MESSAGE);
    }
    // The same listener does see a real attempt, so it would have caught one.
    const real = await failure(spy.authenticate('sam', 'x'));
    t.true(isVellumError(real, 'DIRECTORY_UNAVAILABLE'), String(real));
    t.true(connections.length >= 1);
    const before = connections.length;
    await failure(spy.authenticate('sam', ''));
    t.is(connections.length, before);
  } finally {
    await spy.close();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('and against the real slapd, an empty password with a real login is still refused', async (t) => {
  await t.throwsAsync(directory.authenticate('sam', ''), { message: AUTH_FAILED_MESSAGE });
});

const hopeless: [string, string, string][] = [
  ['an empty login', '', 'x'],
  ['a login with NUL', 'sam\u0000', PEOPLE.sam.password],
  ['a login with a newline', 'sam\n', PEOPLE.sam.password],
  ['an over-long login', 's'.repeat(MAX_LOGIN_LENGTH + 1), PEOPLE.sam.password],
  ['a password with NUL', 'sam', `${PEOPLE.sam.password}\u0000`],
];
for (const [what, login, password] of hopeless) {
  test(`${what} is refused with AUTH_FAILED`, async (t) => {
    const e = await failure(directory.authenticate(login, password));
    t.true(isVellumError(e, 'AUTH_FAILED'), String(e));
  });
}

test('a wrong service password makes the directory unavailable (503), not a failed login, and status says so', async (t) => {
  const broken = await openDirectory({ ...settings, bindPassword: 'wrong' });
  try {
    const e = await failure(broken.authenticate('sam', PEOPLE.sam.password));
    t.true(isVellumError(e, 'DIRECTORY_UNAVAILABLE'), String(e));
    t.is((e as { status?: number }).status, 503);
    t.regex((e as Error).message, /service account/);
    t.false((e as Error).message.includes('wrong'), 'the message does not carry the password');
    const status = await broken.status();
    t.false(status.ok);
    t.regex(status.detail, /service account/);
  } finally {
    await broken.close();
  }
});

test('status() reports a reachable directory as ok', async (t) => {
  const status = await directory.status();
  t.true(status.ok, status.detail);
  t.true(status.detail.includes(slapd.url));
  t.false(status.detail.includes(slapd.servicePassword));
});

test('an entry without the configured id attribute is a misconfiguration (DIRECTORY_UNAVAILABLE), not a login', async (t) => {
  const misconfigured = await openDirectory({ ...settings, idAttribute: 'employeeNumber' });
  try {
    const e = await failure(misconfigured.authenticate('sam', PEOPLE.sam.password));
    t.true(isVellumError(e, 'DIRECTORY_UNAVAILABLE'), String(e));
    t.regex((e as Error).message, /employeeNumber/);
  } finally {
    await misconfigured.close();
  }
});

test('a wrong userBase makes the directory unavailable, not every login "wrong"', async (t) => {
  const misconfigured = await openDirectory({ ...settings, userBase: 'ou=nobody,dc=vellum,dc=test' });
  try {
    const e = await failure(misconfigured.authenticate('sam', PEOPLE.sam.password));
    t.true(isVellumError(e, 'DIRECTORY_UNAVAILABLE'), String(e));
    t.false((await misconfigured.status()).ok);
  } finally {
    await misconfigured.close();
  }
});

test('ldaps:// with the private CA in caPem authenticates', async (t) => {
  const tls = await openDirectory({ ...settings, url: slapd.ldapsUrl!, caPem: slapd.caPem! });
  try {
    const principal = await tls.authenticate('sam', PEOPLE.sam.password);
    t.is(principal.id, await entryUuidFromLdapsearch('sam'));
    t.true((await tls.status()).ok);
    await t.throwsAsync(tls.authenticate('sam', 'wrong'), { message: AUTH_FAILED_MESSAGE });
  } finally {
    await tls.close();
  }
});

test('ldaps:// refuses a server certificate its CA bundle does not vouch for (fail closed)', async (t) => {
  const tls = await openDirectory({ ...settings, url: slapd.ldapsUrl! }); // system CAs only
  try {
    const e = await failure(tls.authenticate('sam', PEOPLE.sam.password));
    t.true(isVellumError(e, 'DIRECTORY_UNAVAILABLE'), String(e));
    t.regex((e as Error).message, /certificate/);
    t.false((await tls.status()).ok);
  } finally {
    await tls.close();
  }
});

test('StartTLS on ldap:// with caPem authenticates', async (t) => {
  const tls = await openDirectory({ ...settings, startTls: true, caPem: slapd.caPem! });
  try {
    const principal = await tls.authenticate('pat', PEOPLE.pat.password);
    t.is(principal.id, await entryUuidFromLdapsearch('pat'));
    t.true((await tls.status()).ok);
  } finally {
    await tls.close();
  }
});

test('StartTLS refuses an untrusted certificate', async (t) => {
  const tls = await openDirectory({ ...settings, startTls: true });
  try {
    const e = await failure(tls.authenticate('sam', PEOPLE.sam.password));
    t.true(isVellumError(e, 'DIRECTORY_UNAVAILABLE'), String(e));
    t.regex((e as Error).message, /StartTLS/);
  } finally {
    await tls.close();
  }
});

test('openDirectory refuses settings that cannot work (CONFIG_INVALID)', async (t) => {
  for (const bad of [
    { ...settings, url: 'http://127.0.0.1:389' },
    { ...settings, url: 'not a url' },
    { ...settings, url: slapd.ldapsUrl!, startTls: true },
    { ...settings, timeoutMs: 0 },
    { ...settings, userBase: '' },
  ]) {
    const e = await failure(openDirectory(bad));
    t.true(isVellumError(e, 'CONFIG_INVALID'), `${JSON.stringify(bad.url)}: ${String(e)}`);
  }
});

test('after close(), authenticate fails closed and status is not ok; close() is idempotent', async (t) => {
  const d = await openDirectory(settings);
  t.truthy(await d.authenticate('sam', PEOPLE.sam.password));
  await d.close();
  await d.close();
  const e = await failure(d.authenticate('sam', PEOPLE.sam.password));
  t.true(isVellumError(e, 'DIRECTORY_UNAVAILABLE'), String(e));
  t.false((await d.status()).ok);
});

test('AD objectGUID bytes are printed the way AD prints GUIDs; other 16-byte ids as plain UUIDs', (t) => {
  // AD shows this objectGUID as 3f2504e0-4f89-11d3-9a0c-0305e82c3301 (mixed-endian first three fields).
  const bytes = Buffer.from('e004253f894fd3119a0c0305e82c3301', 'hex');
  t.is(formatId(bytes, 'objectGUID'), '3f2504e0-4f89-11d3-9a0c-0305e82c3301');
  t.is(formatId(bytes, 'someBinaryUuid'), 'e004253f-894f-d311-9a0c-0305e82c3301');
  t.is(formatId('D2343EA8-7BA0-1041-89AE-D1BED64848E9', 'entryUUID'), 'd2343ea8-7ba0-1041-89ae-d1bed64848e9');
  t.is(formatId(Buffer.from([1, 2, 255]), 'x'), '0102ff');
});

test('lookup(id) finds a person by entryUUID without their password, with their current groups', async (t) => {
  const signedIn = await directory.authenticate('dana', PEOPLE.dana.password);
  const found = await directory.lookup(signedIn.id);
  t.deepEqual(found, signedIn);
});

test('lookup(id) answers null for an id no entry has, and for something that is not an id', async (t) => {
  t.is(await directory.lookup('00000000-0000-4000-8000-000000000000'), null);
  t.is(await directory.lookup('*'), null);
  t.is(await directory.lookup(''), null);
});
