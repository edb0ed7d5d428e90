// App passwords end to end (issue 5 acceptance: app password works, revoked
// app password fails at once; Part 11 §11.300(c)): made over the API, used by
// curl for WebDAV PUT and GET, last use shown, revoked -> the very next
// request is 401 although a sign-in is cached for a minute; someone else's id
// is 404; the policy refuses an MFA person's directory password over WebDAV
// while their app password works.

import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PEOPLE } from '../env/index.ts';
import { run, send, startRunning, STUDY, type Running } from '../support/appliance.ts';
import { api, auditSince } from '../web/api-helpers.ts';
import { restartAppliance } from '../identity/restart.ts';

let running: Running;
/** ada's, made while the policy still allowed her directory password over Basic. */
let adaPassword: string;

test.before(async () => {
  running = await startRunning({ config: (c) => ({ ...c, auth: { cacheSeconds: 60, appPasswords: { directoryPassword: 'allowed' } } }) });
  const made = await api(running, '/me/app-passwords', { method: 'POST', user: 'ada', json: { name: 'Admin laptop' } });
  if (made.status !== 201) throw new Error(`ada's app password: ${made.status} ${made.text}`);
  adaPassword = made.json.password;
  // From here on: the default policy (an MFA person's directory password is refused over Basic).
  running = await restartAppliance(running, (c) => ({ ...c, auth: { cacheSeconds: 60 } }));
});

test.after.always(async () => {
  await running?.close();
});

const curl = (args: readonly string[]) => run('curl', ['-sS', '-k', ...args], { encoding: 'buffer', maxBuffer: 10_000_000 });

test.serial('11.300(c) an app password made over the API works for WebDAV PUT and GET with curl, and its last use is shown', async (t) => {
  const made = await api(running, '/me/app-passwords', { method: 'POST', user: 'sam', json: { name: 'Work laptop' } });
  t.is(made.status, 201);
  t.is(made.headers['cache-control'], 'no-store');
  const { id, password, name, lastUsedAt } = made.json;
  t.is(name, 'Work laptop');
  t.is(lastUsedAt, null);
  t.regex(password, /^vlmap_[0-9a-f]{16}_/);

  const since = running.appliance.audit.head().seq;
  const local = join(running.env.dir, 'with-app-password.txt');
  await writeFile(local, 'made with an app password\n');
  const url = `${running.https}/dav/${STUDY}/with-app-password.txt`;
  const put = await curl(['-o', '/dev/null', '-w', '%{http_code}', '-u', `sam:${password}`, '-T', local, url]);
  t.is(put.stdout.toString(), '201');
  const got = await curl(['-u', `sam:${password}`, url]);
  t.is(got.stdout.toString(), 'made with an app password\n');
  const signIns = (await auditSince(running, since)).filter((e) => e.action === 'auth.login' && e.outcome === 'success');
  t.is(signIns.length, 1, 'the second request came from the cache');
  t.like(signIns[0], { actor: { login: 'sam' }, protocol: 'webdav' });
  t.regex(signIns[0]!.detail ?? '', /app password "Work laptop"/);
  const upperCase = await curl(['-o', '/dev/null', '-w', '%{http_code}', '-u', `SAM:${password}`, url]);
  t.is(upperCase.stdout.toString(), '200', 'the Basic user name matches the owner\'s login without case');

  const listed = await api(running, '/me/app-passwords', { user: 'sam' });
  t.is(listed.status, 200);
  const mine = listed.json.find((p: { id: string }) => p.id === id);
  t.truthy(mine.lastUsedAt);
  t.false(listed.text.includes(password.slice(23)), 'the list never shows the secret');

  const write = (await auditSince(running, since)).find((e) => e.action === 'file.create');
  t.is(write?.actor?.login, 'sam', 'the file is attributed to the owner');
});

