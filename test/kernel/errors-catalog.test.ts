// docs/errors.md and the error catalog (src/kernel/errors.ts) say the same
// thing: every code is documented exactly once with its status and message,
// and the document lists no code the catalog lacks. Operators and client
// authors read the document; the catalog is what the server sends.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { errorCatalog, VellumError, type ErrorCode } from '../../src/kernel/index.ts';

interface DocRow {
  readonly code: string;
  readonly status: string;
  readonly message: string;
  readonly when: string;
  readonly line: number;
}

/** The rows of the table whose header starts with "| Code | HTTP status | Message |". */
function documentedRows(markdown: string): DocRow[] {
  const lines = markdown.split('\n');
  const header = lines.findIndex((line) => /^\|\s*Code\s*\|\s*HTTP status\s*\|\s*Message\s*\|\s*When it happens\s*\|\s*$/.test(line));
  if (header === -1) throw new Error('docs/errors.md has no "| Code | HTTP status | Message | When it happens |" table');
  if (!/^\|(\s*:?-+:?\s*\|){4}\s*$/.test(lines[header + 1] ?? '')) throw new Error('the table header is not followed by a separator row');
  const rows: DocRow[] = [];
  for (let i = header + 2; i < lines.length && lines[i]!.startsWith('|'); i++) {
    const cells = lines[i]!.replace(/^\|/, '').replace(/\|\s*$/, '').split('|').map((cell) => cell.trim());
    if (cells.length !== 4) throw new Error(`docs/errors.md line ${i + 1} has ${cells.length} cells, not 4`);
    const [code, status, message, when] = cells as [string, string, string, string];
    rows.push({ code: code.replace(/^`|`$/g, ''), status, message, when, line: i + 1 });
  }
  return rows;
}

const markdown = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
const rows = documentedRows(markdown);
const catalog = Object.entries(errorCatalog) as [ErrorCode, { status: number; message: string }][];

test('the table has one row per catalog entry', (t) => {
  t.is(rows.length, catalog.length);
});

test('every catalog code appears in docs/errors.md exactly once', (t) => {
  for (const [code] of catalog) {
    const found = rows.filter((row) => row.code === code);
    t.is(found.length, 1, `${code} is documented ${found.length} times`);
  }
});

test('each documented code has the catalog\'s HTTP status and message, and says when it happens', (t) => {
  for (const [code, entry] of catalog) {
    const row = rows.find((r) => r.code === code);
    if (row === undefined) {
      t.fail(`${code} is not documented`);
      continue;
    }
    t.is(row.status, String(entry.status), `${code} (line ${row.line}) status`);
    t.is(row.message, entry.message, `${code} (line ${row.line}) message`);
    t.true(row.when.length >= 10, `${code} (line ${row.line}) says when it happens`);
  }
});

test('docs/errors.md lists no code the catalog lacks', (t) => {
  const known = new Set<string>(Object.keys(errorCatalog));
  const unknown = rows.filter((row) => !known.has(row.code)).map((row) => `${row.code} (line ${row.line})`);
  t.deepEqual(unknown, []);
});

test('the table follows the catalog\'s order, so the two read side by side', (t) => {
  t.deepEqual(rows.map((row) => row.code), catalog.map(([code]) => code));
});

test('the intro documents the WebDAV translation: text/plain, X-Vellum-Error, WWW-Authenticate on 401, Retry-After on 503', (t) => {
  const intro = markdown.slice(0, markdown.indexOf('| Code |'));
  for (const phrase of ['text/plain', 'X-Vellum-Error', 'WWW-Authenticate', 'Basic', 'Retry-After', '401', '503']) {
    t.true(intro.includes(phrase), `the intro mentions ${phrase}`);
  }
});

test('a VellumError carries its catalog status, and its message starts with the catalog message', (t) => {
  for (const [code, entry] of catalog) {
    const plain = new VellumError(code);
    t.is(plain.status, entry.status);
    t.is(plain.message, entry.message);
    const detailed = new VellumError(code, 'More detail.');
    t.is(detailed.message, `${entry.message} More detail.`);
    t.is(detailed.detail, 'More detail.');
  }
});

test('catalog statuses are HTTP error statuses and codes are UPPER_SNAKE_CASE', (t) => {
  for (const [code, entry] of catalog) {
    t.regex(code, /^[A-Z][A-Z0-9_]*$/);
    t.true(entry.status >= 400 && entry.status <= 599, `${code}: ${entry.status}`);
    t.false(entry.message.includes('|'), `${code}: a "|" would break the Markdown table`);
  }
});
