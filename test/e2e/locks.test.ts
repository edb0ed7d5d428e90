// WebDAV class 2 locks and conditional requests on the real appliance (slapd,
// SoftHSM, LevelDB, HTTPS): a lock yields only to its token sent by the person
// who took it (pat, another Sponsor, and sam without the token get 423),
// shared locks coexist, a depth-infinity folder lock guards what is in it,
// timeouts are granted within bounds and refreshed, UNLOCK, expiry, the If
// header and If-Match/If-None-Match, the audit entries, and a lock that
// survives a restart of the appliance.

import test from 'ava';
import { buildConfig } from '../../src/config/index.ts';
import { startAppliance, type Appliance } from '../../src/server/index.ts';
import { applianceConfig, send, startRunning, STUDY, type Reply, type RequestOptions, type Running } from '../support/appliance.ts';

let running: Running;
let restarted: Appliance | undefined;
const dav = (path: string) => `/dav/${STUDY}${path}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const lockinfo = (scope: 'exclusive' | 'shared', owner = '<D:owner><D:href>mailto:sam@vellum.test</D:href></D:owner>') =>
  `<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:${scope}/></D:lockscope><D:locktype><D:write/></D:locktype>${owner}</D:lockinfo>`;

interface Locked extends Reply {
  readonly token: string;
}

async function lock(path: string, options: { scope?: 'exclusive' | 'shared'; depth?: string; timeout?: string; user?: RequestOptions['user'] } = {}): Promise<Locked> {
  const headers: Record<string, string> = { 'Content-Type': 'application/xml', Depth: options.depth ?? '0' };
  if (options.timeout !== undefined) headers.Timeout = options.timeout;
  const reply = await send(running, dav(path), { method: 'LOCK', headers, body: lockinfo(options.scope ?? 'exclusive'), ...(options.user === undefined ? {} : { user: options.user }) });
  return { ...reply, token: /^<(.*)>$/.exec(String(reply.headers['lock-token'] ?? ''))?.[1] ?? '' };
}

const put = (path: string, body: string, options: Omit<RequestOptions, 'method' | 'body'> = {}) => send(running, dav(path), { ...options, method: 'PUT', body });
const withToken = (token: string) => ({ If: `(<${token}>)` });
const proppatch = (value: string) =>
  `<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x:state xmlns:x="urn:example:review">${value}</x:state></D:prop></D:set></D:propertyupdate>`;
const unlock = (path: string, token: string, user: RequestOptions['user'] = 'sam') => send(running, dav(path), { method: 'UNLOCK', headers: { 'Lock-Token': `<${token}>` }, user });
const timeoutOf = (reply: Reply) => /<D:timeout>([^<]*)<\/D:timeout>/.exec(reply.text)?.[1];
const auditSince = async (seq: number) => {
  const found: { action: string; outcome: string; actor: { login?: string } | null; newValue?: unknown }[] = [];
  for await (const entry of (restarted ?? running.appliance).audit.entries(seq + 1)) found.push(entry as never);
  return found;
};

test.before(async () => {
  running = await startRunning();
  for (const folder of ['/Shared', '/Locked']) await send(running, dav(folder), { method: 'MKCOL' });
});
test.after.always(async () => {
  await restarted?.close();
  await running?.close();
});

test.serial('OPTIONS announces class 2 and the lock methods', async (t) => {
  const reply = await send(running, dav('/'), { method: 'OPTIONS', user: null });
  t.is(reply.headers.dav, '1, 2');
  t.regex(String(reply.headers.allow), /\bLOCK\b/);
  t.regex(String(reply.headers.allow), /\bUNLOCK\b/);
});

test.serial('an exclusive lock: 423 for another Sponsor and for the holder without the token; the token opens it', async (t) => {
  t.is((await put('/Shared/report.txt', 'v1')).status, 201);
  t.is((await put('/Shared/other.txt', 'other')).status, 201);
  const locked = await lock('/Shared/report.txt', { timeout: 'Second-3600' });
  t.is(locked.status, 200);
  t.regex(locked.token, /^opaquelocktoken:[0-9a-f-]{36}$/);
  t.regex(locked.text, /<D:lockdiscovery><D:activelock>/);
  t.true(locked.text.includes(`<D:locktoken><D:href>${locked.token}</D:href></D:locktoken>`));
  t.true(locked.text.includes('mailto:sam@vellum.test'), 'the owner comes back');
  t.is(timeoutOf(locked), 'Second-3600');
  t.true(locked.text.includes(`<D:lockroot><D:href>/dav/${STUDY}/Shared/report.txt</D:href></D:lockroot>`));

  const seq = running.appliance.audit.head().seq;
  for (const user of ['pat', 'sam'] as const) {
    const refused = await put('/Shared/report.txt', 'no', { user });
    t.is(refused.status, 423, `PUT by ${user}`);
    t.is(refused.headers['x-vellum-error'], 'LOCKED');
    t.regex(refused.text, /<D:lock-token-submitted\/>/);
    t.is((await send(running, dav('/Shared/report.txt'), { method: 'DELETE', user })).status, 423, `DELETE by ${user}`);
    t.is((await send(running, dav('/Shared/report.txt'), { method: 'MOVE', user, headers: { Destination: dav('/Shared/moved.txt') } })).status, 423, `MOVE by ${user}`);
    t.is((await send(running, dav('/Shared/other.txt'), { method: 'COPY', user, headers: { Destination: dav('/Shared/report.txt') } })).status, 423, `COPY onto it by ${user}`);
    t.is((await send(running, dav('/Shared/report.txt'), { method: 'PROPPATCH', user, body: proppatch('refused') })).status, 423, `PROPPATCH by ${user}`);
  }
  t.is((await put('/Shared/report.txt', 'no', { user: 'pat', headers: withToken(locked.token) })).status, 423, 'the token counts only for its creator');
  const conflict = await lock('/Shared/report.txt', { user: 'pat' });
  t.is(conflict.status, 423);
  t.is(conflict.headers['x-vellum-error'], 'LOCK_CONFLICT');
  t.regex(conflict.text, /<D:no-conflicting-lock\/>/);
  t.true((await auditSince(seq)).some((entry) => entry.action === 'file.write' && entry.outcome === 'failed' && entry.actor?.login === 'pat'), 'a refusal is audited');

  t.is((await send(running, dav('/Shared/report.txt'))).text, 'v1', 'nothing changed');
  t.is((await put('/Shared/report.txt', 'v2', { headers: withToken(locked.token) })).status, 204);
  const patched = await send(running, dav('/Shared/report.txt'), { method: 'PROPPATCH', body: proppatch('accepted'), headers: withToken(locked.token) });
  t.is(patched.status, 207);
  t.regex(patched.text, /HTTP\/1\.1 200 OK/);
  const state = await send(running, dav('/Shared/report.txt'), {
    method: 'PROPFIND', headers: { Depth: '0' },
    body: '<D:propfind xmlns:D="DAV:"><D:prop><x:state xmlns:x="urn:example:review"/></D:prop></D:propfind>',
  });
  t.regex(state.text, />accepted</, 'the lock holder\'s PROPPATCH landed');
  t.notRegex(state.text, /refused/, 'the refused PROPPATCHes left nothing');
  // The form neon and Windows send: tagged with the lock root's absolute URL.
  t.is((await put('/Shared/report.txt', 'v3', { headers: { If: `<${running.https}${dav('/Shared/report.txt')}> (<${locked.token}>)` } })).status, 204);
  t.is((await send(running, dav('/Shared/report.txt'))).text, 'v3');
  t.is((await unlock('/Shared/report.txt', locked.token)).status, 204);
  t.is((await put('/Shared/report.txt', 'v4', { user: 'pat' })).status, 204, 'unlocked: anyone with write access');
});

test.serial('shared locks coexist; an exclusive lock conflicts with them', async (t) => {
  const first = await lock('/Shared/report.txt', { scope: 'shared' });
  const second = await lock('/Shared/report.txt', { scope: 'shared', user: 'pat' });
  t.is(first.status, 200);
  t.is(second.status, 200);
  t.not(first.token, second.token);
  t.is((await lock('/Shared/report.txt', { scope: 'exclusive' })).status, 423);
  t.is((await put('/Shared/report.txt', 'x', { headers: withToken(first.token) })).status, 423, 'every lock on it needs its token');
  t.is((await unlock('/Shared/report.txt', second.token, 'pat')).status, 204);
  t.is((await put('/Shared/report.txt', 'v5', { headers: withToken(first.token) })).status, 204);
  t.is((await unlock('/Shared/report.txt', first.token)).status, 204);
});

test.serial('a depth-infinity lock on a folder guards a file inside it and the creation of new members', async (t) => {
  t.is((await put('/Locked/inside.txt', 'in')).status, 201);
  const locked = await lock('/Locked', { depth: 'infinity' });
  t.is(locked.status, 200);
  t.true(locked.text.includes('<D:depth>infinity</D:depth>'));
  t.is((await put('/Locked/inside.txt', 'x', { user: 'pat' })).status, 423);
  t.is((await put('/Locked/new.txt', 'x')).status, 423, 'a new member without the token');
  t.is((await send(running, dav('/Locked/sub'), { method: 'MKCOL' })).status, 423);
  t.is((await lock('/Locked/inside.txt', { user: 'pat', scope: 'shared' })).status, 423, 'a lock inside conflicts');
  t.is((await put('/Locked/new.txt', 'x', { headers: withToken(locked.token) })).status, 201);
  t.is((await put('/Locked/inside.txt', 'v2', { headers: { If: `<${dav('/Locked')}> (<${locked.token}>)` } })).status, 204, 'the token tagged with the folder');
  // A refresh through a member of the folder (litmus indirect_refresh) finds the folder's lock.
  const refreshed = await send(running, dav('/Locked/inside.txt'), { method: 'LOCK', headers: { ...withToken(locked.token), Timeout: 'Second-120' } });
  t.is(refreshed.status, 200);
  t.true(refreshed.text.includes(locked.token));
  t.is(timeoutOf(refreshed), 'Second-120');
  t.is((await unlock('/Locked', locked.token)).status, 204);
  t.is((await put('/Locked/new.txt', 'after', { user: 'pat' })).status, 204);
});

test.serial('refresh: LOCK without a body and with the token extends the lock; without a token it is 400 or 412', async (t) => {
  const locked = await lock('/Shared/report.txt', { timeout: 'Second-60' });
  t.is(timeoutOf(locked), 'Second-60');
  const refreshed = await send(running, dav('/Shared/report.txt'), { method: 'LOCK', headers: { ...withToken(locked.token), Timeout: 'Second-900' } });
  t.is(refreshed.status, 200);
  t.is(timeoutOf(refreshed), 'Second-900');
  t.is(refreshed.headers['lock-token'], undefined, 'a refresh makes no new token');
  t.is((await send(running, dav('/Shared/report.txt'), { method: 'LOCK' })).status, 400);
  t.is((await send(running, dav('/Shared/report.txt'), { method: 'LOCK', headers: withToken('opaquelocktoken:nothing') })).status, 412);
  t.is((await send(running, dav('/Shared/report.txt'), { method: 'LOCK', user: 'pat', headers: withToken(locked.token) })).status, 423, 'not pat\'s lock');
  t.is((await unlock('/Shared/report.txt', locked.token)).status, 204);
});

test.serial('the Timeout is honoured within bounds: more than the maximum gets the maximum', async (t) => {
  const granted = async (timeout?: string) => {
    const locked = await lock('/Shared/report.txt', timeout === undefined ? {} : { timeout });
    await unlock('/Shared/report.txt', locked.token);
    return timeoutOf(locked);
  };
  t.is(await granted(), 'Second-3600', 'the default');
  t.is(await granted('Second-300'), 'Second-300');
  t.is(await granted('Second-99999999'), 'Second-86400');
  t.is(await granted('Infinite, Second-4100000000'), 'Second-86400');
  t.is((await lock('/Shared/report.txt', { timeout: 'Tomorrow' })).status, 400);
});

test.serial('tokens are unique UUIDs from a CSPRNG', async (t) => {
  const tokens = new Set<string>();
  for (let i = 0; i < 10; i++) {
    const locked = await lock('/Shared/report.txt');
    t.regex(locked.token, /^opaquelocktoken:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    tokens.add(locked.token);
    t.is((await unlock('/Shared/report.txt', locked.token)).status, 204);
  }
  t.is(tokens.size, 10);
});

test.serial('bad LOCK requests are 400: Depth 1, malformed XML, not a lockinfo, no scope', async (t) => {
  const reply = await lock('/Shared/report.txt', { depth: '1' });
  t.is(reply.status, 400);
  t.is(reply.headers['x-vellum-error'], 'DEPTH_INVALID');
  for (const body of ['<D:lockinfo xmlns:D="DAV:">', '<D:propfind xmlns:D="DAV:"/>', '<D:lockinfo xmlns:D="DAV:"><D:locktype><D:write/></D:locktype></D:lockinfo>']) {
    const bad = await send(running, dav('/Shared/report.txt'), { method: 'LOCK', headers: { Depth: '0' }, body });
    t.is(bad.status, 400, body);
    t.is(bad.headers['x-vellum-error'], 'XML_INVALID');
  }
  t.deepEqual(await running.appliance.vault.locksOn({ study: STUDY, names: ['Shared', 'report.txt'] }), []);
});

test.serial('UNLOCK: 400 without Lock-Token, 409 for a token that is not this resource\'s, 403 for another\'s lock', async (t) => {
  const locked = await lock('/Shared/report.txt');
  t.is((await send(running, dav('/Shared/report.txt'), { method: 'UNLOCK' })).status, 400);
  const bogus = await unlock('/Shared/report.txt', 'opaquelocktoken:foobar');
  t.is(bogus.status, 409);
  t.regex(bogus.text, /<D:lock-token-matches-request-uri\/>/);
  t.is((await unlock('/Shared/other.txt', locked.token)).status, 409);
  t.is((await unlock('/Shared/report.txt', locked.token, 'pat')).status, 403);
  t.is((await unlock('/Shared/report.txt', locked.token)).status, 204);
  t.is((await unlock('/Shared/report.txt', locked.token)).status, 409, 'already gone');
});

test.serial('LOCK on an unmapped URL makes an empty, versioned file (201); a missing parent is 409', async (t) => {
  const seq = running.appliance.audit.head().seq;
  const locked = await lock('/Shared/placeholder.docx');
  t.is(locked.status, 201);
  const actions = (await auditSince(seq)).filter((entry) => entry.outcome === 'success').map((entry) => entry.action);
  t.deepEqual(actions, ['file.create', 'node.lock']);
  const got = await send(running, dav('/Shared/placeholder.docx'));
  t.is(got.status, 200);
  t.is(got.body.length, 0);
  const node = await running.appliance.vault.stat({ study: STUDY, names: ['Shared', 'placeholder.docx'] });
  t.is(node.versionCount, 1);
  t.is((await put('/Shared/placeholder.docx', 'content', { headers: withToken(locked.token) })).status, 204);
  t.is((await unlock('/Shared/placeholder.docx', locked.token)).status, 204);
  t.is((await lock('/Nowhere/x.txt')).status, 409);
});

test.serial('an expired lock is no longer enforced', async (t) => {
  const locked = await lock('/Shared/report.txt', { timeout: 'Second-1' });
  t.is(timeoutOf(locked), 'Second-1');
  t.is((await put('/Shared/report.txt', 'x', { user: 'pat' })).status, 423);
  await sleep(1200);
  t.is((await put('/Shared/report.txt', 'after expiry', { user: 'pat' })).status, 204);
  t.is((await unlock('/Shared/report.txt', locked.token)).status, 409, 'nothing left to unlock');
});

test.serial('lock, refresh and unlock are audited with their token', async (t) => {
  const seq = running.appliance.audit.head().seq;
  const locked = await lock('/Shared/report.txt');
  await send(running, dav('/Shared/report.txt'), { method: 'LOCK', headers: withToken(locked.token) });
  await unlock('/Shared/report.txt', locked.token);
  const entries = (await auditSince(seq)).filter((entry) => entry.action.startsWith('node.'));
  t.deepEqual(entries.map((entry) => `${entry.action} ${entry.outcome} ${entry.actor?.login}`), ['node.lock success sam', 'node.lock.refresh success sam', 'node.unlock success sam']);
  t.like(entries[0]!.newValue, { token: locked.token, scope: 'exclusive', depth: 0, timeoutSeconds: 3600 });
});

test.serial('If header: lists, Not, entity tags; false is 412, unparseable is 400, and the server stays up', async (t) => {
  const etag = String((await send(running, dav('/Shared/report.txt'), { method: 'HEAD' })).headers.etag);
  // The header that kills stock webdav-server: the second list holds.
  t.is((await put('/Shared/report.txt', 'a', { headers: { If: '(<urn:uuid:x>) (Not <DAV:no-lock>)' } })).status, 204);
  const fresh = String((await send(running, dav('/Shared/report.txt'), { method: 'HEAD' })).headers.etag);
  t.not(fresh, etag);
  t.is((await put('/Shared/report.txt', 'b', { headers: { If: '(<DAV:no-lock>)' } })).status, 412);
  t.is((await put('/Shared/report.txt', 'b', { headers: { If: `([${etag}])` } })).status, 412, 'a stale ETag');
  t.is((await put('/Shared/report.txt', 'b', { headers: { If: `([${fresh}])` } })).status, 204);
  for (const header of ['(<urn:uuid:x>', 'garbage', '(<DAV:no-lock>) junk', '(["unterminated)']) {
    const reply = await put('/Shared/report.txt', 'c', { headers: { If: header } });
    t.is(reply.status, 400, header);
    t.is(reply.headers['x-vellum-error'], 'IF_HEADER_INVALID');
  }
  // litmus cond_put_corrupt_token: the header holds, but the token sent is not the lock's.
  const locked = await lock('/Shared/report.txt');
  const corrupt = await put('/Shared/report.txt', 'd', { headers: { If: `(<${locked.token}x>) (Not <DAV:no-lock>)` } });
  t.is(corrupt.status, 423);
  const current = String((await send(running, dav('/Shared/report.txt'), { method: 'HEAD' })).headers.etag);
  t.is((await put('/Shared/report.txt', 'e', { headers: { If: `(<${locked.token}> [${current}]) (Not <DAV:no-lock> [${current}])` } })).status, 204);
  t.is((await unlock('/Shared/report.txt', locked.token)).status, 204);
  t.is((await send(running, dav('/Shared/report.txt'))).text, 'e');
});

test.serial('If-Match and If-None-Match on PUT and DELETE (412) and on GET and HEAD (304)', async (t) => {
  const etag = String((await send(running, dav('/Shared/report.txt'), { method: 'HEAD' })).headers.etag);
  t.is((await put('/Shared/report.txt', 'x', { headers: { 'If-None-Match': '*' } })).status, 412, 'If-None-Match: * on an existing file');
  t.is((await put('/Shared/brand-new.txt', 'x', { headers: { 'If-None-Match': '*' } })).status, 201);
  t.is((await put('/Shared/report.txt', 'x', { headers: { 'If-Match': '"not-the-etag"' } })).status, 412);
  t.is((await put('/Shared/missing.txt', 'x', { headers: { 'If-Match': '*' } })).status, 412, 'If-Match on a missing file');
  t.is((await put('/Shared/report.txt', 'x', { headers: { 'If-Match': `W/${etag}` } })).status, 412, 'a weak tag never matches If-Match');
  t.is((await put('/Shared/report.txt', 'f', { headers: { 'If-Match': `"other", ${etag}` } })).status, 204);
  t.is((await send(running, dav('/Shared/report.txt'), { method: 'DELETE', headers: { 'If-Match': etag } })).status, 412, 'the ETag changed with the PUT');
  t.is((await put('/Shared/report.txt', 'x', { headers: { 'If-Match': 'no quotes' } })).status, 400);

  const current = String((await send(running, dav('/Shared/report.txt'), { method: 'HEAD' })).headers.etag);
  const notModified = await send(running, dav('/Shared/report.txt'), { headers: { 'If-None-Match': current } });
  t.is(notModified.status, 304);
  t.is(notModified.headers.etag, current);
  t.is(notModified.body.length, 0);
  t.is((await send(running, dav('/Shared/report.txt'), { method: 'HEAD', headers: { 'If-None-Match': `W/${current}` } })).status, 304, 'weak comparison');
  const modified = await send(running, dav('/Shared/report.txt'), { headers: { 'If-None-Match': etag } });
  t.is(modified.status, 200);
  t.is(modified.text, 'f');
  t.is((await send(running, dav('/Shared/report.txt'), { headers: { 'If-Match': '"stale"' } })).status, 412);
});

test.serial('a lock survives a restart of the appliance; a second client without the token gets 423', async (t) => {
  const locked = await lock('/Shared/report.txt', { timeout: 'Second-600' });
  t.is(locked.status, 200);
  await running.stopAppliance();
  const config = buildConfig(
    applianceConfig(running.env, running.dataDir, { ldapTimeoutMs: 2000, secretEnv: { ldapBindPassword: 'TEST_LDAP_BIND_PASSWORD', hsmPin: 'TEST_HSM_PIN' } }),
    { source: 'test config', baseDir: running.env.dir, env: { TEST_LDAP_BIND_PASSWORD: running.env.ldap.servicePassword, TEST_HSM_PIN: running.env.hsm.pin } },
  );
  restarted = await startAppliance(config, { info: () => undefined, error: (m, e) => running.logs.push(`${m}: ${String(e)}`) });
  running = { ...running, appliance: restarted, https: restarted.httpsUrl, http: restarted.httpUrl! };

  const [found] = await restarted.vault.locksOn({ study: STUDY, names: ['Shared', 'report.txt'] });
  t.is(found?.token, locked.token);
  for (const user of ['pat', 'sam'] as const) t.is((await put('/Shared/report.txt', 'after restart', { user })).status, 423, `${user} without the token`);
  t.is((await put('/Shared/report.txt', 'by the holder', { headers: withToken(locked.token) })).status, 204);
  t.is((await unlock('/Shared/report.txt', locked.token)).status, 204);
  t.is((await put('/Shared/report.txt', 'unlocked', { user: 'pat' })).status, 204);
});
