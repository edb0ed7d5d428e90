// Group resolution modes and group management against the real slapd
// (OpenLDAP shape): uniqueMember groups, the nested-group walk (bounded and
// cycle-safe), creating groups and adding and removing members (ldapsearch
// sees each change), and every refusal: management off, a service account the
// directory will not let write, an existing group, an unknown login, a
// non-member, the last member of a groupOfNames, names that try to inject.
// Tests that change the directory run serially; the rest only read.

import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { openDirectory, type Directory, type DirectorySettings } from '../../src/directory/index.ts';
import { escapeDnValue, GROUP_NAME, MAX_NESTING_DEPTH } from '../../src/directory/ldap-directory.ts';
import { isVellumError } from '../../src/kernel/index.ts';
import { GROUPS, PEOPLE, personDn } from '../env/people.ts';
import type { Slapd } from '../env/slapd.ts';
import { failure, startDirectoryFixture, type DirectoryFixture } from '../support/directory.ts';

const run = promisify(execFile);

let fixture: DirectoryFixture;
let slapd: Slapd;
let settings: DirectorySettings;
let directory: Directory;
let notices: string[];

test.before(async () => {
  fixture = await startDirectoryFixture('groups', { settings: (d) => ({ ...d, groupManagement: true }) });
  ({ slapd, settings, directory, notices } = fixture);
});

test.after.always(async () => fixture?.close());

async function ldapmodify(ldif: string): Promise<void> {
  const child = run('ldapmodify', ['-x', '-H', slapd.url, '-D', slapd.rootDn, '-w', slapd.rootPassword]);
  child.child.stdin?.end(ldif);
  await child;
}

/** The member values of cn=NAME as ldapsearch prints them, lowercased and sorted; null if no such group. */
async function members(name: string, attribute = 'member'): Promise<string[] | null> {
  const { stdout } = await run('ldapsearch', ['-x', '-LLL', '-o', 'ldif-wrap=no', '-H', slapd.url, '-D', slapd.serviceDn, '-w', slapd.servicePassword,
    '-b', slapd.groupBase, `(cn=${name})`, attribute]);
  if (!stdout.includes('dn: ')) return null;
  return [...stdout.matchAll(new RegExp(`^${attribute}: (.+)$`, 'gm'))].map((m) => m[1]!.toLowerCase()).sort();
}

const dn = (login: keyof typeof PEOPLE) => personDn(login).toLowerCase();

test.serial('create a group, add a member (twice: idempotent), remove one; ldapsearch shows each state; before/after are the member DNs', async (t) => {
  const created = await directory.createGroup('study-reviewers', ['sam'], 'Reviewers');
  t.is(created.dn, `cn=study-reviewers,${slapd.groupBase}`);
  t.deepEqual(created.members.map((m) => m.login), ['sam']);
  t.is(created.description, 'Reviewers');
  t.deepEqual(await members('study-reviewers'), [dn('sam')]);

  const added = await directory.addMember('study-reviewers', 'DANA');
  t.deepEqual(added.before.map((d) => d.toLowerCase()), [dn('sam')]);
  t.deepEqual([...added.after].map((d) => d.toLowerCase()).sort(), [dn('dana'), dn('sam')]);
  t.is(added.person.login, 'dana');
  t.deepEqual(await members('study-reviewers'), [dn('dana'), dn('sam')]);

  const again = await directory.addMember('study-reviewers', 'dana');
  t.deepEqual(again.before, again.after, 'adding a member twice changes nothing');
  t.deepEqual(await members('study-reviewers'), [dn('dana'), dn('sam')]);

  const removed = await directory.removeMember('study-reviewers', 'sam');
  t.deepEqual(removed.after.map((d) => d.toLowerCase()), [dn('dana')]);
  t.deepEqual(await members('study-reviewers'), [dn('dana')]);
  // And the person's sign-in shows it at once.
  t.true((await directory.authenticate('dana', PEOPLE.dana.password)).groups.includes(created.dn));
  t.false((await directory.authenticate('sam', PEOPLE.sam.password)).groups.includes(created.dn));
});

