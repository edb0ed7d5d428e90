// The credential cache (issue 5, point 2): found only by exactly the same
// credentials, never holding a password, expiring on time, bounded, and
// dropped on a wrong or changed password, a lockout, a group change or a
// revoked app password.

import test from 'ava';
import { createCredentialCache, normaliseLogin } from '../../src/identity/index.ts';
import { ManualClock, person } from './fixture.ts';

const sam = person('sam');
const dana = person('dana');

test('11.10(d) only the same login and password hit; entries expire after the configured time', (t) => {
  const clock = new ManualClock();
  const cache = createCredentialCache({ seconds: 60, clock });
  cache.remember('sam', 'right', { principal: sam, session: 'basic:t' });
  t.is(cache.find('sam', 'right')?.principal, sam);
  t.is(cache.find('sam', 'wrong'), undefined);
  t.is(cache.find('sam', 'right '), undefined);
  t.is(cache.find('dana', 'right'), undefined);
  clock.advance(59);
  t.is(cache.find('sam', 'right')?.principal, sam);
  clock.advance(1);
  t.is(cache.find('sam', 'right'), undefined, 'expired at exactly the configured time');
  t.is(cache.size, 0, 'an expired entry is removed when found');
});

test('11.10(d) a cached entry holds the principal and login, not the password', (t) => {
  const cache = createCredentialCache({ seconds: 60 });
  const password = 'very-distinct-password-0815';
  cache.remember('sam', password, { principal: sam, session: 'basic:t' });
  const seen = new WeakSet<object>();
  const strings: string[] = [];
  const walk = (value: unknown) => {
    if (typeof value === 'string') strings.push(value);
    else if (value instanceof Map) for (const [k, v] of value) (walk(k), walk(v));
    else if (value instanceof Set) for (const v of value) walk(v);
    else if (typeof value === 'object' && value !== null && !seen.has(value)) {
      seen.add(value);
      for (const v of Object.values(value)) walk(v);
    }
  };
  const entry = cache.find('sam', password);
  t.truthy(entry);
  walk(entry);
  t.true(strings.length > 0, 'the walk saw the entry\'s strings');
  t.false(strings.some((s) => s.includes(password)));
});

test('11.300 a cache of 0 seconds remembers nothing', (t) => {
  const cache = createCredentialCache({ seconds: 0 });
  cache.remember('sam', 'right', { principal: sam, session: 'basic:t' });
  t.is(cache.find('sam', 'right'), undefined);
  t.is(cache.size, 0);
});

test('11.300 a wrong password (or a lockout) drops every entry of that login, whatever its case and spacing', (t) => {
  const cache = createCredentialCache({ seconds: 60 });
  cache.remember('sam', 'right', { principal: sam, session: 'basic:t' });
  cache.remember('Sam', 'right', { principal: sam, session: 'basic:t' });
  cache.remember('sam', 'vlmap_x', { principal: sam, session: 'basic:t', appPasswordId: 'a1' });
  cache.remember('dana', 'hers', { principal: dana, session: 'basic:t' });
  cache.dropLogin(' SAM ');
  t.is(cache.find('sam', 'right'), undefined);
  t.is(cache.find('Sam', 'right'), undefined);
  t.is(cache.find('sam', 'vlmap_x'), undefined);
  t.is(cache.find('dana', 'hers')?.principal, dana, 'other logins keep theirs');
});

test('11.300 a successful bind with a new password drops the old one; app passwords of the login stay', (t) => {
  const cache = createCredentialCache({ seconds: 60 });
  cache.remember('sam', 'old', { principal: sam, session: 'basic:t' });
  cache.remember('sam', 'vlmap_laptop', { principal: sam, session: 'basic:t', appPasswordId: 'a1' });
  cache.remember('sam', 'vlmap_phone', { principal: sam, session: 'basic:t', appPasswordId: 'a2' });
  cache.remember('sam', 'new', { principal: sam, session: 'basic:t' });
  t.is(cache.find('sam', 'old'), undefined, 'the changed password no longer signs in from the cache');
  t.is(cache.find('sam', 'new')?.principal, sam);
  t.is(cache.find('sam', 'vlmap_laptop')?.appPasswordId, 'a1');
  t.is(cache.find('sam', 'vlmap_phone')?.appPasswordId, 'a2', 'one device does not evict another');
});

test('11.300(c) forget drops a person by id or DN (group change) and sign-ins made with a revoked app password', (t) => {
  const cache = createCredentialCache({ seconds: 60 });
  cache.remember('sam', 'right', { principal: sam, session: 'basic:t' });
  cache.remember('dana', 'hers', { principal: dana, session: 'basic:t' });
  cache.remember('dana', 'vlmap_d', { principal: dana, session: 'basic:t', appPasswordId: 'd1' });
  cache.forget({ id: sam.id });
  t.is(cache.find('sam', 'right'), undefined);
  cache.forget({ appPasswordId: 'd1' });
  t.is(cache.find('dana', 'vlmap_d'), undefined);
  t.is(cache.find('dana', 'hers')?.principal, dana, 'her directory-password sign-in is another entry');
  cache.forget({ dn: dana.dn.toUpperCase() });
  t.is(cache.find('dana', 'hers'), undefined, 'DNs compare without case');
});

test('the cache is bounded: the oldest entry goes first', (t) => {
  const cache = createCredentialCache({ seconds: 60, maxEntries: 3 });
  for (const login of ['a', 'b', 'c', 'd']) cache.remember(login, 'pw', { principal: person(login), session: 'basic:t' });
  t.is(cache.size, 3);
  t.is(cache.find('a', 'pw'), undefined);
  t.is(cache.find('d', 'pw')?.principal.login, 'd');
});

test('login names are compared trimmed, in lower case and NFC', (t) => {
  t.is(normaliseLogin('  Jürgen '), 'jürgen');
  t.is(normaliseLogin('Ju\u0308rgen'), normaliseLogin('J\u00fcrgen'));
});
