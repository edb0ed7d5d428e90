// The hostile corpus (DESIGN invariant 8): requests no honest client sends,
// written byte by byte over raw sockets to the real appliance. Each one gets
// the status RFC 4918 / RFC 9110 and the error catalog prescribe, carries no
// CORS header, leaves the server answering the next request normally, and
// changes nothing in the study (a snapshot of the tree, versions and trash is
// compared before and after). Then the timeouts: a client that trickles its
// headers or stalls mid-body is cut while others are served, and a slow but
// steady upload is not. Last, the global guard keeps a process up when a
// handler throws where no promise can catch it.

import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { PEOPLE } from '../env/index.ts';
import { basicAuth, send, startRunning, STUDY, type Running } from '../support/appliance.ts';
import { head, rawExchange, type RawExchange, type RawResponse } from '../support/raw-http.ts';
import { snapshotStudy } from '../support/study-snapshot.ts';

const XML_CAP = 64 * 1024;
const HEADERS_TIMEOUT_MS = 2_000;
const IDLE_TIMEOUT_MS = 3_000;
const KEEP_ALIVE_TIMEOUT_MS = 1_000;
const A_TXT = 'version two of a.txt\n';
// Read after every hostile request to see that the server still answers; no hostile request names it.
const PROBE = '/probe.txt';
const PROBE_TEXT = 'still here\n';

let running: Running;
let host: string;
const AUTH = basicAuth(PEOPLE.sam.login, PEOPLE.sam.password);
const corpus = (path: string) => `/dav/${STUDY}/Corpus${path}`;

test.before(async () => {
  running = await startRunning({
    config: (config) => ({
      ...config,
      limits: { xmlBodyBytes: XML_CAP, headersTimeoutMs: HEADERS_TIMEOUT_MS, idleTimeoutMs: IDLE_TIMEOUT_MS, keepAliveTimeoutMs: KEEP_ALIVE_TIMEOUT_MS },
    }),
  });
  host = new URL(running.http).host;
  const setUp: [string, string, string?][] = [
    ['MKCOL', ''], ['MKCOL', '/sub'], ['MKCOL', '/keep'], ['MKCOL', '/empty'],
    ['PUT', '/a.txt', 'version one of a.txt\n'], ['PUT', '/a.txt', A_TXT], ['PUT', '/sub/b.txt', 'b\n'], ['PUT', '/keep/c.txt', 'c\n'],
    ['PUT', '/put-target.txt', 'p\n'], ['PUT', '/props.txt', 'p\n'], ['PUT', PROBE, PROBE_TEXT],
  ];
  for (const [method, path, body] of setUp) {
    const reply = await send(running, corpus(path), { method, ...(body === undefined ? {} : { body }) }, 'http');
    if (reply.status >= 300) throw new Error(`set-up ${method} ${path} failed: ${reply.status} ${reply.text}`);
  }
});
test.after.always(async () => running?.close());

// ---------------------------------------------------------------------------
// Building requests

type Headers = readonly (readonly [string, string])[];

/** A request from sam with a Host header; a string body gets its Content-Length unless the headers frame it. */
function request(method: string, target: string, headers: Headers = [], body?: string | Buffer): Buffer {
  const framed = headers.some(([name]) => /^(content-length|transfer-encoding)$/i.test(name));
  const all: [string, string][] = [['Host', 'HOST'], ['Authorization', AUTH], ...headers.map(([n, v]) => [n, v] as [string, string])];
  if (body !== undefined && !framed) all.push(['Content-Length', String(Buffer.byteLength(body))]);
  return Buffer.concat([Buffer.from(head(`${method} ${target} HTTP/1.1`, all), 'latin1'), body === undefined ? Buffer.alloc(0) : Buffer.from(body)]);
}

const XML = [['Content-Type', 'application/xml; charset=utf-8']] as const;
const PROPFIND_0: Headers = [...XML, ['Depth', '0']];
const propfindBody = (inner: string) => `<?xml version="1.0" encoding="utf-8"?>\n${inner}`;
const ALLPROP = propfindBody('<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>');
const LOCKINFO = '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>';
const UNKNOWN_TOKEN = '<opaquelocktoken:00000000-0000-4000-8000-000000000000>';
const deep = (levels: number) => `${'<x:a xmlns:x="urn:x">'.repeat(1)}${'<x:a>'.repeat(levels)}${'</x:a>'.repeat(levels)}</x:a>`;

