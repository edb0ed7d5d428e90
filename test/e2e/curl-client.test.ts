// curl, the way a scripter uses it against the running appliance over HTTPS
// (verifying its self-signed certificate): upload with -T, a chunked upload
// from stdin, download, a range, MKCOL, COPY and MOVE with Destination,
// DELETE and OPTIONS. Each step checks curl's exit code and the HTTP status,
// and the vault's state where a write happened.

import test from 'ava';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PEOPLE } from '../env/index.ts';
import { send, startRunning, STUDY, type Running } from '../support/appliance.ts';

let running: Running;
let dir: string;
let caFile: string;
const folder = `/dav/${STUDY}/curl`;
const url = (path: string) => `${running.https}${folder}${path}`;
const names = (path: string) => ['curl', ...path.split('/').filter(Boolean)];
const stat = (path: string) => running.appliance.vault.stat({ study: STUDY, names: names(path) });

test.before(async () => {
  running = await startRunning();
  dir = await mkdtemp(join(tmpdir(), 'vellum-curl-'));
  caFile = join(dir, 'ca.pem');
  await writeFile(caFile, running.ca);
});
test.after.always(async () => {
  await running?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface CurlResult {
  /** curl's exit code: 0, or e.g. 22 for an HTTP error under --fail. */
  readonly code: number;
  /** The HTTP status (from -w %{http_code}); 0 when there was none. */
  readonly status: number;
  readonly stderr: string;
}

/** Runs curl with the CA, Sam's credentials and --fail; the status is printed last on stdout. */
function curl(args: readonly string[], options: { stdin?: Buffer; user?: string | null } = {}): Promise<CurlResult> {
  const user = options.user === undefined ? `${PEOPLE.sam.login}:${PEOPLE.sam.password}` : options.user;
  const all = ['-sS', '--fail', '--cacert', caFile, '-w', '\n%{http_code}', ...(user === null ? [] : ['-u', user]), ...args];
  return new Promise((resolve, reject) => {
    const child = spawn('curl', all, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('latin1')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, status: Number(stdout.split('\n').at(-1)), stderr }));
    child.stdin.end(options.stdin);
  });
}

test.serial('OPTIONS on /dav/ without credentials: 200 with the DAV and Allow headers', async (t) => {
  const headersFile = join(dir, 'options.headers');
  const result = await curl(['-X', 'OPTIONS', '-o', '/dev/null', '-D', headersFile, `${running.https}/dav/`], { user: null });
  t.is(result.code, 0, result.stderr);
  t.is(result.status, 200);
  const headers = await readFile(headersFile, 'utf8');
  t.regex(headers, /^DAV: 1/im);
  t.regex(headers, /^Allow: .*PROPFIND/im);
  t.regex(headers, /^MS-Author-Via: DAV/im);
});

test.serial('MKCOL makes a folder (201); again, it exists (405, curl exits 22)', async (t) => {
  const made = await curl(['-X', 'MKCOL', '-o', '/dev/null', url('')]);
  t.is(made.code, 0, made.stderr);
  t.is(made.status, 201);
  t.is((await stat('')).kind, 'folder');
  const again = await curl(['-X', 'MKCOL', '-o', '/dev/null', url('')]);
  t.is(again.code, 22);
  t.is(again.status, 405);
});

test.serial('upload with -T (201), again over it (204, a second version), download byte for byte', async (t) => {
  const first = randomBytes(300 * 1024);
  const second = randomBytes(2 * 1024 * 1024 + 17); // large enough that curl sends Expect: 100-continue
  await writeFile(join(dir, 'first.bin'), first);
  await writeFile(join(dir, 'second.bin'), second);
  const created = await curl(['-T', join(dir, 'first.bin'), '-o', '/dev/null', url('/data.bin')]);
  t.is(created.code, 0, created.stderr);
  t.is(created.status, 201);
  const replaced = await curl(['-T', join(dir, 'second.bin'), '-o', '/dev/null', url('/data.bin')]);
  t.is(replaced.code, 0, replaced.stderr);
  t.is(replaced.status, 204);
  t.is((await stat('/data.bin')).versionCount, 2);

  const out = join(dir, 'out.bin');
  const downloaded = await curl(['-o', out, url('/data.bin')]);
  t.is(downloaded.code, 0, downloaded.stderr);
  t.is(downloaded.status, 200);
  t.true((await readFile(out)).equals(second));
});

