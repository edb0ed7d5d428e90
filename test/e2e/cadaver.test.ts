// cadaver (the neon-based command-line WebDAV client) in one scripted session
// against the running appliance, one command at a time on its stdin, with
// the credentials in a .netrc in a temporary HOME. After each command the test
// reads cadaver's answer and looks at the server's state. cadaver verifies TLS
// only against the system's trust store (it has no CA option), so it talks to
// the loopback HTTP listener.

import test from 'ava';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PEOPLE } from '../env/index.ts';
import { send, startRunning, STUDY, type Running } from '../support/appliance.ts';

const COMMAND_TIMEOUT_MS = 20_000;
// cadaver's own namespace for properties set with propset.
const CADAVER_NS = 'http://webdav.org/cadaver/custom-properties/';

let running: Running;
let dir: string;
let cadaver: Cadaver;
const content = randomBytes(150 * 1024);
const names = (path: string) => ['cad', ...path.split('/').filter(Boolean)];
const stat = (path: string) => running.appliance.vault.stat({ study: STUDY, names: names(path) });

/** A cadaver process driven one command at a time: each command's output is what it prints before its next prompt. */
class Cadaver {
  private output = '';
  private readonly child: ChildProcessWithoutNullStreams;

  constructor(url: string, home: string, cwd: string) {
    this.child = spawn('cadaver', [url], { cwd, env: { ...process.env, HOME: home, LANG: 'C', LC_ALL: 'C' } });
    this.child.stdout.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.child.stderr.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
  }

  /** Waits for the first prompt; returns what cadaver said while connecting. */
  ready(): Promise<string> {
    return this.untilPrompt();
  }

  async run(command: string): Promise<string> {
    this.child.stdin.write(`${command}\n`);
    return this.untilPrompt();
  }

  async quit(): Promise<number | null> {
    this.child.stdin.end('quit\n');
    if (this.child.exitCode !== null) return this.child.exitCode;
    return new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }

