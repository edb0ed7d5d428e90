// Directory group management over the REST API of a running appliance, with
// `ldap.groupManagement` on: an Administrator creates a group and adds and
// removes a member, and the real ldapsearch (ldap-utils) sees each change in
// slapd; every change is audited with the member DNs before and after
// (Part 11 §11.10(e)); a person who is not an Administrator is refused and
// the refusal audited (§11.10(d),(g)); a group of names keeps its last member;
// with group management off the API refuses changes (403 DIRECTORY_READ_ONLY).

import test from 'ava';
import type { AuditEntry } from '../../src/audit/index.ts';
import { PEOPLE, personDn } from '../env/people.ts';
import { run, send, startRunning, type Running } from '../support/appliance.ts';

let running: Running;
let readOnly: Running;

const json = (value: unknown) => ({ headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(value) });
const mark = (r: Running) => r.appliance.audit.head().seq;

async function entriesSince(r: Running, seq: number, action: string): Promise<AuditEntry[]> {
  const found: AuditEntry[] = [];
  for await (const entry of r.appliance.audit.entries(seq + 1)) if (entry.action === action) found.push(entry);
  return found;
}

/** member values of cn=NAME in slapd, as the service account's ldapsearch prints them (lowercased). */
async function membersInSlapd(r: Running, name: string): Promise<string[] | null> {
  const { stdout } = await run('ldapsearch', [
    '-x', '-LLL', '-o', 'ldif-wrap=no', '-H', r.env.ldap.url, '-D', r.env.ldap.serviceDn, '-w', r.env.ldap.servicePassword,
    '-b', r.env.ldap.groupBase, `(cn=${name})`, 'member',
  ]);
  if (!stdout.includes('dn: ')) return null;
  return [...stdout.matchAll(/^member: (.+)$/gm)].map((m) => m[1]!.toLowerCase()).sort();
}

test.before(async () => {
  running = await startRunning({ config: (c) => ({ ...c, ldap: { ...c.ldap, groupManagement: true } }) });
});
test.after.always(async () => {
  await running?.close();
  await readOnly?.close();
});

test.serial('11.10(e) ada creates a group, adds and removes dana; ldapsearch shows each change; the trail holds old and new members', async (t) => {
  const seq = mark(running);
  const sam = personDn('sam').toLowerCase();
  const dana = personDn('dana').toLowerCase();

  const created = await send(running, '/api/v1/groups', { method: 'POST', user: 'ada', ...json({ name: 'demo-002-reviewers', members: ['sam'], description: 'Reviewers of DEMO-002' }) });
  t.is(created.status, 201, created.text);
  t.is(created.headers.location, '/api/v1/groups/demo-002-reviewers');
  const group = JSON.parse(created.text) as { dn: string; members: { login: string }[] };
  t.deepEqual(group.members.map((m) => m.login), ['sam']);
  t.deepEqual(await membersInSlapd(running, 'demo-002-reviewers'), [sam]);

  const added = await send(running, '/api/v1/groups/demo-002-reviewers/members', { method: 'POST', user: 'ada', ...json({ login: 'dana' }) });
  t.is(added.status, 200, added.text);
  t.deepEqual(await membersInSlapd(running, 'demo-002-reviewers'), [dana, sam].sort());

  const read = await send(running, '/api/v1/groups/demo-002-reviewers', { user: 'ada' });
  t.deepEqual((JSON.parse(read.text) as { members: { login: string }[] }).members.map((m) => m.login), ['dana', 'sam']);
  const listed = JSON.parse((await send(running, '/api/v1/groups', { user: 'ada' })).text) as { groups: { name: string; memberCount: number }[] };
  t.is(listed.groups.find((g) => g.name === 'demo-002-reviewers')?.memberCount, 2);

  const removed = await send(running, '/api/v1/groups/demo-002-reviewers/members/dana', { method: 'DELETE', user: 'ada' });
  t.is(removed.status, 200, removed.text);
  t.deepEqual(await membersInSlapd(running, 'demo-002-reviewers'), [sam]);

  const lower = (values: unknown) => (values as { members: string[] }).members.map((dn) => dn.toLowerCase()).sort();
  const [create] = await entriesSince(running, seq, 'group.create');
  t.is(create?.outcome, 'success');
  t.is(create?.actor?.login, 'ada');
  t.is(create?.object.path?.toLowerCase(), group.dn.toLowerCase());
  t.deepEqual(lower(create?.newValue), [sam]);
  const [add] = await entriesSince(running, seq, 'group.member.add');
  t.deepEqual([lower(add?.oldValue), lower(add?.newValue)], [[sam], [dana, sam].sort()]);
  t.is(add?.actor?.login, 'ada');
  const [remove] = await entriesSince(running, seq, 'group.member.remove');
  t.deepEqual([lower(remove?.oldValue), lower(remove?.newValue)], [[dana, sam].sort(), [sam]]);
  t.is(remove?.object.path, add?.object.path);
});

test.serial('11.10(d) a member removed through Vellum loses the group at once, not after the sign-in cache time', async (t) => {
  // dana signs in (and is cached) as a member of a new group, then is removed.
  t.is((await send(running, '/api/v1/groups', { method: 'POST', user: 'ada', ...json({ name: 'cache-check', members: ['sam', 'dana'] }) })).status, 201);
  const danaSignIns = async (since: number) => (await entriesSince(running, since, 'auth.login')).filter((e) => e.actor?.login === 'dana' && e.outcome === 'success').length;
  const before = mark(running);
  t.is((await send(running, '/api/v1/studies', { user: 'dana' })).status, 200);
  t.is((await send(running, '/api/v1/studies', { user: 'dana' })).status, 200);
  t.is(await danaSignIns(before), 1, 'the second request was answered from the sign-in cache');
  t.is((await send(running, '/api/v1/groups/cache-check/members/dana', { method: 'DELETE', user: 'ada' })).status, 200);
  // dana's cached sign-in is gone: the next request binds again and reads the groups anew.
  const after = mark(running);
  t.is((await send(running, '/api/v1/studies', { user: 'dana' })).status, 200);
  t.is(await danaSignIns(after), 1, 'dana signed in against the directory again');
});

