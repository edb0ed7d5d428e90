// Reasons for change (EU GMP Annex 11 §9) over the real appliance: an
// X-Change-Reason on a WebDAV write lands in its audit entry, and a study that
// requires reasons in a folder refuses deletes, overwrites and moves out of it
// without one (428, audited), with a message that says what to send. The
// folder rules are set by Administrators over the REST API. Clients: Node's
// https module and curl.

import test from 'ava';
import { join } from 'node:path';
import type { AuditEntry } from '../../src/audit/index.ts';
import { run, send, startRunning, STUDY, type Running } from '../support/appliance.ts';
import { PEOPLE } from '../env/index.ts';

let running: Running;
const dav = (path: string) => `/dav/${STUDY}${path}`;
const api = (path: string) => `/api/v1/studies/${STUDY}${path}`;
const json = (value: unknown) => ({ headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(value) });
const node = (path: string) => running.appliance.vault.stat({ study: STUDY, names: path.split('/').filter(Boolean) });

async function entriesSince(seq: number): Promise<AuditEntry[]> {
  const found: AuditEntry[] = [];
  for await (const entry of running.appliance.audit.entries(seq + 1)) found.push(entry);
  return found;
}

const mark = () => running.appliance.audit.head().seq;

test.before(async () => {
  running = await startRunning();
  for (const folder of ['/Open', '/Regulatory', '/Regulatory/Letters', '/Outside']) {
    const made = await send(running, dav(folder), { method: 'MKCOL' });
    if (made.status !== 201) throw new Error(`set-up: MKCOL ${folder} gave ${made.status}`);
  }
});
test.after.always(async () => running?.close());

test.serial('X-Change-Reason on PUT, MKCOL, MOVE and DELETE is recorded in each audit entry (percent-encoded UTF-8 decoded)', async (t) => {
  const seq = mark();
  const because = (reason: string) => ({ 'X-Change-Reason': reason });
  t.is((await send(running, dav('/Open/a.txt'), { method: 'PUT', body: 'a', headers: because('first upload') })).status, 201);
  t.is((await send(running, dav('/Open/Sub'), { method: 'MKCOL', headers: because('a folder for letters') })).status, 201);
  t.is((await send(running, dav('/Open/a.txt'), { method: 'MOVE', headers: { ...because('renamed per SOP'), Destination: dav('/Open/b.txt') } })).status, 201);
  const unicode = 'Korrektur des Datums – Prüfer';
  t.is((await send(running, dav('/Open/b.txt'), { method: 'DELETE', headers: because(encodeURIComponent(unicode)) })).status, 204);
  const reasons = Object.fromEntries((await entriesSince(seq)).filter((e) => e.outcome === 'success').map((e) => [e.action, e.reason]));
  t.deepEqual(reasons, {
    'file.create': 'first upload',
    'folder.create': 'a folder for letters',
    'file.move': 'renamed per SOP',
    'file.delete': unicode,
  });
});

test.serial('only Administrators set a study\'s folder rules; the change is audited with old and new values; bad bodies get 400', async (t) => {
  const seq = mark();
  const denied = await send(running, api('/change-reason-folders'), { method: 'PUT', user: 'sam', ...json({ folders: ['/Regulatory'] }) });
  t.is(denied.status, 403);
  t.is((await send(running, api('/change-reason-folders'), { method: 'PUT', user: 'ada', ...json({ folders: 'Regulatory' }) })).status, 400);
  t.is((await send(running, api('/change-reason-folders'), { method: 'PUT', user: 'ada', ...json({ folders: ['Regulatory'] }) })).status, 400);
  t.is((await send(running, api('/change-reason-folders'), { method: 'PUT', user: 'ada', ...json({ folders: ['/a/../b'] }) })).status, 400);
  t.is((await send(running, api('/change-reason-folders'), { method: 'PUT', user: 'ada', ...json({ folders: ['/Regulatory'], color: 1 }) })).status, 400);

  const set = await send(running, api('/change-reason-folders'), { method: 'PUT', user: 'ada', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ folders: ['/Regulatory/', '/Regulatory'], reason: 'SOP-114 rev 3' }) });
  t.is(set.status, 200, set.text);
  t.deepEqual(JSON.parse(set.text), { folders: ['/Regulatory'] });
  // Study members may read the rules (their clients need to know); for people without a role the study does not exist.
  t.deepEqual(JSON.parse((await send(running, api('/change-reason-folders'), { user: 'mona' })).text), { folders: ['/Regulatory'] });
  t.is((await send(running, api('/change-reason-folders'), { user: 'nora' })).status, 404);

  const entries = await entriesSince(seq);
  t.truthy(entries.find((e) => e.action === 'study.change-reason-folders' && e.outcome === 'denied' && e.actor?.login === 'sam'));
  const changed = entries.find((e) => e.action === 'study.change-reason-folders' && e.outcome === 'success');
  t.truthy(changed);
  t.deepEqual(changed!.oldValue, { changeReasonFolders: [] });
  t.deepEqual(changed!.newValue, { changeReasonFolders: ['/Regulatory'] });
  t.is(changed!.reason, 'SOP-114 rev 3');
  t.is(changed!.actor?.login, 'ada');
});

