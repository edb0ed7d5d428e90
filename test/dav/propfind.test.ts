// PROPFIND over the real appliance (slapd, SoftHSM, LevelDB, HTTPS): live
// properties, allprop / propname / named properties (quota included),
// Depth 0 and 1 (infinity refused), percent-encoded hrefs, access, hostile
// bodies, and a folder of 2,000 files listed in full.

import test from 'ava';
import { Readable } from 'node:stream';
import { send, startRunning, STUDY, type Running } from '../support/appliance.ts';
import { dav, propfindBody, readMultistatus } from './multistatus-reader.ts';

let running: Running;
const url = (path: string) => `/dav/${STUDY}${path}`;
const propfind = (path: string, depth: string | null, body?: string, user?: 'sam' | 'nora' | 'audrey') =>
  send(running, path, { method: 'PROPFIND', headers: depth === null ? {} : { Depth: depth }, ...(body === undefined ? {} : { body }), ...(user ? { user } : {}) });
const NAME = 'Prüfplan v1.pdf';
const ENCODED = 'Pr%C3%BCfplan%20v1.pdf';

test.before(async () => {
  running = await startRunning();
  if ((await send(running, url('/Trial%20Master'), { method: 'MKCOL' })).status !== 201) throw new Error('set-up failed');
  if ((await send(running, url(`/Trial%20Master/${ENCODED}`), { method: 'PUT', body: 'protocol' })).status !== 201) throw new Error('set-up failed');
});
test.after.always(async () => running?.close());

