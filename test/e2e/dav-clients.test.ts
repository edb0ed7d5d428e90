// What WebDAV clients lean on, over the real appliance: OPTIONS answered
// before authentication (Windows), chunked PUTs without Content-Length
// (Finder), MS-Author-Via on every response, ETags that are version ids, the
// macOS metadata policy (discard, refuse, store), and hrefs and Destinations
// behind a real reverse proxy (a private Apache httpd with mod_proxy and
// mod_ssl) with a configured external URL. Clients: Node's http/https modules
// and curl.

import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPrivateApache, type ApacheSite, type RunningServer } from '../../bench/servers.ts';
import { isVellumError } from '../../src/kernel/index.ts';
import { freePort } from '../env/slapd.ts';
import { PEOPLE, startTestEnv, type TestEnv } from '../env/index.ts';
import { basicAuth, run, send, startRunning, STUDY, type Reply, type RequestOptions, type Running } from '../support/appliance.ts';
import { killApplianceProcesses, startApplianceProcess } from '../support/appliance-process.ts';

const MiB = 1024 * 1024;
const UPLOAD_CAP = 6 * MiB;
const PREFIX = '/vellum';

let running: Running;
let proxy: RunningServer;
let proxyCa: string;
let external: string;
const dav = (path: string) => `/dav/${STUDY}${path}`;
const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const exists = async (path: string) => {
  try {
    await running.appliance.vault.stat({ study: STUDY, names: path.split('/').filter(Boolean) });
    return true;
  } catch (e) {
    if (isVellumError(e, 'NOT_FOUND')) return false;
    throw e;
  }
};

/** Apache as a TLS-terminating reverse proxy: https://127.0.0.1:PORT/vellum/ -> the appliance's loopback HTTP listener. */
function proxySite(backend: string, cert: string, key: string): ApacheSite {
  return {
    modules: [
      ['proxy_module', 'mod_proxy.so'], ['proxy_http_module', 'mod_proxy_http.so'],
      ['ssl_module', 'mod_ssl.so'], ['socache_shmcb_module', 'mod_socache_shmcb.so'],
    ],
    directives: (dir) => `SSLEngine on
SSLCertificateFile "${cert}"
SSLCertificateKeyFile "${key}"
SSLSessionCache "shmcb:${dir}/run/ssl_scache(512000)"
# WebDAV paths are percent-encoded; pass them through as sent.
AllowEncodedSlashes NoDecode
ProxyRequests Off
ProxyPass ${PREFIX}/ ${backend}/ nocanon
ProxyPassReverse ${PREFIX}/ ${backend}/
<Location ${PREFIX}/>
  Require all granted
</Location>`,
  };
}

test.before(async () => {
  // The proxy's port goes into the appliance's configuration, so it is chosen first.
  const proxyPort = await freePort();
  external = `https://127.0.0.1:${proxyPort}${PREFIX}`;
  running = await startRunning({ config: (config) => ({ ...config, externalUrl: external, limits: { uploadBytes: UPLOAD_CAP } }) });
  const dir = join(running.env.dir, 'proxy');
  await mkdir(dir, { recursive: true });
  const cert = join(dir, 'proxy.crt');
  const key = join(dir, 'proxy.key');
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', cert]);
  proxyCa = await readFile(cert, 'utf8');
  proxy = await startPrivateApache({ dir, site: proxySite(running.http, cert, key), port: proxyPort, name: 'proxy' });
  for (const folder of ['/Mac', '/Etags', '/Proxy']) {
    const made = await send(running, dav(folder), { method: 'MKCOL' });
    if (made.status !== 201) throw new Error(`set-up: MKCOL ${folder} gave ${made.status}`);
  }
});
test.after.always(async () => {
  await killApplianceProcesses();
  await policyEnv?.close();
  await proxy?.stop();
  await running?.close();
});

/** One request through the reverse proxy (HTTPS, verified against the proxy's certificate). */
function viaProxy(path: string, options: RequestOptions = {}): Promise<Reply> {
  // send() takes only the host, port and CA from its first argument.
  const proxyAsServer = { https: external, http: external, ca: proxyCa } as Running;
  return send(proxyAsServer, new URL(`${external}${path}`).pathname, options);
}

