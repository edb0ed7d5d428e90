// The session's use of the access policy, on the real vault (SoftHSM2,
// LevelDB on disk): which permission each method asks for where (MOVE and
// COPY onto something that is replaced, LOCK that creates a file, undelete),
// what pass-through shows (no dead properties, no locks), the filtered trash,
// and bindings and rules stored with their audit entry in one batch.

import test from 'ava';
import { Readable } from 'node:stream';
import { ACCESS_TEMPLATE } from '../../src/access/index.ts';
import type { AuditEntry } from '../../src/audit/index.ts';
import { isVellumError, type Principal, type VaultPath } from '../../src/kernel/index.ts';
import { openSession, type Session } from '../../src/session/index.ts';
import type { LockRequest } from '../../src/vault/index.ts';
import { openVaultFixture, type VaultFixture } from '../support/vault-fixture.ts';

const G = (cn: string) => `cn=${cn},ou=groups,dc=vellum,dc=test`;
const person = (login: string, groups: string[]): Principal => ({ id: `uuid-${login}`, login, dn: `uid=${login},ou=people,dc=vellum,dc=test`, displayName: login, groups });
const mona = person('mona', [G('monitors')]);
const dana = person('dana', [G('data-managers')]);
const ada = person('ada', [G('admins')]);
const STUDY = 'SESSION-001';
const OLD = 'OLD-001';
const at = (...names: string[]): VaultPath => ({ study: STUDY, names });

let f: VaultFixture;
let system: Session;
const as = (who: Principal) => openSession({ vault: f.vault, audit: f.audit, administratorGroups: [G('admins')] }, who, { ip: '127.0.0.1', client: 'session test', protocol: 'cli' });
const put = (session: Session, path: VaultPath, text: string) => session.writeFile(path, Readable.from([Buffer.from(text)]), { maxBytes: 1024 });
/** 'ok', or the error code a call fails with. */
const code = (promise: Promise<unknown>) => promise.then(() => 'ok', (e: unknown) => (isVellumError(e) ? e.code : String(e)));
async function entriesSince(seq: number): Promise<AuditEntry[]> {
  const entries: AuditEntry[] = [];
  for await (const entry of f.audit.entries(seq + 1)) entries.push(entry);
  return entries;
}

test.before(async () => {
  f = await openVaultFixture();
  system = openSession({ vault: f.vault, audit: f.audit, administratorGroups: [] }, person('vellum', []), { ip: 'local', client: 'vellum', protocol: 'system' }, { system: true });
  await system.createStudy({ id: STUDY, title: 'Session', bindings: [{ group: G('monitors'), role: 'Clinical Monitor' }, { group: G('data-managers'), role: 'Data Manager' }] });
  for (const name of ['Regulatory', 'Query Responses', 'Raw Data']) await system.makeFolder(at(name));
  await put(system, at('Query Responses', 'q1.pdf'), 'q1');
  await put(system, at('Query Responses', 'q2.pdf'), 'q2');
  await put(system, at('Raw Data', 'gone.csv'), 'gone');
  await put(system, at('Regulatory', 'gone.pdf'), 'gone');
  await system.patchProperties(at('Regulatory'), [{ op: 'set', name: '{urn:x}note', xml: '<x:note xmlns:x="urn:x">n</x:note>' }]);
  await system.patchProperties(at(), [{ op: 'set', name: '{urn:x}note', xml: '<x:note xmlns:x="urn:x">root</x:note>' }]);
  await system.remove(at('Raw Data', 'gone.csv'));
  await system.remove(at('Regulatory', 'gone.pdf'));
  // A study as stored before access rules existed: no accessRules in its record.
  await f.vault.createStudy({ id: OLD, title: 'Old', bindings: [{ group: G('monitors'), role: 'Clinical Monitor' }] }, { principal: person('vellum', []), origin: { ip: 'local', client: 'vellum', protocol: 'system' }, roles: ['System'] });
});
test.after.always(async () => f?.close());

test.serial('11.10(g) a MOVE needs delete at the source and write at the destination, and delete there too when it replaces something', async (t) => {
  // The Monitor writes but does not delete in /Query Responses: she cannot move out of it at all.
  t.is(await code(as(mona).move(at('Query Responses', 'q1.pdf'), at('Query Responses', 'q3.pdf'), { overwrite: false })), 'FORBIDDEN');
  // A drop box: the Data Manager may write into /Drop but not delete there.
  const drop = (...names: string[]): VaultPath => ({ study: 'MOVE-001', names });
  await system.createStudy({
    id: 'MOVE-001', title: 'Moves', bindings: [{ group: G('data-managers'), role: 'Data Manager' }],
    accessRules: { defaults: { 'Data Manager': ['read', 'write', 'delete'] }, folders: [{ path: '/Drop', grants: { 'Data Manager': ['read', 'write'] } }] },
  });
  await system.makeFolder(drop('Drop'));
  for (const name of ['a.csv', 'b.csv']) await put(system, drop(name), name);
  await put(system, drop('Drop', 'taken.csv'), 'there first');
  t.is(await code(as(dana).move(drop('a.csv'), drop('Drop', 'a.csv'), { overwrite: true })), 'ok', 'onto a free name: write is enough');
  t.is(await code(as(dana).move(drop('b.csv'), drop('Drop', 'taken.csv'), { overwrite: true })), 'FORBIDDEN', 'replacing needs delete');
  t.is(await code(as(dana).move(drop('Drop', 'a.csv'), drop('a2.csv'), { overwrite: false })), 'FORBIDDEN', 'out of the drop box needs delete there');
  t.is((await system.stat(drop('b.csv'))).name, 'b.csv', 'nothing moved');
  t.is((await system.stat(drop('Drop', 'taken.csv'))).versionCount, 1, 'nothing replaced');
});

