// The REST API v1 on the real appliance (slapd, SoftHSM, LevelDB, HTTPS):
// files go in over WebDAV, their history, downloads, restores, the trash, key
// rotation and scrubs are driven over /api/v1 with Node's https client.

import test from 'ava';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PEOPLE } from '../env/index.ts';
import { run, send, startRunning, STUDY, type Running } from '../support/appliance.ts';
import { api, auditSince, damageBlob, poll, putVersions, type JsonReply } from './api-helpers.ts';

let running: Running;
const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest();
const nodes = `/studies/${STUDY}/nodes`;

test.before(async () => {
  running = await startRunning();
  for (const folder of ['Regulatory', 'Archive', 'Raw Data']) {
    const reply = await send(running, `/dav/${STUDY}/${encodeURIComponent(folder)}`, { method: 'MKCOL' });
    if (reply.status !== 201) throw new Error(`set-up: MKCOL ${folder} answered ${reply.status}`);
  }
});
test.after.always(async () => running?.close());

/** The node id of a live file or folder, by path relative to the study. */
async function idOf(path: string): Promise<string> {
  const reply = await api(running, `${nodes}?path=${encodeURIComponent(path)}`);
  if (reply.status !== 200) throw new Error(`${path}: ${reply.status} ${reply.text}`);
  return reply.json.id as string;
}

function isError(t: { is(a: unknown, b: unknown, m?: string): void; regex(a: string, r: RegExp): void }, reply: JsonReply, status: number, code: string, message?: RegExp): void {
  t.is(reply.status, status, reply.text);
  t.regex(reply.headers['content-type'] ?? '', /^application\/json/);
  t.is(reply.json?.error?.code, code);
  t.is(reply.headers['x-vellum-error'], code);
  if (message) t.regex(reply.json.error.message, message);
}

test.serial('11.10(d) the API needs credentials: none -> 401 with a Basic challenge, a wrong password -> 401, a malformed header -> 401', async (t) => {
  const none = await api(running, '/studies', { user: null });
  isError(t, none, 401, 'AUTH_REQUIRED', /Authentication is required/);
  t.regex(none.headers['www-authenticate'] ?? '', /^Basic realm="Vellum", charset="UTF-8"$/);
  t.is(none.headers['cache-control'], 'no-store');

  const wrong = await api(running, '/studies', { user: { login: 'sam', password: 'not-the-password' } });
  isError(t, wrong, 401, 'AUTH_FAILED', /user name or password is not correct/);
  t.regex(wrong.headers['www-authenticate'] ?? '', /^Basic /);

  const malformed = await api(running, '/studies', { user: null, headers: { Authorization: 'Basic !!!' } });
  isError(t, malformed, 401, 'AUTH_FAILED', /not valid HTTP Basic/);
});

test.serial('GET /studies lists the studies the person holds a role in, with the roles; Administrators see every study to manage it', async (t) => {
  const sam = await api(running, '/studies');
  t.is(sam.status, 200);
  t.is(sam.headers['cache-control'], 'no-store');
  t.deepEqual(sam.json.map((study: { id: string }) => study.id), [STUDY]);
  t.like(sam.json[0], { id: STUDY, roles: ['Sponsor'], administer: false });
  t.deepEqual(Object.keys(sam.json[0]).sort(), ['administer', 'createdAt', 'id', 'roles', 'title']);
  const nora = await api(running, '/studies', { user: 'nora' });
  t.is(nora.status, 200);
  t.deepEqual(nora.json, []);
  // ada holds no role in the study: she may administer it, and still reads nothing in it.
  const ada = await api(running, '/studies', { user: 'ada' });
  t.deepEqual(ada.json.map((study: { id: string; roles: string[]; administer: boolean }) => [study.id, study.roles, study.administer]), [[STUDY, [], true]]);
  t.is((await send(running, `/dav/${STUDY}/`, { method: 'PROPFIND', user: PEOPLE.ada, headers: { Depth: '0' } })).status, 404);
});