/**
 * A PUT with Transfer-Encoding: chunked and no Content-Length, the body sent
 * in chunks of the given sizes. Stops sending when the server answers early.
 */
function chunkedPut(path: string, data: Buffer, sizes: () => number): Promise<{ status: number; headers: IncomingHttpHeaders; text: string }> {
  const base = new URL(running.http);
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = httpRequest({
      host: base.hostname, port: base.port, path, method: 'PUT',
      headers: { Authorization: basicAuth(PEOPLE.sam.login, PEOPLE.sam.password), 'Transfer-Encoding': 'chunked', 'User-Agent': 'WebDAVFS/3.0.0 (03008000) Darwin/22.0.0' },
    }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
    });
    // A server that refuses mid-body closes the connection; the answer has come first.
    req.on('error', (e) => {
      if (!answered) reject(e);
    });
    void (async () => {
      let offset = 0;
      while (offset < data.length && !answered && !req.destroyed) {
        const end = Math.min(data.length, offset + sizes());
        if (!req.write(data.subarray(offset, end))) {
          await new Promise<void>((done) => {
            const go = () => {
              req.off('drain', go).off('close', go);
              done();
            };
            req.on('drain', go).on('close', go);
          });
        }
        offset = end;
      }
      if (!req.destroyed) req.end();
    })();
  });
}

/** Deterministic irregular chunk sizes between 1 byte and 300 KiB. */
function irregular(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return 1 + (state % (300 * 1024));
  };
}

const propfind = (path: string, depth: '0' | '1', over: 'https' | 'http' = 'https') =>
  send(running, path, { method: 'PROPFIND', headers: { Depth: depth, 'Content-Type': 'application/xml' }, body: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>' }, over);

// ---------------------------------------------------------------- OPTIONS, MS-Author-Via

test('OPTIONS on /, /dav/, any path and * is answered without authentication with DAV, MS-Author-Via and Allow', async (t) => {
  for (const path of ['/', '/dav', '/dav/', dav('/'), '/some/other/path', '*']) {
    for (const over of ['https', 'http'] as const) {
      const reply = await send(running, path, { method: 'OPTIONS', user: null }, over);
      t.is(reply.status, 200, `${over} ${path}`);
      t.regex(String(reply.headers.dav), /^1(,|$)/, `${over} ${path}`);
      t.is(reply.headers['ms-author-via'], 'DAV');
      for (const method of ['PROPFIND', 'PUT', 'MOVE', 'OPTIONS']) t.true(String(reply.headers.allow).includes(method), `Allow has ${method}`);
    }
  }
  // The API answers OPTIONS for its own routes (Allow of the route), not with DAV headers.
  const api = await send(running, '/api/v1/studies', { method: 'OPTIONS', user: null });
  t.is(api.status, 204);
  t.is(api.headers.dav, undefined);
});

test('curl -X OPTIONS on / (as Windows\' mini-redirector probes) gets the DAV headers without credentials', async (t) => {
  const { stdout } = await run('curl', ['-sS', '-i', '-X', 'OPTIONS', '--cacert', join(running.dataDir, 'tls', 'self-signed.crt'), `${running.https}/`]);
  t.regex(stdout, /^HTTP\/1\.1 200/);
  t.regex(stdout, /\r\nDAV: 1/i);
  t.regex(stdout, /\r\nMS-Author-Via: DAV\r\n/i);
});

test('MS-Author-Via: DAV is on every WebDAV response, successes and errors alike', async (t) => {
  const replies: [string, Reply][] = [
    ['PUT', await send(running, dav('/Mac/author.txt'), { method: 'PUT', body: 'x' })],
    ['GET', await send(running, dav('/Mac/author.txt'))],
    ['HEAD', await send(running, dav('/Mac/author.txt'), { method: 'HEAD' })],
    ['PROPFIND', await propfind(dav('/Mac'), '1')],
    ['PROPFIND infinity', await send(running, dav('/Mac'), { method: 'PROPFIND', headers: { Depth: 'infinity' } })],
    ['COPY', await send(running, dav('/Mac/author.txt'), { method: 'COPY', headers: { Destination: dav('/Mac/author2.txt') } })],
    ['MOVE', await send(running, dav('/Mac/author2.txt'), { method: 'MOVE', headers: { Destination: dav('/Mac/author3.txt') } })],
    ['DELETE', await send(running, dav('/Mac/author3.txt'), { method: 'DELETE' })],
    ['MKCOL', await send(running, dav('/Mac/Sub'), { method: 'MKCOL' })],
    ['404', await send(running, dav('/Mac/missing.txt'))],
    ['401', await send(running, dav('/Mac/author.txt'), { user: null })],
    ['403', await send(running, dav('/Mac/x.txt'), { method: 'PUT', body: 'x', user: 'mona' })],
    ['400', await send(running, dav('/Mac/%ZZ'))],
    ['unknown method', await send(running, dav('/Mac/author.txt'), { method: 'PATCH' })],
  ];
  for (const [what, reply] of replies) t.is(reply.headers['ms-author-via'], 'DAV', `${what} (${reply.status})`);
  t.deepEqual(replies.map(([, reply]) => reply.status), [201, 200, 200, 207, 403, 201, 201, 204, 201, 404, 401, 403, 400, 501]);
});

// ---------------------------------------------------------------- chunked PUT

test.serial('PUT with Transfer-Encoding: chunked and no Content-Length (Finder) stores exactly the bytes sent', async (t) => {
  const data = Buffer.alloc(5 * MiB + 12_345);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 13)) & 0xff;
  const put = await chunkedPut(dav('/Mac/chunked.bin'), data, irregular(7));
  t.is(put.status, 201, put.text);
  const got = await send(running, dav('/Mac/chunked.bin'));
  t.is(got.status, 200);
  t.is(got.body.length, data.length);
  t.is(sha(got.body), sha(data));
  // Overwriting with chunks of other sizes makes a second version with the new bytes.
  const second = Buffer.from(data.subarray(0, 3 * MiB + 1)).reverse();
  t.is((await chunkedPut(dav('/Mac/chunked.bin'), second, irregular(99))).status, 204);
  t.is(sha((await send(running, dav('/Mac/chunked.bin'))).body), sha(second));
});

