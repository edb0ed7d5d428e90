// Roles and permissions end to end (docs/access.md), on the real appliance
// (slapd, SoftHSM2, LevelDB, WebDAV over HTTPS): every demo person x WebDAV
// operation x folder against the matrix read from docs/access.md, denials
// audited, listings filtered, 404 for a study without a role, an
// Administrator bound to a role, a person removed from a group with real
// ldapmodify, and the REST routes for bindings, rules and permissions.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import type { AuditEntry } from '../../src/audit/index.ts';
import { GROUPS, PEOPLE } from '../env/index.ts';
import { personDn } from '../env/people.ts';
import { run, send, startRunning, STUDY, type Reply, type Running } from '../support/appliance.ts';
import { readMultistatus } from '../dav/multistatus-reader.ts';
import { api, auditSince } from '../web/api-helpers.ts';

let running: Running;

// ------------------------------------------------------------ the expected matrix, from the document

const COLUMNS = ['study folder and other folders', '/Regulatory', '/Source Documents', '/Raw Data', '/Query Responses'] as const;

/** docs/access.md's matrix: role -> column -> permissions (words in parentheses are commentary). */
function documentedMatrix(): Map<string, Map<string, Set<string>>> {
  const lines = readFileSync(new URL('../../docs/access.md', import.meta.url), 'utf8').split('\n');
  const header = lines.findIndex((line) => line.startsWith('| role | study folder and other folders |'));
  if (header === -1) throw new Error('docs/access.md has no matrix');
  const cells = (line: string) => line.replace(/^\|/, '').replace(/\|\s*$/, '').split('|').map((cell) => cell.trim());
  const columns = cells(lines[header]!).slice(1);
  if (columns.join('|') !== COLUMNS.join('|')) throw new Error(`unexpected matrix columns: ${columns.join(', ')}`);
  const matrix = new Map<string, Map<string, Set<string>>>();
  for (let i = header + 2; lines[i]?.startsWith('|'); i++) {
    const [role, ...grants] = cells(lines[i]!);
    matrix.set(role!, new Map(grants.map((cell, c) => [columns[c]!, new Set(cell.replace(/\(.*?\)/g, '').split(/\s+/).filter((w) => w !== '' && w !== 'none'))])));
  }
  return matrix;
}
const MATRIX = documentedMatrix();

/** Where each operation acts, and which matrix column covers it. "" is the study folder itself. */
const FOLDERS = [
  { at: '', column: COLUMNS[0] },
  { at: '/Regulatory', column: COLUMNS[1] },
  { at: '/Source Documents', column: COLUMNS[2] },
  { at: '/Raw Data', column: COLUMNS[3] },
  { at: '/Query Responses', column: COLUMNS[4] },
  { at: '/Other', column: COLUMNS[0] },
] as const;
const MADE_FOLDERS = ['Regulatory', 'Source Documents', 'Raw Data', 'Query Responses', 'Other'];

const PERSONS = ['sam', 'dana', 'mona', 'audrey', 'ada', 'nora'] as const;
type Person = (typeof PERSONS)[number];

/** A person's study role from the test directory's groups; ada is Administrator only, nora in no group. */
function roleOf(person: Person): string | null {
  const cn = PEOPLE[person].groups[0];
  return cn === undefined ? null : GROUPS[cn as keyof typeof GROUPS].role;
}
/** Held in DEMO-001: the Administrator role is not a study role. */
const holdsStudyRole = (person: Person) => roleOf(person) !== null && roleOf(person) !== 'Administrator';

const OPERATIONS = ['GET', 'PUT new', 'PUT overwrite', 'DELETE', 'MKCOL', 'MOVE', 'COPY', 'LOCK', 'PROPPATCH', 'PROPFIND'] as const;
type Operation = (typeof OPERATIONS)[number];

/**
 * What the matrix means for each WebDAV operation (docs/access.md, "Permissions"):
 * the permissions it needs and the status when allowed. Written out here, not
 * taken from the code under test.
 */
const NEEDS: Record<Operation, { needs: string[]; ok: number }> = {
  GET: { needs: ['read'], ok: 200 },
  'PUT new': { needs: ['write'], ok: 201 },
  'PUT overwrite': { needs: ['write'], ok: 204 },
  DELETE: { needs: ['delete'], ok: 204 },
  MKCOL: { needs: ['write'], ok: 201 },
  MOVE: { needs: ['delete', 'write'], ok: 201 },
  COPY: { needs: ['read', 'write'], ok: 201 },
  LOCK: { needs: ['lock'], ok: 200 },
  PROPPATCH: { needs: ['write'], ok: 207 },
  PROPFIND: { needs: ['read'], ok: 207 },
};