test.serial('11.300(c) revoked: the very next request is 401 although it would be cached; the revocation is audited', async (t) => {
  const made = await api(running, '/me/app-passwords', { method: 'POST', user: 'sam', json: { name: 'Phone' } });
  const { id, password } = made.json;
  const user = { login: 'sam', password };
  t.is((await send(running, `/dav/${STUDY}/`, { method: 'PROPFIND', headers: { Depth: '0' }, user })).status, 207);
  t.is((await send(running, `/dav/${STUDY}/`, { method: 'PROPFIND', headers: { Depth: '0' }, user })).status, 207, 'cached');

  const since = running.appliance.audit.head().seq;
  t.is((await api(running, `/me/app-passwords/${id}`, { method: 'DELETE', user: 'sam' })).status, 204);
  const after = await send(running, `/dav/${STUDY}/`, { method: 'PROPFIND', headers: { Depth: '0' }, user });
  t.is(after.status, 401);
  t.is(after.headers['x-vellum-error'], 'AUTH_FAILED');
  const entries = await auditSince(running, since);
  t.like(entries.find((e) => e.action === 'app-password.revoke'), { outcome: 'success', actor: { login: 'sam' }, oldValue: { id, name: 'Phone' } });
  t.like(entries.find((e) => e.action === 'auth.login'), { outcome: 'denied', object: { path: 'login:sam' } });
  t.false((await api(running, '/me/app-passwords', { user: 'sam' })).json.some((p: { id: string }) => p.id === id));
});

test.serial('11.300(c) someone else\'s app password: 404 to revoke, 403 to list, and it does not sign in under another name', async (t) => {
  const made = await api(running, '/me/app-passwords', { method: 'POST', user: 'sam', json: { name: 'Tablet' } });
  const { id, ownerId, password } = made.json;
  const revoke = await api(running, `/me/app-passwords/${id}`, { method: 'DELETE', user: 'dana' });
  t.is(revoke.status, 404);
  t.is(revoke.json.error.code, 'APP_PASSWORD_NOT_FOUND');
  t.is((await api(running, `/people/${encodeURIComponent(ownerId)}/app-passwords`, { user: 'dana' })).status, 403);
  t.is((await api(running, `/people/${encodeURIComponent(ownerId)}/app-passwords/${id}`, { method: 'DELETE', user: 'dana' })).status, 403);
  const asDana = await send(running, `/dav/${STUDY}/`, { method: 'PROPFIND', headers: { Depth: '0' }, user: { login: 'dana', password } });
  t.is(asDana.status, 401);
  t.is((await send(running, `/dav/${STUDY}/`, { method: 'PROPFIND', headers: { Depth: '0' }, user: { login: 'sam', password } })).status, 207, 'still sam\'s');
  const byApp = await api(running, '/me/app-passwords', { method: 'POST', user: { login: 'sam', password }, json: { name: 'Another' } });
  t.is(byApp.status, 403, 'an app password cannot make another');
});

test.serial('11.300(c) the policy refuses an MFA person\'s directory password for WebDAV (APP_PASSWORD_REQUIRED, audited); their app password works', async (t) => {
  const since = running.appliance.audit.head().seq;
  const refused = await send(running, `/dav/${STUDY}/`, { method: 'PROPFIND', headers: { Depth: '0' }, user: 'ada' });
  t.is(refused.status, 401);
  t.is(refused.headers['x-vellum-error'], 'APP_PASSWORD_REQUIRED');
  t.regex(String(refused.headers['www-authenticate']), /^Basic /);
  t.is((await api(running, '/studies', { user: 'ada' })).status, 401, 'the API too');
  const denied = (await auditSince(running, since)).find((e) => e.action === 'auth.login');
  t.like(denied, { outcome: 'denied', actor: { login: 'ada' } });
  t.regex(denied!.detail ?? '', /^APP_PASSWORD_REQUIRED/);

  const ada = { login: 'ada', password: adaPassword };
  const propfind = await run('curl', ['-sS', '-k', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'PROPFIND', '-H', 'Depth: 0', '-u', `ada:${adaPassword}`, `${running.https}/dav/`]);
  t.is(propfind.stdout, '207');
  t.is((await send(running, '/dav/', { method: 'PROPFIND', headers: { Depth: '0' }, user: PEOPLE.sam })).status, 207, 'a person without MFA keeps the directory password');

  // Loss management: an Administrator revokes someone else's app password.
  const sams = await api(running, '/me/app-passwords', { user: 'sam' });
  const tablet = sams.json.find((p: { name: string }) => p.name === 'Tablet');
  const list = await api(running, `/people/${encodeURIComponent(tablet.ownerId)}/app-passwords`, { user: ada });
  t.is(list.status, 200);
  t.true(list.json.some((p: { id: string }) => p.id === tablet.id));
  t.is((await api(running, `/people/${encodeURIComponent(tablet.ownerId)}/app-passwords/${tablet.id}`, { method: 'DELETE', user: ada })).status, 204);
  t.false((await api(running, '/me/app-passwords', { user: 'sam' })).json.some((p: { id: string }) => p.id === tablet.id));
});
