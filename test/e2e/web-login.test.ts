// Web UI sign-in end to end over HTTPS against the running appliance (real
// slapd, SoftHSM2, LevelDB): the password step, TOTP enrolment with the QR
// code decoded by zbarimg, codes computed from the secret by the tests' own
// RFC 6238 (test/support/totp.ts, not the code under test), recovery codes,
// CSRF, sign-out, revocation by an Administrator, and the idle timeout.

import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuditEntry } from '../../src/audit/index.ts';
import { PEOPLE } from '../env/index.ts';
import { run, send, startRunning, STUDY, type Reply, type Running } from '../support/appliance.ts';
import { totp } from '../support/totp.ts';

let running: Running;
const others: Running[] = [];

test.before(async () => {
  running = await startRunning();
});

test.after.always(async () => {
  await running?.close();
  for (const other of others) await other.close();
});

interface Browser {
  cookie: string | null;
  csrf: string | null;
}

/** A JSON request as the web UI makes it: the session cookie, the CSRF header when asked, no Basic credentials. */
function call(on: Running, path: string, browser: Browser, options: { method?: string; body?: unknown; csrf?: boolean } = {}): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (browser.cookie !== null) headers.Cookie = browser.cookie;
  if (options.csrf !== false && browser.csrf !== null && (options.method ?? 'GET') !== 'GET') headers['X-CSRF-Token'] = browser.csrf;
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  return send(on, `/api/v1${path}`, { method: options.method ?? 'GET', user: null, headers, ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }) });
}

async function signIn(on: Running, login: keyof typeof PEOPLE): Promise<{ browser: Browser; reply: Reply; body: { state: string; csrfToken: string; person: { id: string } } }> {
  const browser: Browser = { cookie: null, csrf: null };
  const reply = await call(on, '/session', browser, { method: 'POST', body: { login, password: PEOPLE[login].password } });
  const setCookie = reply.headers['set-cookie']?.[0];
  if (reply.status !== 201 || setCookie === undefined) throw new Error(`sign-in of ${login}: ${reply.status} ${reply.text}`);
  const body = JSON.parse(reply.text);
  browser.cookie = setCookie.split(';')[0]!;
  browser.csrf = body.csrfToken;
  return { browser, reply, body };
}

const errorCode = (reply: Reply) => (JSON.parse(reply.text) as { error?: { code?: string } }).error?.code;

async function audit(on: Running, action: string): Promise<AuditEntry[]> {
  const found: AuditEntry[] = [];
  for await (const entry of on.appliance.audit.entries()) if (entry.action === action) found.push(entry);
  return found;
}

let adaSecret = '';
let recoveryCodes: string[] = [];
let ada: Browser;
let sam: { browser: Browser; id: string };

test.serial('11.10(d) ada (Administrator) signs in with her password and is led to enrolment; the cookie is HttpOnly, Secure, SameSite=Strict', async (t) => {
  const { browser, reply, body } = await signIn(running, 'ada');
  ada = browser;
  t.is(body.state, 'enrolment');
  const cookie = reply.headers['set-cookie']![0]!;
  const attributes = cookie.split(';').slice(1).map((part) => part.trim().toLowerCase());
  t.true(attributes.includes('httponly'));
  t.true(attributes.includes('secure'));
  t.true(attributes.includes('samesite=strict'));
  t.true(attributes.includes('path=/'));
  t.regex(browser.cookie!, /^__Host-vellum-session=[A-Za-z0-9_-]{43}$/, '256 random bits');
  const blocked = await call(running, '/studies', ada);
  t.is(blocked.status, 401);
  t.is(errorCode(blocked), 'MFA_REQUIRED');
});

