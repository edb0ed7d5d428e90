// The web UI's sign-in and its security, as a person in a browser meets them
// (headless Chromium over real HTTPS against the appliance with real slapd,
// SoftHSM2 and LevelDB) and as an attacker's bare requests do: the sign-in
// page at /, TOTP enrolment and the second step, the headers every page
// carries, forms refused without their anti-forgery token, sign-in rate
// limits, the idle-timeout notice, and no open redirect after sign-in.

import test from 'ava';
import type { AuditEntry } from '../../src/audit/index.ts';
import { PEOPLE } from '../env/index.ts';
import { send, startRunning, type Reply, type Running } from '../support/appliance.ts';
import { accessibilityProblems, enrolWithForm, signInWithForm, startChromium, type Chromium } from '../support/browser.ts';

let running: Running;
let chromium: Chromium;
const others: Running[] = [];

test.before(async () => {
  running = await startRunning();
  chromium = await startChromium();
});

test.after.always(async () => {
  await chromium?.close();
  await running?.close();
  for (const other of others) await other.close();
});

async function entriesSince(on: Running, seq: number): Promise<AuditEntry[]> {
  const found: AuditEntry[] = [];
  for await (const entry of on.appliance.audit.entries(seq + 1)) found.push(entry);
  return found;
}

const form = (fields: Record<string, string>) => ({
  headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams(fields).toString(),
});

/** The cookie pairs a reply sets (name=value), for replaying them by hand. */
function cookiesOf(reply: Reply): string[] {
  return (reply.headers['set-cookie'] ?? []).map((cookie) => cookie.split(';')[0]!);
}

/** Signs sam in with bare HTTP requests as a browser would: the form's token and cookie, then the session cookie. */
async function bareSignIn(on: Running, login: keyof typeof PEOPLE): Promise<{ cookie: string; csrf: string }> {
  const page = await send(on, '/login', { user: null });
  const token = /name="_sign_in" value="([^"]+)"/.exec(page.text)![1]!;
  const signIn = await send(on, '/login', { user: null, method: 'POST', ...form({ _sign_in: token, login, password: PEOPLE[login].password }), headers: { ...form({}).headers, Cookie: cookiesOf(page).join('; ') } });
  if (signIn.status !== 303) throw new Error(`sign-in: ${signIn.status} ${signIn.text.slice(0, 200)}`);
  const cookie = cookiesOf(signIn).find((pair) => pair.startsWith('__Host-vellum-session='))!;
  const dashboard = await send(on, '/', { user: null, headers: { Cookie: cookie } });
  const csrf = /name="_csrf" value="([^"]+)"/.exec(dashboard.text)![1]!;
  return { cookie, csrf };
}

