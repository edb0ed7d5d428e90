// The thin end-to-end slice through every real part: WebDAV over HTTPS, Basic
// auth verified by a bind against slapd, AES-256-GCM under a KEK in SoftHSM,
// metadata and audit in LevelDB on disk.

import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PEOPLE } from '../env/index.ts';
import { run, send, startRunning, STUDY, type Running } from '../support/appliance.ts';

let running: Running;

test.before(async () => {
  running = await startRunning();
});

test.after.always(async () => {
  await running?.close();
});

async function* walk(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (entry.isFile()) yield path;
  }
}

async function filesContaining(dir: string, needle: Buffer): Promise<string[]> {
  const hits: string[] = [];
  for await (const file of walk(dir)) {
    if ((await readFile(file)).includes(needle)) hits.push(file);
  }
  return hits;
}

test.serial('11.10(d) PUT with curl as sam creates the file (201) and GET returns identical bytes', async (t) => {
  const marker = `VELLUM-PLAINTEXT-MARKER-${randomBytes(8).toString('hex')}`;
  const content = Buffer.concat([Buffer.from(`${marker}\n`), randomBytes(200_000), Buffer.from(`\n${marker}\n`)]);
  const local = join(running.env.dir, 'upload.bin');
  await writeFile(local, content);
  const url = `${running.https}/dav/${STUDY}/upload.bin`;
  const put = await run('curl', ['-sS', '-k', '-o', '/dev/null', '-w', '%{http_code}', '-u', `sam:${PEOPLE.sam.password}`, '-T', local, url]);
  t.is(put.stdout, '201');
  const got = await run('curl', ['-sS', '-k', '-u', `sam:${PEOPLE.sam.password}`, url], { encoding: 'buffer', maxBuffer: 10_000_000 });
  t.true(Buffer.compare(got.stdout, content) === 0, 'GET returns the bytes that were PUT');
  // Invariant 4: plaintext never touches the disk.
  t.deepEqual(await filesContaining(running.env.dir, Buffer.from(marker)), [local], 'only the test\'s own source file holds the marker');
});

test.serial('11.10(e) a second PUT of the same path makes a second immutable version', async (t) => {
  const path = `/dav/${STUDY}/protocol.txt`;
  t.is((await send(running, path, { method: 'PUT', body: 'version one\n' })).status, 201);
  t.is((await send(running, path, { method: 'PUT', body: 'version two\n' })).status, 204);
  t.is((await send(running, path)).text, 'version two\n');
  const versions = await running.appliance.vault.versions(await running.appliance.vault.stat({ study: STUDY, names: ['protocol.txt'] }));
  t.deepEqual(versions.map((v) => v.number), [1, 2]);
  t.not(versions[0]!.blobId, versions[1]!.blobId, 'each version has its own blob');
  t.is(versions[0]!.sha256, createHash('sha256').update('version one\n').digest('hex'));
  t.is(versions[1]!.sha256, createHash('sha256').update('version two\n').digest('hex'));
});

