// Every event in the audit trail, with every field (Part 11 §11.10(e), issue 6):
// for each WebDAV method and admin action, one request to the real appliance
// writes exactly one new entry (counted between two heads of the trail), and
// that entry names the person (entryUUID as slapd has it, login, DN, printed
// name), their roles, the UTC time, the action and outcome, the object, the
// old and new values, the reason, the address, the client (a User-Agent sent
// per case), the protocol and the sign-in (session) the request was served
// from. Denials, sign-ins, lockouts, logouts, server start/stop and a
// configuration change (§11.10(k)) too.

import test, { type ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import type { AuditEntry } from '../../src/audit/index.ts';
import type { ConfigFile } from '../../src/config/index.ts';
import { GROUPS, PEOPLE } from '../env/index.ts';
import { personDn, type Login } from '../env/people.ts';
import { restartAppliance } from '../identity/restart.ts';
import { run, send, STUDY, startRunning, type Reply, type RequestOptions, type Running } from '../support/appliance.ts';
import { auditSince, poll } from '../web/api-helpers.ts';

let running: Running;
/** entryUUID of each demo person, read from slapd. */
const uuids = new Map<string, string>();
/** The study an Administrator creates here. */
const STUDY_2 = 'EVT-002';
const FILE = `/dav/${STUDY}/Events/a.txt`;

// Long-lived cached sign-ins: every request of a person below is served from one sign-in.
const withSettings = (c: ConfigFile): ConfigFile => ({
  ...c,
  ldap: { ...c.ldap, groupManagement: true },
  auth: { ...c.auth, cacheSeconds: 3600, lockout: { attempts: 3, sourceAttempts: 50 } },
});

test.before(async () => {
  running = await startRunning({ config: withSettings });
  for (const login of Object.keys(PEOPLE)) {
    const { stdout } = await run('ldapsearch', [
      '-x', '-LLL', '-o', 'ldif-wrap=no', '-H', running.env.ldap.url, '-D', running.env.ldap.serviceDn, '-w', running.env.ldap.servicePassword,
      '-b', running.env.ldap.userBase, `(uid=${login})`, 'entryUUID',
    ]);
    const uuid = /^entryUUID: (.+)$/m.exec(stdout)?.[1];
    if (uuid === undefined) throw new Error(`no entryUUID for ${login}`);
    uuids.set(login, uuid);
  }
});
test.after.always(async () => running?.close());

interface Expected {
  readonly action: string;
  readonly outcome?: AuditEntry['outcome'];
  /** The actor; null for the system or nobody identified. */
  readonly who: Login | null;
  readonly roles?: readonly string[];
  readonly protocol: AuditEntry['protocol'];
  /** Fields of the object that must be equal. */
  readonly object?: AuditEntry['object'];
  /** Object fields that must be present (ids the test cannot know in advance). */
  readonly ids?: readonly ('nodeId' | 'versionId')[];
  readonly oldValue?: unknown;
  readonly newValue?: unknown;
  readonly reason?: string | null;
  /** The sign-in's id must start with this. */
  readonly session?: 'basic:' | 'app:' | 'web:' | null;
}

/** The User-Agent each case sends, so the entry's client is checked against the case's own. */
const client = (label: string) => `vellum-events-test (${label})`;

/** Every sign-in id seen per person (for the same-session checks). */
const sessionsSeen = new Map<string, Set<string>>();

/** Checks every field of one entry against what the case expects. */
function checkEntry(t: ExecutionContext, label: string, entry: AuditEntry, expected: Expected, window: { from: string; to: string; client?: string }): void {
  const m = (field: string) => `${label}: ${field}`;
  t.is(entry.action, expected.action, m('action'));
  t.is(entry.outcome, expected.outcome ?? 'success', m('outcome'));
  if (expected.who === null) {
    t.is(entry.actor, null, m('actor'));
  } else {
    const person = PEOPLE[expected.who];
    t.deepEqual(entry.actor, { id: uuids.get(expected.who)!, login: person.login, dn: personDn(person.login), displayName: person.displayName }, m('actor'));
  }
  if (expected.roles !== undefined) t.deepEqual([...entry.roles].sort(), [...expected.roles].sort(), m('roles'));
  t.regex(entry.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, m('time is ISO UTC'));
  t.true(entry.time >= window.from && entry.time <= window.to, m(`time ${entry.time} within the request (${window.from} .. ${window.to})`));
  t.is(entry.protocol, expected.protocol, m('protocol'));
  if (expected.protocol === 'system') {
    t.is(entry.ip, null, m('ip'));
  } else {
    t.is(entry.ip, '127.0.0.1', m('ip'));
    t.is(entry.client, window.client ?? null, m('client'));
  }
  for (const [key, value] of Object.entries(expected.object ?? {})) t.is((entry.object as Record<string, unknown>)[key], value, m(`object.${key}`));
  for (const key of expected.ids ?? []) t.regex(String(entry.object[key]), /^[A-Za-z0-9_-]{10,}$/, m(`object.${key}`));
  if ('oldValue' in expected) t.deepEqual(entry.oldValue, expected.oldValue, m('oldValue'));
  if ('newValue' in expected) t.deepEqual(entry.newValue, expected.newValue, m('newValue'));
  t.is(entry.reason, expected.reason ?? null, m('reason'));
  if (expected.session === null || expected.session === undefined) {
    t.is(entry.session, null, m('session'));
  } else {
    t.true(entry.session?.startsWith(expected.session), m(`session ${entry.session} starts with ${expected.session}`));
    if (entry.actor !== null && entry.session !== null) {
      const seen = sessionsSeen.get(entry.actor.login) ?? new Set<string>();
      sessionsSeen.set(entry.actor.login, seen.add(entry.session));
    }
  }
}

/**
 * Sends one request and returns it with the entries it wrote; asserts the
 * status and that exactly `expected` entries were written, each with all fields.
 */
async function audited(
  t: ExecutionContext, label: string, request: { path: string; options?: RequestOptions; status: number }, expected: readonly Expected[],
): Promise<{ reply: Reply; entries: AuditEntry[] }> {
  const seq = running.appliance.audit.head().seq;
  const from = new Date().toISOString();
  const options = request.options ?? {};
  const reply = await send(running, request.path, { ...options, headers: { 'User-Agent': client(label), ...options.headers } });
  const to = new Date().toISOString();
  t.is(reply.status, request.status, `${label}: status (${reply.text.slice(0, 300)})`);
  const entries = await auditSince(running, seq);
  t.is(entries.length, expected.length, `${label}: ${expected.length} entr${expected.length === 1 ? 'y' : 'ies'}, got ${entries.map((e) => `${e.action}/${e.outcome}`).join(', ') || 'none'}`);
  entries.forEach((entry, i) => {
    if (expected[i]) checkEntry(t, label, entry, expected[i], { from, to, client: client(label) });
  });
  return { reply, entries };
}

const json = (value: unknown) => ({ headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(value) });
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const because = (reason: string) => ({ 'X-Change-Reason': reason });
const SPONSOR = ['Sponsor'];
const ADMIN = ['Administrator'];

/** The version summary the vault records for a version (versionId from the entry). */
const version = (entry: AuditEntry | undefined, number: number, content: string) => ({ versionId: entry?.object.versionId, number, size: Buffer.byteLength(content), sha256: sha256(content) });

test.serial('11.10(e) a real sign-in over HTTP Basic writes one auth.login with a basic: session id; later requests of that sign-in are not signed in again', async (t) => {
  for (const who of ['sam', 'mona', 'nora', 'ada'] as const) {
    await audited(t, `sign-in ${who}`, { path: '/api/v1/studies', options: { user: who }, status: 200 }, [
      { action: 'auth.login', who, roles: [], protocol: 'api', session: 'basic:' },
    ]);
  }
  await audited(t, 'cached sign-in', { path: '/api/v1/studies', options: { user: 'sam' }, status: 200 }, []);
});

test.serial('11.10(e) WebDAV MKCOL, PUT new, PUT overwrite, GET, HEAD: one entry each (none for HEAD) with the object, versions, reason and session', async (t) => {
  const base = { who: 'sam', roles: SPONSOR, protocol: 'webdav', session: 'basic:' } as const;
  await audited(t, 'MKCOL', { path: `/dav/${STUDY}/Events`, options: { method: 'MKCOL', headers: because('folder for the event test') }, status: 201 }, [
    { ...base, action: 'folder.create', object: { study: STUDY, path: `/${STUDY}/Events` }, ids: ['nodeId'], oldValue: null, newValue: null, reason: 'folder for the event test' },
  ]);
  const created = await audited(t, 'PUT new', { path: FILE, options: { method: 'PUT', body: 'first', headers: because('first draft') }, status: 201 }, [
    { ...base, action: 'file.create', object: { study: STUDY, path: `/${STUDY}/Events/a.txt` }, ids: ['nodeId', 'versionId'], oldValue: null, reason: 'first draft' },
  ]);
  const first = created.entries[0];
  t.deepEqual(first?.newValue, version(first, 1, 'first'), 'PUT new: newValue is the new version');
  const updated = await audited(t, 'PUT overwrite', { path: FILE, options: { method: 'PUT', body: 'second', headers: because('corrected') }, status: 204 }, [
    { ...base, action: 'file.update', object: { study: STUDY, path: `/${STUDY}/Events/a.txt`, nodeId: first?.object.nodeId }, ids: ['versionId'], oldValue: version(first, 1, 'first'), reason: 'corrected' },
  ]);
  const second = updated.entries[0];
  t.deepEqual(second?.newValue, version(second, 2, 'second'), 'PUT overwrite: newValue is the new version');
  t.not(second?.object.versionId, first?.object.versionId);

  const read = await audited(t, 'GET', { path: FILE, status: 200 }, [
    { ...base, action: 'file.read', object: { study: STUDY, path: `/${STUDY}/Events/a.txt`, nodeId: first?.object.nodeId, versionId: second?.object.versionId }, oldValue: null, newValue: { version: 2 } },
  ]);
  t.is(read.reply.text, 'second');
  await audited(t, 'GET range', { path: FILE, options: { headers: { Range: 'bytes=1-3' } }, status: 206 }, [
    { ...base, action: 'file.read', object: { versionId: second?.object.versionId }, newValue: { version: 2, range: '1-3' } },
  ]);
  // HEAD reads no content (headers from the records only): nothing to audit.
  await audited(t, 'HEAD', { path: FILE, options: { method: 'HEAD' }, status: 200 }, []);
});

test.serial('11.10(e) WebDAV PROPPATCH, COPY, MOVE, LOCK, lock refresh, UNLOCK, DELETE: one entry each with old and new values', async (t) => {
  const base = { who: 'sam', roles: SPONSOR, protocol: 'webdav', session: 'basic:' } as const;
  const nodeOf = async (path: string) => (await running.appliance.vault.stat({ study: STUDY, names: path.split('/').filter(Boolean) }));
  const a = await nodeOf('/Events/a.txt');
  const prop = (value: string) => `<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:E="http://example.org/ns"><D:set><D:prop><E:status>${value}</E:status></D:prop></D:set></D:propertyupdate>`;
  const patched = await audited(t, 'PROPPATCH', { path: FILE, options: { method: 'PROPPATCH', body: prop('draft'), headers: { 'Content-Type': 'application/xml' } }, status: 207 }, [
    { ...base, action: 'node.properties', object: { study: STUDY, path: `/${STUDY}/Events/a.txt`, nodeId: a.id } },
  ]);
  const again = await audited(t, 'PROPPATCH again', { path: FILE, options: { method: 'PROPPATCH', body: prop('final'), headers: { 'Content-Type': 'application/xml' } }, status: 207 }, [
    { ...base, action: 'node.properties', object: { nodeId: a.id } },
  ]);
  const name = '{http://example.org/ns}status';
  const [before, after] = [Object.values(patched.entries[0]?.oldValue ?? {}), again.entries[0]];
  t.deepEqual(before, [null], 'PROPPATCH: the property did not exist before');
  t.true(JSON.stringify(after?.oldValue).includes('draft') && JSON.stringify(after?.newValue).includes('final'), `PROPPATCH again: old and new property values (${JSON.stringify(after?.oldValue)} -> ${JSON.stringify(after?.newValue)})`);
  t.true(Object.keys(after?.newValue as object).some((key) => key.includes(name.slice(1, 20))), 'PROPPATCH names the property');

  const destination = (path: string) => ({ Destination: `/dav/${STUDY}${path}` });
  const copied = await audited(t, 'COPY', { path: FILE, options: { method: 'COPY', headers: destination('/Events/b.txt') }, status: 201 }, [
    { ...base, action: 'file.copy', object: { study: STUDY, path: `/${STUDY}/Events/b.txt` }, ids: ['nodeId', 'versionId'], oldValue: { copiedFrom: `/${STUDY}/Events/a.txt` } },
  ]);
  const copy = copied.entries[0];
  t.like(copy?.newValue as object, { number: 1, sha256: sha256('second'), origin: { kind: 'copy', fromStudy: STUDY, fromNodeId: a.id, fromVersionId: a.currentVersion?.id } });
  await audited(t, 'MOVE', { path: `/dav/${STUDY}/Events/b.txt`, options: { method: 'MOVE', headers: { ...destination('/Events/c.txt'), ...because('renamed') } }, status: 201 }, [
    {
      ...base, action: 'file.move', object: { study: STUDY, path: `/${STUDY}/Events/c.txt`, nodeId: copy?.object.nodeId, versionId: copy?.object.versionId },
      oldValue: { path: `/${STUDY}/Events/b.txt` }, newValue: { path: `/${STUDY}/Events/c.txt`, replacedNodeId: null }, reason: 'renamed',
    },
  ]);

  const lockBody = '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>events test</D:owner></D:lockinfo>';
  const C = `/dav/${STUDY}/Events/c.txt`;
  const locked = await audited(t, 'LOCK', { path: C, options: { method: 'LOCK', body: lockBody, headers: { Timeout: 'Second-600', 'Content-Type': 'application/xml' } }, status: 200 }, [
    { ...base, action: 'node.lock', object: { study: STUDY, path: `/${STUDY}/Events/c.txt`, nodeId: copy?.object.nodeId } },
  ]);
  const token = /<([^>]+)>/.exec(String(locked.reply.headers['lock-token']))?.[1] ?? '';
  t.like(locked.entries[0]?.newValue as object, { token, path: `/${STUDY}/Events/c.txt`, scope: 'exclusive', timeoutSeconds: 600 });
  const refreshed = await audited(t, 'LOCK refresh', { path: C, options: { method: 'LOCK', headers: { Timeout: 'Second-900', If: `(<${token}>)` } }, status: 200 }, [
    { ...base, action: 'node.lock.refresh', object: { study: STUDY, path: `/${STUDY}/Events/c.txt` } },
  ]);
  t.like((refreshed.entries[0]?.oldValue as object[])[0], { token });
  t.like((refreshed.entries[0]?.newValue as object[])[0], { token, timeoutSeconds: 900 });
  const unlocked = await audited(t, 'UNLOCK', { path: C, options: { method: 'UNLOCK', headers: { 'Lock-Token': `<${token}>` } }, status: 204 }, [
    { ...base, action: 'node.unlock', object: { study: STUDY, path: `/${STUDY}/Events/c.txt` } },
  ]);
  t.like(unlocked.entries[0]?.oldValue as object, { token, timeoutSeconds: 900 });
  await audited(t, 'DELETE', { path: C, options: { method: 'DELETE', headers: because('duplicate') }, status: 204 }, [
    {
      ...base, action: 'file.delete', object: { study: STUDY, path: `/${STUDY}/Events/c.txt`, nodeId: copy?.object.nodeId, versionId: copy?.object.versionId },
      oldValue: version(copy, 1, 'second'), newValue: null, reason: 'duplicate',
    },
  ]);
});

test.serial('11.10(e) denials: a role without the right gets 403, a person without a role 404; each audited once with roles and the reason', async (t) => {
  await audited(t, 'PUT denied', { path: `/dav/${STUDY}/Events/mona.txt`, options: { method: 'PUT', body: 'x', user: 'mona' }, status: 403 }, [
    { action: 'file.write', outcome: 'denied', who: 'mona', roles: ['Clinical Monitor'], protocol: 'webdav', object: { study: STUDY, path: `/${STUDY}/Events/mona.txt` }, session: 'basic:' },
  ]);
  const hidden = await audited(t, 'GET no role', { path: FILE, options: { user: 'nora' }, status: 404 }, [
    { action: 'file.read', outcome: 'denied', who: 'nora', roles: [], protocol: 'webdav', object: { study: STUDY, path: `/${STUDY}/Events/a.txt` }, session: 'basic:' },
  ]);
  t.truthy(hidden.entries[0]?.detail, 'a denial says why');
  await audited(t, 'admin action denied', { path: '/api/v1/studies', options: { method: 'POST', user: 'sam', ...json({ id: 'EVT-X', title: 'x', bindings: [] }) }, status: 403 }, [
    { action: 'study.create', outcome: 'denied', who: 'sam', protocol: 'api', object: { study: 'EVT-X' }, session: 'basic:' },
  ]);
});

test.serial('11.10(e) PROPFIND is not audited by default (audit.propfind off); a denied PROPFIND is', async (t) => {
  await audited(t, 'PROPFIND off', { path: `/dav/${STUDY}/Events/`, options: { method: 'PROPFIND', headers: { Depth: '1' } }, status: 207 }, []);
  await audited(t, 'PROPFIND denied', { path: `/dav/${STUDY}/Events/`, options: { method: 'PROPFIND', headers: { Depth: '1' }, user: 'nora' }, status: 404 }, [
    { action: 'node.stat', outcome: 'denied', who: 'nora', roles: [], protocol: 'webdav', object: { study: STUDY, path: `/${STUDY}/Events` }, session: 'basic:' },
  ]);
});

test.serial('11.300(d) sign-in failure, lockout and the Administrator\'s unlock are audited once each', async (t) => {
  const ghost = (password: string) => ({ user: { login: 'ghost', password }, headers: { Depth: '0' }, method: 'PROPFIND' });
  const failure = { action: 'auth.login', outcome: 'denied', who: null, protocol: 'webdav', object: { path: 'login:ghost' } } as const;
  await audited(t, 'wrong password', { path: `/dav/${STUDY}/`, options: ghost('wrong-1'), status: 401 }, [failure]);
  await audited(t, 'wrong password 2', { path: `/dav/${STUDY}/`, options: ghost('wrong-2'), status: 401 }, [failure]);
  // The failure that locks: its own entry, and the lock's.
  const locking = await audited(t, 'locking failure', { path: `/dav/${STUDY}/`, options: ghost('wrong-3'), status: 401 }, [
    failure,
    { action: 'auth.lockout', who: null, protocol: 'webdav', object: { path: 'login:ghost' } },
  ]);
  t.like(locking.entries[1]?.newValue as object, { kind: 'account', key: 'ghost' });
  const blocked = await audited(t, 'locked', { path: `/dav/${STUDY}/`, options: ghost('wrong-4'), status: 403 }, [failure]);
  t.regex(String(blocked.entries[0]?.detail), /ACCOUNT_LOCKED/);
  await audited(t, 'unlock', { path: '/api/v1/lockouts/accounts/ghost', options: { method: 'DELETE', user: 'ada', headers: because('ticket 42') }, status: 204 }, [
    { action: 'auth.unlock', who: 'ada', roles: ADMIN, protocol: 'api', object: { path: 'login:ghost' }, reason: null, session: 'basic:' },
  ]);
});

test.serial('11.10(e) admin actions over the API: study create (with its key version), bindings, access rules, reason folders, key rotation; one entry each', async (t) => {
  const base = { who: 'ada', roles: ADMIN, protocol: 'api', session: 'basic:', reason: 'SOP-7' } as const;
  const api = (path: string, method: string, body: unknown) => ({ method, user: 'ada' as const, ...json(body), headers: { 'Content-Type': 'application/json', ...because('SOP-7') } });
  const sponsors = [{ group: GROUPS['demo-001-sponsors'].dn, role: 'Sponsor' }];
  const created = await audited(t, 'study create', { path: '/api/v1/studies', options: api('/studies', 'POST', { id: STUDY_2, title: 'Event study', bindings: [] }), status: 201 }, [
    { ...base, action: 'study.create', object: { study: STUDY_2, path: `/${STUDY_2}` }, ids: ['nodeId'], oldValue: null },
  ]);
  t.like(created.entries[0]?.newValue as object, { title: 'Event study', bindings: [], kekVersion: 1 }, 'study create: the KEK made for it');
  await audited(t, 'bindings', { path: `/api/v1/studies/${STUDY_2}/bindings`, options: api('', 'PUT', { bindings: sponsors }), status: 200 }, [
    { ...base, action: 'study.bindings', object: { study: STUDY_2, path: `/${STUDY_2}` }, ids: ['nodeId'], oldValue: { bindings: [] }, newValue: { bindings: sponsors } },
  ]);
  const rules = JSON.parse((await send(running, `/api/v1/studies/${STUDY_2}/access-rules`, { user: 'ada' })).text) as { defaults: unknown; folders: unknown[] };
  const changedRules = { ...rules, folders: [...rules.folders.slice(0, 1)] };
  const ruled = await audited(t, 'access rules', { path: `/api/v1/studies/${STUDY_2}/access-rules`, options: api('', 'PUT', changedRules), status: 200 }, [
    { ...base, action: 'study.access-rules', object: { study: STUDY_2, path: `/${STUDY_2}` }, ids: ['nodeId'] },
  ]);
  t.like(ruled.entries[0]?.oldValue as object, { accessRules: { defaults: rules.defaults } });
  t.is(((ruled.entries[0]?.newValue as { accessRules: { folders: unknown[] } }).accessRules.folders).length, changedRules.folders.length);
  await audited(t, 'reason folders', { path: `/api/v1/studies/${STUDY_2}/change-reason-folders`, options: api('', 'PUT', { folders: ['/Regulatory'] }), status: 200 }, [
    { ...base, action: 'study.change-reason-folders', object: { study: STUDY_2, path: `/${STUDY_2}` }, ids: ['nodeId'], oldValue: { changeReasonFolders: [] }, newValue: { changeReasonFolders: ['/Regulatory'] } },
  ]);
  // The rotation's own background work is the system's (key.rotate.complete): the request's entry is ada's.
  const seq = running.appliance.audit.head().seq;
  const rotated = await send(running, `/api/v1/studies/${STUDY_2}/keys/rotate`, { ...api('', 'POST', {}), headers: { ...api('', 'POST', {}).headers, 'User-Agent': client('rotate') } });
  t.is(rotated.status, 202, rotated.text);
  await poll(() => auditSince(running, seq), (entries) => entries.some((e) => e.action === 'key.rotate.complete'));
  const mine = (await auditSince(running, seq)).filter((e) => e.actor !== null);
  t.is(mine.length, 1, `rotate: ${mine.map((e) => e.action).join(', ')}`);
  if (mine[0]) checkEntry(t, 'rotate', mine[0], { ...base, action: 'key.rotate', object: { study: STUDY_2 }, oldValue: { kekVersion: 1 }, newValue: { kekVersion: 2, blobsToRewrap: 0 } }, { from: '0', to: '9', client: client('rotate') });
});

test.serial('11.10(e) group create, member add and remove over the API: one entry each with the members before and after', async (t) => {
  const base = { who: 'ada', roles: ADMIN, protocol: 'api', session: 'basic:' } as const;
  const dn = `cn=events-reviewers,${running.env.ldap.groupBase}`.toLowerCase();
  const norasDn = personDn('nora').toLowerCase();
  const patsDn = personDn('pat').toLowerCase();
  const lower = (value: unknown) => JSON.parse(JSON.stringify(value).toLowerCase()) as unknown;
  const made = await audited(t, 'group create', { path: '/api/v1/groups', options: { method: 'POST', user: 'ada', ...json({ name: 'events-reviewers', members: ['nora'] }) }, status: 201 }, [
    { ...base, action: 'group.create', oldValue: { members: [] } },
  ]);
  t.is(made.entries[0]?.object.path?.toLowerCase(), dn);
  t.deepEqual(lower(made.entries[0]?.newValue), { dn, members: [norasDn] });
  const added = await audited(t, 'member add', { path: '/api/v1/groups/events-reviewers/members', options: { method: 'POST', user: 'ada', ...json({ login: 'pat' }) }, status: 200 }, [
    { ...base, action: 'group.member.add' },
  ]);
  t.deepEqual(lower(added.entries[0]?.oldValue), { members: [norasDn] });
  t.deepEqual(lower(added.entries[0]?.newValue), { members: [norasDn, patsDn].sort(), person: patsDn });
  const removed = await audited(t, 'member remove', { path: '/api/v1/groups/events-reviewers/members/pat', options: { method: 'DELETE', user: 'ada' }, status: 200 }, [
    { ...base, action: 'group.member.remove' },
  ]);
  t.deepEqual(lower(removed.entries[0]?.newValue), { members: [norasDn], person: patsDn });
});

test.serial('11.300(c) app passwords: create, a sign-in with it (app: session id, the same for the next request), revoke; one entry each', async (t) => {
  const made = await audited(t, 'app password create', { path: '/api/v1/me/app-passwords', options: { method: 'POST', user: 'sam', ...json({ name: 'events laptop' }) }, status: 201 }, [
    { action: 'app-password.create', who: 'sam', protocol: 'api', session: 'basic:' },
  ]);
  const appPassword = JSON.parse(made.reply.text) as { id: string; password: string };
  const password = appPassword.password;
  const user = { login: 'sam', password };
  const signedIn = await audited(t, 'app password sign-in', { path: FILE, options: { user }, status: 200 }, [
    { action: 'auth.login', who: 'sam', roles: [], protocol: 'webdav', session: 'app:', newValue: { appPassword: appPassword.id } },
    { action: 'file.read', who: 'sam', roles: SPONSOR, protocol: 'webdav', session: 'app:', object: { path: `/${STUDY}/Events/a.txt` } },
  ]);
  const again = await audited(t, 'app password again', { path: FILE, options: { user }, status: 200 }, [
    { action: 'file.read', who: 'sam', roles: SPONSOR, protocol: 'webdav', session: 'app:' },
  ]);
  t.is(again.entries[0]?.session, signedIn.entries[0]?.session, 'one sign-in, one id');
  await audited(t, 'app password revoke', { path: `/api/v1/me/app-passwords/${appPassword.id}`, options: { method: 'DELETE', user: 'sam' }, status: 204 }, [
    { action: 'app-password.revoke', who: 'sam', protocol: 'api', session: 'basic:' },
  ]);
});

test.serial('11.10(e) a web session: sign-in and session start name one web: id, which every request of the session and its logout carry; an Administrator revokes', async (t) => {
  const start = await audited(t, 'web sign-in', { path: '/api/v1/session', options: { method: 'POST', user: null, ...json({ login: 'dana', password: PEOPLE.dana.password }) }, status: 201 }, [
    { action: 'auth.login', who: 'dana', roles: [], protocol: 'web', session: 'web:' },
    { action: 'auth.session.start', who: 'dana', roles: [], protocol: 'web', session: 'web:', newValue: { state: 'complete' } },
  ]);
  const id = start.entries[0]?.session;
  t.is(start.entries[1]?.session, id, 'the sign-in and the session start name the same session');
  const cookie = String(start.reply.headers['set-cookie']?.[0]).split(';')[0]!;
  const csrf = (JSON.parse(start.reply.text) as { csrfToken: string }).csrfToken;
  const node = await running.appliance.vault.stat({ study: STUDY, names: ['Events', 'a.txt'] });
  const read = await audited(t, 'web read', { path: `/api/v1/studies/${STUDY}/nodes/${node.id}/versions/2/content`, options: { user: null, headers: { Cookie: cookie } }, status: 200 }, [
    { action: 'file.read', who: 'dana', roles: ['Data Manager'], protocol: 'web', session: 'web:', object: { study: STUDY, nodeId: node.id } },
  ]);
  t.is(read.entries[0]?.session, id);
  const out = await audited(t, 'logout', { path: '/api/v1/session', options: { method: 'DELETE', user: null, headers: { Cookie: cookie, 'X-CSRF-Token': csrf } }, status: 204 }, [
    { action: 'auth.logout', who: 'dana', roles: [], protocol: 'web', session: 'web:' },
  ]);
  t.is(out.entries[0]?.session, id);

  const again = await send(running, '/api/v1/session', { method: 'POST', user: null, ...json({ login: 'dana', password: PEOPLE.dana.password }) });
  t.is(again.status, 201);
  const revoked = await audited(t, 'session revoke', { path: `/api/v1/people/${uuids.get('dana')}/sessions`, options: { method: 'DELETE', user: 'ada' }, status: 200 }, [
    { action: 'auth.session.revoke', who: 'ada', roles: ADMIN, protocol: 'api', session: 'basic:', object: { path: `person:${uuids.get('dana')}` }, newValue: { sessionsEnded: 1 } },
  ]);
  t.not(revoked.entries[0]?.session, id);
});

test.serial('11.10(e) one sign-in, one session id: every entry of sam\'s directory-password sign-in carries the same id, other people other ids', (t) => {
  const of = (login: string) => [...(sessionsSeen.get(login) ?? [])];
  const basic = (login: string) => of(login).filter((id) => id.startsWith('basic:'));
  t.is(basic('sam').length, 1, `sam: ${of('sam').join(', ')}`);
  t.is(basic('ada').length, 1, `ada: ${of('ada').join(', ')}`);
  const all = ['sam', 'ada', 'mona', 'nora'].flatMap(basic);
  t.is(new Set(all).size, all.length, 'different people, different sign-ins');
});

test.serial('11.10(k) a restart with changed settings writes system.stop, one config.change naming only the changed keys, system.start; secrets never in the trail; PROPFIND audited when audit.propfind is on', async (t) => {
  const seq = running.appliance.audit.head().seq;
  running = await restartAppliance(running, (c) => ({ ...withSettings(c), auth: { ...withSettings(c).auth, cacheSeconds: 1800 }, audit: { propfind: true } }));
  // The start's verification of the whole trail (audit.verify) runs beside the start and may land anywhere here.
  const entries = (await auditSince(running, seq)).filter((e) => e.action !== 'audit.verify');
  t.deepEqual(entries.map((e) => e.action), ['system.stop', 'config.change', 'system.start']);
  const change = entries[1]!;
  checkEntry(t, 'config.change', change, { action: 'config.change', who: null, protocol: 'system', object: { path: 'config' } }, { from: '0', to: '9' });
  t.deepEqual(change.oldValue, { 'audit.propfind': false, 'auth.cacheSeconds': 3600 });
  t.deepEqual(change.newValue, { 'audit.propfind': true, 'auth.cacheSeconds': 1800 });

  let first: AuditEntry | undefined;
  const texts: string[] = [];
  for await (const entry of running.appliance.audit.entries()) {
    if (entry.action === 'config.change' && first === undefined) first = entry;
    texts.push(JSON.stringify(entry));
  }
  t.is(first?.oldValue, null, 'the first start records the configuration in force');
  t.like(first?.newValue as object, { 'hsm.pin': '[redacted]', 'ldap.bindPassword': '[redacted]', 'auth.cacheSeconds': 3600, 'ldap.url': running.env.ldap.url });
  for (const secret of [running.env.hsm.pin, running.env.ldap.servicePassword]) {
    t.false(texts.some((text) => text.includes(secret)), 'no secret in any entry');
  }

  // The new appliance: a fresh sign-in, then one node.list per PROPFIND.
  await send(running, '/api/v1/studies', { user: 'sam' });
  await audited(t, 'PROPFIND on', { path: `/dav/${STUDY}/Events/`, options: { method: 'PROPFIND', headers: { Depth: '1' } }, status: 207 }, [
    { action: 'node.list', who: 'sam', roles: SPONSOR, protocol: 'webdav', session: 'basic:', object: { study: STUDY, path: `/${STUDY}/Events` }, ids: ['nodeId'], newValue: { depth: 1 } },
  ]);
  await audited(t, 'PROPFIND root', { path: '/dav/', options: { method: 'PROPFIND', headers: { Depth: '0' } }, status: 207 }, [
    { action: 'node.list', who: 'sam', roles: [], protocol: 'webdav', session: 'basic:', object: { path: '/' }, newValue: { depth: 0 } },
  ]);

  const unchanged = running.appliance.audit.head().seq;
  running = await restartAppliance(running, (c) => ({ ...withSettings(c), auth: { ...withSettings(c).auth, cacheSeconds: 1800 }, audit: { propfind: true } }));
  t.deepEqual((await auditSince(running, unchanged)).map((e) => e.action).filter((action) => action !== 'audit.verify'), ['system.stop', 'system.start'], 'the same settings: no config.change');
});
