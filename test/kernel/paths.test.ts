// Vault paths, parsed once at the edge (DESIGN invariant 8: path traversal and
// hostile names get a clear 4xx). Everything below the front ends relies on a
// VaultPath never holding '..', '.', a NUL, a control character, a slash inside
// a name, invalid UTF-8, an over-long name or an over-deep tree.

import test from 'ava';
import {
  checkName, childOf, encodeVaultPath, formatVaultPath, isStudyId, isVellumError, parentOf, parseVaultPath, type ErrorCode,
} from '../../src/kernel/index.ts';

function refused(t: import('ava').ExecutionContext, encoded: string, code: ErrorCode = 'PATH_INVALID'): void {
  const error = t.throws(() => parseVaultPath(encoded), undefined, encoded);
  t.true(isVellumError(error, code), `${JSON.stringify(encoded)}: expected ${code}, got ${String(error)}`);
}

test('the root (empty, "/" or only slashes) is the list of studies', (t) => {
  t.deepEqual(parseVaultPath(''), { study: null, names: [] });
  t.deepEqual(parseVaultPath('/'), { study: null, names: [] });
  t.deepEqual(parseVaultPath('//'), { study: null, names: [] });
});

test('a study root and the names below it are parsed; empty segments and a trailing slash are ignored', (t) => {
  t.deepEqual(parseVaultPath('/STUDY-001'), { study: 'STUDY-001', names: [] });
  t.deepEqual(parseVaultPath('/STUDY-001/'), { study: 'STUDY-001', names: [] });
  t.deepEqual(parseVaultPath('/STUDY-001/Raw data/site 12/crf.pdf'), { study: 'STUDY-001', names: ['Raw data', 'site 12', 'crf.pdf'] });
  t.deepEqual(parseVaultPath('/STUDY-001//a///b/'), { study: 'STUDY-001', names: ['a', 'b'] });
});

test('a path must start with "/"', (t) => {
  refused(t, 'STUDY-001/a');
});

test('names are percent-decoded as UTF-8', (t) => {
  t.deepEqual(parseVaultPath('/S1/Raw%20data/caf%C3%A9%20%E2%82%AC.pdf'), { study: 'S1', names: ['Raw data', 'café €.pdf'] });
  t.deepEqual(parseVaultPath('/S1/%F0%9F%98%80'), { study: 'S1', names: ['😀'] });
  t.deepEqual(parseVaultPath('/S1/100%25.txt'), { study: 'S1', names: ['100%.txt'] });
  t.deepEqual(parseVaultPath('/%53%31/a'), { study: 'S1', names: ['a'] }, 'the study id is decoded too');
  t.deepEqual(parseVaultPath('/S1/a+b'), { study: 'S1', names: ['a+b'] }, '"+" is a plus sign in a path, not a space');
});

test('names are NFC-normalised, so a macOS (NFD) name and a Windows (NFC) name are the same file', (t) => {
  const nfd = parseVaultPath('/S1/Cafe%CC%81.pdf'); // "e" + combining acute accent
  const nfc = parseVaultPath('/S1/Caf%C3%A9.pdf');
  t.deepEqual(nfd, { study: 'S1', names: ['Café.pdf'] });
  t.deepEqual(nfd, nfc);
  t.is(nfd.names[0], 'Caf\u00e9.pdf');
  t.is(checkName('A\u030angstr\u00f6m'), '\u00c5ngstr\u00f6m');
});

test('DESIGN 8 ".." is refused, plain or percent-encoded, anywhere in the path', (t) => {
  refused(t, '/S1/..');
  refused(t, '/S1/a/../b');
  refused(t, '/S1/../S2/secret.pdf');
  refused(t, '/..');
  refused(t, '/../etc/passwd');
  refused(t, '/S1/%2E%2E/S2');
  refused(t, '/S1/%2e%2e');
  refused(t, '/S1/.%2E');
});

test('DESIGN 8 "." is refused', (t) => {
  refused(t, '/S1/.');
  refused(t, '/S1/./a');
  refused(t, '/S1/%2E');
  t.deepEqual(parseVaultPath('/S1/.hidden/...x'), { study: 'S1', names: ['.hidden', '...x'] }, 'names that merely start with dots are fine');
});

test('DESIGN 8 a NUL or another control character is refused', (t) => {
  refused(t, '/S1/a%00b');
  refused(t, '/S1/%00');
  refused(t, '/S1/a%0Ab');
  refused(t, '/S1/a%0D%0Ab');
  refused(t, '/S1/a%1Fb');
  refused(t, '/S1/a%7Fb');
  refused(t, '/S1/a\u0000b');
});

test('DESIGN 8 invalid percent-encoding or bytes that are not UTF-8 are refused', (t) => {
  refused(t, '/S1/%FF');
  refused(t, '/S1/a%C3');
  refused(t, '/S1/%C0%AF'); // overlong "/"
  refused(t, '/S1/%ED%A0%80'); // an encoded surrogate
  refused(t, '/S1/%');
  refused(t, '/S1/%2');
  refused(t, '/S1/%zz');
});

