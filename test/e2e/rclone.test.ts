// rclone against the running appliance over HTTPS, verifying the appliance's
// self-signed certificate (--ca-cert). The remote is configured only through
// RCLONE_CONFIG_* environment variables (vendor "other", password obscured
// with `rclone obscure`). A generated tree of 1,000 files (nested folders,
// names with spaces and non-ASCII letters, 0 bytes to a few hundred KiB) is
// copied up and checked byte for byte; then files are changed and one deleted
// on the server through WebDAV, and `rclone sync` brings the local copy back
// to exactly the server's tree.

import test from 'ava';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { PEOPLE } from '../env/index.ts';
import { send, startRunning, STUDY, type Running } from '../support/appliance.ts';
import { snapshotStudy } from '../support/study-snapshot.ts';

const FILES = 1000;
const REMOTE_ROOT = 'rclone-tree';
const RCLONE_TIMEOUT_MS = 100_000;
const EMPTY_SHA256 = createHash('sha256').digest('hex');

let running: Running;
let dir: string;
let local: string;
let rcloneEnv: NodeJS.ProcessEnv;

interface RcloneResult {
  readonly code: number | null;
  readonly output: string;
}

function rclone(args: readonly string[]): Promise<RcloneResult> {
  const common = ['--config', join(dir, 'rclone.conf'), '--ca-cert', join(dir, 'ca.pem'), '--transfers', '4', '--checkers', '8', '--retries', '1', '--low-level-retries', '2', '--timeout', '30s'];
  return new Promise((resolve) => {
    const child = execFile('rclone', [...args, ...common], { env: rcloneEnv, timeout: RCLONE_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 32 * 1024 * 1024 }, (_error, stdout, stderr) => {
      resolve({ code: child.exitCode, output: `${stdout}${stderr}` });
    });
  });
}

/** A deterministic pseudo-random sequence (xorshift32), so that every run makes the same tree. */
function sequence(seed: number): () => number {
  let state = seed;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
}

const FOLDERS = ['Regulatory', 'Source Documents', 'Raw Data/Site 01', 'Raw Data/Site 02/Visit 1', 'Raw Data/Site 02/Visit 2', 'Données brutes/Été 2026', '数据/第一批', 'Query Responses/Ærø (final)', 'a/b/c/d/e/f'];
const STEMS = ['report', 'crf page', 'Protokoll Änderung', 'résumé', 'scan', 'ECG trace', 'Ωmega', '患者 記録', 'notes+todo & more'];

/** Writes the tree under `root` and returns its relative paths (with "/"). */
async function generateTree(root: string): Promise<string[]> {
  const random = sequence(0x5eed);
  const paths: string[] = [];
  for (let i = 0; i < FILES; i++) {
    const folder = i < 10 ? '' : FOLDERS[Math.floor(random() * FOLDERS.length)]!;
    const name = `${STEMS[i % STEMS.length]} ${String(i).padStart(4, '0')}.${['txt', 'pdf', 'csv', 'bin'][i % 4]}`;
    const roll = random();
    // Mostly small files, some medium, a few of a few hundred KiB; a handful empty.
    const size = i % 97 === 0 ? 0 : roll < 0.7 ? Math.floor(random() * 4096) : roll < 0.95 ? Math.floor(random() * 64 * 1024) : Math.floor(random() * 300 * 1024);
    const bytes = Buffer.alloc(size);
    for (let j = 0; j < size; j++) bytes[j] = Math.floor(random() * 256);
    const path = folder === '' ? name : `${folder}/${name}`;
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), bytes);
    paths.push(path);
  }
  return paths;
}

/** Relative path -> SHA-256 of every file under `root`. */
async function localTree(root: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    found.set(relative(root, path).split(sep).join('/'), createHash('sha256').update(await readFile(path)).digest('hex'));
  }
  return found;
}

/** Relative path -> SHA-256 of every file under the remote root, read from the vault. */
async function serverTree(): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const prefix = `/${REMOTE_ROOT}/`;
  for (const entry of (await snapshotStudy(running.appliance.vault, STUDY)).entries) {
    if (entry.kind === 'file' && entry.path.startsWith(prefix)) found.set(entry.path.slice(prefix.length), entry.sha256!);
  }
  return found;
}