interface HostileCase {
  /** What is sent and what it must get, in words. */
  readonly title: string;
  readonly request: Buffer | string;
  readonly status: number;
  /** The catalog code in X-Vellum-Error, when the answer is Vellum's (not Node's parser's). */
  readonly code?: string;
  /** Something the response body must (or, with `not`, must not) contain. */
  readonly body?: RegExp;
  readonly notBody?: RegExp;
  /** The server must close the connection after answering. */
  readonly closes?: boolean;
  /** Further checks on the exchange. */
  readonly check?: (t: ExecutionContext, exchange: RawExchange) => void;
}

const billionLaughs = propfindBody(`<!DOCTYPE lolz [<!ENTITY lol "lol">${Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i === 0 ? '' : i};`.repeat(10)}">`).join('')}]><D:propfind xmlns:D="DAV:"><D:prop><x xmlns="urn:x">&lol9;</x></D:prop></D:propfind>`);
const xxe = propfindBody('<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><D:propfind xmlns:D="DAV:"><D:prop><x xmlns="urn:x">&xxe;</x></D:prop></D:propfind>');
const ifOn = (value: string): Buffer => request('PUT', corpus('/put-target.txt'), [['If', value]], 'overwritten\n');
const range = (value: string) => request('GET', corpus('/a.txt'), [['Range', value]]);
const copyTo = (destination: string, method = 'COPY') => request(method, corpus('/a.txt'), [['Destination', destination]]);
const get = (target: string) => request('GET', target);
const nested = (levels: number) => Array.from({ length: levels }, (_, i) => `d${i}`).join('/');

