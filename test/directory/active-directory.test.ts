// The Directory against an Active Directory-shaped slapd (startSlapd({ shape:
// 'active-directory' }): msuser.schema's `user` and `group`, sAMAccountName,
// userPrincipalName, a binary objectGUID, stored memberOf, a group of groups),
// configured with the active-directory preset. What this proves and what it
// cannot (a real AD's in-chain rule, its ranged attributes, unicodePwd) is in
// docs/directory.md. Part 11 §11.10(d), §11.100(a).

import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { LDAP_PRESETS } from '../../src/config/schema.ts';
import { openDirectory, type Directory, type DirectorySettings } from '../../src/directory/index.ts';
import { formatId } from '../../src/directory/ldap-directory.ts';
import { isVellumError } from '../../src/kernel/index.ts';
import { AD_NESTED_GROUP, AD_OBJECT_GUIDS, AD_UPN_SUFFIX, GROUPS, PEOPLE, adGuidBytes, type Login } from '../env/people.ts';
import type { Slapd } from '../env/slapd.ts';
import { failure, startDirectoryFixture, type DirectoryFixture } from '../support/directory.ts';

const run = promisify(execFile);

let fixture: DirectoryFixture;
let slapd: Slapd;
let settings: DirectorySettings;
let directory: Directory;
let notices: string[];

test.before(async () => {
  const preset = LDAP_PRESETS['active-directory'];
  fixture = await startDirectoryFixture('ad', {
    shape: 'active-directory',
    settings: (d) => ({
      ...d,
      loginAttribute: preset.loginAttributes[0],
      loginAttributes: preset.loginAttributes,
      idAttribute: preset.idAttribute,
      displayNameAttribute: preset.displayNameAttribute,
      groupMembership: preset.groupMembership,
      groupObjectClass: preset.groupObjectClass,
    }),
  });
  ({ slapd, settings, directory, notices } = fixture);
});

test.after.always(async () => fixture?.close());

/** objectGUID of the entry with this sAMAccountName, from the real ldapsearch (base64 in its LDIF), printed as AD prints it. */
async function guidFromLdapsearch(login: string): Promise<string> {
  const { stdout } = await run('ldapsearch', ['-x', '-LLL', '-H', slapd.url, '-D', slapd.serviceDn, '-w', slapd.servicePassword,
    '-b', slapd.userBase, `(sAMAccountName=${login})`, 'objectGUID']);
  const match = /^objectGUID:: (\S+)$/m.exec(stdout);
  if (!match?.[1]) throw new Error(`no objectGUID for ${login}:\n${stdout}`);
  const bytes = Buffer.from(match[1], 'base64');
  // AD prints the first three fields little-endian.
  const hex = (b: Buffer) => b.toString('hex');
  const le = (a: number, b: number) => hex(Buffer.from(bytes.subarray(a, b)).reverse());
  return `${le(0, 4)}-${le(4, 6)}-${le(6, 8)}-${hex(bytes.subarray(8, 10))}-${hex(bytes.subarray(10, 16))}`;
}

test('11.100(a) sam signs in by sAMAccountName; the id is the objectGUID as AD prints it, and lookup(id) finds sam', async (t) => {
  const principal = await directory.authenticate('sam', PEOPLE.sam.password);
  t.is(principal.id, AD_OBJECT_GUIDS.sam);
  t.is(principal.id, await guidFromLdapsearch('sam'));
  t.is(principal.id, '3f2504e0-4f89-11d3-9a0c-0305e82c3301');
  t.is(principal.login, 'sam');
  t.is(principal.dn, slapd.personDn('sam'));
  t.is(principal.displayName, 'Sam Sponsor');
  t.deepEqual(await directory.lookup(principal.id), principal);
});

test('11.10(d) sam signs in by userPrincipalName too, as the same person (same id, login reported as sAMAccountName)', async (t) => {
  const byUpn = await directory.authenticate(`sam@${AD_UPN_SUFFIX}`, PEOPLE.sam.password);
  const bySam = await directory.authenticate('SAM', PEOPLE.sam.password);
  t.is(byUpn.id, bySam.id);
  t.is(byUpn.login, 'sam');
  await t.throwsAsync(directory.authenticate(`sam@${AD_UPN_SUFFIX}`, 'wrong'), { message: /not correct/ });
});

for (const login of Object.keys(PEOPLE) as Login[]) {
  test(`11.100(a) ${login}: a distinct objectGUID, and the direct groups plus the nested ones`, async (t) => {
    const principal = await directory.authenticate(login, PEOPLE[login].password);
    t.is(principal.id, AD_OBJECT_GUIDS[login]);
    const direct = PEOPLE[login].groups.map((cn) => GROUPS[cn as keyof typeof GROUPS].dn);
    const nested = PEOPLE[login].groups.some((cn) => AD_NESTED_GROUP.memberGroups.includes(cn)) ? [AD_NESTED_GROUP.dn] : [];
    t.deepEqual([...principal.groups].map((g) => g.toLowerCase()).sort(), [...direct, ...nested].map((g) => g.toLowerCase()).sort());
  });
}