test.serial('refusals: last member (GROUP_NEEDS_MEMBER), non-member and unknown login (PERSON_NOT_FOUND), existing group (GROUP_EXISTS), unknown group, empty groupOfNames', async (t) => {
  const code = async (p: Promise<unknown>) => ((await failure(p)) as { code?: string }).code;
  t.is(await code(directory.removeMember('study-reviewers', 'dana')), 'GROUP_NEEDS_MEMBER');
  t.deepEqual(await members('study-reviewers'), [dn('dana')]);
  const notMember = await failure(directory.removeMember('study-reviewers', 'nora'));
  t.true(isVellumError(notMember, 'PERSON_NOT_FOUND'));
  t.regex((notMember as Error).message, /nora is not a member of study-reviewers/);
  t.is(await code(directory.addMember('study-reviewers', 'mallory')), 'PERSON_NOT_FOUND');
  t.is(await code(directory.createGroup('demo-001-sponsors', ['sam'])), 'GROUP_EXISTS');
  t.is(await code(directory.createGroup('DEMO-001-SPONSORS', ['sam'])), 'GROUP_EXISTS', 'cn matches ignoring case');
  t.is(await code(directory.createGroup('no-members', [])), 'GROUP_NEEDS_MEMBER');
  t.is(await code(directory.createGroup('ghost-member', ['sam', 'mallory'])), 'PERSON_NOT_FOUND');
  t.is(await members('ghost-member'), null);
  t.is(await code(directory.addMember('no-such-group', 'sam')), 'GROUP_NOT_FOUND');
  t.is(await code(directory.group('no-such-group')), 'GROUP_NOT_FOUND');
});

test.serial('11.10(d) injection in management: member logins are filter values, group names are checked, and a DN is escaped (RFC 4514)', async (t) => {
  for (const login of ['*', 'sam)(uid=*', '*)(|(uid=*', 'sa*', '\\2a', personDn('sam'), '(']) {
    const e = await failure(directory.addMember('study-reviewers', login));
    t.true(isVellumError(e, 'PERSON_NOT_FOUND'), `${login}: ${String(e)}`);
  }
  t.deepEqual(await members('study-reviewers'), [dn('dana')], 'nobody was added');
  for (const name of ['x,ou=people', 'a*', 'cn=x', '', ' lead', 'x'.repeat(65), 'new\nline', 'a+b', '#x', 'ünïcode']) {
    const e = await failure(directory.createGroup(name, ['sam']));
    t.true(isVellumError(e, 'BAD_REQUEST'), `${JSON.stringify(name)}: ${String(e)}`);
  }
  for (const name of ['*', 'demo-001-*', 'x)(cn=*']) {
    t.true(isVellumError(await failure(directory.group(name)), 'GROUP_NOT_FOUND'), name);
  }
  t.true(GROUP_NAME.test('demo-001_team.v2'));
  t.is(escapeDnValue('a,b+c"d\\e<f>g;h=i'), 'a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h\\=i');
  t.is(escapeDnValue(' #lead and trail '), '\\ #lead and trail\\ ');
  t.is(escapeDnValue('#x'), '\\#x');
  t.is(escapeDnValue('nul\u0000'), 'nul\\00');
});

test.serial('a service account the directory will not let write: DIRECTORY_READ_ONLY, and nothing changes', async (t) => {
  const reader = await openDirectory({ ...settings, bindDn: slapd.readerDn, bindPassword: slapd.readerPassword });
  try {
    t.truthy(await reader.group('study-reviewers'), 'the reader can read');
    const add = await failure(reader.addMember('study-reviewers', 'mona'));
    t.true(isVellumError(add, 'DIRECTORY_READ_ONLY'), String(add));
    t.is((add as { status?: number }).status, 403);
    t.true(isVellumError(await failure(reader.createGroup('readers-group', ['mona'])), 'DIRECTORY_READ_ONLY'));
    t.deepEqual(await members('study-reviewers'), [dn('dana')]);
    t.is(await members('readers-group'), null);
  } finally {
    await reader.close();
  }
});

test('with groupManagement off, groupsWritable is false and every change is DIRECTORY_READ_ONLY before LDAP is asked', async (t) => {
  const readOnly = await openDirectory({ ...settings, groupManagement: false });
  try {
    t.false(readOnly.groupsWritable);
    t.true(directory.groupsWritable);
    for (const change of [readOnly.createGroup('x', ['sam']), readOnly.addMember('demo-001-sponsors', 'nora'), readOnly.removeMember('demo-001-sponsors', 'sam')]) {
      t.true(isVellumError(await failure(change), 'DIRECTORY_READ_ONLY'));
    }
    t.false((await members('demo-001-sponsors'))!.includes(dn('nora')));
  } finally {
    await readOnly.close();
  }
});