test.serial('a chunked PUT over the upload cap gets 413 and nothing is stored', async (t) => {
  const data = Buffer.alloc(UPLOAD_CAP + 3 * MiB, 0x5a);
  const put = await chunkedPut(dav('/Mac/too-big.bin'), data, irregular(3));
  t.is(put.status, 413);
  t.is(put.headers['x-vellum-error'], 'BODY_TOO_LARGE');
  t.false(await exists('/Mac/too-big.bin'));
  t.is((await send(running, dav('/Mac/too-big.bin'))).status, 404);
  // The server is fine afterwards.
  t.is((await send(running, dav('/Mac/after.txt'), { method: 'PUT', body: 'ok' })).status, 201);
});

test.serial('curl -T - (stdin, so chunked) stores the bytes', async (t) => {
  const data = Buffer.alloc(2 * MiB + 7, 0x33);
  const child = run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-u', `sam:${PEOPLE.sam.password}`, '-T', '-', `${running.http}${dav('/Mac/curl-chunked.bin')}`]);
  child.child.stdin!.end(data);
  t.is((await child).stdout, '201');
  t.is(sha((await send(running, dav('/Mac/curl-chunked.bin'))).body), sha(data));
});

// ---------------------------------------------------------------- ETags

test.serial('ETags are version ids: GET, HEAD and PUT agree; a new PUT and a restore each give a new ETag', async (t) => {
  const first = await send(running, dav('/Etags/e.txt'), { method: 'PUT', body: 'one' });
  t.is(first.status, 201);
  const e1 = first.headers.etag;
  t.regex(String(e1), /^"[^"]+"$/);
  t.is((await send(running, dav('/Etags/e.txt'))).headers.etag, e1);
  t.is((await send(running, dav('/Etags/e.txt'), { method: 'HEAD' })).headers.etag, e1);

  const second = await send(running, dav('/Etags/e.txt'), { method: 'PUT', body: 'two' });
  t.is(second.status, 204);
  const e2 = second.headers.etag;
  t.not(e2, e1);
  t.is((await send(running, dav('/Etags/e.txt'))).headers.etag, e2);
  t.is((await send(running, dav('/Etags/e.txt'), { method: 'HEAD' })).headers.etag, e2);

  const node = await running.appliance.vault.stat({ study: STUDY, names: ['Etags', 'e.txt'] });
  t.is(e2, `"${node.currentVersion!.id}"`);
  const restored = await send(running, `/api/v1/studies/${STUDY}/nodes/${node.id}/versions/1/restore`, { method: 'POST' });
  t.is(restored.status, 201);
  const version = JSON.parse(restored.text).version as { id: string; number: number };
  t.is(version.number, 3);
  const got = await send(running, dav('/Etags/e.txt'));
  t.is(got.text, 'one');
  t.is(got.headers.etag, `"${version.id}"`);
  t.not(got.headers.etag, e1, 'the restored content is a new version with a new ETag');
  t.not(got.headers.etag, e2);
});