function expectedStatus(person: Person, operation: Operation, folder: (typeof FOLDERS)[number]): number {
  // No role in the study: it answers as if it did not exist.
  if (!holdsStudyRole(person)) return 404;
  const granted = MATRIX.get(roleOf(person)!)!.get(folder.column)!;
  const { needs, ok } = NEEDS[operation];
  if (needs.every((permission) => granted.has(permission))) return ok;
  // The Monitor passes through the study folder (the matrix's note) to list the folders it may read.
  if (operation === 'PROPFIND' && person === 'mona' && folder.at === '') return ok;
  return 403;
}

// ------------------------------------------------------------ requests

const dav = (path: string) => `/dav/${STUDY}${path.split('/').map(encodeURIComponent).join('/')}`;
const LOCKINFO = '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>';
const PROPERTYUPDATE = '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:E="http://example.org/ns"><D:set><D:prop><E:reviewed>yes</E:reviewed></D:prop></D:set></D:propertyupdate>';

/** The request for one cell, and the study paths it names (for finding its audit entry). */
function request(person: Person, operation: Operation, at: string): { go: () => Promise<Reply>; paths: string[] } {
  const user = person;
  const file = (kind: string) => `${at}/${kind}-${person}.txt`;
  switch (operation) {
    case 'GET':
      return { go: () => send(running, dav(`${at}/shared.txt`), { user }), paths: [`${at}/shared.txt`] };
    case 'PUT new':
      return { go: () => send(running, dav(file('new')), { method: 'PUT', user, body: 'new' }), paths: [file('new')] };
    case 'PUT overwrite':
      return { go: () => send(running, dav(file('overwrite')), { method: 'PUT', user, body: 'second' }), paths: [file('overwrite')] };
    case 'DELETE':
      return { go: () => send(running, dav(file('delete')), { method: 'DELETE', user }), paths: [file('delete')] };
    case 'MKCOL':
      return { go: () => send(running, dav(`${at}/folder-${person}`), { method: 'MKCOL', user }), paths: [`${at}/folder-${person}`] };
    case 'MOVE':
      return {
        go: () => send(running, dav(file('move')), { method: 'MOVE', user, headers: { Destination: dav(file('moved')), Overwrite: 'F' } }),
        paths: [file('move'), file('moved')],
      };
    case 'COPY':
      return {
        go: () => send(running, dav(`${at}/shared.txt`), { method: 'COPY', user, headers: { Destination: dav(file('copy')), Overwrite: 'F' } }),
        paths: [`${at}/shared.txt`, file('copy')],
      };
    case 'LOCK':
      return { go: () => send(running, dav(file('lock')), { method: 'LOCK', user, headers: { Timeout: 'Second-600' }, body: LOCKINFO }), paths: [file('lock')] };
    case 'PROPPATCH':
      return { go: () => send(running, dav(file('props')), { method: 'PROPPATCH', user, body: PROPERTYUPDATE }), paths: [file('props')] };
    case 'PROPFIND':
      return { go: () => send(running, dav(`${at}/`), { method: 'PROPFIND', user, headers: { Depth: '1' } }), paths: [at === '' ? '' : at] };
  }
}

/** Runs tasks with at most `limit` at a time. */
async function pooled<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]!();
    }
  }));
  return results;
}

const studyPath = (path: string) => `/${STUDY}${path}`;

test.before(async () => {
  // A short credential cache, for the group-removal test.
  running = await startRunning({ config: (config) => ({ ...config, auth: { ...config.auth, cacheSeconds: 1 } }) });
  const system = running.appliance.systemSession('test fixtures');
  const put = (path: string, text: string) => system.writeFile({ study: STUDY, names: path.split('/').filter((n) => n !== '') }, Readable.from([Buffer.from(text)]), { maxBytes: 1024 });
  for (const name of MADE_FOLDERS) await system.makeFolder({ study: STUDY, names: [name] });
  for (const { at } of FOLDERS) {
    await put(`${at}/shared.txt`, 'shared');
    for (const person of PERSONS) for (const kind of ['overwrite', 'delete', 'move', 'lock', 'props']) await put(`${at}/${kind}-${person}.txt`, 'first');
  }
});
test.after.always(async () => running?.close());