test.serial('11.10(g) a COPY onto a folder tombstones it: delete needed there; a file onto a file is a new version (write)', async (t) => {
  const session = as(mona);
  t.is(await code(session.copy(at('Query Responses', 'q1.pdf'), at('Query Responses', 'q2.pdf'), { overwrite: true, depth: 'infinity' })), 'ok');
  t.is((await session.stat(at('Query Responses', 'q2.pdf'))).versionCount, 2);
  await system.makeFolder(at('Query Responses', 'Box'));
  const seq = f.audit.head().seq;
  t.is(await code(session.copy(at('Query Responses', 'q1.pdf'), at('Query Responses', 'Box'), { overwrite: true, depth: 'infinity' })), 'FORBIDDEN');
  t.is((await session.stat(at('Query Responses', 'Box'))).kind, 'folder', 'nothing replaced');
  const [denial] = (await entriesSince(seq)).filter((e) => e.outcome === 'denied');
  t.is(denial?.action, 'node.copy');
  t.regex(denial?.detail ?? '', /may not delete/);
});

test.serial('11.10(g) LOCK needs lock, and write as well when it makes an empty file; undelete needs write', async (t) => {
  const lockRequest: LockRequest = { scope: 'exclusive', depth: 0, owner: null, timeout: 600 };
  t.is(await code(as(mona).lock(at('Query Responses', 'new.pdf'), lockRequest)), 'ok');
  t.is(await code(as(mona).lock(at('Regulatory', 'new.pdf'), lockRequest)), 'FORBIDDEN');
  t.is(await code(as(mona).lock(at('Raw Data', 'x.csv'), lockRequest)), 'FORBIDDEN');
  const [gone] = (await system.trash(STUDY)).filter((node) => node.name === 'gone.csv');
  t.is(await code(as(mona).undelete(STUDY, gone!.id)), 'FORBIDDEN');
  t.is(await code(as(dana).undelete(STUDY, gone!.id)), 'ok');
});

test.serial('pass through: the study folder is seen but shows no dead properties and no locks; the trash shows only what may be seen', async (t) => {
  const session = as(mona);
  const root = await session.stat(at());
  const regulatory = await session.stat(at('Regulatory'));
  const [rootProps, regulatoryProps] = await session.propertiesOf([{ path: at(), id: root.id }, { path: at('Regulatory'), id: regulatory.id }]);
  t.is(rootProps!.size, 0, 'passed through: no dead properties');
  t.is(regulatoryProps!.get('{urn:x}note'), '<x:note xmlns:x="urn:x">n</x:note>');
  t.deepEqual((await session.list(at())).map((node) => node.name).sort(), ['Query Responses', 'Regulatory']);
  t.deepEqual(await session.locksOn(at()), []);
  t.deepEqual((await session.trash(STUDY)).map((node) => node.name), ['gone.pdf'], 'not the deleted raw data');
  t.is(await code(session.openFile(at('Regulatory', 'nothing-here.pdf'))), 'NOT_FOUND', 'readable folder: a missing file is 404');
  t.is(await code(session.openFile(at('Raw Data', 'nothing-here.csv'))), 'FORBIDDEN', 'unreadable folder: 403 whether or not it exists');
});

test.serial('11.10(k) bindings and rules are stored with their audit entry (old and new); a study without stored rules has the template', async (t) => {
  const admin = as(ada);
  t.deepEqual(await admin.accessRules(OLD), ACCESS_TEMPLATE);
  t.is(await code(as(mona).accessRules(OLD)), 'FORBIDDEN');
  const seq = f.audit.head().seq;
  const rules = { defaults: { 'Clinical Monitor': ['read' as const] }, folders: [] };
  const updated = await admin.setAccessRules(OLD, rules);
  t.deepEqual(updated.accessRules, rules);
  t.deepEqual((await f.vault.getStudy(OLD))!.accessRules, rules);
  const bindings = [{ group: G('monitors'), role: 'Auditor' as const }];
  await admin.setBindings(OLD, bindings);
  const entries = (await entriesSince(seq)).filter((e) => e.outcome === 'success');
  t.deepEqual(entries.map((e) => e.action), ['study.access-rules', 'study.bindings']);
  t.deepEqual(entries[0]!.oldValue, { accessRules: ACCESS_TEMPLATE });
  t.deepEqual(entries[0]!.newValue, { accessRules: rules });
  t.deepEqual(entries[1]!.oldValue, { bindings: [{ group: G('monitors'), role: 'Clinical Monitor' }] });
  t.deepEqual(entries[1]!.newValue, { bindings });
  t.deepEqual(entries.map((e) => e.actor?.login), ['ada', 'ada']);
  t.is(await code(admin.setBindings(OLD, [{ group: 'not a dn', role: 'Auditor' }])), 'BAD_REQUEST');
  t.is(await code(as(dana).setBindings(OLD, bindings)), 'NOT_FOUND', 'no role there: the study does not exist for her');
});