test.serial('the front page of someone not signed in is the sign-in page, with the network-drive address and the security headers', async (t) => {
  const reply = await send(running, '/', { user: null });
  t.is(reply.status, 200);
  t.regex(reply.text, /<form method="post" action="\/login"/);
  t.true(reply.text.includes(`${running.https}/dav/`));
  const csp = String(reply.headers['content-security-policy']);
  for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"]) t.true(csp.includes(directive), directive);
  t.false(csp.includes('unsafe-inline'));
  t.is(reply.headers['x-frame-options'], 'DENY');
  t.is(reply.headers['cache-control'], 'no-store');
  // No inline script or style on the page: the CSP would block it, so none may be needed.
  t.notRegex(reply.text, /<script(?![^>]*\bsrc=)[^>]*>/);
  t.notRegex(reply.text, /\sstyle=|<style/);
  const signInCookie = (reply.headers['set-cookie'] ?? []).find((cookie) => cookie.startsWith('__Host-vellum-sign-in='))!;
  for (const attribute of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/']) t.true(signInCookie.includes(attribute), attribute);
});

test.serial('11.10(d) a page asked for before signing in leads to the sign-in page and, after it, back to that page', async (t) => {
  const { page } = await chromium.open(running);
  await page.goto('/account');
  t.is(new URL(page.url()).pathname, '/login');
  t.deepEqual(await accessibilityProblems(page), []);
  await page.getByLabel('User name').fill('sam');
  await page.getByLabel('Password', { exact: false }).fill(PEOPLE.sam.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState();
  t.is(new URL(page.url()).pathname, '/account');
  // The session cookie is HttpOnly: the page's scripts cannot read it.
  t.false((await page.evaluate(() => document.cookie)).includes('vellum-session'));
});

test.serial('11.300(d) a wrong password shows the reason on the sign-in page with the name kept, and is audited', async (t) => {
  const { page } = await chromium.open(running);
  const seq = running.appliance.audit.head().seq;
  await page.goto('/login');
  await page.getByLabel('User name').fill('dana');
  await page.getByLabel('Password', { exact: false }).fill('not her password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  t.regex(await page.getByRole('alert').innerText(), /user name or password is not correct/);
  t.is(await page.getByLabel('User name').inputValue(), 'dana');
  const denied = (await entriesSince(running, seq)).filter((entry) => entry.action === 'auth.login' && entry.outcome === 'denied');
  t.is(denied.length, 1);
  t.is(denied[0]!.protocol, 'web');
});

test.serial('11.10(d) 11.300 an Administrator must enrol in TOTP at first sign-in, then signs in with password and code; a wrong code is refused', async (t) => {
  const first = await chromium.open(running);
  await signInWithForm(first.page, 'ada');
  t.is(new URL(first.page.url()).pathname, '/login/enrol');
  t.deepEqual(await accessibilityProblems(first.page), []);
  // Before enrolling, no page but the enrolment: the dashboard leads back to the sign-in steps.
  await first.page.goto('/studies');
  t.not(new URL(first.page.url()).pathname, '/studies');
  await first.page.goto('/login/enrol');
  const { secret, recoveryCodes } = await enrolWithForm(first.page);
  t.regex(secret, /^[A-Z2-7]{32}$/);
  t.is(recoveryCodes.length, 10);
  t.is(new URL(first.page.url()).pathname, '/');

  const second = await chromium.open(running);
  await second.page.goto('/login');
  await second.page.getByLabel('User name').fill('ada');
  await second.page.getByLabel('Password', { exact: false }).fill(PEOPLE.ada.password);
  await second.page.getByRole('button', { name: 'Sign in' }).click();
  t.is(new URL(second.page.url()).pathname, '/login/code');
  await second.page.getByLabel('Code', { exact: true }).fill('000000');
  await second.page.getByRole('button', { name: 'Continue' }).click();
  t.regex(await second.page.getByRole('alert').innerText(), /verification code is not correct/);
  t.deepEqual(await accessibilityProblems(second.page), []);
  await signInWithForm(second.page, 'ada', { totpSecret: secret });
  t.is(new URL(second.page.url()).pathname, '/');
  t.is(await second.page.locator('h1').innerText(), 'Dashboard');
});

test.serial('11.10(d) a form post without the CSRF token, or with another session\'s, is refused (403 CSRF_INVALID) and audited; with it, it works', async (t) => {
  const sam = await bareSignIn(running, 'sam');
  const seq = running.appliance.audit.head().seq;
  const headers = { ...form({}).headers, Cookie: sam.cookie };
  const without = await send(running, '/logout', { user: null, method: 'POST', headers, body: '' });
  t.is(without.status, 403);
  t.is(without.headers['x-vellum-error'], 'CSRF_INVALID');
  t.regex(without.text, /anti-forgery token/);
  const mona = await bareSignIn(running, 'mona');
  const foreign = await send(running, '/logout', { user: null, method: 'POST', headers, body: new URLSearchParams({ _csrf: mona.csrf }).toString() });
  t.is(foreign.status, 403);
  const refusals = (await entriesSince(running, seq)).filter((entry) => entry.detail?.startsWith('CSRF_INVALID'));
  t.is(refusals.length, 2);
  t.true(refusals.every((entry) => entry.outcome === 'denied' && entry.actor?.login === 'sam'));
  // The session is still signed in after both refusals; with its own token the sign-out works.
  t.is((await send(running, '/account', { user: null, headers: { Cookie: sam.cookie } })).status, 200);
  const out = await send(running, '/logout', { user: null, method: 'POST', headers, body: new URLSearchParams({ _csrf: sam.csrf }).toString() });
  t.is(out.status, 303);
  t.is((await send(running, '/account', { user: null, headers: { Cookie: sam.cookie } })).status, 303);
});

test.serial('11.10(d) the sign-in form without its own anti-forgery token (a login CSRF) is refused and audited, even with the right password', async (t) => {
  const seq = running.appliance.audit.head().seq;
  const reply = await send(running, '/login', { user: null, method: 'POST', ...form({ login: 'sam', password: PEOPLE.sam.password }) });
  t.is(reply.status, 403);
  t.is(reply.headers['set-cookie']?.some((cookie) => cookie.startsWith('__Host-vellum-session=') && !cookie.includes('Max-Age=0')) ?? false, false, 'no session was made');
  const [entry] = (await entriesSince(running, seq)).filter((e) => e.action === 'auth.login');
  t.is(entry?.outcome, 'denied');
  t.regex(entry?.detail ?? '', /^CSRF_INVALID/);
});

test.serial('after sign-in only a path on this server is followed: ?next= with another host leads to the dashboard', async (t) => {
  const { page } = await chromium.open(running);
  for (const next of ['//evil.example/x', 'https://evil.example/', '/\\evil.example']) {
    await page.goto(`/login?next=${encodeURIComponent(next)}`);
    await page.getByLabel('User name').fill('mona');
    await page.getByLabel('Password', { exact: false }).fill(PEOPLE.mona.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForLoadState();
    t.is(new URL(page.url()).origin, running.https, next);
    t.is(new URL(page.url()).pathname, '/', next);
  }
});

test.serial('text from people is shown as text: a login with markup comes back escaped on the sign-in page', async (t) => {
  const page = await send(running, '/login', { user: null });
  const reply = await send(running, '/login', {
    user: null, method: 'POST',
    headers: { ...form({}).headers, Cookie: cookiesOf(page).join('; ') },
    body: new URLSearchParams({ _sign_in: /name="_sign_in" value="([^"]+)"/.exec(page.text)![1]!, login: '<script>alert(1)</script>', password: 'x' }).toString(),
  });
  t.is(reply.status, 401);
  t.false(reply.text.includes('<script>alert(1)</script>'));
  t.true(reply.text.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
});

test.serial('11.10(d) idle timeout: the page warns before the session ends, says when it has ended, and the next page is the sign-in page saying why', async (t) => {
  // One open HSM token per process: this appliance makes way for one with a short idle time and a low sign-in rate.
  await running.stopAppliance();
  const short = await startRunning({ config: (c) => ({ ...c, auth: { ...c.auth, webSessions: { idleMinutes: 0.1, signInsPerMinute: 3 } } }) });
  others.push(short);
  const { page } = await chromium.open(short);
  await signInWithForm(page, 'sam');
  // Six seconds of idle time: inside the two-minute warning from the start.
  const notice = page.locator('#session-notice');
  await notice.waitFor({ state: 'visible' });
  t.regex(await notice.innerText(), /will end at/);
  await page.getByRole('button', { name: 'Stay signed in' }).waitFor();
  await page.waitForFunction(() => /has ended/.test(document.getElementById('session-notice')?.textContent ?? ''), undefined, { timeout: 20_000 });
  await page.reload();
  t.is(new URL(page.url()).pathname, '/login');
  t.regex(await page.getByRole('status').first().innerText(), /session has ended/);

  // 11.300(d) sign-in rate limit: the fourth sign-in within a minute from one address is refused before any password check.
  const seq = short.appliance.audit.head().seq;
  const statuses: number[] = [];
  let last: Reply | null = null;
  for (let i = 0; i < 3; i++) {
    const page2 = await send(short, '/login', { user: null });
    last = await send(short, '/login', {
      user: null, method: 'POST', headers: { ...form({}).headers, Cookie: cookiesOf(page2).join('; ') },
      body: new URLSearchParams({ _sign_in: /name="_sign_in" value="([^"]+)"/.exec(page2.text)![1]!, login: 'mona', password: PEOPLE.mona.password }).toString(),
    });
    statuses.push(last.status);
  }
  // The browser's own sign-in above was the first of the minute.
  t.deepEqual(statuses, [303, 303, 429]);
  t.is(last!.headers['x-vellum-error'], undefined, 'the sign-in page shows the problem itself');
  t.regex(last!.text, /Too many sign-in attempts/);
  t.truthy(last!.headers['retry-after']);
  const limited = (await entriesSince(short, seq)).filter((entry) => entry.detail?.startsWith('SIGN_IN_RATE_LIMITED'));
  t.is(limited.length, 1);
  t.is(limited[0]!.action, 'auth.login');
  t.is(limited[0]!.outcome, 'denied');
  // The API's sign-in shares the limit.
  const api = await send(short, '/api/v1/session', { user: null, method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ login: 'mona', password: PEOPLE.mona.password }) });
  t.is(api.status, 429);
  t.is(api.headers['x-vellum-error'], 'SIGN_IN_RATE_LIMITED');
});