test.serial('in a rule folder a new file needs no reason, an overwrite does: 428 with what to send, audited, nothing changed', async (t) => {
  t.is((await send(running, dav('/Regulatory/protocol.txt'), { method: 'PUT', body: 'v1' })).status, 201);
  const seq = mark();
  const refused = await send(running, dav('/Regulatory/protocol.txt'), { method: 'PUT', body: 'v2' });
  t.is(refused.status, 428);
  t.is(refused.headers['x-vellum-error'], 'REASON_REQUIRED');
  t.regex(refused.text, /X-Change-Reason: <why>/);
  t.regex(refused.text, /percent-encoded as UTF-8/);
  t.regex(refused.text, /folder rule "\/Regulatory"/);
  t.regex(refused.text, /overwrite \/DEMO-001\/Regulatory\/protocol\.txt/);
  t.is((await node('/Regulatory/protocol.txt')).versionCount, 1);
  const denial = (await entriesSince(seq)).find((e) => e.outcome === 'denied');
  t.is(denial?.action, 'file.write');
  t.is(denial?.object.path, '/DEMO-001/Regulatory/protocol.txt');
  t.regex(denial?.detail ?? '', /^REASON_REQUIRED: /);

  // A file in a subfolder is covered too; the reason may be non-ASCII, percent-encoded.
  t.is((await send(running, dav('/Regulatory/Letters/l.txt'), { method: 'PUT', body: 'x' })).status, 201);
  t.is((await send(running, dav('/Regulatory/Letters/l.txt'), { method: 'PUT', body: 'y' })).status, 428);

  const reason = 'Tippfehler in Abschnitt 3 – korrigiert (Ärztin)';
  const seq2 = mark();
  const accepted = await send(running, dav('/Regulatory/protocol.txt'), { method: 'PUT', body: 'v2', headers: { 'X-Change-Reason': encodeURIComponent(reason) } });
  t.is(accepted.status, 204);
  t.is((await node('/Regulatory/protocol.txt')).versionCount, 2);
  const update = (await entriesSince(seq2)).find((e) => e.action === 'file.update');
  t.is(update?.reason, reason);
  t.is(update?.outcome, 'success');
  // Outside the rule, overwrites need no reason.
  t.is((await send(running, dav('/Open/free.txt'), { method: 'PUT', body: '1' })).status, 201);
  t.is((await send(running, dav('/Open/free.txt'), { method: 'PUT', body: '2' })).status, 204);
});

test.serial('DELETE in a rule folder, and of the rule folder itself, needs a reason; a missing file is still 404', async (t) => {
  t.is((await send(running, dav('/Regulatory/protocol.txt'), { method: 'DELETE' })).status, 428);
  t.is((await send(running, dav('/Regulatory'), { method: 'DELETE' })).status, 428);
  t.is((await send(running, dav('/Regulatory/no-such.txt'), { method: 'DELETE' })).status, 404);
  t.is((await node('/Regulatory/protocol.txt')).versionCount, 2);
  const seq = mark();
  t.is((await send(running, dav('/Regulatory/Letters/l.txt'), { method: 'DELETE', headers: { 'X-Change-Reason': 'superseded' } })).status, 204);
  const deleted = (await entriesSince(seq)).find((e) => e.action === 'file.delete');
  t.is(deleted?.reason, 'superseded');
});

