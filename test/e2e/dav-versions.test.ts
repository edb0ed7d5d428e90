// WebDAV over the real appliance (slapd, SoftHSM, LevelDB, HTTPS) for what
// issue 3 adds to the protocol: MOVE keeps a file's history, COPY shares or
// re-encrypts content, a PUT digest that doesn't match stores nothing, and a
// blob that fails authentication mid-stream cuts the response and raises an
// integrity alert. Clients: Node's https module and curl.

import test from 'ava';
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { run, send, startRunning, STUDY, type Running } from '../support/appliance.ts';
import { PEOPLE } from '../env/index.ts';

let running: Running;
const OTHER = 'DEMO-002';
const dav = (path: string) => `/dav/${STUDY}${path}`;
const sha = (data: string | Buffer) => createHash('sha256').update(data).digest();
const node = (path: string) => running.appliance.vault.stat({ study: STUDY, names: path.split('/').filter(Boolean) });
const auditActions = async (fromSeq: number) => {
  const found: { action: string; outcome: string }[] = [];
  for await (const entry of running.appliance.audit.entries(fromSeq + 1)) found.push(entry);
  return found;
};

test.before(async () => {
  running = await startRunning();
  for (const folder of ['Regulatory', 'Archive']) t0(await send(running, dav(`/${folder}`), { method: 'MKCOL' }));
  // A second study with the same bindings, so a cross-study MOVE meets the vault's rule rather than an access denial.
  const { bindings } = (await running.appliance.vault.getStudy(STUDY))!;
  await running.appliance.systemSession('test set-up').createStudy({ id: OTHER, title: 'Other', bindings });
});
test.after.always(async () => running?.close());

function t0(reply: { status: number }) {
  if (reply.status !== 201) throw new Error(`set-up failed with ${reply.status}`);
}

test.serial('MOVE renames a file and it keeps its history (201, then 204 over an existing one with Overwrite: T)', async (t) => {
  t.is((await send(running, dav('/Regulatory/draft.txt'), { method: 'PUT', body: 'v1' })).status, 201);
  t.is((await send(running, dav('/Regulatory/draft.txt'), { method: 'PUT', body: 'v2' })).status, 204);
  const before = await node('/Regulatory/draft.txt');
  const moved = await send(running, dav('/Regulatory/draft.txt'), { method: 'MOVE', headers: { Destination: `${running.https}${dav('/Archive/final.txt')}` } });
  t.is(moved.status, 201);
  t.is((await send(running, dav('/Regulatory/draft.txt'))).status, 404);
  const after = await node('/Archive/final.txt');
  t.is(after.id, before.id);
  t.is(after.versionCount, 2);
  t.is((await send(running, dav('/Archive/final.txt'))).text, 'v2');

  t.is((await send(running, dav('/Regulatory/other.txt'), { method: 'PUT', body: 'other' })).status, 201);
  const refused = await send(running, dav('/Regulatory/other.txt'), { method: 'MOVE', headers: { Destination: dav('/Archive/final.txt'), Overwrite: 'F' } });
  t.is(refused.status, 412);
  t.is(refused.headers['x-vellum-error'], 'DESTINATION_EXISTS');
  const replaced = await send(running, dav('/Regulatory/other.txt'), { method: 'MOVE', headers: { Destination: dav('/Archive/final.txt'), Overwrite: 'T' } });
  t.is(replaced.status, 204);
  t.is((await send(running, dav('/Archive/final.txt'))).text, 'other');
});

test.serial('COPY makes a new file (201) with the same bytes; a folder copies with its contents', async (t) => {
  const copied = await send(running, dav('/Archive/final.txt'), { method: 'COPY', headers: { Destination: dav('/Regulatory/copy.txt') } });
  t.is(copied.status, 201);
  t.is((await send(running, dav('/Regulatory/copy.txt'))).text, 'other');
  t.is((await send(running, dav('/Archive'), { method: 'COPY', headers: { Destination: dav('/Archive%202'), Depth: 'infinity' } })).status, 201);
  t.is((await send(running, dav('/Archive%202/final.txt'))).text, 'other');
  t.is((await send(running, dav('/Archive'), { method: 'COPY', headers: { Destination: dav('/Archive%203'), Depth: '0' } })).status, 201);
  t.is((await send(running, dav('/Archive%203/final.txt'))).status, 404);
});

