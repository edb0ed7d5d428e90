// PROPPATCH over the real appliance (slapd, SoftHSM, LevelDB, HTTPS): dead
// properties set and removed in document order with their namespaces kept,
// Windows Explorer's Win32 properties, protected live properties (403 + 424,
// nothing changed), limits (507), access and audit, hostile bodies, and
// properties that follow MOVE, COPY and a restart of the appliance.

import test from 'ava';
import { buildConfig } from '../../src/config/index.ts';
import { startAppliance } from '../../src/server/index.ts';
import { applianceConfig, send, startRunning, STUDY, type Running } from '../support/appliance.ts';
import { dav, propertyUpdate, propfindBody, readMultistatus } from './multistatus-reader.ts';

let running: Running;
const url = (path: string) => `/dav/${STUDY}${path}`;
const href = (path: string) => `/dav/${STUDY}${path}`;
const proppatch = (path: string, body: string, user?: 'sam' | 'audrey') => send(running, url(path), { method: 'PROPPATCH', body, ...(user ? { user } : {}) });
const propsOf = async (path: string) => {
  const reply = await send(running, url(path), { method: 'PROPFIND', headers: { Depth: '0' } });
  return readMultistatus(reply.text).get(href(path))!;
};
const auditSince = async (seq: number) => {
  const found = [];
  for await (const entry of running.appliance.audit.entries(seq + 1)) found.push(entry);
  return found;
};
const EX = 'http://example.com/neon/litmus/';

test.before(async () => {
  running = await startRunning();
  for (const name of ['a.txt', 'b.txt', 'win.docx']) {
    if ((await send(running, url(`/${name}`), { method: 'PUT', body: name })).status !== 201) throw new Error('set-up failed');
  }
});
test.after.always(async () => running?.close());

test.serial('set and remove in document order, namespaces and values kept exactly; one audit entry per PROPPATCH', async (t) => {
  const seq = running.appliance.audit.head().seq;
  const reply = await proppatch('/a.txt', propertyUpdate(
    `<D:set><D:prop><E:color xmlns:E="${EX}">red</E:color><E:gone xmlns:E="${EX}">x</E:gone></D:prop></D:set>`
    + `<D:remove><D:prop><E:gone xmlns:E="${EX}"/></D:prop></D:remove>`
    + `<D:set><D:prop><E:nested xmlns:E="${EX}"><F:deep xmlns:F="urn:other" F:attr="1">&#x10000; &lt;ok&gt;</F:deep></E:nested></D:prop></D:set>`
    + '<D:set><D:prop><plain xmlns="">no namespace</plain></D:prop></D:set>',
  ));
  t.is(reply.status, 207);
  const answer = readMultistatus(reply.text).get(href('/a.txt'))!;
  t.deepEqual([...answer.values()].map((p) => p.status), [200, 200, 200, 200]);

  const props = await propsOf('/a.txt');
  t.is(props.get(`{${EX}}color`)?.text, 'red');
  t.false(props.has(`{${EX}}gone`), 'the later remove wins');
  t.is(props.get(`{${EX}}nested`)?.xml, `<ns0:nested xmlns:ns0="${EX}"><ns1:deep xmlns:ns1="urn:other" ns1:attr="1">\u{10000} &lt;ok&gt;</ns1:deep></ns0:nested>`);
  t.is(props.get('{}plain')?.text, 'no namespace');

  const entries = await auditSince(seq);
  t.deepEqual(entries.map((e) => [e.action, e.outcome, e.object.path]), [['node.properties', 'success', `/${STUDY}/a.txt`]]);
  t.deepEqual(Object.keys(entries[0]!.newValue as object).sort(), [`{${EX}}color`, `{${EX}}gone`, `{${EX}}nested`, '{}plain'].sort());
  t.is((entries[0]!.newValue as Record<string, unknown>)[`{${EX}}gone`], null);
  t.is((entries[0]!.oldValue as Record<string, unknown>)[`{${EX}}color`], null);
});