test.serial('11.10(e) versions: two uploads over WebDAV, both listed and both downloadable with their digests', async (t) => {
  const v1 = 'Protocol, version one\n';
  const v2 = Buffer.concat([Buffer.from('Protocol, version two\n'), Buffer.alloc(200_000, 7)]);
  await putVersions(running, '/Regulatory/protocol (final).pdf', [v1, v2]);
  const id = await idOf('/Regulatory/protocol (final).pdf');

  const listed = await api(running, `${nodes}/${id}/versions`);
  t.is(listed.status, 200);
  t.is(listed.json.node.id, id);
  t.is(listed.json.node.path, `/${STUDY}/Regulatory/protocol (final).pdf`);
  t.false(listed.json.node.inTrash);
  t.deepEqual(listed.json.versions.map((v: { number: number }) => v.number), [1, 2]);
  t.deepEqual(listed.json.versions.map((v: { current: boolean }) => v.current), [false, true]);
  t.is(listed.json.versions[0].sha256, sha256(v1).toString('hex'));
  t.is(listed.json.versions[1].size, v2.length);
  t.is(listed.json.versions[0].createdBy.login, 'sam');

  for (const [number, content] of [[1, Buffer.from(v1)], [2, v2]] as const) {
    const reply = await api(running, `${nodes}/${id}/versions/${number}/content`);
    t.is(reply.status, 200);
    t.true(reply.body.equals(content), `v${number} downloads the bytes uploaded`);
    t.is(reply.headers['content-type'], 'application/octet-stream');
    t.is(reply.headers['content-length'], String(content.length));
    t.is(reply.headers['x-content-sha256'], sha256(content).toString('hex'));
    t.is(reply.headers['x-content-sha256'], sha256(reply.body).toString('hex'));
    t.is(reply.headers.digest, `sha-256=${sha256(content).toString('base64')}`);
    t.is(reply.headers.etag, `"${listed.json.versions[number - 1].id}"`);
    t.is(reply.headers['content-disposition'], `attachment; filename="protocol (final).pdf"; filename*=UTF-8''protocol%20%28final%29.pdf`);
    t.is(reply.headers['cache-control'], 'no-store');
  }

  const head = await api(running, `${nodes}/${id}/versions/2/content`, { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(head.headers['content-length'], String(v2.length));
  t.is(head.body.length, 0);

  isError(t, await api(running, `${nodes}/${id}/versions/9/content`), 404, 'VERSION_NOT_FOUND');
  isError(t, await api(running, `${nodes}/${id}/versions/first/content`), 400, 'BAD_REQUEST', /whole number/);
  isError(t, await api(running, `${nodes}/no-such-node/versions`), 404, 'NOT_FOUND');
  isError(t, await api(running, `${nodes}/${id}/versions`, { user: 'nora' }), 404, 'NOT_FOUND', /There is no study/);
});

test.serial('11.10(e) restoring v1 makes v3 with v1\'s content, its origin and the reason for change in the audit trail', async (t) => {
  const id = await idOf('/Regulatory/protocol (final).pdf');
  const before = running.appliance.audit.head().seq;
  const restored = await api(running, `${nodes}/${id}/versions/1/restore`, {
    method: 'POST', headers: { 'X-Change-Reason': encodeURIComponent('Zurück auf v1: v2 was sent by mistake') },
  });
  t.is(restored.status, 201, restored.text);
  t.is(restored.json.node.id, id);
  t.is(restored.json.node.path, `/${STUDY}/Regulatory/protocol (final).pdf`);
  t.is(restored.json.node.currentVersion.number, 3);
  t.is(restored.json.version.number, 3);
  t.deepEqual(restored.json.version.origin, { kind: 'restore', fromVersion: 1 });
  const v3 = await api(running, `${nodes}/${id}/versions/3/content`);
  t.is(v3.text, 'Protocol, version one\n');
  const entry = (await auditSince(running, before)).find((e) => e.action === 'file.restore' && e.outcome === 'success');
  t.truthy(entry);
  t.is(entry?.actor?.login, 'sam');
  t.is(entry?.reason, 'Zurück auf v1: v2 was sent by mistake');
  t.is(entry?.object.nodeId, id);

  // The reason can come in the JSON body instead; both at once must agree.
  const fromBody = await api(running, `${nodes}/${id}/versions/2/restore`, { method: 'POST', json: { reason: 'Back to v2 after review' } });
  t.is(fromBody.status, 201);
  t.is(fromBody.json.version.number, 4);
  const conflicting = await api(running, `${nodes}/${id}/versions/2/restore`, { method: 'POST', json: { reason: 'one' }, headers: { 'X-Change-Reason': 'two' } });
  isError(t, conflicting, 400, 'BAD_REQUEST', /differ/);
  const tooLong = await api(running, `${nodes}/${id}/versions/2/restore`, { method: 'POST', json: { reason: 'x'.repeat(1001) } });
  isError(t, tooLong, 400, 'BAD_REQUEST', /at most 1000 characters/);
  t.is((await api(running, `${nodes}/${id}/versions`)).json.versions.length, 4, 'refused restores made no version');
});

test.serial('11.10(g) a Monitor cannot restore a version (403), and the denial is in the audit trail', async (t) => {
  const id = await idOf('/Regulatory/protocol (final).pdf');
  const before = running.appliance.audit.head().seq;
  const reply = await api(running, `${nodes}/${id}/versions/1/restore`, { method: 'POST', user: 'mona' });
  isError(t, reply, 403, 'FORBIDDEN', /may not write/);
  const denial = (await auditSince(running, before)).find((e) => e.outcome === 'denied' && e.actor?.login === 'mona');
  t.is(denial?.action, 'file.restore');
  t.is(denial?.object.path, `/${STUDY}/Regulatory/protocol (final).pdf`);
  t.is((await api(running, `${nodes}/${id}/versions`)).json.versions.length, 4);
  t.is((await api(running, `${nodes}/${id}/versions/1/content`, { user: 'mona' })).status, 200, 'a Monitor may still read');
});

test.serial('trash: a delete over WebDAV (a Data Manager in /Raw Data) shows in the trash with who deleted it; restoring it makes the file readable again', async (t) => {
  await putVersions(running, '/Raw Data/consent.txt', ['signed consent']);
  const id = await idOf('/Raw Data/consent.txt');
  t.is((await send(running, `/dav/${STUDY}/Raw%20Data/consent.txt`, { method: 'DELETE', user: 'dana' })).status, 204);
  t.is((await send(running, `/dav/${STUDY}/Raw%20Data/consent.txt`)).status, 404);

  const trash = await api(running, `/studies/${STUDY}/trash`);
  t.is(trash.status, 200);
  const item = trash.json.find((node: { id: string }) => node.id === id);
  t.truthy(item);
  t.is(item.deletedBy.login, 'dana');
  t.is(item.path, `/${STUDY}/Raw Data/consent.txt`);
  t.true(item.inTrash);
  t.true((await api(running, `${nodes}/${id}`)).json.inTrash, 'a node in the trash is found by id');
  isError(t, await api(running, `${nodes}?path=${encodeURIComponent('/Raw Data/consent.txt')}`), 404, 'NOT_FOUND');
  t.is((await api(running, `${nodes}/${id}/versions/1/content`)).text, 'signed consent', 'the history of a deleted file is still readable');
  isError(t, await api(running, `${nodes}/${id}/versions/1/restore`, { method: 'POST' }), 404, 'NOT_FOUND', /trash/);

  const restored = await api(running, `/studies/${STUDY}/trash/${id}/restore`, { method: 'POST' });
  t.is(restored.status, 200, restored.text);
  t.is(restored.json.id, id);
  t.false(restored.json.inTrash);
  t.is((await send(running, `/dav/${STUDY}/Raw%20Data/consent.txt`)).text, 'signed consent');
  t.false((await api(running, `/studies/${STUDY}/trash`)).json.some((node: { id: string }) => node.id === id));
  isError(t, await api(running, `/studies/${STUDY}/trash/${id}/restore`, { method: 'POST' }), 409, 'NOT_DELETED');
});

test.serial('trash: restoring under a name that is taken again is 409 NAME_TAKEN; under another name it works', async (t) => {
  await putVersions(running, '/Archive/site-list.csv', ['old list']);
  const id = await idOf('/Archive/site-list.csv');
  t.is((await send(running, `/dav/${STUDY}/Archive/site-list.csv`, { method: 'DELETE' })).status, 204);
  await putVersions(running, '/Archive/site-list.csv', ['new list']);

  isError(t, await api(running, `/studies/${STUDY}/trash/${id}/restore`, { method: 'POST' }), 409, 'NAME_TAKEN', /another name/);
  isError(t, await api(running, `/studies/${STUDY}/trash/${id}/restore`, { method: 'POST', user: 'mona' }), 403, 'FORBIDDEN');
  isError(t, await api(running, `/studies/${STUDY}/trash/${id}/restore`, { method: 'POST', json: { name: 42 } }), 400, 'BAD_REQUEST', /"name" must be a string/);
  isError(t, await api(running, `/studies/${STUDY}/trash/${id}/restore`, { method: 'POST', json: { name: '../x' } }), 400, 'PATH_INVALID');
  const renamed = await api(running, `/studies/${STUDY}/trash/${id}/restore`, { method: 'POST', json: { name: 'site-list (old).csv', reason: 'Keep the old list for the file' } });
  t.is(renamed.status, 200, renamed.text);
  t.is(renamed.json.path, `/${STUDY}/Archive/site-list (old).csv`);
  t.is((await send(running, `/dav/${STUDY}/Archive/site-list%20(old).csv`)).text, 'old list');
  t.is((await send(running, `/dav/${STUDY}/Archive/site-list.csv`)).text, 'new list');

  // A new name is NFC-normalised like a WebDAV path, so WebDAV clients of either form find the file.
  t.is((await send(running, `/dav/${STUDY}/Archive/site-list%20(old).csv`, { method: 'DELETE' })).status, 204);
  const nfd = await api(running, `/studies/${STUDY}/trash/${id}/restore`, { method: 'POST', json: { name: 'Zürich list.csv'.normalize('NFD') } });
  t.is(nfd.status, 200, nfd.text);
  t.is(nfd.json.name, 'Zürich list.csv'.normalize('NFC'));
  t.is((await send(running, `/dav/${STUDY}/Archive/${encodeURIComponent('Zürich list.csv'.normalize('NFC'))}`)).text, 'old list');
});

test.serial('nodes?path= finds a live node by its path in the study; "/" is the study folder', async (t) => {
  await putVersions(running, '/Regulatory/Žádost č. 1.txt', ['non-ASCII name']);
  const found = await api(running, `${nodes}?path=${encodeURIComponent('/Regulatory/Žádost č. 1.txt')}`);
  t.is(found.status, 200);
  t.is(found.json.kind, 'file');
  t.is(found.json.name, 'Žádost č. 1.txt');
  t.is(found.json.currentVersion.number, 1);
  const nfd = await api(running, `${nodes}?path=${encodeURIComponent('/Regulatory/Žádost č. 1.txt'.normalize('NFD'))}`);
  t.is(nfd.json.id, found.json.id, 'names are NFC-normalised as in WebDAV');
  const root = await api(running, `${nodes}?path=/`);
  t.is(root.status, 200);
  t.is(root.json.kind, 'folder');
  t.is(root.json.parentId, null);
  t.is(root.json.path, `/${STUDY}`);
  isError(t, await api(running, nodes), 400, 'BAD_REQUEST', /path=/);
  isError(t, await api(running, `${nodes}?path=Regulatory`), 400, 'PATH_INVALID');
  isError(t, await api(running, `${nodes}?path=${encodeURIComponent('/Regulatory/../../etc')}`), 400, 'PATH_INVALID');
  isError(t, await api(running, `${nodes}?path=/Nothing/here.txt`), 404, 'NOT_FOUND');
  isError(t, await api(running, '/studies/NO-SUCH-STUDY/nodes?path=/'), 404, 'NOT_FOUND');
  isError(t, await api(running, '/studies/not%20a%20study/nodes?path=/'), 404, 'NOT_FOUND', /not a study/);
  isError(t, await api(running, `${nodes}?path=/`, { user: 'nora' }), 404, 'NOT_FOUND', /There is no study/);
});

test.serial('keys: Administrators only; a rotation runs to the end, every blob moves to the new KEK version and files still read right', async (t) => {
  isError(t, await api(running, `/studies/${STUDY}/keys`), 403, 'FORBIDDEN', /Sponsor may not administer/);
  isError(t, await api(running, `/studies/${STUDY}/keys/rotate`, { method: 'POST' }), 403, 'FORBIDDEN');
  isError(t, await api(running, '/studies/NO-SUCH-STUDY/keys', { user: 'ada' }), 404, 'NOT_FOUND');

  const before = await api(running, `/studies/${STUDY}/keys`, { user: 'ada' });
  t.is(before.status, 200);
  t.is(before.json.study, STUDY);
  t.is(before.json.current, before.json.versions.at(-1));
  const blobs = Object.values(before.json.blobsByVersion as Record<string, number>).reduce((a, b) => a + b, 0);
  t.true(blobs >= 4);

  const started = await api(running, `/studies/${STUDY}/keys/rotate`, { user: 'ada', method: 'POST', json: { reason: 'Annual key rotation' } });
  t.is(started.status, 202, started.text);
  t.is(started.headers.location, `/api/v1/studies/${STUDY}/keys`);
  t.is(started.json.fromVersion, before.json.current);
  t.is(started.json.toVersion, before.json.current + 1);
  t.is(started.json.blobsTotal, blobs);

  const after = await poll(() => api(running, `/studies/${STUDY}/keys`, { user: 'ada' }), (reply) => reply.json.rotation?.state !== 'running');
  t.is(after.json.rotation.state, 'done');
  t.is(after.json.rotation.blobsDone, blobs);
  t.is(after.json.current, started.json.toVersion);
  t.deepEqual(after.json.blobsByVersion, { [started.json.toVersion]: blobs });

  const id = await idOf('/Regulatory/protocol (final).pdf');
  const versions = (await api(running, `${nodes}/${id}/versions`)).json.versions as { number: number; sha256: string; keyVersion: number }[];
  t.true(versions.every((v) => v.keyVersion === started.json.toVersion));
  for (const version of versions) {
    const content = await api(running, `${nodes}/${id}/versions/${version.number}/content`);
    t.is(sha256(content.body).toString('hex'), version.sha256, `v${version.number} reads right after the rotation`);
  }
});

test.serial('keys: a second rotation while one is running is 409 JOB_RUNNING', async (t) => {
  // Enough blobs that the re-wrap outlasts a second request by far.
  const system = running.appliance.systemSession('test set-up');
  const { Readable } = await import('node:stream');
  for (let i = 0; i < 300; i++) {
    await system.writeFile({ study: STUDY, names: ['Archive', `bulk-${i}.txt`] }, Readable.from([Buffer.from(`bulk ${i}`)]), { maxBytes: 1024 });
  }
  const first = await api(running, `/studies/${STUDY}/keys/rotate`, { user: 'ada', method: 'POST' });
  t.is(first.status, 202);
  const second = await api(running, `/studies/${STUDY}/keys/rotate`, { user: 'ada', method: 'POST' });
  const status = await api(running, `/studies/${STUDY}/keys`, { user: 'ada' });
  t.is(status.json.rotation.toVersion, first.json.toVersion, 'no second rotation started');
  isError(t, second, 409, 'JOB_RUNNING', /under way/);
  await poll(() => api(running, `/studies/${STUDY}/keys`, { user: 'ada' }), (reply) => reply.json.rotation?.state !== 'running');
});

test.serial('scrub: Administrators only; a scrub of intact storage is clean', async (t) => {
  isError(t, await api(running, '/scrub'), 403, 'FORBIDDEN');
  isError(t, await api(running, '/scrub', { method: 'POST' }), 403, 'FORBIDDEN');
  const none = await api(running, '/scrub', { user: 'ada' });
  t.is(none.status, 200);
  t.deepEqual(none.json, { scrub: null }, 'no scrub has run yet');

  const started = await api(running, '/scrub', { user: 'ada', method: 'POST' });
  t.is(started.status, 202, started.text);
  t.is(started.json.trigger, 'request');
  t.true(started.json.blobsTotal > 300);
  const second = await api(running, '/scrub', { user: 'ada', method: 'POST' });
  isError(t, second, 409, 'JOB_RUNNING');
  const done = await poll(() => api(running, '/scrub', { user: 'ada' }), (reply) => reply.json.scrub.state !== 'running');
  t.is(done.json.scrub.state, 'done');
  t.is(done.json.scrub.blobsDone, started.json.blobsTotal);
  t.is(done.json.scrub.bytesDone, started.json.bytesTotal);
  t.deepEqual(done.json.scrub.damaged, []);
});

test.serial('11.10(a) scrub: a damaged blob is reported with the versions and paths it holds, and raises an integrity alert', async (t) => {
  const id = await idOf('/Regulatory/protocol (final).pdf');
  const versions = (await api(running, `${nodes}/${id}/versions`)).json.versions as { number: number; blobId: string; size: number }[];
  // v1's content is shared by v3 (the restore of v1).
  const blobId = versions[0]!.blobId;
  t.is(versions[2]!.blobId, blobId);
  await damageBlob(running, blobId);

  const before = running.appliance.audit.head().seq;
  t.is((await api(running, '/scrub', { user: 'ada', method: 'POST' })).status, 202);
  const done = await poll(() => api(running, '/scrub', { user: 'ada' }), (reply) => reply.json.scrub.state !== 'running');
  t.is(done.json.scrub.state, 'done');
  t.is(done.json.scrub.damaged.length, 1);
  const damaged = done.json.scrub.damaged[0];
  t.is(damaged.blobId, blobId);
  t.is(damaged.study, STUDY);
  t.is(damaged.code, 'INTEGRITY_FAILURE');
  t.deepEqual(
    damaged.versions.map((v: { path: string; number: number }) => `${v.path} v${v.number}`).sort(),
    [`/${STUDY}/Regulatory/protocol (final).pdf v1`, `/${STUDY}/Regulatory/protocol (final).pdf v3`],
  );
  const alert = (await auditSince(running, before)).find((e) => e.action === 'integrity.alert');
  t.truthy(alert, 'the audit trail has an integrity alert');
  t.is(alert?.object.study, STUDY);

  // Damage at the start of the content is found before the status line: a 500 with a message.
  isError(t, await api(running, `${nodes}/${id}/versions/1/content`), 500, 'INTEGRITY_FAILURE', /failed its integrity check/);
  t.true(running.logs.some((line) => /^api: GET .*INTEGRITY_FAILURE/.test(line)), 'the failure is logged');

  // Damage further on (here in the second MiB of a file) is found after the status line: the connection is cut.
  const big = Buffer.alloc(1_500_000, 3);
  await putVersions(running, '/Archive/big.bin', [big]);
  const bigId = await idOf('/Archive/big.bin');
  await damageBlob(running, (await api(running, `${nodes}/${bigId}/versions`)).json.versions[0].blobId);
  const cut = await api(running, `${nodes}/${bigId}/versions/1/content`).then((reply) => `${reply.status}, ${reply.body.length} bytes`, (e: Error) => e.message);
  t.is(cut, 'aborted', 'the client sees the connection cut, not a complete body');
  await poll(async () => running.logs.some((line) => /^web: GET .* stopped: .*Segment \d+ failed authentication/.test(line)), (logged) => logged, 5000);
});

test.serial('bad requests get a JSON 4xx: malformed JSON, wrong content type, unknown fields, an oversized body', async (t) => {
  const id = await idOf('/Raw Data/consent.txt');
  const restore = `${nodes}/${id}/versions/1/restore`;
  const headers = { 'Content-Type': 'application/json' };
  isError(t, await api(running, restore, { method: 'POST', body: '{"reason": ', headers }), 400, 'BAD_REQUEST', /not valid JSON/);
  isError(t, await api(running, restore, { method: 'POST', body: '["reason"]', headers }), 400, 'BAD_REQUEST', /JSON object/);
  isError(t, await api(running, restore, { method: 'POST', json: { reason: 'ok', overwrite: true } }), 400, 'BAD_REQUEST', /Unknown field "overwrite"/);
  isError(t, await api(running, restore, { method: 'POST', body: 'reason=x', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
  isError(t, await api(running, restore, { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json; charset=latin1' } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
  isError(t, await api(running, restore, { method: 'POST', json: { reason: 'x'.repeat(70_000) } }), 413, 'BODY_TOO_LARGE', /65536 bytes/);
  // Without a Content-Length (chunked), the limit holds while reading.
  const body = join(running.env.dir, 'large.json');
  await writeFile(body, JSON.stringify({ reason: 'x'.repeat(200_000) }));
  const chunked = await run('curl', [
    '-sS', '--cacert', join(running.dataDir, 'tls', 'self-signed.crt'), '-u', `sam:${PEOPLE.sam.password}`,
    '-H', 'Content-Type: application/json', '-H', 'Transfer-Encoding: chunked', '--data-binary', `@${body}`,
    '-w', '\n%{http_code}', `${running.https}/api/v1${restore}`,
  ]).then((result) => result.stdout, (e: { stdout?: string }) => e.stdout ?? '');
  t.regex(chunked, /"code":"BODY_TOO_LARGE"[\s\S]*\n413$/);
  t.is((await api(running, `${nodes}/${id}/versions`)).json.versions.length, 1, 'nothing was restored');
  // The body is not even read for someone who is not signed in.
  isError(t, await api(running, restore, { method: 'POST', user: null, body: '{"reason": ', headers }), 401, 'AUTH_REQUIRED');
});

test.serial('unknown routes are a JSON 404, a wrong method a JSON 405 with Allow; /healthz and / still work', async (t) => {
  isError(t, await api(running, '/nothing'), 404, 'NOT_FOUND', /no API route/);
  isError(t, await send(running, '/api/v2/studies').then((reply) => ({ ...reply, json: JSON.parse(reply.text) })), 404, 'NOT_FOUND');
  isError(t, await send(running, '/api').then((reply) => ({ ...reply, json: JSON.parse(reply.text) })), 404, 'NOT_FOUND');
  const wrong = await api(running, '/scrub', { method: 'DELETE', user: null });
  isError(t, wrong, 405, 'METHOD_NOT_ALLOWED');
  t.is(wrong.headers.allow, 'HEAD, GET, POST');
  const post = await api(running, `/studies/${STUDY}/trash`, { method: 'POST' });
  isError(t, post, 405, 'METHOD_NOT_ALLOWED');
  t.is(post.headers.allow, 'HEAD, GET');
  const options = await api(running, '/scrub', { method: 'OPTIONS', user: null });
  t.is(options.status, 204);
  t.is(options.headers.allow, 'HEAD, GET, POST');

  const health = await send(running, '/healthz', { user: null });
  t.is(health.status, 200);
  t.is(JSON.parse(health.text).status, 'ok');
  const start = await send(running, '/', { user: null });
  t.is(start.status, 200);
  t.regex(start.text, /Vellum/);
  t.is((await send(running, '/no-such-page', { user: null })).status, 404);
});

test.serial('the API works over the loopback plain-HTTP listener too, for local tools', async (t) => {
  const reply = await send(running, '/api/v1/studies', { user: PEOPLE.audrey }, 'http');
  t.is(reply.status, 200);
  t.deepEqual(JSON.parse(reply.text).map((study: { id: string }) => study.id), [STUDY]);
});