// ---------------------------------------------------------------- macOS metadata: discard (the default)

test.serial('discard: ._ files and .DS_Store are accepted (201) and dropped: not readable, not listed, not stored, not audited', async (t) => {
  const seq = running.appliance.audit.head().seq;
  t.is((await send(running, dav('/Mac/report.pdf'), { method: 'PUT', body: 'the record' })).status, 201);
  const appleDouble = Buffer.alloc(4096, 0x07);
  t.is((await chunkedPut(dav('/Mac/._report.pdf'), appleDouble, irregular(5))).status, 201);
  t.is((await send(running, dav('/Mac/.DS_Store'), { method: 'PUT', body: Buffer.alloc(6148, 1) })).status, 201);
  t.is((await send(running, dav('/Mac/Icon%0D'), { method: 'PUT', body: '' })).status, 201);
  t.is((await send(running, dav('/Mac/._Icon%0D'), { method: 'PUT', body: 'icon' })).status, 201);
  for (const name of ['._report.pdf', '.DS_Store', 'Icon%0D']) {
    t.is((await send(running, dav(`/Mac/${name}`))).status, 404, `GET ${name}`);
    t.is((await send(running, dav(`/Mac/${name}`), { method: 'HEAD' })).status, 404, `HEAD ${name}`);
    t.is((await propfind(dav(`/Mac/${name}`), '0')).status, 404, `PROPFIND ${name}`);
  }
  const listing = await propfind(dav('/Mac'), '1');
  t.is(listing.status, 207);
  t.true(listing.text.includes('report.pdf'));
  t.false(listing.text.includes('._report'));
  t.false(listing.text.includes('DS_Store'));
  const names = (await running.appliance.vault.list({ study: STUDY, names: ['Mac'] })).map((node) => node.name);
  t.false(names.some((name) => name.startsWith('._') || name === '.DS_Store'));
  t.is((await send(running, dav('/Mac/._report.pdf'), { method: 'DELETE' })).status, 204);
  const entries = [];
  for await (const entry of running.appliance.audit.entries(seq + 1)) entries.push(entry);
  t.deepEqual(entries.filter((entry) => entry.object.path !== undefined).map((entry) => `${entry.action} ${entry.object.path}`), [`file.create /${STUDY}/Mac/report.pdf`]);
});

test.serial('discard answers only where a file could be kept: the auditor gets 403 (audited), a missing folder 404', async (t) => {
  const seq = running.appliance.audit.head().seq;
  t.is((await send(running, dav('/Mac/._audit.pdf'), { method: 'PUT', body: 'x', user: 'audrey' })).status, 403);
  t.is((await send(running, dav('/Mac/._audit.pdf'), { method: 'LOCK', body: '<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>', user: 'audrey' })).status, 403);
  t.is((await send(running, dav('/Nowhere/._x'), { method: 'PUT', body: 'x' })).status, 404);
  t.is((await send(running, dav('/Mac/report.pdf/._x'), { method: 'PUT', body: 'x' })).status, 409, 'a file is no folder');
  const denials = [];
  for await (const entry of running.appliance.audit.entries(seq + 1)) if (entry.outcome === 'denied') denials.push(entry);
  t.is(denials.length, 2);
  t.true(denials.every((entry) => entry.actor?.login === 'audrey' && entry.object.path === `/${STUDY}/Mac`));
});