test.serial('Windows Explorer\'s Win32 properties are accepted and kept', async (t) => {
  const win32 = '<D:set><D:prop>'
    + '<Z:Win32CreationTime>Mon, 02 Mar 2026 10:00:00 GMT</Z:Win32CreationTime>'
    + '<Z:Win32LastAccessTime>Mon, 02 Mar 2026 10:05:00 GMT</Z:Win32LastAccessTime>'
    + '<Z:Win32LastModifiedTime>Mon, 02 Mar 2026 10:04:00 GMT</Z:Win32LastModifiedTime>'
    + '<Z:Win32FileAttributes>00000020</Z:Win32FileAttributes>'
    + '</D:prop></D:set>';
  const body = `<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:">${win32}</D:propertyupdate>`;
  const reply = await proppatch('/win.docx', body);
  t.is(reply.status, 207);
  t.true([...readMultistatus(reply.text).get(href('/win.docx'))!.values()].every((p) => p.status === 200));
  const asked = await send(running, url('/win.docx'), {
    method: 'PROPFIND', headers: { Depth: '0' },
    body: propfindBody('<D:prop xmlns:Z="urn:schemas-microsoft-com:"><Z:Win32FileAttributes/><Z:Win32CreationTime/><D:getcontentlength/></D:prop>'),
  });
  const props = readMultistatus(asked.text).get(href('/win.docx'))!;
  t.is(props.get('{urn:schemas-microsoft-com:}Win32FileAttributes')?.text, '00000020');
  t.is(props.get('{urn:schemas-microsoft-com:}Win32CreationTime')?.text, 'Mon, 02 Mar 2026 10:00:00 GMT');
});

test.serial('a protected live property fails with 403 (cannot-modify-protected-property), the rest with 424, and nothing changes', async (t) => {
  const seq = running.appliance.audit.head().seq;
  const reply = await proppatch('/b.txt', propertyUpdate(
    `<D:set><D:prop><E:tag xmlns:E="${EX}">new</E:tag><D:getetag>"mine"</D:getetag></D:prop></D:set><D:remove><D:prop><D:resourcetype/></D:prop></D:remove>`,
  ));
  t.is(reply.status, 207);
  const answer = readMultistatus(reply.text).get(href('/b.txt'))!;
  t.is(answer.get(dav('getetag'))?.status, 403);
  t.is(answer.get(dav('getetag'))?.condition, 'cannot-modify-protected-property');
  t.is(answer.get(dav('resourcetype'))?.status, 403);
  t.is(answer.get(`{${EX}}tag`)?.status, 424);
  t.false((await propsOf('/b.txt')).has(`{${EX}}tag`));
  t.deepEqual(await auditSince(seq), []);
});

test.serial('over the limits: 507 for the properties set, 424 for the others, nothing changes', async (t) => {
  const big = 'x'.repeat(70 * 1024);
  const reply = await proppatch('/b.txt', propertyUpdate(`<D:set><D:prop><E:big xmlns:E="${EX}">${big}</E:big></D:prop></D:set><D:remove><D:prop><E:other xmlns:E="${EX}"/></D:prop></D:remove>`));
  t.is(reply.status, 207);
  const answer = readMultistatus(reply.text).get(href('/b.txt'))!;
  t.is(answer.get(`{${EX}}big`)?.status, 507);
  t.is(answer.get(`{${EX}}other`)?.status, 424);
  t.false((await propsOf('/b.txt')).has(`{${EX}}big`));
});

test.serial('a read-only person is refused (403, audited); a missing resource is 404; the root is 403', async (t) => {
  const seq = running.appliance.audit.head().seq;
  const reply = await proppatch('/b.txt', propertyUpdate(`<D:set><D:prop><E:tag xmlns:E="${EX}">x</E:tag></D:prop></D:set>`), 'audrey');
  t.is(reply.status, 403);
  t.deepEqual((await auditSince(seq)).filter((e) => e.action !== 'auth.login').map((e) => [e.action, e.outcome]), [['node.properties', 'denied']]);
  t.false((await propsOf('/b.txt')).has(`{${EX}}tag`));
  t.is((await proppatch('/missing.txt', propertyUpdate(`<D:set><D:prop><E:tag xmlns:E="${EX}">x</E:tag></D:prop></D:set>`))).status, 404);
  t.is((await send(running, '/dav/', { method: 'PROPPATCH', body: propertyUpdate(`<D:set><D:prop><E:tag xmlns:E="${EX}">x</E:tag></D:prop></D:set>`) })).status, 403);
});