// ------------------------------------------------------------ tests

test.serial('11.10(d) listings show only what the person may read or pass through', async (t) => {
  const hrefs = async (person: Person) => {
    const reply = await send(running, dav('/'), { method: 'PROPFIND', user: person, headers: { Depth: '1' } });
    t.is(reply.status, 207, person);
    return [...readMultistatus(reply.text).keys()].map((href) => decodeURIComponent(href).replace(`/dav/${STUDY}`, '').replace(/\/$/, '')).filter((p) => p !== '').sort();
  };
  const rootFiles = ['/shared.txt', ...PERSONS.flatMap((p) => ['overwrite', 'delete', 'move', 'lock', 'props'].map((k) => `/${k}-${p}.txt`))];
  const all = [...MADE_FOLDERS.map((name) => `/${name}`), ...rootFiles].sort();
  t.deepEqual(await hrefs('sam'), all);
  t.deepEqual(await hrefs('audrey'), all);
  t.deepEqual(await hrefs('dana'), all.filter((p) => p !== '/Source Documents'));
  t.deepEqual(await hrefs('mona'), ['/Query Responses', '/Regulatory', '/Source Documents']);

  // The root of the mount lists the study to those with a role only.
  const studies = async (person: Person) => [...readMultistatus((await send(running, '/dav/', { method: 'PROPFIND', user: person, headers: { Depth: '1' } })).text).keys()];
  t.deepEqual(await studies('mona'), ['/dav/', `/dav/${STUDY}/`]);
  t.deepEqual(await studies('ada'), ['/dav/']);
  t.deepEqual(await studies('nora'), ['/dav/']);

  // The Monitor's pass-through shows no dead properties and no locks of the study folder.
  const passed = await send(running, dav('/'), { method: 'PROPFIND', user: 'mona', headers: { Depth: '0' } });
  t.is(passed.status, 207);
  t.is(readMultistatus(passed.text).get(`/dav/${STUDY}/`)!.get('{DAV:}lockdiscovery')?.text, '');
});

test.serial('11.10(g) every person x WebDAV operation x folder gets the status of the documented matrix; denials are audited', async (t) => {
  const seq = (await auditSince(running, 0)).at(-1)!.seq;
  const plan = PERSONS.flatMap((person) => FOLDERS.flatMap((folder) => OPERATIONS.map((operation) => ({ person, folder, operation, req: request(person, operation, folder.at) }))));
  const replies = await pooled(plan.map(({ req }) => req.go), 8);
  const entries = await auditSince(running, seq);
  const mismatches: string[] = [];
  const unaudited: string[] = [];
  plan.forEach(({ person, folder, operation, req }, i) => {
    const expected = expectedStatus(person, operation, folder);
    const got = replies[i]!.status;
    const cell = `${person} ${operation} ${folder.at || '(study folder)'}`;
    if (got !== expected) mismatches.push(`${cell}: ${got}, expected ${expected} (${replies[i]!.text.slice(0, 160)})`);
    if (expected >= 400) {
      const paths = req.paths.map(studyPath);
      const denial = entries.find((e: AuditEntry) => e.outcome === 'denied' && e.actor?.login === person && paths.includes(e.object.path ?? ''));
      if (!denial) unaudited.push(cell);
    }
  });
  t.deepEqual(mismatches, []);
  t.deepEqual(unaudited, []);
  t.is(plan.length, PERSONS.length * FOLDERS.length * OPERATIONS.length);
  // The expectations are not all alike: the matrix really separates the roles.
  t.true(replies.filter((reply) => reply.status === 403).length > 50);
  t.true(replies.filter((reply) => reply.status < 300).length > 50);
});