test.serial('discard: LOCK gets a well-formed lock with a fresh token, refresh keeps it, UNLOCK 204; PROPPATCH 207, MKCOL 403', async (t) => {
  const lockBody = '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>http://www.apple.com/webdav_fs/</D:href></D:owner></D:lockinfo>';
  const locked = await send(running, dav('/Mac/._new.pdf'), { method: 'LOCK', headers: { 'Content-Type': 'text/xml', Timeout: 'Second-600', Depth: '0' }, body: lockBody });
  t.is(locked.status, 201);
  const token = /^<(opaquelocktoken:[0-9a-f-]{36})>$/.exec(String(locked.headers['lock-token']))?.[1];
  t.truthy(token, String(locked.headers['lock-token']));
  t.regex(locked.text, /<D:prop xmlns:D="DAV:"><D:lockdiscovery><D:activelock>/);
  t.true(locked.text.includes(`<D:locktoken><D:href>${token}</D:href></D:locktoken>`));
  t.true(locked.text.includes('<D:timeout>Second-600</D:timeout>'));
  t.true(locked.text.includes('<D:exclusive/>'));
  t.true(locked.text.includes('webdav_fs'), 'the owner is echoed');
  // Behind the configured external URL, the lock root is under its path.
  t.true(locked.text.includes(`<D:lockroot><D:href>${PREFIX}${dav('/Mac/._new.pdf')}</D:href></D:lockroot>`));
  const other = await send(running, dav('/Mac/._new.pdf'), { method: 'LOCK', headers: { 'Content-Type': 'text/xml' }, body: lockBody });
  t.not(other.headers['lock-token'], locked.headers['lock-token']);

  const refreshed = await send(running, dav('/Mac/._new.pdf'), { method: 'LOCK', headers: { If: `(<${token}>)`, Timeout: 'Second-99999' } });
  t.is(refreshed.status, 200);
  t.true(refreshed.text.includes(`<D:href>${token}</D:href>`));
  t.true(refreshed.text.includes('<D:timeout>Second-3600</D:timeout>'));
  t.is((await send(running, dav('/Mac/._new.pdf'), { method: 'LOCK' })).status, 400);
  t.is((await send(running, dav('/Mac/._new.pdf'), { method: 'PUT', body: 'x', headers: { If: `(<${token}>)` } })).status, 201);
  t.is((await send(running, dav('/Mac/._new.pdf'), { method: 'UNLOCK', headers: { 'Lock-Token': `<${token}>` } })).status, 204);

  const patch = await send(running, dav('/Mac/._new.pdf'), {
    method: 'PROPPATCH', headers: { 'Content-Type': 'text/xml' },
    body: '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop><Z:Win32FileAttributes>00000020</Z:Win32FileAttributes></D:prop></D:set><D:remove><D:prop><Z:Other/></D:prop></D:remove></D:propertyupdate>',
  });
  t.is(patch.status, 207);
  t.regex(patch.text, /Win32FileAttributes xmlns:ns\d="urn:schemas-microsoft-com:"\/>/);
  t.regex(patch.text, /<D:status>HTTP\/1\.1 200 OK<\/D:status>/);
  t.is((await send(running, dav('/Mac/._new.pdf'), { method: 'PROPPATCH', body: '<not-xml' })).status, 400);
  t.is((await send(running, dav('/Mac/._folder'), { method: 'MKCOL' })).status, 403);
  t.false(await exists('/Mac/._new.pdf'));
});

