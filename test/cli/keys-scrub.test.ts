// `vellum keys status|rotate` and `vellum scrub` as a person runs them: the
// real bin/vellum as a child process, against the real running appliance
// (slapd, SoftHSM, LevelDB, HTTPS) through its REST API.

import test from 'ava';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PEOPLE } from '../env/index.ts';
import { startRunning, STUDY, type Running } from '../support/appliance.ts';
import { api, damageBlob, putVersions } from '../web/api-helpers.ts';

const VELLUM = fileURLToPath(new URL('../../bin/vellum', import.meta.url));

let running: Running;
let caFile: string;

interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs bin/vellum with the password (if any) in VELLUM_PASSWORD and stdin not a terminal. */
function vellum(args: readonly string[], options: { password?: string; env?: Record<string, string> } = {}): Promise<Outcome> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  delete env.VELLUM_PASSWORD;
  if (options.password !== undefined) env.VELLUM_PASSWORD = options.password;
  return new Promise((resolve) => {
    const child = execFile(VELLUM, args, { env, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end();
  });
}

const at = () => ['--url', running.https, '--ca', caFile];

test.before(async () => {
  running = await startRunning();
  caFile = join(running.env.dir, 'appliance-ca.pem');
  await writeFile(caFile, running.ca);
  await putVersions(running, '/protocol.txt', ['protocol v1\n', 'protocol v2\n']);
  await putVersions(running, '/consent.txt', ['consent\n']);
});
test.after.always(async () => running?.close());

test.serial('vellum keys rotate follows the rotation to its end and prints the final key status', async (t) => {
  const result = await vellum(['keys', 'rotate', '--study', STUDY, ...at(), '--user', 'ada', '--reason', 'Annual rotation'], { password: PEOPLE.ada.password });
  t.is(result.code, 0, result.stderr);
  t.regex(result.stdout, new RegExp(`Key rotation of study ${STUDY} started: v1 -> v2, 3 data keys to re-wrap\\.`));
  t.regex(result.stdout, /Key versions: +v1, v2 \(new writes use v2\)/);
  t.regex(result.stdout, /Data keys: +v2: 3 /);
  t.regex(result.stdout, /Last rotation: +v1 -> v2, done: 3 of 3 data keys re-wrapped/);
  // Without a terminal the bar is a line per tenth, on stderr.
  t.regex(result.stderr, /^ *100% +3\/3 data keys$/m);
  t.notRegex(result.stderr, /\r/);

  const keys = await api(running, `/studies/${STUDY}/keys`, { user: 'ada' });
  t.deepEqual(keys.json.blobsByVersion, { 2: 3 });
  const id = (await api(running, `/studies/${STUDY}/nodes?path=/protocol.txt`)).json.id;
  for (const [number, text] of [[1, 'protocol v1\n'], [2, 'protocol v2\n']] as const) {
    const content = await api(running, `/studies/${STUDY}/nodes/${id}/versions/${number}/content`);
    t.is(content.text, text);
    t.is(content.headers['x-content-sha256'], createHash('sha256').update(text).digest('hex'));
  }
  const entries = [];
  for await (const entry of running.appliance.audit.entries()) if (entry.action === 'key.rotate') entries.push(entry);
  t.is(entries.at(-1)?.reason, 'Annual rotation');
  t.is(entries.at(-1)?.actor?.login, 'ada');
});

test.serial('vellum keys status prints the key versions; --json prints the API\'s answer; --no-wait returns at once', async (t) => {
  const status = await vellum(['keys', 'status', '--study', STUDY, ...at(), '--user', 'ada'], { password: PEOPLE.ada.password });
  t.is(status.code, 0, status.stderr);
  t.regex(status.stdout, /Study DEMO-001\n +Key versions: +v1, v2 \(new writes use v2\)/);
  const json = await vellum(['keys', 'status', '--study', STUDY, ...at(), '--user', 'ada', '--json'], { password: PEOPLE.ada.password });
  t.is(json.code, 0);
  t.is(JSON.parse(json.stdout).current, 2);

  const started = await vellum(['keys', 'rotate', '--study', STUDY, ...at(), '--user', 'ada', '--no-wait'], { password: PEOPLE.ada.password });
  t.is(started.code, 0, started.stderr);
  t.regex(started.stdout, /started: v2 -> v3/);
  t.regex(started.stdout, /Follow it with: vellum keys status --study DEMO-001/);
  t.is(started.stderr, '', 'no progress bar');
});

test.serial('the server decides: a Sponsor is refused with the server\'s message, a wrong password too (exit 1)', async (t) => {
  const sponsor = await vellum(['keys', 'rotate', '--study', STUDY, ...at(), '--user', 'sam'], { password: PEOPLE.sam.password });
  t.is(sponsor.code, 1);
  t.is(sponsor.stderr.trim(), 'vellum keys rotate: You do not have permission for this action. Sponsor may not administer in /DEMO-001. [FORBIDDEN]');
  const wrong = await vellum(['scrub', ...at(), '--user', 'ada'], { password: 'not-the-password' });
  t.is(wrong.code, 1);
  t.is(wrong.stderr.trim(), 'vellum scrub: The user name or password is not correct. [AUTH_FAILED]');
  const unknown = await vellum(['keys', 'status', '--study', 'NOPE-1', ...at(), '--user', 'ada'], { password: PEOPLE.ada.password });
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /There is no study "NOPE-1"\. \[NOT_FOUND\]/);
});