test.serial('PROPFIND Depth 0 and 1, MKCOL and DELETE work under the study folder', async (t) => {
  t.is((await send(running, `/dav/${STUDY}/Site%20101`, { method: 'MKCOL' })).status, 201);
  t.is((await send(running, `/dav/${STUDY}/Site%20101`, { method: 'MKCOL' })).status, 405, 'MKCOL on an existing folder');
  t.is((await send(running, `/dav/${STUDY}/missing/child`, { method: 'MKCOL' })).status, 409, 'MKCOL without a parent');
  t.is((await send(running, `/dav/${STUDY}/Site%20101/consent.pdf`, { method: 'PUT', body: '%PDF-1.4 consent' })).status, 201);

  const depth0 = await send(running, `/dav/${STUDY}/Site%20101/`, { method: 'PROPFIND', headers: { Depth: '0' } });
  t.is(depth0.status, 207);
  t.regex(depth0.text, /<D:collection\s*\/>/);
  t.notRegex(depth0.text, /consent\.pdf/, 'Depth 0 does not list children');

  const depth1 = await send(running, `/dav/${STUDY}/Site%20101/`, { method: 'PROPFIND', headers: { Depth: '1' } });
  t.is(depth1.status, 207);
  t.regex(depth1.text, /consent\.pdf/);
  t.regex(depth1.text, /<D:getcontentlength>16<\/D:getcontentlength>/);

  const infinity = await send(running, `/dav/${STUDY}/`, { method: 'PROPFIND', headers: { Depth: 'infinity' } });
  t.is(infinity.status, 403);
  t.regex(infinity.text, /propfind-finite-depth/);

  t.is((await send(running, `/dav/${STUDY}/Site%20101/consent.pdf`, { method: 'DELETE' })).status, 204);
  t.is((await send(running, `/dav/${STUDY}/Site%20101/consent.pdf`)).status, 404);
  const after = await send(running, `/dav/${STUDY}/Site%20101/`, { method: 'PROPFIND', headers: { Depth: '1' } });
  t.notRegex(after.text, /consent\.pdf/, 'a deleted file is no longer listed');
});

test.serial('PROPFIND on the root lists only the studies the person holds a role in', async (t) => {
  const sam = await send(running, '/dav/', { method: 'PROPFIND', headers: { Depth: '1' } });
  t.is(sam.status, 207);
  t.regex(sam.text, new RegExp(`/dav/${STUDY}/`));
  const nora = await send(running, '/dav/', { method: 'PROPFIND', headers: { Depth: '1' }, user: 'nora' });
  t.is(nora.status, 207);
  t.notRegex(nora.text, new RegExp(STUDY));
});

test.serial('11.10(d) a password with ":", "+", "/", a space and non-ASCII authenticates', async (t) => {
  t.regex(PEOPLE.pat.password, /:/);
  const reply = await send(running, `/dav/${STUDY}/pat.txt`, { method: 'PUT', body: 'from pat', user: 'pat' });
  t.is(reply.status, 201);
  const curl = await run('curl', ['-sS', '-k', '-o', '/dev/null', '-w', '%{http_code}', '-u', `pat:${PEOPLE.pat.password}`, `${running.https}/dav/${STUDY}/pat.txt`]);
  t.is(curl.stdout, '200');
});

test.serial('11.10(d) a wrong password is refused with 401', async (t) => {
  const reply = await send(running, `/dav/${STUDY}/`, { method: 'PROPFIND', headers: { Depth: '0' }, user: { login: 'sam', password: 'not-the-password' } });
  t.is(reply.status, 401);
  t.regex(reply.headers['www-authenticate'] ?? '', /^Basic realm="Vellum"/);
});

test.serial('11.10(d) a malformed Authorization header gets 401 and is audited as a refused sign-in, over WebDAV and the API', async (t) => {
  for (const path of [`/dav/${STUDY}/`, '/api/v1/studies']) {
    const seq = running.appliance.audit.head().seq;
    const reply = await send(running, path, { user: null, headers: { Authorization: 'Basic !!!not base64!!!' } });
    t.is(reply.status, 401, path);
    const entries = [];
    for await (const entry of running.appliance.audit.entries(seq + 1)) entries.push(entry);
    t.is(entries.length, 1, path);
    t.like(entries[0], { action: 'auth.login', outcome: 'denied' });
    t.regex(entries[0]!.detail ?? '', /not valid HTTP Basic/);
  }
});

test.serial('11.10(d) no credentials get 401 with WWW-Authenticate: Basic', async (t) => {
  const reply = await send(running, `/dav/${STUDY}/protocol.txt`, { user: null });
  t.is(reply.status, 401);
  t.regex(reply.headers['www-authenticate'] ?? '', /^Basic /);
  t.regex(reply.text, /Authentication is required/);
});