test.serial('MOVE out of a rule folder and MOVE/COPY onto an existing file there need a reason; a rename inside does not', async (t) => {
  t.is((await send(running, dav('/Regulatory/protocol.txt'), { method: 'MOVE', headers: { Destination: dav('/Regulatory/protocol-v2.txt') } })).status, 201);
  const out = await send(running, dav('/Regulatory/protocol-v2.txt'), { method: 'MOVE', headers: { Destination: dav('/Outside/protocol.txt') } });
  t.is(out.status, 428);
  t.regex(out.text, /move \/DEMO-001\/Regulatory\/protocol-v2\.txt/);
  t.is((await send(running, dav('/Outside/protocol.txt'))).status, 404);

  t.is((await send(running, dav('/Outside/draft.txt'), { method: 'PUT', body: 'draft' })).status, 201);
  const over = await send(running, dav('/Outside/draft.txt'), { method: 'MOVE', headers: { Destination: dav('/Regulatory/protocol-v2.txt'), Overwrite: 'T' } });
  t.is(over.status, 428);
  t.regex(over.text, /replace \/DEMO-001\/Regulatory\/protocol-v2\.txt/);
  t.is((await send(running, dav('/Outside/draft.txt'), { method: 'COPY', headers: { Destination: dav('/Regulatory/protocol-v2.txt') } })).status, 428);
  t.is((await send(running, dav('/Regulatory/protocol-v2.txt'))).text, 'v2');
  // Into the folder under a new name: a new file, no reason needed.
  t.is((await send(running, dav('/Outside/draft.txt'), { method: 'COPY', headers: { Destination: dav('/Regulatory/draft.txt') } })).status, 201);

  const seq = mark();
  t.is((await send(running, dav('/Regulatory/protocol-v2.txt'), { method: 'MOVE', headers: { Destination: dav('/Outside/protocol.txt'), 'X-Change-Reason': 'archived' } })).status, 201);
  const moved = (await entriesSince(seq)).find((e) => e.action === 'file.move');
  t.is(moved?.reason, 'archived');
});

test.serial('restoring an older version over the API in a rule folder needs a reason (header or body field)', async (t) => {
  t.is((await send(running, dav('/Regulatory/plan.txt'), { method: 'PUT', body: 'one' })).status, 201);
  t.is((await send(running, dav('/Regulatory/plan.txt'), { method: 'PUT', body: 'two', headers: { 'X-Change-Reason': 'update' } })).status, 204);
  const { id } = await node('/Regulatory/plan.txt');
  const refused = await send(running, api(`/nodes/${id}/versions/1/restore`), { method: 'POST' });
  t.is(refused.status, 428);
  t.is(JSON.parse(refused.text).error.code, 'REASON_REQUIRED');
  const restored = await send(running, api(`/nodes/${id}/versions/1/restore`), { method: 'POST', ...json({ reason: 'v2 was uploaded by mistake' }) });
  t.is(restored.status, 201, restored.text);
  t.is((await send(running, dav('/Regulatory/plan.txt'))).text, 'one');
});

test.serial('curl: the 428 body tells a person at a terminal what to send, and sending it works', async (t) => {
  const url = `${running.https}${dav('/Regulatory/draft.txt')}`;
  const user = `${PEOPLE.sam.login}:${PEOPLE.sam.password}`;
  const common = ['-sS', '--cacert', join(running.dataDir, 'tls', 'self-signed.crt'), '-u', user, '-o', '-', '-w', '\\n%{http_code}'];
  const curl = async (args: string[]) => (await run('curl', [...common, ...args])).stdout;
  const refused = await curl(['-X', 'DELETE', url]);
  t.regex(refused, /X-Change-Reason: <why>/);
  t.regex(refused, /\n428$/);
  t.regex(await curl(['-X', 'DELETE', '-H', 'X-Change-Reason: duplicate of protocol', url]), /\n204$/);
});

test.serial('a study created with folder rules enforces them from the start', async (t) => {
  const { bindings } = (await running.appliance.vault.getStudy(STUDY))!;
  const system = running.appliance.systemSession('test set-up');
  await system.createStudy({ id: 'RULED-001', title: 'Ruled', bindings, changeReasonFolders: ['/'] });
  t.deepEqual(JSON.parse((await send(running, '/api/v1/studies/RULED-001/change-reason-folders', { user: 'ada' })).text), { folders: ['/'] });
  t.is((await send(running, '/dav/RULED-001/x.txt', { method: 'PUT', body: '1' })).status, 201);
  t.is((await send(running, '/dav/RULED-001/x.txt', { method: 'PUT', body: '2' })).status, 428);
  // Under the whole-study rule a rename is still within the rule's folder.
  t.is((await send(running, '/dav/RULED-001/x.txt', { method: 'MOVE', headers: { Destination: '/dav/RULED-001/y.txt' } })).status, 201);
});
