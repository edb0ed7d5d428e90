// Lockout end to end (issue 5 acceptance: lockout after N failures and admin
// unlock; Part 11 §11.300(d)): wrong passwords over WebDAV against the real
// slapd lock the login, known and unknown names alike; the webhook receives
// the alert; an Administrator unlocks through the API; a lock survives a
// restart; an address with too many failures is blocked (429, Retry-After).

import test from 'ava';
import { PEOPLE } from '../env/index.ts';
import { run, send, startRunning, STUDY, type Reply, type Running } from '../support/appliance.ts';
import { api, auditSince } from '../web/api-helpers.ts';
import { restartAppliance } from '../identity/restart.ts';
import { startWebhook, type Webhook } from '../support/webhook.ts';

const ATTEMPTS = 3;
const SOURCE_ATTEMPTS = 10;
let running: Running;
let hook: Webhook;
let alerts: Record<string, unknown>[];

// Administrators must use MFA, so by default their directory password is refused over Basic;
// here ada calls the API with it (app passwords have their own test).
const authConfig = {
  lockout: { attempts: ATTEMPTS, windowSeconds: 900, sourceAttempts: SOURCE_ATTEMPTS, sourceLockSeconds: 600 },
  appPasswords: { directoryPassword: 'allowed' as const },
};

test.before(async () => {
  hook = await startWebhook();
  alerts = hook.alerts;
  const webhookUrl = hook.url;
  running = await startRunning({ config: (c) => ({ ...c, auth: authConfig, alerts: { webhookUrl } }) });
});

test.after.always(async () => {
  await running?.close();
  hook?.close();
});

const dav = (login: string, password: string) => send(running, `/dav/${STUDY}/`, { method: 'PROPFIND', headers: { Depth: '0' }, user: { login, password } });
const errorOf = (reply: Reply) => reply.headers['x-vellum-error'];

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 25));
}

test.serial('11.300(d) N wrong passwords over WebDAV lock the account; then the right password is refused too, and an unknown name gets the same answers', async (t) => {
  const since = running.appliance.audit.head().seq;
  const answers = async (login: string, rightPassword: string) => {
    const seen: string[] = [];
    for (let i = 0; i < ATTEMPTS; i++) {
      const reply = await dav(login, `wrong-${i}`);
      seen.push(`${reply.status} ${String(errorOf(reply))} ${reply.text}`);
    }
    const locked = await dav(login, rightPassword);
    seen.push(`${locked.status} ${String(errorOf(locked))} ${locked.text}`);
    return seen;
  };
  const known = await answers('sam', PEOPLE.sam.password);
  const unknown = await answers('nobody-at-all', 'whatever');
  t.deepEqual(known.slice(0, ATTEMPTS).map((a) => a.split(' ').slice(0, 2).join(' ')), Array(ATTEMPTS).fill('401 AUTH_FAILED'));
  t.regex(known[ATTEMPTS]!, /^403 ACCOUNT_LOCKED This account is locked after too many failed sign-ins\. An administrator must unlock it\./);
  t.deepEqual(unknown, known, 'word for word the same answers for a name that does not exist');

  const entries = await auditSince(running, since);
  const forSam = entries.filter((e) => e.object.path === 'login:sam');
  t.deepEqual(forSam.map((e) => `${e.action} ${e.outcome}`), [
    ...Array(ATTEMPTS).fill('auth.login denied'), 'auth.lockout success', 'auth.login denied',
  ]);
  t.regex(forSam.at(-1)!.detail ?? '', /^ACCOUNT_LOCKED/, 'the attempt while locked is a denied sign-in');
  t.like(forSam[ATTEMPTS], { ip: '127.0.0.1', protocol: 'webdav', newValue: { kind: 'account', key: 'sam', failures: ATTEMPTS, until: null } });
  t.true(entries.some((e) => e.action === 'auth.lockout' && e.object.path === 'login:nobody-at-all'));

  await until(() => alerts.length >= 2);
  t.like(alerts.find((a) => a.login === 'sam'), { event: 'auth.lockout', kind: 'account', ip: '127.0.0.1', failures: ATTEMPTS, protocol: 'webdav' });
  t.is(typeof alerts[0]!.time, 'string');
  t.true(alerts.some((a) => a.login === 'nobody-at-all'));
  t.true(running.logs.some((line) => line.includes('ALERT auth.lockout') && line.includes('"login":"sam"')), 'and a log line');
});