test('in-chain on a server that is not AD: slapd answers the in-chain filter with nothing, so Vellum walks the nesting itself and says so once', async (t) => {
  // What slapd 2.5 does with the rule: no error, no entries (it would read as "in no group").
  const { stdout } = await run('ldapsearch', ['-x', '-LLL', '-H', slapd.url, '-D', slapd.serviceDn, '-w', slapd.servicePassword,
    '-b', slapd.groupBase, `(member:1.2.840.113556.1.4.1941:=${slapd.personDn('dana')})`, 'dn']);
  t.is(stdout.trim(), '');
  const dana = await directory.authenticate('dana', PEOPLE.dana.password);
  t.true(dana.groups.some((g) => g.toLowerCase() === AD_NESTED_GROUP.dn.toLowerCase()));
  t.is(notices.filter((n) => n.includes('in-chain')).length, 1, notices.join('\n'));
});

test('memberOf mode reads the stored memberOf (direct groups only, unless nestedGroups)', async (t) => {
  const byMemberOf = await openDirectory({ ...settings, groupMembership: 'memberOf' });
  const nested = await openDirectory({ ...settings, groupMembership: 'memberOf', nestedGroups: true });
  try {
    const mona = await byMemberOf.authenticate('mona', PEOPLE.mona.password);
    t.deepEqual(mona.groups.map((g) => g.toLowerCase()), [GROUPS['demo-001-monitors'].dn.toLowerCase()]);
    const monaNested = await nested.authenticate('mona', PEOPLE.mona.password);
    t.deepEqual([...monaNested.groups].map((g) => g.toLowerCase()).sort(), [GROUPS['demo-001-monitors'].dn, AD_NESTED_GROUP.dn].map((g) => g.toLowerCase()).sort());
    t.deepEqual((await byMemberOf.authenticate('nora', PEOPLE.nora.password)).groups, []);
  } finally {
    await byMemberOf.close();
    await nested.close();
  }
});

test.serial('AD group management (ends with the group empty again): create a `group` (groupType, sAMAccountName), add and remove a member, remove the last one (AD groups may be empty)', async (t) => {
  const writable = await openDirectory({ ...settings, groupManagement: true });
  try {
    const created = await writable.createGroup('ad-reviewers', ['sam'], 'AD-shaped');
    t.deepEqual(created.members.map((m) => m.id), [AD_OBJECT_GUIDS.sam]);
    const { stdout } = await run('ldapsearch', ['-x', '-LLL', '-H', slapd.url, '-D', slapd.serviceDn, '-w', slapd.servicePassword,
      '-b', slapd.groupBase, '(sAMAccountName=ad-reviewers)', 'objectClass', 'groupType', 'member']);
    t.regex(stdout, /objectClass: group/);
    t.regex(stdout, /groupType: -2147483646/);
    t.regex(stdout, /member: cn=Sam Sponsor,ou=people/);
    const added = await writable.addMember('ad-reviewers', `dana@${AD_UPN_SUFFIX}`);
    t.is(added.person.login, 'dana');
    t.is(added.after.length, 2);
    await writable.removeMember('ad-reviewers', 'dana');
    const emptied = await writable.removeMember('ad-reviewers', 'sam');
    t.deepEqual(emptied.after, []);
    t.deepEqual((await writable.group('ad-reviewers')).members, []);
  } finally {
    await writable.close();
  }
});

test('a nested group shows in the group listing, and as a DN (not a person) among its parent\'s members', async (t) => {
  const groups = await directory.listGroups();
  t.truthy(groups.find((g) => g.name === AD_NESTED_GROUP.cn && g.memberCount === 2));
  const team = await directory.group(AD_NESTED_GROUP.cn);
  t.deepEqual(team.members, []);
  t.is(team.memberDns.length, 2);
});

test('injection in an AD login (an OR of two attributes) is still just a wrong login', async (t) => {
  for (const login of ['*', 'sam)(sAMAccountName=*', '*)(|(userPrincipalName=*', `*@${AD_UPN_SUFFIX}`, 'sa*']) {
    const e = await failure(directory.authenticate(login, PEOPLE.sam.password));
    t.true(isVellumError(e, 'AUTH_FAILED'), `${login}: ${String(e)}`);
  }
});

test('formatId and the stored bytes agree for every person', (t) => {
  for (const [login, guid] of Object.entries(AD_OBJECT_GUIDS)) {
    t.is(formatId(adGuidBytes(guid), 'objectGUID'), guid, login);
  }
});