test.serial('11.10(d) a 403 does not tell whether something exists; a study without a role answers exactly like one that does not exist', async (t) => {
  const missing = await send(running, dav('/Raw Data/no-such-file.csv'), { user: 'mona' });
  const present = await send(running, dav('/Raw Data/shared.txt'), { user: 'mona' });
  t.is(missing.status, 403);
  t.is(present.status, 403);
  t.is(missing.headers['x-vellum-error'], present.headers['x-vellum-error']);

  const noRole = await send(running, dav('/Raw Data/shared.txt'), { user: 'nora' });
  const noStudy = await send(running, '/dav/NO-SUCH-STUDY/Raw%20Data/shared.txt', { user: 'nora' });
  t.is(noRole.status, 404);
  t.is(noStudy.status, 404);
  t.is(noRole.text.replace(STUDY, 'X'), noStudy.text.replace('NO-SUCH-STUDY', 'X'));
  const apiNoRole = await api(running, `/studies/${STUDY}/trash`, { user: 'nora' });
  t.is(apiNoRole.status, 404);
  t.regex(apiNoRole.json.error.message, new RegExp(`There is no study "${STUDY}"`));
});

test.serial('11.10(g) an Administrator gets a study role\'s rights only while her group is bound to it; binding changes are audited with old and new', async (t) => {
  const adminGroup = GROUPS['vellum-administrators'].dn;
  t.is((await send(running, dav('/Raw Data/shared.txt'), { user: 'ada' })).status, 404);
  const before = await api(running, `/studies/${STUDY}/bindings`, { user: 'ada' });
  t.is(before.status, 200);
  const seq = (await auditSince(running, 0)).at(-1)!.seq;
  const bound = await api(running, `/studies/${STUDY}/bindings`, { method: 'PUT', user: 'ada', json: { bindings: [...before.json.bindings, { group: adminGroup, role: 'Auditor' }], reason: 'Audit support' } });
  t.is(bound.status, 200);
  t.is(bound.json.bindings.length, before.json.bindings.length + 1);
  const [entry] = (await auditSince(running, seq)).filter((e) => e.action === 'study.bindings');
  t.is(entry?.outcome, 'success');
  t.is(entry?.actor?.login, 'ada');
  t.is(entry?.reason, 'Audit support');
  t.deepEqual(entry?.oldValue, { bindings: before.json.bindings });
  t.deepEqual(entry?.newValue, { bindings: bound.json.bindings });

  t.is((await send(running, dav('/Raw Data/shared.txt'), { user: 'ada' })).status, 200, 'reads as an Auditor');
  t.is((await send(running, dav('/Raw Data/ada-as-auditor.txt'), { method: 'PUT', user: 'ada', body: 'x' })).status, 403, 'but does not write');
  const permissions = await api(running, `/studies/${STUDY}/permissions?path=/Raw%20Data`, { user: 'ada' });
  t.deepEqual(permissions.json, { study: STUDY, path: '/Raw Data', roles: ['Auditor', 'Administrator'], actions: ['read', 'administer'], passThrough: false });

  t.is((await api(running, `/studies/${STUDY}/bindings`, { method: 'PUT', user: 'ada', json: { bindings: before.json.bindings } })).status, 200);
  t.is((await send(running, dav('/Raw Data/shared.txt'), { user: 'ada' })).status, 404, 'unbound: nothing again');
});

test.serial('11.10(d) a person removed from a group with ldapmodify loses access once the credential cache time has passed', async (t) => {
  const group = GROUPS['demo-001-data-managers'].dn;
  const ldapmodify = async (ldif: string) => {
    const p = run('ldapmodify', ['-x', '-H', running.env.ldap.url, '-D', running.env.ldap.rootDn, '-w', running.env.ldap.rootPassword]);
    p.child.stdin?.end(ldif);
    await p;
  };
  t.is((await send(running, dav('/Raw Data/before-removal.csv'), { method: 'PUT', user: 'dana', body: 'a' })).status, 201);
  // groupOfNames needs a member: the service account stands in while dana is out.
  const standIn = running.env.ldap.serviceDn;
  await ldapmodify(`dn: ${group}\nchangetype: modify\nadd: member\nmember: ${standIn}\n-\ndelete: member\nmember: ${personDn('dana')}\n`);
  try {
    // auth.cacheSeconds is 1 here: after it, the next request binds again and reads her groups afresh.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const seq = (await auditSince(running, 0)).at(-1)!.seq;
    const after = await send(running, dav('/Raw Data/after-removal.csv'), { method: 'PUT', user: 'dana', body: 'b' });
    // Her only role is gone: the study answers as if it did not exist.
    t.is(after.status, 404);
    const denial = (await auditSince(running, seq)).find((e) => e.outcome === 'denied' && e.actor?.login === 'dana');
    t.is(denial?.object.path, studyPath('/Raw Data/after-removal.csv'));
    t.regex(denial?.detail ?? '', /holds no role/);
  } finally {
    await ldapmodify(`dn: ${group}\nchangetype: modify\nadd: member\nmember: ${personDn('dana')}\n-\ndelete: member\nmember: ${standIn}\n`);
  }
});