test.serial('a chunked upload from stdin (-T -, no Content-Length) is stored whole', async (t) => {
  const body = Buffer.concat([Buffer.from('streamed from a pipe\n'), randomBytes(700 * 1024)]);
  const result = await curl(['-T', '-', '-H', 'Transfer-Encoding: chunked', '-o', '/dev/null', url('/piped.bin')], { stdin: body });
  t.is(result.code, 0, result.stderr);
  t.is(result.status, 201);
  const stored = await stat('/piped.bin');
  t.is(stored.currentVersion?.size, body.length);
  t.true((await send(running, `${folder}/piped.bin`)).body.equals(body));
});

test.serial('a byte range (-r) is 206 with just those bytes; a range past the end is 416 (curl exits 22)', async (t) => {
  const content = await readFile(join(dir, 'second.bin'));
  const out = join(dir, 'range.bin');
  const ranged = await curl(['-r', '1000-1999', '-o', out, url('/data.bin')]);
  t.is(ranged.code, 0, ranged.stderr);
  t.is(ranged.status, 206);
  t.true((await readFile(out)).equals(content.subarray(1000, 2000)));
  const past = await curl(['-r', `${content.length + 10}-`, '-o', '/dev/null', url('/data.bin')]);
  t.is(past.code, 22);
  t.is(past.status, 416);
});

test.serial('COPY and MOVE with a Destination header (201), Overwrite: F onto an existing file (412)', async (t) => {
  const copied = await curl(['-X', 'COPY', '-H', `Destination: ${url('/copy.bin')}`, '-o', '/dev/null', url('/data.bin')]);
  t.is(copied.code, 0, copied.stderr);
  t.is(copied.status, 201);
  const moved = await curl(['-X', 'MOVE', '-H', `Destination: ${folder}/moved%20here.bin`, '-o', '/dev/null', url('/copy.bin')]);
  t.is(moved.code, 0, moved.stderr);
  t.is(moved.status, 201);
  t.is((await stat('/moved here.bin')).currentVersion?.sha256, (await stat('/data.bin')).currentVersion?.sha256);
  await t.throwsAsync(stat('/copy.bin'));

  const refused = await curl(['-X', 'MOVE', '-H', `Destination: ${url('/data.bin')}`, '-H', 'Overwrite: F', '-o', '/dev/null', url('/piped.bin')]);
  t.is(refused.code, 22);
  t.is(refused.status, 412);
  t.is((await stat('/data.bin')).versionCount, 2, 'the target is untouched');
});

test.serial('DELETE is 204; the file is then 404 (curl exits 22) and in the trash', async (t) => {
  const id = (await stat('/moved here.bin')).id;
  const deleted = await curl(['-X', 'DELETE', '-o', '/dev/null', url('/moved%20here.bin')]);
  t.is(deleted.code, 0, deleted.stderr);
  t.is(deleted.status, 204);
  const gone = await curl(['-o', '/dev/null', url('/moved%20here.bin')]);
  t.is(gone.code, 22);
  t.is(gone.status, 404);
  t.true((await running.appliance.vault.trash(STUDY)).some((node) => node.id === id));
});

test.serial('without credentials an upload is 401 (curl exits 22) and nothing is stored', async (t) => {
  const result = await curl(['-T', join(dir, 'first.bin'), '-o', '/dev/null', url('/anonymous.bin')], { user: null });
  t.is(result.code, 22);
  t.is(result.status, 401);
  await t.throwsAsync(stat('/anonymous.bin'));
  const wrong = await curl(['-T', join(dir, 'first.bin'), '-o', '/dev/null', url('/anonymous.bin')], { user: 'sam:wrong-password' });
  t.is(wrong.status, 401);
  await t.throwsAsync(stat('/anonymous.bin'));
});
