// The If header (RFC 4918 §10.4) parser and evaluator, on their own: both
// list forms, Not, state tokens, entity tags, and a clear IF_HEADER_INVALID
// (never a crash) for what the grammar does not allow. Evaluation runs
// against resource states given by the test.

import test from 'ava';
import { evaluateIf, parseIfHeader, stateTokens, type ResourceState } from '../../src/dav/if-header.ts';
import { isVellumError } from '../../src/kernel/index.ts';

const TOKEN = 'opaquelocktoken:0a4c7e8e-6a5b-4f1e-9c55-3b1d2f4e6a70';
const ETAG = '"v1-abc"';

function rejects(t: import('ava').ExecutionContext, header: string) {
  const error = t.throws(() => parseIfHeader(header), undefined, header);
  t.true(isVellumError(error, 'IF_HEADER_INVALID'), `${header}: ${String(error)}`);
}

test('an untagged list with a state token and an entity tag', (t) => {
  t.deepEqual(parseIfHeader(`(<${TOKEN}> [${ETAG}])`), [
    { resource: null, conditions: [{ not: false, kind: 'token', token: TOKEN }, { not: false, kind: 'etag', etag: ETAG, weak: false }] },
  ]);
});

test('the header that kills stock webdav-server parses: two lists, the second with Not', (t) => {
  t.deepEqual(parseIfHeader('(<urn:uuid:x>) (Not <DAV:no-lock>)'), [
    { resource: null, conditions: [{ not: false, kind: 'token', token: 'urn:uuid:x' }] },
    { resource: null, conditions: [{ not: true, kind: 'token', token: 'DAV:no-lock' }] },
  ]);
});

test('Not is case-insensitive and may stand before an entity tag; weak tags are marked', (t) => {
  t.deepEqual(parseIfHeader('(NOT [W/"x"] not<DAV:no-lock>)')[0]!.conditions, [
    { not: true, kind: 'etag', etag: '"x"', weak: true },
    { not: true, kind: 'token', token: 'DAV:no-lock' },
  ]);
});

test('tagged lists: each list belongs to the resource tag before it (absolute URL or path)', (t) => {
  const lists = parseIfHeader(`<http://h/dav/S/a> (<${TOKEN}>) ([${ETAG}]) </dav/S/b/> (Not <DAV:no-lock>)`);
  t.deepEqual(lists.map((list) => list.resource), ['http://h/dav/S/a', 'http://h/dav/S/a', '/dav/S/b/']);
});

test('whitespace between the parts is optional and tabs count as space', (t) => {
  t.is(parseIfHeader(`\t(<${TOKEN}>[${ETAG}])(Not<DAV:no-lock>)  `).length, 2);
  t.is(parseIfHeader(`( <${TOKEN}>  [ ${ETAG} ] )`)[0]!.conditions.length, 2);
});

test('what the grammar does not allow is IF_HEADER_INVALID', (t) => {
  for (const header of [
    '', '   ', '()', '(', ')', `(<${TOKEN}>`, `<${TOKEN}>`, '(<urn:uuid:x)', '(<no scheme>)', '(<>)', '(<relative/path>)',
    '([unquoted])', '(["open)', '(["x" )', '(Not)', '(Nothing <DAV:no-lock>)', '(<DAV:no-lock>) garbage',
    `(<${TOKEN}>) <http://h/x> (<${TOKEN}>)`, `<http://h/x> (<${TOKEN}>) (<${TOKEN}>) (<x:y>) junk`, '<relative> (<DAV:no-lock>)',
    '<http://h/x>', '<http://h/x> <http://h/y> (<DAV:no-lock>)', `(<${TOKEN}> , <${TOKEN}>)`, '([W/x])', '(["a"b"])',
  ]) rejects(t, header);
});

test('the untagged form may not follow a tagged list', (t) => {
  rejects(t, `<http://h/x> (<${TOKEN}>) junk (<${TOKEN}>)`);
  rejects(t, `(<${TOKEN}>) <http://h/x> (<${TOKEN}>)`);
});