test.serial('discard: MOVE between metadata names is 201 with nothing stored; an ordinary file cannot become one (403); bodies over 1 MiB get 413', async (t) => {
  t.is((await send(running, dav('/Mac/._a'), { method: 'MOVE', headers: { Destination: dav('/Mac/._b') } })).status, 201);
  t.is((await send(running, dav('/Mac/report.pdf'), { method: 'MOVE', headers: { Destination: dav('/Mac/._report.pdf') } })).status, 403);
  t.is((await send(running, dav('/Mac/._b'), { method: 'COPY', headers: { Destination: dav('/Mac/b') } })).status, 403);
  t.true(await exists('/Mac/report.pdf'));
  t.false(await exists('/Mac/b'));
  const big = await send(running, dav('/Mac/._huge'), { method: 'PUT', body: Buffer.alloc(MiB + 1) });
  t.is(big.status, 413);
  // A hostile folder part still gets its 400.
  t.is((await send(running, `/dav/${STUDY}/a/%2e%2e/%00/._x`, { method: 'PUT', body: 'x' })).status, 400);
  t.is((await send(running, dav('/Mac/._x'), { method: 'PUT', body: 'x', user: null })).status, 401);
});

// ---------------------------------------------------------------- macOS metadata: refuse and store

let policyEnv: TestEnv | undefined;

/**
 * Runs `body` against an appliance with another macOS metadata policy: a child
 * process (one process opens a token once), on an environment of its own.
 */
async function withPolicy(policy: 'refuse' | 'store', body: (target: Running) => Promise<void>): Promise<void> {
  policyEnv ??= await startTestEnv({});
  const child = await startApplianceProcess({ env: policyEnv, dataDir: join(policyEnv.dir, `data-${policy}`), config: (config) => ({ ...config, dav: { macMetadata: policy } }) });
  try {
    // send() needs only the URLs and the certificate.
    await body({ https: child.https, http: child.http, ca: child.ca } as Running);
  } finally {
    await child.stop();
  }
}

test.serial('refuse: writes of metadata names get 403 with a message, reads and DELETE 404; ordinary files are unaffected', async (t) => {
  await withPolicy('refuse', async (refusing) => {
    const put = await send(refusing, dav('/._report.pdf'), { method: 'PUT', body: 'x' });
    t.is(put.status, 403);
    t.regex(put.text, /dav\.macMetadata is "refuse"/);
    t.is((await send(refusing, dav('/.DS_Store'), { method: 'PUT', body: 'x' })).status, 403);
    t.is((await send(refusing, dav('/._report.pdf'), { method: 'LOCK', body: '<D:lockinfo xmlns:D="DAV:"/>' })).status, 403);
    t.is((await send(refusing, dav('/._report.pdf'))).status, 404);
    t.is((await send(refusing, dav('/._report.pdf'), { method: 'DELETE' })).status, 404);
    t.is((await send(refusing, dav('/report.pdf'), { method: 'PUT', body: 'x' })).status, 201);
    t.is((await send(refusing, dav('/report.pdf'), { method: 'COPY', headers: { Destination: dav('/._copy') } })).status, 403);
  });
});

test.serial('store: metadata names are ordinary files (stored, versioned, listed); Icon\\r still fails the name rules (400)', async (t) => {
  await withPolicy('store', async (storing) => {
    const appleDouble = Buffer.alloc(4096, 0x09);
    t.is((await send(storing, dav('/._report.pdf'), { method: 'PUT', body: appleDouble })).status, 201);
    t.is((await send(storing, dav('/.DS_Store'), { method: 'PUT', body: 'ds' })).status, 201);
    t.is(sha((await send(storing, dav('/._report.pdf'))).body), sha(appleDouble));
    const listing = await send(storing, dav('/'), { method: 'PROPFIND', headers: { Depth: '1' } });
    t.true(listing.text.includes('._report.pdf'));
    t.is((await send(storing, dav('/Icon%0D'), { method: 'PUT', body: '' })).status, 400);
  });
});

// ---------------------------------------------------------------- external URL, reverse proxy, TLS

test.serial('through the reverse proxy: OPTIONS, GET and PUT work under the external path; the start page shows the external URL', async (t) => {
  const options = await viaProxy('/', { method: 'OPTIONS', user: null });
  t.is(options.status, 200);
  t.regex(String(options.headers.dav), /^1/);
  t.is((await viaProxy(dav('/Proxy/p.txt'), { method: 'PUT', body: 'through the proxy' })).status, 201);
  t.is((await viaProxy(dav('/Proxy/p.txt'))).text, 'through the proxy');
  t.is((await viaProxy(dav('/Proxy/p.txt'), { user: null })).status, 401);
  const start = await viaProxy('/', { user: null });
  t.is(start.status, 200);
  t.true(start.text.includes(`${external}/dav/`), 'the start page names the external URL');
  // Direct visitors are shown the external URL too: it is the one that works from outside.
  t.true((await send(running, '/', { user: null })).text.includes(`${external}/dav/`));
});