test.serial('11.10(g) a person in no group gets 404 on the study (as if it did not exist), and the denial is audited with why', async (t) => {
  const before = running.appliance.audit.head().seq;
  const reply = await send(running, `/dav/${STUDY}/protocol.txt`, { user: 'nora' });
  t.is(reply.status, 404);
  t.regex(reply.text, /There is no study "DEMO-001"/);
  const entries = [];
  for await (const entry of running.appliance.audit.entries(before + 1)) entries.push(entry);
  const denial = entries.find((entry) => entry.outcome === 'denied' && entry.actor?.login === 'nora');
  t.truthy(denial, 'the denial has an audit entry');
  t.is(denial?.object.path, `/${STUDY}/protocol.txt`);
  t.regex(denial?.detail ?? '', /no role in study DEMO-001/);
});

test.serial('11.10(e) every write has exactly one audit entry with actor, time, object and version, and the chain verifies', async (t) => {
  const before = running.appliance.audit.head().seq;
  t.is((await send(running, `/dav/${STUDY}/audited.txt`, { method: 'PUT', body: 'a', headers: { 'X-Change-Reason': 'Initial upload' } })).status, 201);
  const entries = [];
  for await (const entry of running.appliance.audit.entries(before + 1)) entries.push(entry);
  const writes = entries.filter((entry) => entry.action === 'file.create');
  t.is(writes.length, 1);
  const entry = writes[0]!;
  t.is(entry.actor?.login, 'sam');
  t.regex(entry.actor?.id ?? '', /^[0-9a-f-]{36}$/, 'actor id is the directory entryUUID');
  t.deepEqual(entry.roles, ['Sponsor']);
  t.is(entry.ip, '127.0.0.1');
  t.is(entry.reason, 'Initial upload');
  t.is(entry.object.path, `/${STUDY}/audited.txt`);
  t.truthy(entry.object.versionId);
  t.regex(entry.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.deepEqual((await running.appliance.audit.verify()).ok, true);
});

test.serial('GET /healthz reports HSM, LDAP, database and the audit trail without authentication or secrets', async (t) => {
  const reply = await send(running, '/healthz', { user: null });
  t.is(reply.status, 200);
  const body = JSON.parse(reply.text) as { status: string; components: Record<string, { ok: boolean }> };
  t.is(body.status, 'ok');
  t.deepEqual(Object.keys(body.components).sort(), ['audit', 'database', 'hsm', 'ldap']);
  t.regex(JSON.stringify(body.components.audit), /\d+ entries, last signed checkpoint/);
  t.true(Object.values(body.components).every((c) => c.ok));
  t.false(reply.text.includes(running.env.hsm.pin + '"'), 'no PIN in the health report');
  t.false(reply.text.includes(running.env.ldap.servicePassword), 'no bind password in the health report');
});

test.serial('11.30 TLS below 1.2 is refused; the plain-HTTP listener is on loopback', async (t) => {
  const old = await run('curl', ['-sS', '-k', '--tlsv1.0', '--tls-max', '1.1', `${running.https}/healthz`]).then(() => 'connected', (e: { stderr?: string }) => e.stderr ?? 'failed');
  t.not(old, 'connected');
  const modern = await run('curl', ['-sS', '-k', '--tlsv1.2', '-o', '/dev/null', '-w', '%{http_code}', `${running.https}/healthz`]);
  t.is(modern.stdout, '200');
  t.regex(running.http, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.is((await send(running, `/dav/${STUDY}/protocol.txt`, {}, 'http')).status, 200);
});

test.serial('blobs on disk are not plaintext and name their study\'s key, not the key itself', async (t) => {
  const versions = await running.appliance.vault.versions(await running.appliance.vault.stat({ study: STUDY, names: ['protocol.txt'] }));
  const blobId = versions[0]!.blobId;
  const blob = await readFile(join(running.dataDir, 'blobs', blobId.slice(0, 2), blobId));
  t.is(blob.subarray(0, 4).toString(), 'VLMB');
  t.false(blob.includes(Buffer.from('version one')));
  t.true((await stat(join(running.dataDir, 'blobs', blobId.slice(0, 2), blobId))).size > 'version one\n'.length);
});
