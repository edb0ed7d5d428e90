// The CLI for people who must use a second factor (Administrators, by
// default): their directory password is refused over HTTP Basic
// (APP_PASSWORD_REQUIRED), so bin/vellum signs in as the web UI does, with a
// TOTP code from VELLUM_TOTP_CODE, and signs out at the end. The real
// bin/vellum as a child process against the real running appliance.

import test from 'ava';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AuditEntry } from '../../src/audit/index.ts';
import { PEOPLE } from '../env/index.ts';
import { send, startRunning, STUDY, type Running } from '../support/appliance.ts';
import { totp } from '../support/totp.ts';

const VELLUM = fileURLToPath(new URL('../../bin/vellum', import.meta.url));

let running: Running;
let caFile: string;

test.before(async () => {
  // The shipped policy: people who must use MFA need an app password over Basic.
  running = await startRunning({ config: (c) => ({ ...c, auth: { ...c.auth, appPasswords: { directoryPassword: 'forbidden-when-mfa' } } }) });
  caFile = join(running.env.dir, 'appliance-ca.pem');
  await writeFile(caFile, running.ca);
});
test.after.always(async () => running?.close());

/** `vellum keys status` as ada, stdin not a terminal, with these extra environment variables. */
function keysStatus(env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, VELLUM_PASSWORD: PEOPLE.ada.password, ...env };
  if (env.VELLUM_TOTP_CODE === undefined) delete childEnv.VELLUM_TOTP_CODE;
  return new Promise((resolve) => {
    const child = execFile(VELLUM, ['keys', 'status', '--study', STUDY, '--url', running.https, '--ca', caFile, '--user', 'ada'], { env: childEnv, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
    child.stdin?.end();
  });
}

async function auditOf(action: string, detail?: RegExp): Promise<AuditEntry[]> {
  const found: AuditEntry[] = [];
  for await (const entry of running.appliance.audit.entries()) {
    const ada = entry.actor?.login === 'ada' || entry.object.path === 'login:ada';
    if (entry.action === action && ada && (detail === undefined || detail.test(entry.detail ?? ''))) found.push(entry);
  }
  return found;
}

/** Enrols ada through the session API as the web UI would; returns her TOTP secret. */
async function enrolAda(): Promise<string> {
  const started = await send(running, '/api/v1/session', { method: 'POST', user: null, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ login: 'ada', password: PEOPLE.ada.password }) });
  const cookie = started.headers['set-cookie']![0]!.split(';')[0]!;
  const headers = { Cookie: cookie, 'X-CSRF-Token': JSON.parse(started.text).csrfToken as string, 'Content-Type': 'application/json' };
  const enrolment = await send(running, '/api/v1/session/enrolment', { method: 'POST', user: null, headers: { Cookie: headers.Cookie, 'X-CSRF-Token': headers['X-CSRF-Token'] } });
  const secret = new URL(JSON.parse(enrolment.text).uri as string).searchParams.get('secret')!;
  const confirmed = await send(running, '/api/v1/session/enrolment/confirm', { method: 'POST', user: null, headers, body: JSON.stringify({ code: totp(secret, Date.now()) }) });
  if (confirmed.status !== 200) throw new Error(`enrolment: ${confirmed.status} ${confirmed.text}`);
  await send(running, '/api/v1/session', { method: 'DELETE', user: null, headers: { Cookie: headers.Cookie, 'X-CSRF-Token': headers['X-CSRF-Token'] } });
  return secret;
}

test.serial('11.10(d) an Administrator without a second factor is told to enrol (or use an app password), not handed a bare 401', async (t) => {
  const result = await keysStatus({});
  t.not(result.code, 0);
  t.regex(result.stderr, /ada must set up a second factor before signing in here: run this command once on a terminal \(or enrol in the web UI\), or use an app password\./);
  t.regex(result.stderr, /\[MFA_REQUIRED\]/);
});

test.serial('11.10(d) with a TOTP code the CLI signs in as the web UI does, does the work, and signs out; a wrong code is refused and audited', async (t) => {
  const secret = await enrolAda();
  // One step ahead: the step enrolment confirmed with may not be used again.
  const next = totp(secret, Date.now(), 1);
  const wrong = ['000000', '111111', '222222'].find((code) => ![-1, 0, 1, 2].some((offset) => totp(secret, Date.now(), offset) === code))!;

  const refused = await keysStatus({ VELLUM_TOTP_CODE: wrong });
  t.not(refused.code, 0);
  t.regex(refused.stderr, /\[MFA_CODE_INVALID\]/);
  t.is((await auditOf('auth.login', /MFA_CODE_INVALID/)).filter((entry) => entry.outcome === 'denied').length, 1);

  const signOutsBefore = (await auditOf('auth.logout')).length;
  const result = await keysStatus({ VELLUM_TOTP_CODE: next });
  t.is(result.code, 0, result.stderr);
  t.regex(result.stdout, /Key versions: +v1/);
  t.is((await auditOf('auth.logout')).length, signOutsBefore + 1, 'the CLI signed out of its web session');
  // Basic with the directory password is still refused: the policy holds.
  const basic = await send(running, `/api/v1/studies/${STUDY}/keys`, { user: PEOPLE.ada });
  t.is(basic.status, 401);
  t.is(basic.headers['x-vellum-error'], 'APP_PASSWORD_REQUIRED');
});