test('huge headers are refused by count, not by running out of memory', (t) => {
  rejects(t, '(<DAV:no-lock>) '.repeat(65));
  rejects(t, `(${'<DAV:no-lock> '.repeat(257)})`);
  t.is(parseIfHeader('(<DAV:no-lock>) '.repeat(64)).length, 64);
});

test('state tokens are what the request submits, each once', (t) => {
  t.deepEqual(stateTokens(parseIfHeader(`(<${TOKEN}> [${ETAG}]) (Not <DAV:no-lock> <${TOKEN}>)`)), [TOKEN, 'DAV:no-lock']);
  t.deepEqual(stateTokens(parseIfHeader(`([${ETAG}])`)), []);
});

const locked: ResourceState = { etag: ETAG, lockTokens: new Set([TOKEN]) };
const unlocked: ResourceState = { etag: ETAG, lockTokens: new Set() };
const missing: ResourceState = { etag: null, lockTokens: new Set() };
const on = (state: ResourceState) => async () => state;
const holds = (header: string, state: ResourceState) => evaluateIf(parseIfHeader(header), on(state));

test('litmus conditional PUTs evaluate as RFC 4918 §10.4.3 says', async (t) => {
  t.true(await holds(`(<${TOKEN}> [${ETAG}])`, locked), 'cond_put');
  t.false(await holds(`(<DAV:no-lock> [${ETAG}])`, locked), 'fail_cond_put');
  t.true(await holds(`(<${TOKEN}>) (Not <DAV:no-lock>)`, locked), 'cond_put_with_not');
  t.true(await holds(`(<${TOKEN}x>) (Not <DAV:no-lock>)`, locked), 'cond_put_corrupt_token holds; the lock check refuses it later');
  t.true(await holds(`(<${TOKEN}> [${ETAG}]) (Not <DAV:no-lock> [${ETAG}])`, locked), 'complex_cond_put');
  t.false(await holds(`(<${TOKEN}> ["v1-abd"]) (Not <DAV:no-lock> ["v1-abd"])`, locked), 'fail_complex_cond_put');
  t.false(await holds('(<DAV:no-lock>)', unlocked), 'fail_cond_put_unlocked');
});

test('entity tags compare strongly: a weak tag never matches; no resource matches no tag', async (t) => {
  t.true(await holds(`([${ETAG}])`, unlocked));
  t.false(await holds(`([W/${ETAG}])`, unlocked));
  t.false(await holds(`([${ETAG}])`, missing));
  t.true(await holds(`(Not [${ETAG}])`, missing));
  t.false(await holds(`([${ETAG}])`, { etag: `W/${ETAG}`, lockTokens: new Set() }));
});

test('a token that is not on the resource does not match; the whole header holds when any list does', async (t) => {
  t.false(await holds(`(<${TOKEN}>)`, unlocked));
  t.true(await holds(`(<${TOKEN}>) ([${ETAG}])`, unlocked));
  t.false(await holds(`(<${TOKEN}> Not [${ETAG}])`, locked));
});

test('tagged lists are evaluated against the resource they name', async (t) => {
  const states: Record<string, ResourceState> = { '/dav/S/a': locked, '/dav/S/b': unlocked };
  const asked: (string | null)[] = [];
  const stateOf = async (resource: string | null) => {
    asked.push(resource);
    return states[resource ?? ''] ?? missing;
  };
  t.true(await evaluateIf(parseIfHeader(`</dav/S/b> (<${TOKEN}>) </dav/S/a> (<${TOKEN}>)`), stateOf));
  t.deepEqual(asked, ['/dav/S/b', '/dav/S/a']);
  t.false(await evaluateIf(parseIfHeader(`</dav/S/b> (<${TOKEN}>) </dav/S/c> (<${TOKEN}>)`), stateOf));
});
