// TOTP (RFC 6238) and HOTP (RFC 4226) against the RFCs' own test vectors, the
// drift window, replay refusal, base32 (RFC 4648) and the otpauth:// URI.

import test from 'ava';
import {
  base32Decode, base32Encode, hotp, newTotpSecret, otpauthUri, totpCode, totpStep, verifyTotp,
} from '../../src/identity/totp.ts';

// RFC 4226 appendix D and RFC 6238 appendix B (SHA-1): the ASCII seed "12345678901234567890".
const RFC_SECRET = Buffer.from('12345678901234567890', 'ascii');

test('RFC 4226 appendix D: HOTP values for counters 0 to 9', (t) => {
  const expected = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];
  t.deepEqual(expected.map((_, counter) => hotp(RFC_SECRET, counter)), expected);
});

test('RFC 6238 appendix B: SHA-1 TOTP values (8 digits) at the listed times', (t) => {
  const vectors: [number, string][] = [
    [59, '94287082'], [1111111109, '07081804'], [1111111111, '14050471'],
    [1234567890, '89005924'], [2000000000, '69279037'], [20000000000, '65353130'],
  ];
  for (const [seconds, code] of vectors) t.is(totpCode(RFC_SECRET, seconds * 1000, 8), code, `T = ${seconds}`);
  // Six digits are the last six of the same truncated value.
  t.is(totpCode(RFC_SECRET, 59_000), '287082');
});

test('a code is accepted in its own step and one step either side, not two', (t) => {
  const at = 1_111_111_111_000;
  const step = totpStep(at);
  for (const offset of [-1, 0, 1]) t.is(verifyTotp(RFC_SECRET, hotp(RFC_SECRET, step + offset), at, null), step + offset, `offset ${offset}`);
  for (const offset of [-2, 2]) t.is(verifyTotp(RFC_SECRET, hotp(RFC_SECRET, step + offset), at, null), null, `offset ${offset}`);
});

test('11.10(d) a code is refused for a step at or before the last accepted one (replay)', (t) => {
  const at = 1_234_567_890_000;
  const step = totpStep(at);
  const code = hotp(RFC_SECRET, step);
  t.is(verifyTotp(RFC_SECRET, code, at, step - 1), step);
  t.is(verifyTotp(RFC_SECRET, code, at, step), null, 'the same code again');
  t.is(verifyTotp(RFC_SECRET, hotp(RFC_SECRET, step - 1), at, step), null, 'an older code after a newer one was used');
  t.is(verifyTotp(RFC_SECRET, hotp(RFC_SECRET, step + 1), at, step), step + 1, 'the next step still works');
});

test('malformed codes are refused before any comparison', (t) => {
  const at = 59_000;
  for (const code of ['', '28708', '2870822', '28708a', ' 287082', '２８７０８２']) t.is(verifyTotp(RFC_SECRET, code, at, null), null, JSON.stringify(code));
});

test('RFC 4648 base32 vectors, and decoding ignores case, spaces and padding', (t) => {
  const vectors: [string, string][] = [['', ''], ['f', 'MY'], ['fo', 'MZXQ'], ['foo', 'MZXW6'], ['foob', 'MZXW6YQ'], ['fooba', 'MZXW6YTB'], ['foobar', 'MZXW6YTBOI']];
  for (const [plain, encoded] of vectors) {
    t.is(base32Encode(Buffer.from(plain)), encoded);
    t.is(base32Decode(encoded)?.toString(), plain);
  }
  t.is(base32Decode('mzxw 6ytb oi======')?.toString(), 'foobar');
  t.is(base32Decode('MZXW1'), null, '1 is not in the alphabet');
});

test('secrets are 20 random bytes, different every time', (t) => {
  const a = newTotpSecret();
  t.is(a.length, 20);
  t.false(a.equals(newTotpSecret()));
});

test('the otpauth URI names issuer and account and carries the secret in base32', (t) => {
  const uri = new URL(otpauthUri('Vellum Test', 'ada', RFC_SECRET));
  t.is(uri.protocol, 'otpauth:');
  t.is(uri.host, 'totp');
  t.is(decodeURIComponent(uri.pathname), '/Vellum Test:ada');
  t.is(uri.searchParams.get('secret'), 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
  t.is(uri.searchParams.get('issuer'), 'Vellum Test');
  t.is(uri.searchParams.get('digits'), '6');
  t.is(uri.searchParams.get('period'), '30');
  t.is(uri.searchParams.get('algorithm'), 'SHA1');
});