test.serial('11.10(d) enrolment: the QR code decodes (zbarimg) to the otpauth URI; a code computed from it confirms; ten recovery codes', async (t) => {
  const reply = await call(running, '/session/enrolment', ada, { method: 'POST' });
  t.is(reply.status, 201, reply.text);
  const { uri, qr } = JSON.parse(reply.text) as { uri: string; qr: string };
  t.true(qr.startsWith('<svg'), 'inline SVG markup (the CSP allows no data: images)');
  t.false(/style=|<script/i.test(qr));
  const svg = join(running.env.dir, 'enrolment.svg');
  const png = join(running.env.dir, 'enrolment.png');
  await writeFile(svg, qr);
  await run('rsvg-convert', ['-w', '400', '-b', 'white', '-o', png, svg]);
  const decoded = (await run('zbarimg', ['--raw', '-q', png])).stdout.trim();
  t.is(decoded, uri);
  const parsed = new URL(decoded);
  t.is(decodeURIComponent(parsed.pathname), '/Vellum:ada');
  adaSecret = parsed.searchParams.get('secret')!;
  t.regex(adaSecret, /^[A-Z2-7]{32}$/, '20 bytes in base32');

  const confirm = await call(running, '/session/enrolment/confirm', ada, { method: 'POST', body: { code: totp(adaSecret, Date.now()) } });
  t.is(confirm.status, 200, confirm.text);
  const confirmed = JSON.parse(confirm.text) as { recoveryCodes: string[]; session: { state: string } };
  recoveryCodes = confirmed.recoveryCodes;
  t.is(recoveryCodes.length, 10);
  t.is(confirmed.session.state, 'complete');
  t.is((await audit(running, 'auth.mfa.enrol')).map((entry) => entry.detail).join(','), 'started,confirmed');
});

test.serial('11.10(d) with the complete session an API call works; a change without the CSRF header is 403 CSRF_INVALID (audited)', async (t) => {
  const list = await call(running, '/studies', ada);
  t.is(list.status, 200, list.text);
  const refused = await call(running, '/scrub', ada, { method: 'POST', csrf: false });
  t.is(refused.status, 403);
  t.is(errorCode(refused), 'CSRF_INVALID');
  const audited = (await audit(running, 'auth.session')).filter((entry) => entry.detail?.startsWith('CSRF_INVALID'));
  t.is(audited.length, 1);
  t.is(audited[0]!.actor?.login, 'ada');
  const session = JSON.parse((await call(running, '/session', ada)).text) as { state: string; person: { login: string }; expiresAt: string };
  t.is(session.state, 'complete');
  t.is(session.person.login, 'ada');
  t.true(Date.parse(session.expiresAt) > Date.now());
});

test.serial('11.300(d) the next sign-in asks for a code: a wrong one is 401 and audited, a right one completes, the same one again is refused', async (t) => {
  const first = await signIn(running, 'ada');
  t.is(first.body.state, 'second-factor');
  const wrongCode = String((Number(totp(adaSecret, Date.now(), 1)) + 500_000) % 1_000_000).padStart(6, '0');
  const wrong = await call(running, '/session/second-factor', first.browser, { method: 'POST', body: { code: wrongCode } });
  t.is(wrong.status, 401);
  t.is(errorCode(wrong), 'MFA_CODE_INVALID');
  const denials = (await audit(running, 'auth.login')).filter((entry) => entry.outcome === 'denied' && entry.detail?.includes('MFA_CODE_INVALID'));
  t.is(denials.length, 1);
  t.is(denials[0]!.object.path, 'login:ada');
  t.is(denials[0]!.protocol, 'web');

  // The enrolment used the current step; the next one is within the accepted drift.
  const code = totp(adaSecret, Date.now(), 1);
  const right = await call(running, '/session/second-factor', first.browser, { method: 'POST', body: { code } });
  t.is(right.status, 200, right.text);
  t.is(JSON.parse(right.text).state, 'complete');
  t.is((await call(running, '/studies', first.browser)).status, 200);

  const second = await signIn(running, 'ada');
  const replay = await call(running, '/session/second-factor', second.browser, { method: 'POST', body: { code } });
  t.is(replay.status, 401);
  t.is(errorCode(replay), 'MFA_CODE_INVALID');
});