test.serial('MOVE and COPY refuse bad Destinations, Overwrite and Depth values with clear 4xx/502, and change nothing', async (t) => {
  const seq = running.appliance.audit.head().seq;
  const cases: [Record<string, string>, number, string][] = [
    [{}, 400, 'DESTINATION_INVALID'],
    [{ Destination: 'http://[bad' }, 400, 'DESTINATION_INVALID'],
    [{ Destination: 'https://elsewhere.example/dav/DEMO-001/x.txt' }, 502, 'DESTINATION_OTHER_SERVER'],
    [{ Destination: `${running.https}/admin/x.txt` }, 403, 'FORBIDDEN'],
    [{ Destination: dav('/x.txt?y=1') }, 400, 'DESTINATION_INVALID'],
    [{ Destination: dav('/../../etc/passwd') }, 403, 'FORBIDDEN'],
    [{ Destination: dav('/x.txt'), Overwrite: 'maybe' }, 400, 'BAD_REQUEST'],
    [{ Destination: dav('/x.txt'), Depth: '1' }, 400, 'BAD_REQUEST'],
    [{ Destination: '/dav/OTHER-STUDY/x.txt' }, 404, 'NOT_FOUND'],
  ];
  for (const [headers, status, code] of cases) {
    const reply = await send(running, dav('/Regulatory/copy.txt'), { method: 'COPY', headers });
    t.is(reply.status, status, JSON.stringify(headers));
    t.is(reply.headers['x-vellum-error'], code, JSON.stringify(headers));
  }
  const acrossStudies = await send(running, dav('/Regulatory/copy.txt'), { method: 'MOVE', headers: { Destination: `/dav/${OTHER}/x.txt` } });
  t.is(acrossStudies.status, 403);
  t.regex(acrossStudies.text, /cannot move between studies/);
  t.is((await send(running, dav('/Regulatory/copy.txt'))).text, 'other', 'the source is untouched');
  t.is((await send(running, dav('/x.txt'))).status, 404, 'nothing was created');
  t.false((await auditActions(seq)).some((e) => e.outcome === 'success' && /move|copy/.test(e.action)));
});

test.serial('a Monitor cannot MOVE (403, audited as a denial)', async (t) => {
  const seq = running.appliance.audit.head().seq;
  const reply = await send(running, dav('/Regulatory/copy.txt'), { method: 'MOVE', user: 'mona', headers: { Destination: dav('/Regulatory/stolen.txt') } });
  t.is(reply.status, 403);
  const entries = await auditActions(seq);
  t.true(entries.some((e) => e.action === 'node.move' && e.outcome === 'denied'));
});

test.serial('PUT with a matching digest is stored; a mismatching one gets 400 DIGEST_MISMATCH and no version', async (t) => {
  const body = 'signed protocol v3\n';
  const hex = sha(body).toString('hex');
  const b64 = sha(body).toString('base64');
  t.is((await send(running, dav('/Regulatory/p.txt'), { method: 'PUT', body, headers: { 'X-Content-SHA256': hex } })).status, 201);
  t.is((await send(running, dav('/Regulatory/p.txt'), { method: 'PUT', body, headers: { Digest: `md5=whatever, SHA-256=${b64}` } })).status, 204);
  t.is((await send(running, dav('/Regulatory/p.txt'), { method: 'PUT', body, headers: { 'Content-Digest': `sha-256=:${b64}:` } })).status, 204);
  const versions = (await node('/Regulatory/p.txt')).versionCount;

  const wrong = sha('something else').toString('hex');
  for (const headers of [{ 'X-Content-SHA256': wrong }, { Digest: `sha-256=${sha('x').toString('base64')}` }] as Record<string, string>[]) {
    const reply = await send(running, dav('/Regulatory/p.txt'), { method: 'PUT', body, headers });
    t.is(reply.status, 400);
    t.is(reply.headers['x-vellum-error'], 'DIGEST_MISMATCH');
  }
  const fresh = await send(running, dav('/Regulatory/new.txt'), { method: 'PUT', body, headers: { 'X-Content-SHA256': wrong } });
  t.is(fresh.status, 400);
  t.is((await send(running, dav('/Regulatory/new.txt'))).status, 404, 'a rejected first upload leaves no file');
  t.is((await node('/Regulatory/p.txt')).versionCount, versions, 'a rejected upload makes no version');

  for (const headers of [{ 'X-Content-SHA256': 'abc' }, { Digest: 'sha-256=not-base64' }, { 'X-Content-SHA256': hex, Digest: `sha-256=${sha('x').toString('base64')}` }] as Record<string, string>[]) {
    const reply = await send(running, dav('/Regulatory/p.txt'), { method: 'PUT', body, headers });
    t.is(reply.status, 400, JSON.stringify(headers));
    t.is(reply.headers['x-vellum-error'], 'BAD_REQUEST');
  }
  const curl = await run('curl', ['-sS', '--cacert', '-', '-o', '/dev/null', '-w', '%{http_code}', '-u', `sam:${PEOPLE.sam.password}`, '-H', `X-Content-SHA256: ${wrong}`,
    '--data-binary', body, '-X', 'PUT', `${running.http}${dav('/Regulatory/curl.txt')}`]).catch((e: { stdout: string }) => e);
  t.is(curl.stdout, '400');
});