test('DESIGN 8 an encoded slash or backslash inside a name is refused, not treated as a separator', (t) => {
  refused(t, '/S1/a%2Fb');
  refused(t, '/S1/a%2fb');
  refused(t, '/S1/%2F..%2F..%2Fetc');
  refused(t, '/S1/..%2F');
  refused(t, '/S1/a%5Cb');
  refused(t, '/S1/a\\b');
  refused(t, '/S1%2FS2');
});

test('DESIGN 8 a name longer than 255 UTF-8 bytes is refused; exactly 255 is fine', (t) => {
  t.deepEqual(parseVaultPath(`/S1/${'a'.repeat(255)}`).names, ['a'.repeat(255)]);
  refused(t, `/S1/${'a'.repeat(256)}`);
  // 85 three-byte characters are 255 bytes; 86 are 258 (but only 86 UTF-16 units).
  const euro = '%E2%82%AC';
  t.is(parseVaultPath(`/S1/${euro.repeat(85)}`).names[0], '€'.repeat(85));
  refused(t, `/S1/${euro.repeat(86)}`);
});

test('DESIGN 8 the 255-byte limit applies to the name as stored, after NFC normalisation', (t) => {
  // U+0958 is 3 bytes; NFC turns it into U+0915 U+093C, 6 bytes. 85 of them pass
  // a check made before normalising but would be stored as 510 bytes.
  const qa = '%E0%A5%98';
  t.is('\u0958'.normalize('NFC'), '\u0915\u093c');
  refused(t, `/S1/${qa.repeat(85)}`);
  t.deepEqual(parseVaultPath(`/S1/${qa.repeat(42)}`).names, ['\u0915\u093c'.repeat(42)]);
  t.throws(() => checkName('\u0958'.repeat(85)));
  for (const name of [parseVaultPath(`/S1/${qa.repeat(42)}`).names[0]!, checkName('e\u0301'.repeat(127))]) {
    t.true(Buffer.byteLength(name, 'utf8') <= 255);
  }
});

test('DESIGN 8 a tree deeper than 64 folders below the study is refused', (t) => {
  const names = (n: number) => Array.from({ length: n }, (_, i) => `d${i}`).join('/');
  t.is(parseVaultPath(`/S1/${names(64)}`).names.length, 64);
  refused(t, `/S1/${names(65)}`);
  refused(t, `/S1/${'a/'.repeat(100000)}`);
});

test('a study id is upper-case letters, digits, "-" and "_", starting with a letter or digit, at most 64 characters', (t) => {
  for (const id of ['S1', 'STUDY-001', 'ABC_DEF', '1TRIAL', 'A'.repeat(64)]) t.true(isStudyId(id), id);
  for (const id of ['', 's1', 'Study-001', '-S1', '_S1', 'S 1', 'S.1', 'S1/', 'A'.repeat(65), 'ÄB']) t.false(isStudyId(id), id);
});

test('a lower-case or otherwise invalid study is not found (404), not a bad path', (t) => {
  refused(t, '/study-001', 'NOT_FOUND');
  refused(t, '/s1/a.pdf', 'NOT_FOUND');
  refused(t, '/-S1', 'NOT_FOUND');
  refused(t, '/S%201', 'NOT_FOUND');
  refused(t, `/${'A'.repeat(65)}`, 'NOT_FOUND');
  refused(t, '/..', 'PATH_INVALID');
});

test('format and encode round trip through parse', (t) => {
  const path = parseVaultPath('/STUDY-1/Raw%20data/caf%C3%A9%20100%25%3F%23.pdf');
  t.is(formatVaultPath(path), '/STUDY-1/Raw data/café 100%?#.pdf');
  t.is(encodeVaultPath(path), '/STUDY-1/Raw%20data/caf%C3%A9%20100%25%3F%23.pdf');
  t.deepEqual(parseVaultPath(encodeVaultPath(path)), path);
  t.is(formatVaultPath({ study: null, names: [] }), '/');
  t.is(encodeVaultPath({ study: null, names: [] }), '/');
});

test('parentOf and childOf walk the tree', (t) => {
  const root = { study: null, names: [] };
  const study = childOf(root, 'S1');
  t.deepEqual(study, { study: 'S1', names: [] });
  const file = childOf(childOf(study, 'a'), 'b.pdf');
  t.deepEqual(file, { study: 'S1', names: ['a', 'b.pdf'] });
  t.deepEqual(parentOf(file), { study: 'S1', names: ['a'] });
  t.deepEqual(parentOf(parentOf(file)), study);
  t.deepEqual(parentOf(study), root);
});

test('checkName refuses what parseVaultPath refuses, for names that arrive another way (MOVE, MKCOL bodies)', (t) => {
  for (const name of ['', '.', '..', 'a/b', 'a\\b', 'a\u0000b', 'a\nb', 'x'.repeat(256)]) {
    const error = t.throws(() => checkName(name), undefined, JSON.stringify(name));
    t.true(isVellumError(error, 'PATH_INVALID'), JSON.stringify(name));
  }
  t.is(checkName('protocol v2 (final).pdf'), 'protocol v2 (final).pdf');
});