test.serial('11.10(d) a recovery code stands in for the TOTP code, once', async (t) => {
  const first = await signIn(running, 'ada');
  const used = await call(running, '/session/second-factor', first.browser, { method: 'POST', body: { recoveryCode: recoveryCodes[0] } });
  t.is(used.status, 200, used.text);
  t.is((await call(running, '/studies', first.browser)).status, 200);
  const second = await signIn(running, 'ada');
  const again = await call(running, '/session/second-factor', second.browser, { method: 'POST', body: { recoveryCode: recoveryCodes[0] } });
  t.is(again.status, 401);
  t.deepEqual((await audit(running, 'auth.mfa.recovery-code')).map((entry) => entry.newValue), [{ recoveryCodesLeft: 9 }]);
});

test.serial('11.10(d) sam (not an Administrator) gets a complete session from the password alone', async (t) => {
  const { browser, body } = await signIn(running, 'sam');
  sam = { browser, id: body.person.id };
  t.is(body.state, 'complete');
  const studies = await call(running, '/studies', browser);
  t.is(studies.status, 200);
  t.deepEqual((JSON.parse(studies.text) as { id: string }[]).map((study) => study.id), [STUDY]);
  const starts = (await audit(running, 'auth.session.start')).filter((entry) => entry.actor?.login === 'sam');
  t.is(starts.length, 1);
  t.is(starts[0]!.protocol, 'web');
});

test.serial('11.300(b) an Administrator revokes all of sam\'s sessions: refused at once; sam may not revoke anyone', async (t) => {
  const samAttempt = await call(running, `/people/${encodeURIComponent(sam.id)}/sessions`, sam.browser, { method: 'DELETE' });
  t.is(samAttempt.status, 403);
  t.is(errorCode(samAttempt), 'FORBIDDEN');
  const revoke = await call(running, `/people/${encodeURIComponent(sam.id)}/sessions`, ada, { method: 'DELETE' });
  t.is(revoke.status, 200, revoke.text);
  t.deepEqual(JSON.parse(revoke.text), { sessionsEnded: 1 });
  const after = await call(running, '/studies', sam.browser);
  t.is(after.status, 401);
  t.is(errorCode(after), 'SESSION_EXPIRED');
  const entries = await audit(running, 'auth.session.revoke');
  t.deepEqual(entries.map((entry) => [entry.outcome, entry.actor?.login]), [['denied', 'sam'], ['success', 'ada']]);
});

test.serial('11.10(d) sign-out ends the session: the cookie is cleared and refused afterwards (auth.logout)', async (t) => {
  const out = await call(running, '/session', ada, { method: 'DELETE' });
  t.is(out.status, 204);
  t.regex(out.headers['set-cookie']?.[0] ?? '', /^__Host-vellum-session=;.*Max-Age=0/);
  const after = await call(running, '/studies', ada);
  t.is(after.status, 401);
  t.is(errorCode(after), 'SESSION_EXPIRED');
  t.is((await audit(running, 'auth.logout')).at(-1)?.actor?.login, 'ada');
});

test.serial('HTTP Basic still works for scripts beside the web sessions', async (t) => {
  const reply = await send(running, '/api/v1/studies', { user: 'sam' });
  t.is(reply.status, 200);
});

test.serial('11.10(d) idle timeout: with a short configured idle time an unused session is SESSION_EXPIRED', async (t) => {
  // One open token per process: the first appliance makes way for one with the short idle time.
  await running.stopAppliance();
  const short = await startRunning({ config: (c) => ({ ...c, auth: { ...c.auth, webSessions: { ...c.auth?.webSessions, idleMinutes: 0.05 } } }) });
  others.push(short);
  const { browser } = await signIn(short, 'sam');
  t.is((await call(short, '/studies', browser)).status, 200);
  await new Promise((resolve) => setTimeout(resolve, 4_000));
  const after = await call(short, '/studies', browser);
  t.is(after.status, 401);
  t.is(errorCode(after), 'SESSION_EXPIRED');
  const [expiry] = await audit(short, 'auth.session.expire');
  t.is(expiry?.actor?.login, 'sam');
  t.regex(expiry?.detail ?? '', /idle/);
});