test.serial('11.300(d) an Administrator sees the locks and unlocks through the API (audited); the right password then works (curl)', async (t) => {
  const refused = await api(running, '/lockouts', { user: 'dana' });
  t.is(refused.status, 403);
  const listed = await api(running, '/lockouts', { user: 'ada' });
  t.is(listed.status, 200);
  t.deepEqual(listed.json.accounts.map((l: { key: string }) => l.key).sort(), ['nobody-at-all', 'sam']);
  t.deepEqual(listed.json.sources, []);

  const since = running.appliance.audit.head().seq;
  t.is((await api(running, '/lockouts/accounts/sam', { method: 'DELETE', user: 'dana' })).status, 403);
  t.is((await api(running, '/lockouts/accounts/Sam', { method: 'DELETE', user: 'ada' })).status, 204);
  const again = await api(running, '/lockouts/accounts/sam', { method: 'DELETE', user: 'ada' });
  t.is(again.status, 404);
  t.is(again.json.error.code, 'LOCKOUT_NOT_FOUND');
  const unlocks = (await auditSince(running, since)).filter((e) => e.action === 'auth.unlock');
  t.deepEqual(unlocks.map((e) => [e.outcome, e.actor?.login]), [['denied', 'dana'], ['success', 'ada']]);
  t.like(unlocks[1], { object: { path: 'login:sam' }, protocol: 'api', oldValue: { key: 'sam' } });

  const status = await run('curl', ['-sS', '-k', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'PROPFIND', '-H', 'Depth: 0', '-u', `sam:${PEOPLE.sam.password}`, `${running.https}/dav/${STUDY}/`]);
  t.is(status.stdout, '207');
  t.is((await dav('nobody-at-all', 'whatever')).status, 403, 'the other lock stays');
});

test.serial('11.300(d) a lock survives a restart', async (t) => {
  for (let i = 0; i < ATTEMPTS; i++) t.is((await dav('mona', `wrong-${i}`)).status, 401);
  t.is((await dav('mona', PEOPLE.mona.password)).status, 403);
  const webhookUrl = hook.url;
  running = await restartAppliance(running, (c) => ({ ...c, auth: authConfig, alerts: { webhookUrl } }));
  const reply = await dav('mona', PEOPLE.mona.password);
  t.is(reply.status, 403);
  t.is(errorOf(reply), 'ACCOUNT_LOCKED');
  t.is((await dav('sam', PEOPLE.sam.password)).status, 207, 'the unlocked account stays unlocked');
});

test.serial('11.300(d) an address with too many failures is blocked: 429 with Retry-After, also for the right password', async (t) => {
  let reply: Reply | undefined;
  for (let i = 0; i < SOURCE_ATTEMPTS + 1; i++) {
    reply = await dav(`guess-${i}`, 'wrong');
    if (reply.status === 429) break;
  }
  t.is(reply!.status, 429);
  t.is(errorOf(reply!), 'SOURCE_BLOCKED');
  const wait = Number(reply!.headers['retry-after']);
  t.true(wait > 0 && wait <= 600, `Retry-After: ${String(reply!.headers['retry-after'])}`);
  const viaApi = await api(running, '/studies', { user: 'ada' });
  t.is(viaApi.status, 429, 'nobody signs in from there, not even with the right password');
  t.is(viaApi.json.error.code, 'SOURCE_BLOCKED');
  t.truthy(viaApi.headers['retry-after']);
  await until(() => alerts.some((a) => a.kind === 'source'));
  t.like(alerts.find((a) => a.kind === 'source'), { event: 'auth.lockout', ip: '127.0.0.1' });
});