test.serial('malformed, wrong-root, empty, DOCTYPE and oversized bodies: 4xx, nothing changed, the server keeps answering', async (t) => {
  const seq = running.appliance.audit.head().seq;
  const bodies = [
    '',
    '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><E:x xmlns:E="urn:e">1</D:prop></D:set></D:propertyupdate>',
    '<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>',
    '<D:propertyupdate xmlns:D="DAV:"/>',
    '<D:propertyupdate xmlns:D="DAV:"><D:set><E:x xmlns:E="urn:e">1</E:x></D:set></D:propertyupdate>',
    '<D:propertyupdate xmlns:D="DAV:"><D:frobnicate/></D:propertyupdate>',
    '<!DOCTYPE d [<!ENTITY e "boom">]><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><E:x xmlns:E="urn:e">&e;</E:x></D:prop></D:set></D:propertyupdate>',
  ];
  for (const body of bodies) {
    const reply = await proppatch('/b.txt', body);
    t.is(reply.status, 400, body);
    t.is(reply.headers['x-vellum-error'], 'XML_INVALID', body);
  }
  t.is((await proppatch('/b.txt', propertyUpdate(`<D:set><D:prop><E:x xmlns:E="urn:e">${'y'.repeat(2 * 1024 * 1024)}</E:x></D:prop></D:set>`))).status, 413);
  t.false((await propsOf('/b.txt')).has('{urn:e}x'));
  t.deepEqual(await auditSince(seq), []);
});

test.serial('properties follow MOVE, are copied by COPY (a folder with its contents too), and survive a restart (which allows Depth: infinity)', async (t) => {
  t.is((await send(running, url('/a.txt'), { method: 'MOVE', headers: { Destination: url('/moved.txt') } })).status, 201);
  t.is((await propsOf('/moved.txt')).get(`{${EX}}color`)?.text, 'red');
  t.is((await send(running, url('/moved.txt'), { method: 'COPY', headers: { Destination: url('/copied.txt') } })).status, 201);
  t.is((await propsOf('/copied.txt')).get(`{${EX}}color`)?.text, 'red');
  t.is((await propsOf('/moved.txt')).get(`{${EX}}color`)?.text, 'red', 'the source keeps its own');

  t.is((await send(running, url('/Folder'), { method: 'MKCOL' })).status, 201);
  t.is((await proppatch('/Folder', propertyUpdate(`<D:set><D:prop><E:color xmlns:E="${EX}">blue</E:color></D:prop></D:set>`))).status, 207);
  t.is((await send(running, url('/moved.txt'), { method: 'COPY', headers: { Destination: url('/Folder/inside.txt') } })).status, 201);
  t.is((await send(running, url('/Folder'), { method: 'COPY', headers: { Destination: url('/Folder%20copy'), Depth: 'infinity' } })).status, 201);
  t.is((await propsOf('/Folder%20copy/')).get(`{${EX}}color`)?.text, 'blue');
  t.is((await propsOf('/Folder%20copy/inside.txt')).get(`{${EX}}color`)?.text, 'red');

  await running.stopAppliance();
  const config = buildConfig(
    {
      ...applianceConfig(running.env, running.dataDir, { ldapTimeoutMs: 2000, secretEnv: { ldapBindPassword: 'TEST_LDAP_BIND_PASSWORD', hsmPin: 'TEST_HSM_PIN' } }),
      dav: { allowInfiniteDepth: true },
    },
    { source: 'test config', baseDir: running.env.dir, env: { TEST_LDAP_BIND_PASSWORD: running.env.ldap.servicePassword, TEST_HSM_PIN: running.env.hsm.pin } },
  );
  const again = await startAppliance(config, { info: () => undefined, error: () => undefined });
  try {
    running = { ...running, appliance: again, https: again.httpsUrl, http: again.httpUrl!, stopAppliance: () => again.close() };
    const props = await propsOf('/moved.txt');
    t.is(props.get(`{${EX}}color`)?.text, 'red');
    t.is(props.get(`{${EX}}nested`)?.xml, `<ns0:nested xmlns:ns0="${EX}"><ns1:deep xmlns:ns1="urn:other" ns1:attr="1">\u{10000} &lt;ok&gt;</ns1:deep></ns0:nested>`);

    const everything = await send(running, url('/'), { method: 'PROPFIND', headers: { Depth: 'infinity' }, body: propfindBody(`<D:prop><E:color xmlns:E="${EX}"/></D:prop>`) });
    t.is(everything.status, 207);
    const found = readMultistatus(everything.text);
    t.is(found.get(href('/Folder%20copy/inside.txt'))?.get(`{${EX}}color`)?.text, 'red', 'the walk reaches two levels down');
    t.true(found.has(href('/')) && found.has(href('/Folder/')) && found.has(href('/win.docx')));
  } finally {
    await again.close();
  }
});