test.serial('access rules over the API: the template in force, a change audited with old and new, effective at once, bad input refused', async (t) => {
  const base = `/studies/${STUDY}/access-rules`;
  const template = await api(running, base, { user: 'ada' });
  t.is(template.status, 200);
  t.deepEqual(template.json.folders.map((rule: { path: string }) => rule.path), ['/Regulatory', '/Source Documents', '/Raw Data', '/Query Responses']);
  t.is((await api(running, base, { user: 'sam' })).status, 403, 'a Sponsor does not administer the study');

  const monaReads = { ...template.json, folders: template.json.folders.map((rule: { path: string; grants: Record<string, string[]> }) => (rule.path === '/Raw Data' ? { ...rule, grants: { ...rule.grants, 'Clinical Monitor': ['read'] } } : rule)) };
  t.is((await send(running, dav('/Raw Data/shared.txt'), { user: 'mona' })).status, 403);
  const seq = (await auditSince(running, 0)).at(-1)!.seq;
  const changed = await api(running, base, { method: 'PUT', user: 'ada', json: monaReads });
  t.is(changed.status, 200);
  const [entry] = (await auditSince(running, seq)).filter((e) => e.action === 'study.access-rules');
  t.is(entry?.outcome, 'success');
  t.deepEqual((entry?.oldValue as { accessRules: unknown }).accessRules, template.json);
  t.deepEqual((entry?.newValue as { accessRules: unknown }).accessRules, changed.json);
  t.is((await send(running, dav('/Raw Data/shared.txt'), { user: 'mona' })).status, 200, 'effective at once');
  t.deepEqual((await api(running, `/studies/${STUDY}/permissions?path=/Raw%20Data`, { user: 'mona' })).json.actions, ['read']);

  const refused: [unknown, number, RegExp][] = [
    [{ defaults: { Janitor: ['read'] } }, 400, /unknown role/],
    [{ defaults: { Sponsor: ['fly'] } }, 400, /unknown action/],
    [{ folders: [{ path: '/a/../b', grants: {} }] }, 400, /./],
    [{ colour: 1 }, 400, /Unknown field/],
  ];
  for (const [json, status, message] of refused) {
    const reply = await api(running, base, { method: 'PUT', user: 'ada', json });
    t.is(reply.status, status, JSON.stringify(json));
    t.regex(reply.json.error.message, message);
  }
  t.is((await api(running, `/studies/${STUDY}/bindings`, { method: 'PUT', user: 'ada', json: { bindings: [{ group: 'sponsors', role: 'Sponsor' }] } })).status, 400);
  t.is((await api(running, base, { method: 'PUT', user: 'ada', json: template.json })).status, 200);
  t.is((await send(running, dav('/Raw Data/shared.txt'), { user: 'mona' })).status, 403, 'back to the template');
});

test.serial('POST /studies: Administrators create a study with the template; others are refused and audited', async (t) => {
  const study = { id: 'ACCESS-002', title: 'Second study', bindings: [{ group: GROUPS['demo-001-monitors'].dn, role: 'Clinical Monitor' }] };
  const refused = await api(running, '/studies', { method: 'POST', user: 'sam', json: study });
  t.is(refused.status, 403);
  const created = await api(running, '/studies', { method: 'POST', user: 'ada', json: study });
  t.is(created.status, 201);
  t.is(created.headers.location, '/api/v1/studies/ACCESS-002');
  t.is(created.json.accessRules.folders.length, 4);
  t.is((await api(running, '/studies', { method: 'POST', user: 'ada', json: study })).status, 409);
  t.is((await api(running, '/studies', { method: 'POST', user: 'ada', json: { ...study, id: 'lower-case' } })).status, 400);
  t.is((await api(running, '/studies', { method: 'POST', user: 'ada', json: { ...study, id: 'ACCESS-003', bindings: [{ group: 'x', role: 'Sponsor' }] } })).status, 400);
  t.deepEqual((await api(running, '/studies/ACCESS-002/permissions?path=/', { user: 'mona' })).json.passThrough, true);
  t.is((await api(running, '/studies/ACCESS-002/permissions?path=/', { user: 'sam' })).status, 404);
});
