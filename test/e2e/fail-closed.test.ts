// Fail closed (DESIGN.md invariant 1): an unreachable directory gives 503 and
// never lets anyone in; a wrong HSM PIN stops the appliance from starting.

import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PEOPLE } from '../env/index.ts';
import { run, send, startRunning, STUDY, type Running } from '../support/appliance.ts';

let running: Running;

test.before(async () => {
  // No credential cache: every request binds, so an outage shows at once.
  running = await startRunning({ config: (c) => ({ ...c, auth: { ...c.auth, cacheSeconds: 0 } }) });
});

test.after.always(async () => {
  await running?.close();
});

test.serial('an empty password is refused with 401 before any LDAP bind', async (t) => {
  // With slapd stopped, a bind attempt would answer 503; 401 proves no bind was tried.
  await running.env.ldap.stop();
  try {
    const reply = await send(running, `/dav/${STUDY}/`, { method: 'PROPFIND', headers: { Depth: '0' }, user: { login: 'sam', password: '' } });
    t.is(reply.status, 401);
  } finally {
    await running.env.ldap.start();
  }
});

test.serial('invariant 1: LDAP unreachable gives 503 with a message, never access; service resumes when it is back', async (t) => {
  t.is((await send(running, `/dav/${STUDY}/`, { method: 'PROPFIND', headers: { Depth: '0' } })).status, 207);
  await running.env.ldap.stop();
  try {
    const down = await send(running, `/dav/${STUDY}/`, { method: 'PROPFIND', headers: { Depth: '0' } });
    t.is(down.status, 503);
    t.regex(down.text, /directory \(LDAP\) cannot be reached/);
    t.is(down.headers['x-vellum-error'], 'DIRECTORY_UNAVAILABLE');
    const health = await send(running, '/healthz', { user: null });
    t.is(health.status, 503);
    t.false((JSON.parse(health.text) as { components: { ldap: { ok: boolean } } }).components.ldap.ok);
  } finally {
    await running.env.ldap.start();
  }
  t.is((await send(running, `/dav/${STUDY}/`, { method: 'PROPFIND', headers: { Depth: '0' } })).status, 207);
  const entries = [];
  for await (const entry of running.appliance.audit.entries()) entries.push(entry);
  t.true(entries.some((e) => e.action === 'auth.login' && e.outcome === 'failed' && /DIRECTORY_UNAVAILABLE/.test(e.detail ?? '')), 'the outage is audited');
});

test.serial('invariant 1: start with a wrong HSM PIN refuses with a message that says so', async (t) => {
  const dir = running.env.dir;
  await writeFile(join(dir, 'wrong-pin'), '99999999\n', { mode: 0o600 });
  await writeFile(join(dir, 'bind'), running.env.ldap.servicePassword, { mode: 0o600 });
  const config = {
    dataDir: 'wrong-pin-data',
    listen: { https: { host: '127.0.0.1', port: 0 } },
    ldap: { url: running.env.ldap.url, bindDn: running.env.ldap.serviceDn, bindPassword: { file: 'bind' }, userBase: running.env.ldap.userBase, groupBase: running.env.ldap.groupBase },
    hsm: { library: running.env.hsm.library, tokenLabel: running.env.hsm.tokenLabel, pin: { file: 'wrong-pin' } },
  };
  const file = join(dir, 'wrong-pin.json');
  await writeFile(file, JSON.stringify(config));
  const error = await run(process.execPath, ['src/main.ts', 'serve', '--config', file], { timeout: 60_000 }).then(
    () => null,
    (e: { code?: number; stderr?: string }) => e,
  );
  t.truthy(error, 'serve exits with an error');
  t.is(error?.code, 1);
  t.regex(error?.stderr ?? '', /HSM rejected the PIN/);
  t.regex(error?.stderr ?? '', /HSM_PIN_INCORRECT/);
});

test.serial('the credentials of the awkward demo person survive a full curl round trip', async (t) => {
  const code = await run('curl', ['-sS', '-k', '-o', '/dev/null', '-w', '%{http_code}', '-u', `pat:${PEOPLE.pat.password}`, '-X', 'PROPFIND', '-H', 'Depth: 0', `${running.https}/dav/${STUDY}/`]);
  t.is(code.stdout, '207');
});