test.serial('Depth 0 on a file: its live properties, the same ETag as GET, and a percent-encoded href', async (t) => {
  const reply = await propfind(url(`/Trial%20Master/${ENCODED}`), '0');
  t.is(reply.status, 207);
  t.regex(String(reply.headers['content-type']), /^application\/xml/);
  const found = readMultistatus(reply.text);
  t.deepEqual([...found.keys()], [`/dav/${STUDY}/Trial%20Master/${ENCODED}`]);
  const props = found.values().next().value!;
  t.is(props.get(dav('getcontentlength'))?.text, '8');
  t.is(props.get(dav('getcontenttype'))?.text, 'application/pdf');
  t.is(props.get(dav('displayname'))?.text, NAME);
  t.is(props.get(dav('getetag'))?.text, (await send(running, url(`/Trial%20Master/${ENCODED}`))).headers.etag);
  t.regex(props.get(dav('getlastmodified'))!.text, /^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$/);
  t.regex(props.get(dav('creationdate'))!.text, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.deepEqual(props.get(dav('resourcetype'))!.element.children, []);
  t.is(props.get(dav('supportedlock'))!.xml.match(/lockentry/g)?.length, 4, 'exclusive and shared write (open and close tags)');
  t.true(props.has(dav('lockdiscovery')));
  t.false(props.has(dav('quota-used-bytes')), 'quota is not part of allprop');
  t.true([...props.values()].every((p) => p.status === 200));
});

test.serial('Depth 1 on a folder lists it and its children; folders end with "/"', async (t) => {
  const reply = await propfind(url('/Trial%20Master'), '1', propfindBody('<D:prop><D:resourcetype/></D:prop>'));
  t.is(reply.status, 207);
  const found = readMultistatus(reply.text);
  t.deepEqual([...found.keys()].sort(), [`/dav/${STUDY}/Trial%20Master/`, `/dav/${STUDY}/Trial%20Master/${ENCODED}`]);
  t.is(found.get(`/dav/${STUDY}/Trial%20Master/`)!.get(dav('resourcetype'))!.xml, '<ns0:resourcetype xmlns:ns0="DAV:"><ns0:collection/></ns0:resourcetype>');
});

test.serial('the root lists the studies the person can read, and only those', async (t) => {
  const sam = readMultistatus((await propfind('/dav/', '1')).text);
  t.deepEqual([...sam.keys()], ['/dav/', `/dav/${STUDY}/`]);
  const nora = await propfind('/dav/', '1', undefined, 'nora');
  t.is(nora.status, 207);
  t.deepEqual([...readMultistatus(nora.text).keys()], ['/dav/']);
  // No role in the study: it answers as if it did not exist (docs/access.md).
  const denied = await propfind(url('/'), '1', undefined, 'nora');
  t.is(denied.status, 404);
  t.false(denied.text.includes('Trial'), 'nothing of the study leaks');
  t.is((await propfind(url('/Trial%20Master/nothing.txt'), '0')).status, 404);
});

test.serial('named properties: quota on request, unknown ones 404 in their propstat', async (t) => {
  const reply = await propfind(url('/'), '0', propfindBody('<D:prop><D:quota-used-bytes/><D:quota-available-bytes/><D:getcontentlength/><X:unknown xmlns:X="urn:example"/></D:prop>'));
  const props = readMultistatus(reply.text).get(`/dav/${STUDY}/`)!;
  t.is(props.get(dav('quota-used-bytes'))!.status, 200);
  t.is(props.get(dav('quota-used-bytes'))!.text, '8', 'the one file stored so far');
  t.true(Number(props.get(dav('quota-available-bytes'))!.text) > 0);
  t.is(props.get(dav('getcontentlength'))!.status, 404, 'a folder has no content length');
  t.is(props.get('{urn:example}unknown')!.status, 404);
});

test.serial('propname names the live properties (quota too) without values; allprop with include adds quota', async (t) => {
  const names = readMultistatus((await propfind(url(`/Trial%20Master/${ENCODED}`), '0', propfindBody('<D:propname/>'))).text).values().next().value!;
  for (const local of ['resourcetype', 'getetag', 'getcontentlength', 'quota-used-bytes', 'lockdiscovery']) t.true(names.has(dav(local)), local);
  t.true([...names.values()].every((p) => p.element.children.length === 0));
  const all = readMultistatus((await propfind(url('/'), '0', propfindBody('<D:allprop/><D:include><D:quota-used-bytes/></D:include>'))).text).values().next().value!;
  t.true(all.has(dav('quota-used-bytes')));
  t.true(all.has(dav('displayname')));
});

test.serial('Depth infinity (or none) is refused with propfind-finite-depth; other Depth values are 400', async (t) => {
  for (const depth of ['infinity', null]) {
    const reply = await propfind(url('/'), depth);
    t.is(reply.status, 403);
    t.is(reply.headers['x-vellum-error'], 'PROPFIND_INFINITE_DEPTH');
    t.regex(reply.text, /<D:propfind-finite-depth\/>/);
  }
  for (const depth of ['2', 'one', '-1']) t.is((await propfind(url('/'), depth)).headers['x-vellum-error'], 'DEPTH_INVALID');
});

test.serial('malformed, wrong-root, DOCTYPE and entity bodies get 400 XML_INVALID and the server keeps answering', async (t) => {
  const bodies = [
    '<D:propfind xmlns:D="DAV:"><D:prop></D:propfind>',
    '<D:propfind xmlns:D="DAV:"><D:prop><bar:foo xmlns:bar=""/></D:prop></D:propfind>',
    '<D:propertyupdate xmlns:D="DAV:"/>',
    '<D:propfind xmlns:D="DAV:"><D:allprop/><D:propname/></D:propfind>',
    '<D:propfind xmlns:D="DAV:"><D:prop/><D:include/></D:propfind>',
    '<D:propfind xmlns:D="DAV:"/>',
    '<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><D:propfind xmlns:D="DAV:"><D:prop><D:x>&lol2;</D:x></D:prop></D:propfind>',
    '<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><D:propfind xmlns:D="DAV:"><D:prop>&xxe;</D:prop></D:propfind>',
    '<D:propfind xmlns:D="DAV:"><D:prop>&undefined;</D:prop></D:propfind>',
  ];
  for (const body of bodies) {
    const reply = await propfind(url('/'), '0', body);
    t.is(reply.status, 400, body);
    t.is(reply.headers['x-vellum-error'], 'XML_INVALID', body);
  }
  t.is((await propfind(url('/'), '0', 'x'.repeat(2 * 1024 * 1024))).status, 413);
  t.is((await propfind(url('/'), '0')).status, 207);
});

test.serial('Depth 1 over a folder of 2,000 files returns every one of them', async (t) => {
  const system = running.appliance.systemSession('test set-up');
  await system.makeFolder({ study: STUDY, names: ['Big'] });
  const count = 2000;
  for (let start = 0; start < count; start += 100) {
    await Promise.all(Array.from({ length: Math.min(100, count - start) }, (_, i) => system.writeFile(
      { study: STUDY, names: ['Big', `file ${start + i}.txt`] }, Readable.from([Buffer.from(String(start + i))]), { maxBytes: 1024 },
    )));
  }
  const reply = await propfind(url('/Big'), '1', propfindBody('<D:prop><D:getcontentlength/><D:getetag/><X:Win32FileAttributes xmlns:X="urn:schemas-microsoft-com:"/></D:prop>'));
  t.is(reply.status, 207);
  t.is(reply.headers['content-length'], undefined, 'streamed, not measured first');
  const found = readMultistatus(reply.text);
  t.is(found.size, count + 1);
  for (let i = 0; i < count; i++) {
    const props = found.get(`/dav/${STUDY}/Big/file%20${i}.txt`);
    t.is(props?.get(dav('getcontentlength'))?.text, String(String(i).length), `file ${i}`);
    if (!props) break;
  }
});