test.serial('without a terminal and without a password the command says how to give one (exit 1); --password-file works', async (t) => {
  const none = await vellum(['keys', 'status', '--study', STUDY, ...at(), '--user', 'ada']);
  t.is(none.code, 1);
  t.regex(none.stderr, /No password: set VELLUM_PASSWORD, give --password-file FILE, or run this on a terminal/);
  const file = join(running.env.dir, 'ada-password');
  await writeFile(file, `${PEOPLE.ada.password}\n`, { mode: 0o600 });
  const fromFile = await vellum(['keys', 'status', '--study', STUDY, ...at(), '--user', 'ada', '--password-file', file]);
  t.is(fromFile.code, 0, fromFile.stderr);
});

test.serial('vellum scrub: exit 0 when everything verifies', async (t) => {
  const result = await vellum(['scrub', ...at(), '--user', 'ada'], { password: PEOPLE.ada.password });
  t.is(result.code, 0, result.stderr);
  t.regex(result.stdout, /Scrub started: 3 blobs, \d+ B to verify\./);
  t.regex(result.stdout, /Scrub done: 3 of 3 blobs, \d+ B verified in [\d.]+ s\.\nNo damage found\./);
  t.regex(result.stderr, /100% /);
});

test.serial('vellum scrub: exit 3 after damage, with the blob\'s study, paths, versions and detail', async (t) => {
  const id = (await api(running, `/studies/${STUDY}/nodes?path=/protocol.txt`)).json.id;
  const versions = (await api(running, `/studies/${STUDY}/nodes/${id}/versions`)).json.versions;
  await damageBlob(running, versions[0].blobId);
  const result = await vellum(['scrub', ...at(), '--user', 'ada', '--reason', 'Monthly check'], { password: PEOPLE.ada.password });
  t.is(result.code, 3, result.stderr);
  t.regex(result.stdout, /DAMAGE FOUND in 1 blob/);
  t.regex(result.stdout, new RegExp(`Blob ${versions[0].blobId} of study ${STUDY}: INTEGRITY_FAILURE`));
  t.regex(result.stdout, /failed authentication/);
  t.regex(result.stdout, new RegExp(`/${STUDY}/protocol\\.txt v1 \\(node ${id}\\)`));
  t.notRegex(result.stdout, /consent\.txt/);
});

test.serial('--config finds the appliance: the loopback HTTP listener if configured, else HTTPS with its own certificate', async (t) => {
  const https = new URL(running.https);
  const http = new URL(running.http);
  // The appliance's configuration as an operator has it; secrets come from variables the CLI never needs.
  const base = {
    dataDir: running.dataDir,
    ldap: { url: running.env.ldap.url, bindDn: 'cn=x', bindPassword: { env: 'CLI_TEST_SECRET' }, userBase: 'ou=people', groupBase: 'ou=groups' },
    hsm: { library: running.env.hsm.library, tokenLabel: running.env.hsm.tokenLabel, pin: { env: 'CLI_TEST_SECRET' } },
  };
  const env = { CLI_TEST_SECRET: 'unused' };
  const httpsOnly = join(running.env.dir, 'https-only.json');
  await writeFile(httpsOnly, JSON.stringify({ ...base, listen: { https: { host: '0.0.0.0', port: Number(https.port) } } }));
  const withHttp = join(running.env.dir, 'with-http.json');
  await writeFile(withHttp, JSON.stringify({ ...base, listen: { https: { host: '127.0.0.1', port: 1 }, http: { host: '127.0.0.1', port: Number(http.port) } } }));
  for (const config of [httpsOnly, withHttp]) {
    const result = await vellum(['keys', 'status', '--study', STUDY, '--config', config, '--user', 'ada'], { password: PEOPLE.ada.password, env });
    t.is(result.code, 0, `${config}: ${result.stderr}`);
    t.regex(result.stdout, /Study DEMO-001/);
  }
});

test.serial('usage: subcommand help, unknown subcommands, and plain HTTP to another machine is refused', async (t) => {
  const group = await vellum(['keys']);
  t.is(group.code, 2);
  t.regex(group.stderr, /Usage: vellum keys SUBCOMMAND[\s\S]*status[\s\S]*rotate/);
  const help = await vellum(['keys', 'rotate', '--help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /^Usage: vellum keys rotate \[options\]/);
  t.regex(help.stdout, /--password-file FILE/);
  t.regex(help.stdout, /--no-wait/);
  t.is((await vellum(['help', 'scrub'])).stdout.includes('Exit status: 0 when everything verified, 3 when damage was found'), true);
  const top = await vellum(['--help']);
  t.regex(top.stdout, /keys status +Show/);
  t.regex(top.stdout, /keys rotate +Rotate/);
  t.regex(top.stdout, /scrub +Re-verify/);
  const unknown = await vellum(['keys', 'destroy']);
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /Unknown command "keys destroy"/);
  const noStudy = await vellum(['keys', 'status', ...at(), '--user', 'ada'], { password: PEOPLE.ada.password });
  t.is(noStudy.code, 2);
  t.regex(noStudy.stderr, /--study ID is needed/);
  const clear = await vellum(['scrub', '--url', 'http://192.0.2.1:8080', '--user', 'ada'], { password: 'x' });
  t.is(clear.code, 2);
  t.regex(clear.stderr, /password in the clear/);
  const nowhere = await vellum(['scrub', '--url', 'https://127.0.0.1:1', '--user', 'ada'], { password: 'x' });
  t.is(nowhere.code, 1);
  t.regex(nowhere.stderr, /Cannot reach the appliance at https:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/);
});