test.serial('a segment that fails authentication mid-stream cuts the response, never sends wrong bytes, and raises an integrity alert', async (t) => {
  const size = 8 * 1024 * 1024;
  const body = Buffer.alloc(size, 7);
  t.is((await send(running, dav('/Regulatory/scan.dcm'), { method: 'PUT', body })).status, 201);
  const version = (await node('/Regulatory/scan.dcm')).currentVersion!;
  const file = join(running.dataDir, 'blobs', version.blobId.slice(0, 2), version.blobId);
  const handle = await open(file, 'r+');
  const { size: onDisk } = await handle.stat();
  const at = onDisk - 40_000; // in the last segment: several MiB go out before the damage is reached
  const byte = Buffer.alloc(1);
  await handle.read(byte, 0, 1, at);
  byte[0]! ^= 0xff;
  await handle.write(byte, 0, 1, at);
  await handle.close();

  const seq = running.appliance.audit.head().seq;
  const result = await run('curl', ['-sS', '-o', '-', '-u', `sam:${PEOPLE.sam.password}`, `${running.http}${dav('/Regulatory/scan.dcm')}`], { encoding: 'buffer', maxBuffer: 4 * size })
    .then(() => null, (e: { code: number; stdout: Buffer }) => e);
  t.truthy(result, 'curl reports an error: the body was cut short');
  t.is(result!.code, 18, 'curl: transfer closed with outstanding read data remaining');
  t.true(result!.stdout.length < size);
  t.true(result!.stdout.equals(body.subarray(0, result!.stdout.length)), 'every byte that was sent is right');

  const entries = await auditActions(seq);
  t.true(entries.some((e) => e.action === 'integrity.alert' && e.outcome === 'failed'));
  t.true(running.logs.some((line) => line.includes('INTEGRITY ALERT') && line.includes('scan.dcm')));
  t.is((await send(running, '/healthz', { user: null })).status, 200, 'the server is still up');
  t.is((await send(running, dav('/Regulatory/p.txt'))).status, 200);
});

test.serial('damage in the first segment is found before the status line: a 500 INTEGRITY_FAILURE with a message, and an alert', async (t) => {
  t.is((await send(running, dav('/Regulatory/early.bin'), { method: 'PUT', body: Buffer.alloc(200_000, 3) })).status, 201);
  const version = (await node('/Regulatory/early.bin')).currentVersion!;
  const file = join(running.dataDir, 'blobs', version.blobId.slice(0, 2), version.blobId);
  const handle = await open(file, 'r+');
  const { size } = await handle.stat();
  const at = size - 2 * 65_552 - 10_000; // in the first segment (three segments: 64 KiB, 64 KiB, the rest)
  const byte = Buffer.alloc(1);
  await handle.read(byte, 0, 1, at);
  byte[0]! ^= 0x10;
  await handle.write(byte, 0, 1, at);
  await handle.close();
  const seq = running.appliance.audit.head().seq;
  const reply = await send(running, dav('/Regulatory/early.bin'));
  t.is(reply.status, 500);
  t.is(reply.headers['x-vellum-error'], 'INTEGRITY_FAILURE');
  t.regex(reply.text, /integrity/);
  t.false(reply.body.includes(Buffer.alloc(1000, 3)), 'no content bytes in the error');
  t.true((await auditActions(seq)).some((e) => e.action === 'integrity.alert'));
});