test.serial('11.10(g) sam (a Sponsor, not an Administrator) gets 403 on every group route, and each refusal is audited', async (t) => {
  const seq = mark(running);
  const attempts = [
    ['GET', '/api/v1/groups', undefined, 'group.list'],
    ['GET', '/api/v1/groups/demo-001-sponsors', undefined, 'group.read'],
    ['POST', '/api/v1/groups', { name: 'sams-group', members: ['sam'] }, 'group.create'],
    ['POST', '/api/v1/groups/vellum-administrators/members', { login: 'sam' }, 'group.member.add'],
    ['DELETE', '/api/v1/groups/demo-001-data-managers/members/dana', undefined, 'group.member.remove'],
  ] as const;
  for (const [method, path, body, action] of attempts) {
    const reply = await send(running, path, { method, user: 'sam', ...(body ? json(body) : {}) });
    t.is(reply.status, 403, `${method} ${path}: ${reply.text}`);
    t.is(reply.headers['x-vellum-error'], 'FORBIDDEN');
    const [denied] = await entriesSince(running, seq, action);
    t.is(denied?.outcome, 'denied', action);
    t.is(denied?.actor?.login, 'sam');
  }
  t.deepEqual(await membersInSlapd(running, 'sams-group'), null, 'nothing was created');
  const admins = await membersInSlapd(running, 'vellum-administrators');
  t.false(admins?.includes(personDn('sam').toLowerCase()));
});

test.serial('removing the last member of a groupOfNames is 409 GROUP_NEEDS_MEMBER, audited as failed, and the member stays', async (t) => {
  t.is((await send(running, '/api/v1/groups', { method: 'POST', user: 'ada', ...json({ name: 'solo', members: ['mona'] }) })).status, 201);
  const seq = mark(running);
  const reply = await send(running, '/api/v1/groups/solo/members/mona', { method: 'DELETE', user: 'ada' });
  t.is(reply.status, 409, reply.text);
  t.is(reply.headers['x-vellum-error'], 'GROUP_NEEDS_MEMBER');
  t.deepEqual(await membersInSlapd(running, 'solo'), [personDn('mona').toLowerCase()]);
  const [failed] = await entriesSince(running, seq, 'group.member.remove');
  t.is(failed?.outcome, 'failed');
  t.regex(failed?.detail ?? '', /^GROUP_NEEDS_MEMBER/);
});

test.serial('API errors: an existing group is 409, an unknown login 404, a bad name 400, an unknown group 404', async (t) => {
  const existing = await send(running, '/api/v1/groups', { method: 'POST', user: 'ada', ...json({ name: 'demo-001-sponsors', members: ['sam'] }) });
  t.is(existing.headers['x-vellum-error'], 'GROUP_EXISTS');
  t.is(existing.status, 409);
  const unknown = await send(running, '/api/v1/groups/demo-001-sponsors/members', { method: 'POST', user: 'ada', ...json({ login: 'mallory' }) });
  t.is(unknown.headers['x-vellum-error'], 'PERSON_NOT_FOUND');
  const injected = await send(running, '/api/v1/groups/demo-001-sponsors/members', { method: 'POST', user: 'ada', ...json({ login: '*' }) });
  t.is(injected.headers['x-vellum-error'], 'PERSON_NOT_FOUND');
  const badName = await send(running, '/api/v1/groups', { method: 'POST', user: 'ada', ...json({ name: 'x,ou=people', members: ['sam'] }) });
  t.is(badName.status, 400, badName.text);
  const noGroup = await send(running, '/api/v1/groups/no-such-group', { user: 'ada' });
  t.is(noGroup.headers['x-vellum-error'], 'GROUP_NOT_FOUND');
  const notMember = await send(running, '/api/v1/groups/demo-001-sponsors/members/nora', { method: 'DELETE', user: 'ada' });
  t.is(notMember.headers['x-vellum-error'], 'PERSON_NOT_FOUND');
  t.regex(JSON.parse(notMember.text).error.message, /not a member/);
});

// Last: one appliance per process holds the token, so the read-only one starts after the other stops.
test.serial('with ldap.groupManagement off (the default), changes are 403 DIRECTORY_READ_ONLY (audited as denied) and reading still works', async (t) => {
  await running.close();
  readOnly = await startRunning();
  const seq = mark(readOnly);
  const reply = await send(readOnly, '/api/v1/groups/demo-001-sponsors/members', { method: 'POST', user: 'ada', ...json({ login: 'nora' }) });
  t.is(reply.status, 403, reply.text);
  t.is(reply.headers['x-vellum-error'], 'DIRECTORY_READ_ONLY');
  t.false((await membersInSlapd(readOnly, 'demo-001-sponsors'))?.includes(personDn('nora').toLowerCase()));
  const [denied] = await entriesSince(readOnly, seq, 'group.member.add');
  t.is(denied?.outcome, 'denied');
  t.is(denied?.actor?.login, 'ada');
  const listed = await send(readOnly, '/api/v1/groups', { user: 'ada' });
  t.is(listed.status, 200);
  t.true((JSON.parse(listed.text) as { groups: { name: string }[] }).groups.some((g) => g.name === 'demo-001-sponsors'));
  t.is(PEOPLE.nora.groups.length, 0);
});