const CASES: HostileCase[] = [
  // XML bodies
  { title: 'PROPFIND with a non-well-formed body (unclosed element) -> 400 XML_INVALID', request: request('PROPFIND', corpus('/a.txt'), PROPFIND_0, propfindBody('<D:propfind xmlns:D="DAV:"><D:prop>')), status: 400, code: 'XML_INVALID' },
  { title: 'PROPFIND with an element prefix bound to no namespace -> 400 XML_INVALID', request: request('PROPFIND', corpus('/a.txt'), PROPFIND_0, propfindBody('<D:propfind><D:allprop/></D:propfind>')), status: 400, code: 'XML_INVALID' },
  { title: 'PROPFIND with a JSON body (stock webdav-server parses it as JSON) -> 400 XML_INVALID', request: request('PROPFIND', corpus('/a.txt'), [['Depth', '0'], ['Content-Type', 'application/json']], '{"propfind":{"allprop":{}}}'), status: 400, code: 'XML_INVALID' },
  { title: 'PROPFIND with a DOCTYPE and an external entity (XXE file:///etc/passwd) -> 400 XML_INVALID, no file content', request: request('PROPFIND', corpus('/a.txt'), PROPFIND_0, xxe), status: 400, code: 'XML_INVALID', notBody: /root:/ },
  { title: 'PROPFIND with nested entities (billion laughs) -> 400 XML_INVALID', request: request('PROPFIND', corpus('/a.txt'), PROPFIND_0, billionLaughs), status: 400, code: 'XML_INVALID', notBody: /lollol/ },
  { title: 'PROPFIND whose root element is not DAV:propfind -> 400 XML_INVALID', request: request('PROPFIND', corpus('/a.txt'), PROPFIND_0, LOCKINFO), status: 400, code: 'XML_INVALID' },
  { title: 'PROPFIND with elements nested 5,000 deep -> 400 XML_INVALID', request: request('PROPFIND', corpus('/a.txt'), PROPFIND_0, propfindBody(`<D:propfind xmlns:D="DAV:"><D:prop>${deep(5000)}</D:prop></D:propfind>`)), status: 400, code: 'XML_INVALID' },
  { title: 'PROPFIND with a body that is not UTF-8 (Latin-1 bytes) -> 400 XML_INVALID', request: request('PROPFIND', corpus('/a.txt'), PROPFIND_0, Buffer.from(propfindBody('<D:propfind xmlns:D="DAV:"><D:prop><x xmlns="urn:\xe9"/></D:prop></D:propfind>'), 'latin1')), status: 400, code: 'XML_INVALID' },
  { title: 'PROPPATCH with a non-well-formed body -> 400 XML_INVALID', request: request('PROPPATCH', corpus('/a.txt'), XML, '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x xmlns="urn:x">1</D:prop></D:set></D:propertyupdate>'), status: 400, code: 'XML_INVALID' },
  { title: 'PROPPATCH with a DOCTYPE and an internal entity -> 400 XML_INVALID', request: request('PROPPATCH', corpus('/a.txt'), XML, '<!DOCTYPE d [<!ENTITY e "x">]><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x xmlns="urn:x">&e;</x></D:prop></D:set></D:propertyupdate>'), status: 400, code: 'XML_INVALID' },
  { title: 'PROPPATCH without a set or remove instruction -> 400 XML_INVALID', request: request('PROPPATCH', corpus('/a.txt'), XML, '<D:propertyupdate xmlns:D="DAV:"/>'), status: 400, code: 'XML_INVALID' },
  {
    title: 'PROPPATCH with two <D:set> blocks, one of a protected property (stock webdav-server crashes on two sets) -> 207: 403 for it, 424 for the other, nothing set',
    request: request('PROPPATCH', corpus('/a.txt'), XML, '<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x:one xmlns:x="urn:x">1</x:one></D:prop></D:set><D:set><D:prop><D:getcontentlength>1</D:getcontentlength></D:prop></D:set></D:propertyupdate>'),
    status: 207, body: /HTTP\/1\.1 403[\s\S]*HTTP\/1\.1 424|HTTP\/1\.1 424[\s\S]*HTTP\/1\.1 403/,
  },
  { title: 'LOCK with a non-well-formed body -> 400 XML_INVALID', request: request('LOCK', corpus('/a.txt'), XML, '<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'), status: 400, code: 'XML_INVALID' },
  { title: 'LOCK with a DOCTYPE -> 400 XML_INVALID', request: request('LOCK', corpus('/a.txt'), XML, `<!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/hostname">]>${LOCKINFO}`), status: 400, code: 'XML_INVALID' },
  { title: 'LOCK with a lockinfo that has no lockscope -> 400 XML_INVALID', request: request('LOCK', corpus('/a.txt'), XML, '<D:lockinfo xmlns:D="DAV:"><D:locktype><D:write/></D:locktype></D:lockinfo>'), status: 400, code: 'XML_INVALID' },
  // Body sizes
  { title: 'PROPFIND with Content-Length: 10000000000 (stock webdav-server crashes) -> 413 BODY_TOO_LARGE, connection closed', request: request('PROPFIND', corpus('/a.txt'), [...PROPFIND_0, ['Content-Length', '10000000000']]), status: 413, code: 'BODY_TOO_LARGE', closes: true },
  { title: 'PROPFIND with a chunked body over the XML cap -> 413 BODY_TOO_LARGE', request: request('PROPFIND', corpus('/a.txt'), [...PROPFIND_0, ['Transfer-Encoding', 'chunked']], `${(XML_CAP + 4096).toString(16)}\r\n${' '.repeat(XML_CAP + 4096)}\r\n0\r\n\r\n`), status: 413, code: 'BODY_TOO_LARGE' },
  { title: 'PROPPATCH with a Content-Length over the XML cap -> 413 BODY_TOO_LARGE', request: request('PROPPATCH', corpus('/a.txt'), [...XML, ['Content-Length', String(XML_CAP + 1)]]), status: 413, code: 'BODY_TOO_LARGE', closes: true },
  { title: 'LOCK with Content-Length: 10000000000 -> 413 BODY_TOO_LARGE', request: request('LOCK', corpus('/a.txt'), [...XML, ['Content-Length', '10000000000']]), status: 413, code: 'BODY_TOO_LARGE', closes: true },
  // If header
  { title: 'GET with If: (<urn:uuid:x>) (Not <DAV:no-lock>) (stock webdav-server crashes) -> 200, the second list holds', request: request('GET', corpus('/a.txt'), [['If', '(<urn:uuid:x>) (Not <DAV:no-lock>)']]), status: 200, body: /^version two/ },
  { title: 'PUT with If naming a lock token the server never issued -> 412 PRECONDITION_FAILED', request: ifOn(`(${UNKNOWN_TOKEN})`), status: 412, code: 'PRECONDITION_FAILED' },
  { title: 'DELETE with If naming a lock token the server never issued -> 412 PRECONDITION_FAILED', request: request('DELETE', corpus('/put-target.txt'), [['If', `(${UNKNOWN_TOKEN})`]]), status: 412, code: 'PRECONDITION_FAILED' },
  { title: 'PUT with an If header of 200 lists of unknown tokens (11 KiB) -> 400 IF_HEADER_INVALID (at most 64 lists are evaluated)', request: ifOn(`(${UNKNOWN_TOKEN}) `.repeat(200)), status: 400, code: 'IF_HEADER_INVALID', body: /At most 64 lists/ },
  { title: 'PUT with an If header of 64 lists of unknown tokens -> 412 PRECONDITION_FAILED', request: ifOn(`(${UNKNOWN_TOKEN}) `.repeat(64)), status: 412, code: 'PRECONDITION_FAILED' },
  { title: 'PUT with If: an unbalanced parenthesis -> 400 IF_HEADER_INVALID', request: ifOn('(<urn:uuid:x>'), status: 400, code: 'IF_HEADER_INVALID' },
  { title: 'PUT with If: a state token without angle brackets -> 400 IF_HEADER_INVALID', request: ifOn('(urn:uuid:x)'), status: 400, code: 'IF_HEADER_INVALID' },
  { title: 'PUT with an empty If header -> 400 IF_HEADER_INVALID', request: ifOn(''), status: 400, code: 'IF_HEADER_INVALID' },
  { title: 'PUT with If: () (an empty list) -> 400 IF_HEADER_INVALID', request: ifOn('()'), status: 400, code: 'IF_HEADER_INVALID' },
  { title: 'PUT with If: (Not) -> 400 IF_HEADER_INVALID', request: ifOn('(Not)'), status: 400, code: 'IF_HEADER_INVALID' },
  { title: 'PUT with If: an unterminated entity tag -> 400 IF_HEADER_INVALID', request: ifOn('(["unterminated)'), status: 400, code: 'IF_HEADER_INVALID' },
  { title: 'PUT with If: a tagged list whose resource tag is not closed -> 400 IF_HEADER_INVALID', request: ifOn(`<http://${'x'.repeat(10)} (${UNKNOWN_TOKEN})`), status: 400, code: 'IF_HEADER_INVALID' },
  // Depth
  { title: 'PROPFIND with Depth: 2 -> 400 DEPTH_INVALID', request: request('PROPFIND', corpus(''), [...XML, ['Depth', '2']], ALLPROP), status: 400, code: 'DEPTH_INVALID' },
  { title: 'PROPFIND with Depth: -1 -> 400 DEPTH_INVALID', request: request('PROPFIND', corpus(''), [...XML, ['Depth', '-1']], ALLPROP), status: 400, code: 'DEPTH_INVALID' },
  { title: 'PROPFIND with Depth: infinity -> 403 PROPFIND_INFINITE_DEPTH with DAV:propfind-finite-depth', request: request('PROPFIND', corpus(''), [...XML, ['Depth', 'infinity']], ALLPROP), status: 403, code: 'PROPFIND_INFINITE_DEPTH', body: /<D:propfind-finite-depth\/>/ },
  { title: 'PROPFIND with two Depth headers (0 and 1) -> 400 DEPTH_INVALID', request: request('PROPFIND', corpus(''), [...XML, ['Depth', '0'], ['Depth', '1']], ALLPROP), status: 400, code: 'DEPTH_INVALID' },
  { title: 'DELETE of a folder with Depth: 0 (only infinity is allowed) -> 400 DEPTH_INVALID', request: request('DELETE', corpus('/keep'), [['Depth', '0']]), status: 400, code: 'DEPTH_INVALID' },
  // Destination
  { title: 'COPY to another host -> 502 DESTINATION_OTHER_SERVER', request: copyTo(`http://elsewhere.example${corpus('/x.txt')}`), status: 502, code: 'DESTINATION_OTHER_SERVER' },
  { title: 'COPY to a URL on this host outside /dav/ -> 403 FORBIDDEN', request: copyTo(`http://${'HOST'}/admin/x.txt`), status: 403, code: 'FORBIDDEN' },
  { title: 'COPY with a malformed Destination (http://[bad) -> 400 DESTINATION_INVALID', request: copyTo('http://[bad'), status: 400, code: 'DESTINATION_INVALID' },
  { title: 'MOVE onto itself -> 403 FORBIDDEN', request: copyTo(corpus('/a.txt'), 'MOVE'), status: 403, code: 'FORBIDDEN' },
  { title: 'MOVE of a folder into itself -> 403 FORBIDDEN', request: request('MOVE', corpus('/sub'), [['Destination', corpus('/sub/inner')]]), status: 403, code: 'FORBIDDEN' },
  { title: 'MOVE to a name holding an encoded slash (x%2F..%2Fy) -> 400 PATH_INVALID', request: copyTo(corpus('/x%2F..%2Fy'), 'MOVE'), status: 400, code: 'PATH_INVALID' },
  { title: 'COPY to a Destination that climbs out of the mount with %2e%2e -> 403 FORBIDDEN', request: copyTo(corpus('/%2e%2e/%2e%2e/%2e%2e/etc/passwd')), status: 403, code: 'FORBIDDEN' },
  { title: 'COPY to a Destination with a NUL (%00) -> 400 PATH_INVALID', request: copyTo(corpus('/x%00.txt')), status: 400, code: 'PATH_INVALID' },
  // Paths
  { title: 'GET with %2e%2e segments in the path -> 400 PATH_INVALID', request: get(corpus('/%2e%2e/%2e%2e/%2e%2e/etc/passwd')), status: 400, code: 'PATH_INVALID' },
  { title: 'GET with raw .. segments in the path -> 400 PATH_INVALID', request: get(corpus('/../../a.txt')), status: 400, code: 'PATH_INVALID' },
  { title: 'GET with an encoded slash (..%2F..%2Fa.txt) -> 400 PATH_INVALID', request: get(corpus('/..%2F..%2Fa.txt')), status: 400, code: 'PATH_INVALID' },
  { title: 'GET with a NUL in a name (a%00.txt) -> 400 PATH_INVALID', request: get(corpus('/a%00.txt')), status: 400, code: 'PATH_INVALID' },
  { title: 'GET with an overlong UTF-8 slash (%C0%AF) -> 400 PATH_INVALID', request: get(corpus('/%C0%AF..%C0%AFa.txt')), status: 400, code: 'PATH_INVALID' },
  { title: 'GET with a byte that is not UTF-8 (%FF) -> 400 PATH_INVALID', request: get(corpus('/%FF.txt')), status: 400, code: 'PATH_INVALID' },
  { title: 'GET with a backslash in the path -> 400', request: get(`${corpus('')}\\..\\a.txt`), status: 400 },
  { title: 'GET with an encoded backslash (%5C) -> 400 PATH_INVALID', request: get(corpus('/..%5C..%5Ca.txt')), status: 400, code: 'PATH_INVALID' },
  { title: 'GET of a malformed study id (lower case) -> 404 NOT_FOUND', request: get('/dav/demo-001/Corpus/a.txt'), status: 404, code: 'NOT_FOUND' },
  { title: 'GET with a name of 256 bytes -> 400 PATH_INVALID', request: get(corpus(`/${'n'.repeat(256)}`)), status: 400, code: 'PATH_INVALID' },
  { title: 'GET with a path 70 folders deep -> 400 PATH_INVALID', request: get(corpus(`/${nested(70)}`)), status: 400, code: 'PATH_INVALID' },
  { title: 'GET with a path of more than 4096 bytes -> 400 PATH_INVALID', request: get(corpus(`/${Array.from({ length: 20 }, () => 'p'.repeat(250)).join('/')}`)), status: 400, code: 'PATH_INVALID' },
  { title: 'GET with a double-encoded %252e%252e -> 404: decoded once, a name that does not exist', request: get(corpus('/%252e%252e/a.txt')), status: 404, code: 'NOT_FOUND' },
  // Headers and framing
  { title: 'PUT with a NUL in a header value -> 400 from the HTTP parser, connection closed', request: request('PUT', corpus('/put-target.txt'), [['X-Change-Reason', 'fix\u0000typo']], 'overwritten\n'), status: 400, closes: true },
  { title: 'GET with a 20 KiB header -> 431, connection closed', request: request('GET', corpus('/a.txt'), [['X-Padding', 'p'.repeat(20 * 1024)]]), status: 431, closes: true },
  { title: 'GET with 20 KiB spread over 400 headers -> 431', request: request('GET', corpus('/a.txt'), Array.from({ length: 400 }, (_, i) => [`X-Pad-${i}`, 'p'.repeat(50)] as const)), status: 431, closes: true },
  { title: 'PUT with an X-Change-Reason of 1,001 characters -> 400 BAD_REQUEST', request: request('PUT', corpus('/put-target.txt'), [['X-Change-Reason', 'r'.repeat(1001)]], 'overwritten\n'), status: 400, code: 'BAD_REQUEST' },
  { title: 'GET with Expect: an unknown expectation -> 417', request: request('GET', corpus('/a.txt'), [['Expect', 'x-teapot']]), status: 417 },
  { title: 'PUT with Expect: 100-continue and no credentials -> 401, nothing stored', request: Buffer.from(head(`PUT ${corpus('/put-target.txt')} HTTP/1.1`, [['Host', 'x'], ['Expect', '100-continue'], ['Content-Length', '12']]) + 'overwritten\n'), status: 401, code: 'AUTH_REQUIRED' },
  { title: 'PUT with both Content-Length and Transfer-Encoding (request smuggling) -> 400, connection closed', request: request('PUT', corpus('/put-target.txt'), [['Content-Length', '5'], ['Transfer-Encoding', 'chunked']], '0\r\n\r\nGET /dav/ HTTP/1.1\r\nHost: x\r\n\r\n'), status: 400, closes: true },
  { title: 'PUT with a negative Content-Length -> 400, connection closed', request: request('PUT', corpus('/put-target.txt'), [['Content-Length', '-1']]), status: 400, closes: true },
  { title: 'PUT with a chunk size that is not hexadecimal -> 400, nothing stored', request: request('PUT', corpus('/put-target.txt'), [['Transfer-Encoding', 'chunked']], '5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n'), status: 400, closes: true },
  { title: 'GET without a Host header -> 400', request: Buffer.from(head(`GET ${corpus('/a.txt')} HTTP/1.1`, [['Authorization', AUTH]])), status: 400 },
  { title: 'Authorization: Basic with a value that is not base64 -> 401', request: Buffer.from(head(`GET ${corpus('/a.txt')} HTTP/1.1`, [['Host', 'x'], ['Authorization', 'Basic !!!not base64!!!']])), status: 401 },
  // Methods
  { title: 'a method the HTTP parser does not know (FROB) -> 400, connection closed', request: request('FROB', corpus('/a.txt')), status: 400, closes: true },
  { title: 'PATCH (a method WebDAV does not have) -> 501 NOT_IMPLEMENTED', request: request('PATCH', corpus('/put-target.txt'), [], 'x'), status: 501, code: 'NOT_IMPLEMENTED' },
  { title: 'TRACE -> 501 NOT_IMPLEMENTED, nothing of the request echoed', request: request('TRACE', corpus('/a.txt')), status: 501, code: 'NOT_IMPLEMENTED', notBody: /Authorization|Basic /i },
  { title: 'MKCOL with an XML body -> 415 UNSUPPORTED_MEDIA_TYPE', request: request('MKCOL', corpus('/newfolder'), XML, '<D:mkcol xmlns:D="DAV:"/>'), status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  // Ranges
  { title: 'Range: bytes=99999999999999999999- -> 416 with Content-Range bytes */size', request: range('bytes=99999999999999999999-'), status: 416, check: (t, x) => t.is(x.responses[0]?.headers['content-range'], `bytes */${A_TXT.length}`) },
  { title: 'Range with 500 ranges -> 200 and the whole file (multiple ranges are ignored)', request: range(`bytes=${Array.from({ length: 500 }, (_, i) => `${i}-${i}`).join(',')}`), status: 200, body: /^version two of a\.txt\n$/ },
  { title: 'Range: bytes=5-1 (last before first) -> 200 and the whole file', request: range('bytes=5-1'), status: 200, body: /^version two of a\.txt\n$/ },
  { title: 'Range: bytes=-99999999999999999999 -> 206 with the whole file', request: range('bytes=-99999999999999999999'), status: 206, body: /^version two of a\.txt\n$/ },
  { title: 'Range: bytes=--5 (not a range) -> 200 and the whole file', request: range('bytes=--5'), status: 200, body: /^version two of a\.txt\n$/ },
  // Locks
  { title: 'UNLOCK with a lock token that is not on the resource -> 409 LOCK_TOKEN_MISMATCH', request: request('UNLOCK', corpus('/a.txt'), [['Lock-Token', UNKNOWN_TOKEN]]), status: 409, code: 'LOCK_TOKEN_MISMATCH', body: /lock-token-matches-request-uri/ },
  { title: 'UNLOCK with a Lock-Token header that is not a Coded-URL -> 400', request: request('UNLOCK', corpus('/a.txt'), [['Lock-Token', 'garbage']]), status: 400 },
  // Pipelining
  {
    title: 'a good GET with garbage pipelined after it -> 200, then 400 and the connection closed',
    request: Buffer.concat([request('GET', corpus('/a.txt')), Buffer.from('\u0000\u0001GARBAGE \u00ff\r\n\r\n', 'latin1')]),
    status: 200, body: /^version two/, closes: true,
    check: (t, x) => t.is(x.responses[1]?.status, 400),
  },
];

// The corpus is built before the appliance runs: its address goes in now.
function resolveHost(bytes: Buffer | string): Buffer {
  const text = Buffer.from(bytes).toString('latin1').replace('\r\nHost: HOST\r\n', `\r\nHost: ${host}\r\n`).replaceAll('http://HOST/', `http://${host}/`);
  return Buffer.from(text, 'latin1');
}

function assertNoCors(t: ExecutionContext, responses: readonly RawResponse[]): void {
  for (const response of responses) t.false(Object.keys(response.headers).some((name) => name.startsWith('access-control-')), `CORS header in a ${response.status}`);
}

async function assertServerAnswers(t: ExecutionContext): Promise<void> {
  const reply = await send(running, corpus(PROBE), {}, 'http');
  t.is(reply.status, 200, 'a normal GET afterwards');
  t.is(reply.text, PROBE_TEXT);
}

for (const hostile of CASES) {
  test.serial(hostile.title, async (t) => {
    const before = await snapshotStudy(running.appliance.vault, STUDY);
    // When the server must close the connection, read until it does.
    const exchange = await rawExchange(running.http, resolveHost(hostile.request), hostile.closes ? { responses: Infinity, timeoutMs: 4_000 } : { timeoutMs: 8_000 });
    const reply = exchange.responses[0];
    if (!reply) return t.fail(`no response (closed: ${exchange.closed})`);
    t.is(reply.status, hostile.status, reply.text.slice(0, 500));
    if (hostile.code !== undefined) t.is(reply.headers['x-vellum-error'], hostile.code);
    if (hostile.body) t.regex(reply.text, hostile.body);
    if (hostile.notBody) t.notRegex(reply.text, hostile.notBody);
    if (hostile.closes) t.true(exchange.closed, 'the server closes the connection');
    hostile.check?.(t, exchange);
    assertNoCors(t, [...exchange.interim, ...exchange.responses]);
    await assertServerAnswers(t);
    t.deepEqual(await snapshotStudy(running.appliance.vault, STUDY), before, 'nothing changed in the study');
  });
}

test.serial('the corpus has at least 40 hostile requests', (t) => {
  t.true(CASES.length >= 40, String(CASES.length));
});

test.serial('no answer to ordinary requests carries Access-Control-Allow-Origin (the library set it to *)', async (t) => {
  const replies = await Promise.all([
    send(running, corpus('/a.txt'), {}, 'http'),
    send(running, corpus(''), { method: 'PROPFIND', headers: { Depth: '1' } }, 'http'),
    send(running, corpus('/a.txt'), { method: 'OPTIONS', headers: { Origin: 'https://evil.example' } }, 'http'),
    send(running, corpus('/a.txt'), { method: 'PROPFIND', headers: { Depth: '0', Origin: 'https://evil.example' } }, 'http'),
    send(running, corpus('/nope'), { user: null, headers: { Origin: 'https://evil.example' } }, 'http'),
  ]);
  t.deepEqual(replies.map((reply) => reply.status), [200, 207, 200, 207, 401]);
  for (const reply of replies) t.false(Object.keys(reply.headers).some((name) => name.startsWith('access-control-')), String(reply.status));
});

test.serial('PROPPATCH with two <D:set> blocks on a file (litmus propset; stock webdav-server crashes) -> 207, both properties set', async (t) => {
  const body = '<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:x="urn:x"><D:set><D:prop><x:one>1</x:one></D:prop></D:set><D:set><D:prop><x:two>2</x:two></D:prop></D:set></D:propertyupdate>';
  const reply = await send(running, corpus('/props.txt'), { method: 'PROPPATCH', headers: { 'Content-Type': 'application/xml' }, body }, 'http');
  t.is(reply.status, 207, reply.text);
  t.notRegex(reply.text, /HTTP\/1\.1 [45]\d\d/);
  const found = await send(running, corpus('/props.txt'), { method: 'PROPFIND', headers: { Depth: '0' }, body: '<D:propfind xmlns:D="DAV:" xmlns:x="urn:x"><D:prop><x:one/><x:two/></D:prop></D:propfind>' }, 'http');
  t.is(found.status, 207);
  t.regex(found.text, /one[^>]*>1</);
  t.regex(found.text, /two[^>]*>2</);
  await assertServerAnswers(t);
});

// ---------------------------------------------------------------------------
// Timeouts: slow clients are cut, others are served meanwhile.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test.serial('a client that trickles its headers is cut after the headers timeout while another client is served', async (t) => {
  const slow = rawExchange(running.http, '', {
    responses: Infinity,
    timeoutMs: HEADERS_TIMEOUT_MS * 5,
    write: async (socket) => {
      const bytes = resolveHost(request('GET', corpus('/a.txt'))).toString('latin1').replace(/\r\n\r\n$/, '\r\n');
      for (let i = 0; !socket.destroyed && i < 1000; i++) {
        socket.write(i < bytes.length ? bytes[i]! : `X-Slow-${i}: y\r\n`);
        await sleep(200);
      }
    },
  });
  await sleep(300);
  const served = await send(running, corpus('/a.txt'), {}, 'http');
  t.is(served.status, 200, 'another client is served while the slow one trickles');
  const cut = await slow;
  t.true(cut.closed, 'the trickling client is disconnected');
  t.true(cut.elapsedMs < HEADERS_TIMEOUT_MS + 2_500, `cut after ${cut.elapsedMs} ms`);
  t.true(cut.responses.every((response) => response.status === 408), 'if anything, it is told 408');
});