  private async untilPrompt(): Promise<string> {
    const deadline = Date.now() + COMMAND_TIMEOUT_MS;
    // The prompt is "dav:/path/> " (connected) or "dav:!> " (not), with no newline after it.
    const prompt = /dav:[^\n]*[>?] $/;
    while (!prompt.test(this.output)) {
      if (Date.now() > deadline) throw new Error(`cadaver gave no prompt within ${COMMAND_TIMEOUT_MS} ms; it said:\n${this.output}`);
      if (this.child.exitCode !== null) throw new Error(`cadaver exited (${this.child.exitCode}); it said:\n${this.output}`);
      // A prompt for input that is not a command (e.g. "Enter locktoken:") would wait for ever: fail instead.
      if (/Enter locktoken: $|Username: $|Password: $/.test(this.output)) throw new Error(`cadaver asked for input:\n${this.output}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const said = this.output.replace(prompt, '');
    this.output = '';
    return said;
  }
}

test.before(async () => {
  running = await startRunning();
  dir = await mkdtemp(join(tmpdir(), 'vellum-cadaver-'));
  const home = join(dir, 'home');
  await mkdir(home);
  const { hostname } = new URL(running.http);
  await writeFile(join(home, '.netrc'), `machine ${hostname}\nlogin ${PEOPLE.sam.login}\npassword ${PEOPLE.sam.password}\n`);
  await chmod(join(home, '.netrc'), 0o600);
  await writeFile(join(dir, 'local.bin'), content);
  cadaver = new Cadaver(`${running.http}/dav/${STUDY}/`, home, dir);
  const greeting = await cadaver.ready();
  if (/fail|error|could not/i.test(greeting)) throw new Error(`cadaver could not connect: ${greeting}`);
});
test.after.always(async () => {
  cadaver?.kill();
  await running?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test.serial('mkcol makes a folder and cd enters it', async (t) => {
  t.regex(await cadaver.run('mkcol cad'), /Creating `cad': succeeded\./);
  t.is((await stat('')).kind, 'folder');
  const cd = await cadaver.run('cd cad');
  t.notRegex(cd, /fail/i);
});

test.serial('put uploads a file; ls lists it with its size', async (t) => {
  t.regex(await cadaver.run('put local.bin a.bin'), /Uploading local\.bin to `\/dav\/DEMO-001\/cad\/a\.bin':[\s\S]*succeeded\./);
  const stored = await stat('/a.bin');
  t.is(stored.currentVersion?.size, content.length);
  const ls = await cadaver.run('ls');
  t.regex(ls, /Listing collection `\/dav\/DEMO-001\/cad\/': succeeded\./);
  t.regex(ls, new RegExp(`a\\.bin\\s+${content.length}\\s`));
});

test.serial('get downloads the same bytes', async (t) => {
  t.regex(await cadaver.run('get a.bin back.bin'), /Downloading `\/dav\/DEMO-001\/cad\/a\.bin' to back\.bin:[\s\S]*succeeded\./);
  t.true((await readFile(join(dir, 'back.bin'))).equals(content));
});

test.serial('mv renames (same file, same history) and cp copies', async (t) => {
  const id = (await stat('/a.bin')).id;
  t.regex(await cadaver.run('mv a.bin b.bin'), /Moving `\/dav\/DEMO-001\/cad\/a\.bin' to `\/dav\/DEMO-001\/cad\/b\.bin':\s+succeeded\./);
  t.is((await stat('/b.bin')).id, id);
  await t.throwsAsync(stat('/a.bin'));
  t.regex(await cadaver.run('cp b.bin c.bin'), /Copying `\/dav\/DEMO-001\/cad\/b\.bin' to `\/dav\/DEMO-001\/cad\/c\.bin':\s+succeeded\./);
  t.is((await stat('/c.bin')).currentVersion?.sha256, (await stat('/b.bin')).currentVersion?.sha256);
});

test.serial('propset sets a dead property that propget and a PROPFIND read back', async (t) => {
  t.regex(await cadaver.run('propset b.bin colour crimson'), /Setting property on `b\.bin': succeeded\./);
  t.regex(await cadaver.run('propget b.bin colour'), /Value of colour is: crimson/);
  const found = await send(running, `/dav/${STUDY}/cad/b.bin`, {
    method: 'PROPFIND', headers: { Depth: '0', 'Content-Type': 'application/xml' },
    body: `<D:propfind xmlns:D="DAV:"><D:prop><c:colour xmlns:c="${CADAVER_NS}"/></D:prop></D:propfind>`,
  }, 'http');
  t.is(found.status, 207);
  t.regex(found.text, /colour[^>]*>crimson</);
});

test.serial('lock takes a lock another client must respect (423); unlock releases it', async (t) => {
  t.regex(await cadaver.run('lock c.bin'), /Locking `c\.bin': succeeded\./);
  const blocked = await send(running, `/dav/${STUDY}/cad/c.bin`, { method: 'PUT', body: 'not mine to change' }, 'http');
  t.is(blocked.status, 423, 'a write without the lock token is refused');
  t.is((await stat('/c.bin')).versionCount, 1);
  t.regex(await cadaver.run('unlock c.bin'), /Unlocking `c\.bin': succeeded\./);
  const allowed = await send(running, `/dav/${STUDY}/cad/c.bin`, { method: 'PUT', body: 'now it may change' }, 'http');
  t.is(allowed.status, 204);
});

test.serial('delete removes a file (it goes to the trash); ls no longer lists it', async (t) => {
  const id = (await stat('/c.bin')).id;
  t.regex(await cadaver.run('delete c.bin'), /Deleting `c\.bin': succeeded\./);
  await t.throwsAsync(stat('/c.bin'));
  t.true((await running.appliance.vault.trash(STUDY)).some((node) => node.id === id));
  const ls = await cadaver.run('ls');
  t.notRegex(ls, /c\.bin/);
  t.regex(ls, /b\.bin/);
});

test.serial('quit ends the session cleanly and the server still answers', async (t) => {
  t.is(await cadaver.quit(), 0);
  t.is((await send(running, `/dav/${STUDY}/cad/b.bin`, {}, 'http')).body.equals(content), true);
});
