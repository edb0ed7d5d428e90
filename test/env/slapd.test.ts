// The private slapd itself: passwords are stored hashed, its access rules give
// each account only what it needs, a seeded directory is reused as it is, and
// stop/start/close behave as the outage tests and the demo rely on. Checked
// with the real ldap-utils and slapcat, not with Vellum's own client.

import test from 'ava';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BASE_DN, GROUPS, PEOPLE, READER_PASSWORD, personDn, type Person } from './people.ts';
import { sshaHash, startSlapd, type Slapd } from './slapd.ts';

const run = promisify(execFile);

const dirs: string[] = [];
const started: Slapd[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'vellum-slapd-'));
  dirs.push(dir);
  return dir;
}
async function slapdIn(dir: string, port?: number): Promise<Slapd> {
  const s = await startSlapd({ dir, ...(port === undefined ? {} : { port }) });
  started.push(s);
  return s;
}

let shared: Slapd;
let sharedDir: string;
test.before(async () => {
  sharedDir = await tempDir();
  shared = await slapdIn(sharedDir);
});
test.after.always(async () => {
  for (const s of started) await s.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function search(s: Slapd, bind: [string, string] | undefined, base: string, filter: string, attrs: string[]): Promise<string> {
  const auth = bind ? ['-D', bind[0], '-w', bind[1]] : [];
  try {
    const { stdout } = await run('ldapsearch', ['-x', '-LLL', '-o', 'ldif-wrap=no', '-H', s.url, ...auth, '-b', base, filter, ...attrs]);
    return stdout;
  } catch (e) {
    // 32 (noSuchObject) is how slapd hides what an identity may not see.
    if ((e as { code?: number }).code === 32) return '';
    throw e;
  }
}

async function ldapmodify(s: Slapd, bind: [string, string], ldif: string): Promise<void> {
  const p = run('ldapmodify', ['-x', '-H', s.url, '-D', bind[0], '-w', bind[1]]);
  p.child.stdin?.end(ldif);
  await p;
}

const service = (): [string, string] => [shared.serviceDn, shared.servicePassword];
const as = (login: keyof typeof PEOPLE): [string, string] => [personDn(login), PEOPLE[login].password];

test('invariant 7: userPassword is stored as a salted SHA-1 ({SSHA}), never in plaintext, in slapcat and in the database file', async (t) => {
  const { stdout } = await run('/usr/sbin/slapcat', ['-f', shared.conf, '-o', 'ldif-wrap=no']);
  const stored = [...stdout.matchAll(/^userPassword:: (\S+)$/gm)].map((m) => Buffer.from(m[1]!, 'base64').toString('utf8'));
  t.is(stored.length, Object.keys(PEOPLE).length + 2, 'every person, the service account and the read-only account have one');
  for (const value of stored) t.regex(value, /^\{SSHA\}[A-Za-z0-9+/]+=*$/);
  t.false(/^userPassword: /m.test(stdout), 'no userPassword in clear LDIF form');
  const database = await readFile(join(sharedDir, 'db', 'data.mdb'));
  for (const p of Object.values(PEOPLE) as Person[]) {
    t.false(stdout.includes(p.password), `${p.login}'s password is not in slapcat output`);
    t.is(database.indexOf(Buffer.from(p.password, 'utf8')), -1, `${p.login}'s password is not in data.mdb`);
  }
  t.is(database.indexOf(Buffer.from(shared.servicePassword)), -1);
  t.is(database.indexOf(Buffer.from(READER_PASSWORD)), -1);
  t.false((await readFile(shared.conf, 'utf8')).includes(shared.rootPassword), 'rootpw is hashed in slapd.conf too');
});

test('sshaHash is slappasswd-compatible: SHA-1(password || salt) || salt, and slapd accepts it for binds', async (t) => {
  const salt = Buffer.from('0011223344556677', 'hex');
  const hash = sshaHash('p:a+s/s wörd-Žluť', salt);
  const raw = Buffer.from(hash.slice('{SSHA}'.length), 'base64');
  t.deepEqual(raw.subarray(20), salt);
  t.deepEqual(raw.subarray(0, 20), createHash('sha1').update(Buffer.from('p:a+s/s wörd-Žluť', 'utf8')).update(salt).digest());
  t.not(sshaHash('x'), sshaHash('x'), 'a fresh salt each time');
  const { stdout } = await run('ldapwhoami', ['-x', '-H', shared.url, '-D', personDn('pat'), '-w', PEOPLE.pat.password]);
  t.is(stdout.trim(), `dn:${personDn('pat')}`);
});

test('every seeded person can bind with their documented password, and not with another', async (t) => {
  for (const p of Object.values(PEOPLE) as Person[]) {
    const { stdout } = await run('ldapwhoami', ['-x', '-H', shared.url, '-D', personDn(p.login), '-w', p.password]);
    t.is(stdout.trim(), `dn:${personDn(p.login)}`);
  }
  await t.throwsAsync(run('ldapwhoami', ['-x', '-H', shared.url, '-D', personDn('sam'), '-w', PEOPLE.dana.password]), { message: /Invalid credentials/ });
});

test('groups are seeded as groupOfNames with the people of PEOPLE as members', async (t) => {
  for (const [cn, g] of Object.entries(GROUPS)) {
    const out = await search(shared, service(), g.dn, '(objectClass=groupOfNames)', ['member']);
    const members = [...out.matchAll(/^member: (.+)$/gm)].map((m) => m[1]).sort();
    const expected = (Object.values(PEOPLE) as Person[]).filter((p) => p.groups.includes(cn)).map((p) => personDn(p.login)).sort();
    t.deepEqual(members, expected, cn);
    t.true(members.length >= 1);
  }
});

test('access: the service account reads people and their entryUUID but not password hashes', async (t) => {
  const out = await search(shared, service(), shared.userBase, '(uid=sam)', ['entryUUID', 'displayName', 'userPassword']);
  t.regex(out, /^entryUUID: [0-9a-f-]{36}$/m);
  t.regex(out, /^displayName: Sam Sponsor$/m);
  t.false(/userPassword/i.test(out));
  const rootView = await search(shared, [shared.rootDn, shared.rootPassword], shared.userBase, '(uid=sam)', ['userPassword']);
  t.regex(rootView, /^userPassword:: /m, 'the hash is there (the rootdn sees it)');
});

test('access: anonymous may bind but may not read anything', async (t) => {
  t.is(await search(shared, undefined, BASE_DN, '(objectClass=*)', ['*']), '');
  t.is(await search(shared, undefined, shared.userBase, '(uid=sam)', ['entryUUID']), '');
});

test('access: a person reads their own entry only, and no groups', async (t) => {
  t.regex(await search(shared, as('sam'), personDn('sam'), '(objectClass=*)', ['mail']), /^mail: sam@vellum\.test$/m);
  t.is(await search(shared, as('sam'), personDn('dana'), '(objectClass=*)', ['mail']), '');
  t.is(await search(shared, as('sam'), shared.userBase, '(uid=dana)', ['mail']), '');
  t.is(await search(shared, as('sam'), shared.groupBase, '(objectClass=groupOfNames)', ['cn']), '');
});

test('access: the service account may create, change and delete groups, but not change people', async (t) => {
  const dn = `cn=env-test-group,${shared.groupBase}`;
  await ldapmodify(shared, service(), `dn: ${dn}\nchangetype: add\nobjectClass: groupOfNames\ncn: env-test-group\nmember: ${personDn('nora')}\n`);
  t.regex(await search(shared, service(), dn, '(objectClass=*)', ['member']), /member: uid=nora/);
  await ldapmodify(shared, service(), `dn: ${dn}\nchangetype: delete\n`);
  t.is(await search(shared, service(), dn, '(objectClass=*)', ['cn']), '');
  await t.throwsAsync(ldapmodify(shared, service(), `dn: ${personDn('sam')}\nchangetype: modify\nreplace: displayName\ndisplayName: Hacked\n`),
    { message: /Insufficient access/ });
  await t.throwsAsync(ldapmodify(shared, as('sam'), `dn: ${GROUPS['vellum-administrators'].dn}\nchangetype: modify\nadd: member\nmember: ${personDn('sam')}\n`),
    { message: /Insufficient access|No such object/ }, 'a person cannot add themself to the administrators');
});

test('a seeded directory is reused as it is: data written before a restart is still there, entryUUIDs unchanged, no reseed', async (t) => {
  const dir = await tempDir();
  const first = await slapdIn(dir);
  const uuidBefore = await search(first, [first.rootDn, first.rootPassword], first.userBase, '(uid=sam)', ['entryUUID']);
  await ldapmodify(first, [first.rootDn, first.rootPassword], `dn: ${personDn('nora')}\nchangetype: modify\nreplace: displayName\ndisplayName: Nora Kept\n`);
  const seededAt = (await stat(join(dir, 'seeded'))).mtimeMs;
  await first.close();
  const second = await slapdIn(dir);
  t.is((await stat(join(dir, 'seeded'))).mtimeMs, seededAt);
  t.regex(await search(second, [second.rootDn, second.rootPassword], second.userBase, '(uid=nora)', ['displayName']), /^displayName: Nora Kept$/m);
  t.is(await search(second, [second.rootDn, second.rootPassword], second.userBase, '(uid=sam)', ['entryUUID']), uuidBefore);
});

test('stop() ends slapd (connections refused) and start() brings it back on the same port with the same data', async (t) => {
  const dir = await tempDir();
  const s = await slapdIn(dir);
  const before = await search(s, [s.rootDn, s.rootPassword], s.userBase, '(uid=ada)', ['entryUUID']);
  const pid = Number((await readFile(join(dir, 'slapd.pid'), 'utf8')).trim());
  await s.stop();
  t.throws(() => process.kill(pid, 0), undefined, 'the slapd process is gone');
  await t.throwsAsync(run('ldapwhoami', ['-x', '-H', s.url, '-D', s.serviceDn, '-w', s.servicePassword]), { message: /Can't contact LDAP server/ });
  await s.stop(); // stopping a stopped slapd is fine
  const t0 = performance.now();
  await s.start();
  t.log(`restart took ${(performance.now() - t0).toFixed(0)} ms`);
  t.is(await search(s, [s.rootDn, s.rootPassword], s.userBase, '(uid=ada)', ['entryUUID']), before);
  await s.close();
  await s.close();
  await t.throwsAsync(s.start(), { message: /closed/ });
});

test('a port that is already taken fails the start with slapd\'s own explanation', async (t) => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as { port: number }).port;
  try {
    const e = await t.throwsAsync(slapdIn(await tempDir(), port));
    t.regex(e?.message ?? '', /Address already in use/);
    t.regex(e?.message ?? '', new RegExp(`127\\.0\\.0\\.1:${port}`));
  } finally {
    await new Promise((resolve) => blocker.close(resolve));
  }
});

test('the port given is the port used', async (t) => {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve));
  const s = await slapdIn(await tempDir(), port);
  t.is(s.port, port);
  t.is(s.url, `ldap://127.0.0.1:${port}`);
  const { stdout } = await run('ldapwhoami', ['-x', '-H', s.url, '-D', s.serviceDn, '-w', s.servicePassword]);
  t.is(stdout.trim(), `dn:${s.serviceDn}`);
});