test('listGroups lists the seeded groups with member counts; group() resolves members to people and keeps other DNs as DNs', async (t) => {
  const groups = await directory.listGroups();
  const sponsors = groups.find((g) => g.name === 'demo-001-sponsors');
  t.is(sponsors?.dn, GROUPS['demo-001-sponsors'].dn);
  t.is(sponsors?.memberCount, 2);
  const detail = await directory.group('demo-001-sponsors');
  t.deepEqual(detail.members.map((m) => m.login), ['pat', 'sam']);
  t.is(detail.members[0]!.displayName, PEOPLE.pat.displayName);
});

test('findPerson: a login gives the person; unknown and injected logins are PERSON_NOT_FOUND', async (t) => {
  const mona = await directory.findPerson('mona');
  t.is(mona.dn, personDn('mona'));
  t.is(mona.displayName, PEOPLE.mona.displayName);
  for (const login of ['mallory', '*', 'mo*', '', 'x'.repeat(300)]) {
    t.true(isVellumError(await failure(directory.findPerson(login)), 'PERSON_NOT_FOUND'), login);
  }
});

test.serial('uniqueMember mode: groupOfUniqueNames groups are found, created and changed', async (t) => {
  await ldapmodify([
    `dn: cn=unique-auditors,${slapd.groupBase}`, 'changetype: add', 'objectClass: groupOfUniqueNames', 'cn: unique-auditors',
    `uniqueMember: ${personDn('audrey')}`, '',
  ].join('\n'));
  const unique = await openDirectory({ ...settings, groupMembership: 'uniqueMember', groupObjectClass: 'groupOfUniqueNames' });
  try {
    const audrey = await unique.authenticate('audrey', PEOPLE.audrey.password);
    t.deepEqual(audrey.groups, [`cn=unique-auditors,${slapd.groupBase}`]);
    await unique.addMember('unique-auditors', 'mona');
    t.deepEqual(await members('unique-auditors', 'uniqueMember'), [dn('audrey'), dn('mona')]);
    t.true(isVellumError(await failure(unique.removeMember('unique-auditors', 'audrey').then(() => unique.removeMember('unique-auditors', 'mona'))), 'GROUP_NEEDS_MEMBER'));
    const made = await unique.createGroup('unique-new', ['nora']);
    t.deepEqual(made.members.map((m) => m.login), ['nora']);
    t.deepEqual(await members('unique-new', 'uniqueMember'), [dn('nora')]);
  } finally {
    await unique.close();
  }
});

test.serial('nested groups: the walk finds groups of groups, stops at a cycle, and is bounded in depth', async (t) => {
  // chain-0 holds nora; chain-1 holds chain-0; ... chain-(N+1); and a cycle chain-0 <- loop -> chain-0.
  const chain = (i: number) => `cn=chain-${i},${slapd.groupBase}`;
  const ldif: string[] = [];
  for (let i = 0; i <= MAX_NESTING_DEPTH + 1; i++) {
    ldif.push(`dn: ${chain(i)}`, 'changetype: add', 'objectClass: groupOfNames', `cn: chain-${i}`, `member: ${i === 0 ? personDn('nora') : chain(i - 1)}`, '');
  }
  ldif.push(`dn: cn=loop,${slapd.groupBase}`, 'changetype: add', 'objectClass: groupOfNames', 'cn: loop', `member: ${chain(0)}`, '');
  ldif.push(`dn: ${chain(0)}`, 'changetype: modify', 'add: member', `member: cn=loop,${slapd.groupBase}`, '');
  await ldapmodify(ldif.join('\n'));
  const flat = await directory.authenticate('nora', PEOPLE.nora.password);
  t.deepEqual(flat.groups, [chain(0)], 'without nestedGroups: direct groups only');
  const nested = await openDirectory({ ...settings, nestedGroups: true });
  try {
    const nora = await nested.authenticate('nora', PEOPLE.nora.password);
    const expected = [`cn=loop,${slapd.groupBase}`, ...Array.from({ length: MAX_NESTING_DEPTH + 1 }, (_, i) => chain(i))];
    t.deepEqual([...nora.groups].sort(), expected.sort(), `${MAX_NESTING_DEPTH} levels above the direct group, the loop once`);
    t.false(nora.groups.includes(chain(MAX_NESTING_DEPTH + 1)));
    t.true(notices.some((n) => n.includes(`deeper than ${MAX_NESTING_DEPTH}`)), notices.join('\n'));
  } finally {
    await nested.close();
  }
});