test.serial('through the reverse proxy: MOVE and COPY with a Destination on the external URL work; other hosts and paths do not', async (t) => {
  t.is((await viaProxy(dav('/Proxy/m.txt'), { method: 'PUT', body: 'm' })).status, 201);
  const moved = await viaProxy(dav('/Proxy/m.txt'), { method: 'MOVE', headers: { Destination: `${external}${dav('/Proxy/moved.txt')}` } });
  t.is(moved.status, 201, moved.text);
  t.is((await viaProxy(dav('/Proxy/moved.txt'))).text, 'm');
  t.is((await viaProxy(dav('/Proxy/moved.txt'), { method: 'COPY', headers: { Destination: `${PREFIX}${dav('/Proxy/copied.txt')}` } })).status, 201);
  t.is((await viaProxy(dav('/Proxy/copied.txt'))).text, 'm');
  // Without the prefix on the external host: not under the mount as clients see it.
  t.is((await viaProxy(dav('/Proxy/moved.txt'), { method: 'MOVE', headers: { Destination: `https://${new URL(external).host}${dav('/Proxy/x.txt')}` } })).status, 403);
  t.is((await viaProxy(dav('/Proxy/moved.txt'), { method: 'MOVE', headers: { Destination: `https://elsewhere.example${PREFIX}${dav('/Proxy/x.txt')}` } })).status, 502);
  // Clients that reach the appliance directly still name it by its own Host.
  t.is((await send(running, dav('/Proxy/copied.txt'), { method: 'MOVE', headers: { Destination: `${running.https}${dav('/Proxy/direct.txt')}` } })).status, 201);
});

// PROPFIND builds its hrefs from DavOptions.hrefBase: the external path plus the mount.
test.serial('through the reverse proxy: PROPFIND hrefs are under the external path', async (t) => {
  t.is((await viaProxy(dav('/Proxy/listed.txt'), { method: 'PUT', body: 'l' })).status, 201);
  const listing = await viaProxy(dav('/Proxy'), { method: 'PROPFIND', headers: { Depth: '1' } });
  t.is(listing.status, 207);
  const hrefs = [...listing.text.matchAll(/<(?:\w+:)?href>([^<]*)<\/(?:\w+:)?href>/g)].map((m) => m[1]!);
  t.true(hrefs.length >= 2);
  for (const href of hrefs) t.true(href.startsWith(`${PREFIX}/dav/${STUDY}/Proxy`) || href.startsWith(`${external}/dav/${STUDY}/Proxy`), href);
});

test.serial('over HTTPS, no response names an http:// URL (bodies or headers)', async (t) => {
  const replies = [
    await propfind(dav('/'), '1'),
    await propfind(dav('/Proxy'), '1'),
    await send(running, dav('/Proxy/t.txt'), { method: 'PUT', body: 't' }),
    await send(running, dav('/Proxy/t.txt'), { method: 'MOVE', headers: { Destination: `${running.https}${dav('/Proxy/t2.txt')}` } }),
    await send(running, dav('/Mac/._t'), { method: 'LOCK', body: '<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>' }),
    await send(running, dav('/missing')),
    await send(running, dav('/Mac'), { method: 'PROPFIND', headers: { Depth: 'infinity' } }),
    await send(running, '/', { user: null }),
    await viaProxy(dav('/Proxy'), { method: 'PROPFIND', headers: { Depth: '1' } }),
    await viaProxy('/', { user: null }),
  ];
  for (const reply of replies) {
    t.false(reply.text.includes('http://'), reply.text.slice(0, 300));
    for (const [name, value] of Object.entries(reply.headers)) t.false(String(value).includes('http://'), `${name}: ${String(value)}`);
  }
});
