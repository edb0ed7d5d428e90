// HTTP Basic credentials (RFC 7617) for WebDAV (DESIGN invariant 7). Vellum
// parses them itself because webdav-server's parser rejects base64 with '+'
// or '/' and cuts passwords at ':'. A header that is there but unusable is
// 'malformed' (401 AUTH_FAILED); an absent header is null (401 AUTH_REQUIRED).

import test from 'ava';
import { parseBasicAuth } from '../../src/identity/basic-auth.ts';

const basic = (text: string) => `Basic ${Buffer.from(text, 'utf8').toString('base64')}`;
const basicBytes = (bytes: number[]) => `Basic ${Buffer.from(bytes).toString('base64')}`;

test('11.300 a plain login and password are parsed', (t) => {
  t.deepEqual(parseBasicAuth(basic('alice:correct horse')), { login: 'alice', password: 'correct horse' });
  t.deepEqual(parseBasicAuth('Basic YWxpY2U6c2VjcmV0'), { login: 'alice', password: 'secret' });
});

test('11.300 a password keeps every ":" after the first (the login ends at the first)', (t) => {
  t.deepEqual(parseBasicAuth(basic('alice:pa:ss:word:')), { login: 'alice', password: 'pa:ss:word:' });
  t.deepEqual(parseBasicAuth(basic('alice::leading')), { login: 'alice', password: ':leading' });
});

test('11.300 passwords with "+", "/", spaces and other punctuation come through unchanged', (t) => {
  for (const password of ['a+b+c', 'a/b/c', '  spaces  around  ', 'p%20w', '=+/=', 'tab\there', '"quoted"\\']) {
    t.deepEqual(parseBasicAuth(basic(`alice:${password}`)), { login: 'alice', password }, JSON.stringify(password));
  }
});

test('11.300 non-ASCII logins and passwords are decoded as UTF-8', (t) => {
  t.deepEqual(parseBasicAuth(basic('jürgen:pässwörd€')), { login: 'jürgen', password: 'pässwörd€' });
  t.deepEqual(parseBasicAuth(basic('李雷:密码😀')), { login: '李雷', password: '密码😀' });
  // Not latin1: "ü" is the two bytes C3 BC, not one byte FC.
  t.deepEqual(parseBasicAuth(basicBytes([0x75, 0x3a, 0xc3, 0xbc])), { login: 'u', password: 'ü' });
});

test('11.300 base64 whose encoding itself contains "+" and "/" is accepted (webdav-server refuses it)', (t) => {
  const cases: [string, string][] = [
    ['dTp+fn4/Pz8=', 'u:~~~???'],
    ['Ym9iOj4+Pj8/Pw==', 'bob:>>>???'],
    ['ZHIud2hvOj8/Pn5+Pw==', 'dr.who:??>~~?'],
  ];
  for (const [encoded, text] of cases) {
    t.true(encoded.includes('+') && encoded.includes('/'), `precondition: ${encoded} uses both characters`);
    t.is(Buffer.from(text).toString('base64'), encoded);
    const colon = text.indexOf(':');
    t.deepEqual(parseBasicAuth(`Basic ${encoded}`), { login: text.slice(0, colon), password: text.slice(colon + 1) });
  }
});

test('the scheme is case-insensitive and surrounding blanks are tolerated', (t) => {
  const expected = { login: 'alice', password: 'secret' };
  t.deepEqual(parseBasicAuth('basic YWxpY2U6c2VjcmV0'), expected);
  t.deepEqual(parseBasicAuth('BASIC YWxpY2U6c2VjcmV0'), expected);
  t.deepEqual(parseBasicAuth('Basic   YWxpY2U6c2VjcmV0  '), expected);
  t.deepEqual(parseBasicAuth('Basic\tYWxpY2U6c2VjcmV0'), expected);
});

test('an empty password is passed on as empty (the directory refuses it; it is not a parse error)', (t) => {
  t.deepEqual(parseBasicAuth(basic('alice:')), { login: 'alice', password: '' });
});

test('a missing Authorization header is null, not malformed', (t) => {
  t.is(parseBasicAuth(undefined), null);
});

test('DESIGN 8 another scheme, or Basic without credentials, is malformed', (t) => {
  for (const header of ['', 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.x', 'Digest username="alice"', 'Basic', 'Basic ', 'BasicYWxpY2U6c2VjcmV0', 'NTLM TlRMTVNTUAAB', ' Basic YWxpY2U6c2VjcmV0x']) {
    t.is(parseBasicAuth(header), 'malformed', JSON.stringify(header));
  }
});

test('DESIGN 8 bad base64 is malformed', (t) => {
  for (const header of ['Basic YWxpY2U6c2VjcmV0!', 'Basic YWxp Y2U6c2VjcmV0', 'Basic YWxpY2U6=c2VjcmV0', 'Basic ====', 'Basic YWxpY2U6c2VjcmV0===', 'Basic Y\u00e9xpY2U6', 'Basic YWxpY2U6c2VjcmV0\u0000']) {
    t.is(parseBasicAuth(header), 'malformed', JSON.stringify(header));
  }
});

test('DESIGN 8 credentials without a colon, or with an empty login, are malformed', (t) => {
  t.is(parseBasicAuth(basic('alice')), 'malformed');
  t.is(parseBasicAuth(basic(':secret')), 'malformed');
  t.is(parseBasicAuth(basic(':')), 'malformed');
  t.is(parseBasicAuth(basic('')), 'malformed');
});

test('DESIGN 8 credentials that are not valid UTF-8 are malformed', (t) => {
  t.is(parseBasicAuth(basicBytes([0x61, 0x3a, 0xff, 0xfe])), 'malformed', 'bytes that never occur in UTF-8');
  t.is(parseBasicAuth(basicBytes([0x61, 0x3a, 0xc3])), 'malformed', 'a truncated two-byte sequence');
  t.is(parseBasicAuth(basicBytes([0xc0, 0xaf, 0x3a, 0x61])), 'malformed', 'an overlong encoding of "/"');
  t.is(parseBasicAuth(basicBytes([0x61, 0x3a, 0xed, 0xa0, 0x80])), 'malformed', 'an encoded surrogate');
});

test('DESIGN 8 a login with control characters is malformed', (t) => {
  t.is(parseBasicAuth(basic('ali\u0000ce:secret')), 'malformed');
  t.is(parseBasicAuth(basic('alice\n:secret')), 'malformed');
  t.is(parseBasicAuth(basic('al\u007fice:secret')), 'malformed');
});

test('DESIGN 8 an over-long header is malformed without being decoded', (t) => {
  const long = basic(`alice:${'x'.repeat(4000)}`);
  t.true(long.length > 4096);
  t.is(parseBasicAuth(long), 'malformed');
  const justFits = basic(`alice:${'x'.repeat(3000)}`);
  t.true(justFits.length <= 4096);
  t.deepEqual(parseBasicAuth(justFits), { login: 'alice', password: 'x'.repeat(3000) });
  t.is(parseBasicAuth(`Basic ${'A'.repeat(1024 * 1024)}`), 'malformed');
});