test.serial('a PUT whose body stalls is cut after the idle timeout, and nothing is stored', async (t) => {
  const before = await snapshotStudy(running.appliance.vault, STUDY);
  const stalled = rawExchange(running.http, '', {
    timeoutMs: IDLE_TIMEOUT_MS * 4,
    write: async (socket) => {
      socket.write(resolveHost(request('PUT', corpus('/stalled.txt'), [['Content-Length', '1000']])));
      socket.write('x'.repeat(100));
    },
  });
  await sleep(500);
  t.is((await send(running, corpus('/a.txt'), {}, 'http')).status, 200, 'another client is served meanwhile');
  const cut = await stalled;
  t.true(cut.closed, 'the stalled upload is disconnected');
  t.true(cut.elapsedMs >= IDLE_TIMEOUT_MS - 200 && cut.elapsedMs < IDLE_TIMEOUT_MS + 3_000, `cut after ${cut.elapsedMs} ms`);
  await sleep(200);
  t.is((await send(running, corpus('/stalled.txt'), {}, 'http')).status, 404);
  t.deepEqual(await snapshotStudy(running.appliance.vault, STUDY), before);
});

test.serial('a slow but steady upload that lasts longer than the idle timeout is not cut', async (t) => {
  const body = 's'.repeat(24);
  const steady = await rawExchange(running.http, '', {
    timeoutMs: 30_000,
    write: async (socket) => {
      socket.write(resolveHost(request('PUT', corpus('/steady.txt'), [['Content-Length', String(body.length)]])));
      // 24 bytes, one every 250 ms: 6 s in all, twice the idle timeout.
      for (const byte of body) {
        await sleep(250);
        socket.write(byte);
      }
    },
  });
  t.is(steady.responses[0]?.status, 201);
  t.is((await send(running, corpus('/steady.txt'), {}, 'http')).text, body);
  t.is((await send(running, corpus('/steady.txt'), { method: 'DELETE' }, 'http')).status, 204);
});