const sorted = (tree: Map<string, string>) => [...tree.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
const davPath = (path: string) => `/dav/${STUDY}/${REMOTE_ROOT}/${path.split('/').map(encodeURIComponent).join('/')}`;

test.before(async () => {
  running = await startRunning();
  dir = await mkdtemp(join(tmpdir(), 'vellum-rclone-'));
  local = join(dir, 'local');
  await writeFile(join(dir, 'ca.pem'), running.ca);
  await writeFile(join(dir, 'rclone.conf'), '');
  const base = { ...process.env, HOME: dir, XDG_CACHE_HOME: join(dir, 'cache'), XDG_CONFIG_HOME: join(dir, 'config') };
  const obscured = await new Promise<string>((resolve, reject) => {
    execFile('rclone', ['obscure', '-'], { env: base }, (error, stdout) => (error ? reject(error) : resolve(stdout.trim()))).stdin!.end(PEOPLE.sam.password);
  });
  rcloneEnv = {
    ...base,
    RCLONE_CONFIG_VELLUM_TYPE: 'webdav',
    RCLONE_CONFIG_VELLUM_URL: `${running.https}/dav/${STUDY}/${REMOTE_ROOT}`,
    RCLONE_CONFIG_VELLUM_VENDOR: 'other',
    RCLONE_CONFIG_VELLUM_USER: PEOPLE.sam.login,
    RCLONE_CONFIG_VELLUM_PASS: obscured,
  };
  // rclone takes the remote root as given: it must exist.
  const made = await send(running, `/dav/${STUDY}/${REMOTE_ROOT}`, { method: 'MKCOL' });
  if (made.status !== 201) throw new Error(`MKCOL ${REMOTE_ROOT}: ${made.status}`);
});
test.after.always(async () => {
  await running?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test.serial('rclone copy uploads a tree of 1,000 files; the server holds every byte', async (t) => {
  t.timeout(RCLONE_TIMEOUT_MS + 20_000);
  const paths = await generateTree(local);
  t.is(paths.length, FILES);
  const copied = await rclone(['copy', local, 'VELLUM:']);
  t.is(copied.code, 0, copied.output.slice(-3000));
  t.deepEqual(sorted(await serverTree()), sorted(await localTree(local)));
});

test.serial('rclone check --download finds 0 differences', async (t) => {
  t.timeout(RCLONE_TIMEOUT_MS + 20_000);
  const checked = await rclone(['check', '--download', local, 'VELLUM:']);
  t.is(checked.code, 0, checked.output.slice(-3000));
  t.regex(checked.output, /0 differences found/);
  t.regex(checked.output, new RegExp(`${FILES} matching files`));
});

test.serial('after changes and a delete on the server, rclone sync brings the local copy to exactly the server tree', async (t) => {
  t.timeout(RCLONE_TIMEOUT_MS + 20_000);
  const before = await serverTree();
  const paths = [...before.keys()].sort();
  const [grown, nonAscii, emptied, deleted] = [paths[3]!, paths.find((p) => p.includes('数据'))!, paths.slice(500).find((p) => before.get(p) !== EMPTY_SHA256)!, paths.find((p) => p.includes('Données'))!];
  // Against plain WebDAV (vendor "other") rclone has neither modification times nor hashes
  // (as against Apache mod_dav): the size is how it sees a change, so every change here changes it.
  const nonAsciiContent = Buffer.concat([await readFile(join(local, nonAscii)), Buffer.from(' and one more line from the server\n')]);
  const changes: [string, string | Buffer][] = [[grown, 'changed on the server, and longer than before\n'.repeat(50)], [nonAscii, nonAsciiContent], [emptied, '']];
  for (const [path, body] of changes) t.is((await send(running, davPath(path), { method: 'PUT', body })).status, 204, path);
  t.is((await send(running, davPath(deleted), { method: 'DELETE' })).status, 204);
  t.is((await send(running, davPath('Neu hinzugefügt'), { method: 'MKCOL' })).status, 201);
  t.is((await send(running, davPath('Neu hinzugefügt/new on the server.txt'), { method: 'PUT', body: 'fresh\n' })).status, 201);

  const synced = await rclone(['sync', 'VELLUM:', local]);
  t.is(synced.code, 0, synced.output.slice(-3000));
  const after = await serverTree();
  t.is(after.size, FILES, 'one deleted, one added');
  t.deepEqual(sorted(await localTree(local)), sorted(after));
  t.false((await localTree(local)).has(deleted), 'the deleted file is gone locally');
  t.true((await readFile(join(local, nonAscii))).equals(nonAsciiContent), 'a change to a file with a non-ASCII path came down');
  t.is((await readFile(join(local, emptied))).length, 0, 'a file emptied on the server is empty locally');
});