test.serial('an idle keep-alive connection is closed after the keep-alive timeout', async (t) => {
  const exchange = await rawExchange(running.http, resolveHost(request('GET', corpus(PROBE))), { responses: Infinity, timeoutMs: KEEP_ALIVE_TIMEOUT_MS + 5_000 });
  t.is(exchange.responses[0]?.status, 200);
  t.true(exchange.closed);
  t.true(exchange.elapsedMs >= KEEP_ALIVE_TIMEOUT_MS - 100 && exchange.elapsedMs < KEEP_ALIVE_TIMEOUT_MS + 3_000, `closed after ${exchange.elapsedMs} ms`);
});

// ---------------------------------------------------------------------------
// The global guard, in a process of its own (a test worker treats any stray
// exception as a failure of its own): a handler that throws in every way a
// library can gets a 500 for that request, and the process serves on.

const GUARD_CHILD = fileURLToPath(new URL('../support/crash-guard-child.ts', import.meta.url));

test.serial('the global guard turns a thrown error (sync, rejected, from a callback, unhandled rejection) into a 500 and the process stays up', async (t) => {
  const child = spawn(process.execPath, [GUARD_CHILD], { stdio: ['pipe', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  try {
    const [line] = (await once(child.stdout, 'data')) as [Buffer];
    const base = line.toString().trim();
    t.regex(base, /^http:\/\/127\.0\.0\.1:\d+$/);
    for (const how of ['sync', 'rejected', 'callback', 'listener', 'unhandled-rejection', 'after-headers']) {
      const exchange = await rawExchange(base, head(`GET /${how} HTTP/1.1`, [['Host', 'x']]), how === 'after-headers' ? { responses: Infinity, timeoutMs: 5_000 } : { timeoutMs: 5_000 });
      if (how === 'after-headers') {
        t.true(exchange.closed, 'a response already begun is cut');
      } else {
        t.is(exchange.responses[0]?.status, 500, how);
        t.is(exchange.responses[0]?.headers['x-vellum-error'], 'INTERNAL', how);
      }
      const fine = await rawExchange(base, head('GET /fine HTTP/1.1', [['Host', 'x']]));
      t.is(fine.responses[0]?.status, 200, `the process still answers after "${how}"`);
    }
    t.is(child.exitCode, null, 'the process is still running');
    t.regex(stderr.join(''), /boom: sync/, 'the failure was logged');
  } finally {
    child.kill('SIGKILL');
  }
});
