// The ldap.preset key: what each preset supplies, that explicit keys win, that
// files written before presets (loginAttribute, idAttribute, displayNameAttribute)
// still mean what they meant, and the new keys' defaults and limits. Pure:
// the configuration is built from objects, nothing is started.

import test from 'ava';
import { buildConfig, type Config } from '../../src/config/index.ts';
import { isVellumError } from '../../src/kernel/index.ts';

const ENV = { TEST_BIND_PW: 'pw', TEST_HSM_PIN: '1234' };

function build(ldap: Record<string, unknown>): Config['ldap'] {
  return buildConfig({
    dataDir: '/var/lib/vellum',
    ldap: {
      url: 'ldaps://dc1.corp.example', bindDn: 'cn=vellum,ou=services,dc=corp,dc=example', bindPassword: { env: 'TEST_BIND_PW' },
      userBase: 'ou=people,dc=corp,dc=example', groupBase: 'ou=groups,dc=corp,dc=example', ...ldap,
    },
    hsm: { library: '/usr/lib/softhsm/libsofthsm2.so', tokenLabel: 'vellum', pin: { env: 'TEST_HSM_PIN' } },
  }, { source: 'presets test', baseDir: '/etc/vellum', env: ENV }).ldap;
}

test('no preset is openldap: uid, entryUUID, cn, member, groupOfNames; read-only, pool of 4, no nesting', (t) => {
  const ldap = build({});
  t.is(ldap.preset, 'openldap');
  t.deepEqual([...ldap.loginAttributes], ['uid']);
  t.is(ldap.loginAttribute, 'uid');
  t.is(ldap.idAttribute, 'entryUUID');
  t.is(ldap.displayNameAttribute, 'cn');
  t.is(ldap.groupMembership, 'member');
  t.is(ldap.groupObjectClass, 'groupOfNames');
  t.false(ldap.groupManagement);
  t.false(ldap.nestedGroups);
  t.is(ldap.poolSize, 4);
  t.is(ldap.poolIdleMs, 60_000);
});

test('the active-directory preset: sAMAccountName and userPrincipalName, objectGUID, displayName, in-chain, group', (t) => {
  const ldap = build({ preset: 'active-directory' });
  t.deepEqual([...ldap.loginAttributes], ['sAMAccountName', 'userPrincipalName']);
  t.is(ldap.loginAttribute, 'sAMAccountName');
  t.is(ldap.idAttribute, 'objectGUID');
  t.is(ldap.displayNameAttribute, 'displayName');
  t.is(ldap.groupMembership, 'in-chain');
  t.is(ldap.groupObjectClass, 'group');
});

test('explicit keys win over the preset', (t) => {
  const ldap = build({ preset: 'active-directory', loginAttributes: ['sAMAccountName'], groupMembership: 'memberOf', displayNameAttribute: 'cn' });
  t.deepEqual([...ldap.loginAttributes], ['sAMAccountName']);
  t.is(ldap.groupMembership, 'memberOf');
  t.is(ldap.displayNameAttribute, 'cn');
  t.is(ldap.idAttribute, 'objectGUID', 'what was not written still comes from the preset');
});

test('a file from before presets keeps its meaning (loginAttribute is a list of one)', (t) => {
  const ldap = build({ loginAttribute: 'sAMAccountName', idAttribute: 'objectGUID', displayNameAttribute: 'displayName' });
  t.deepEqual([...ldap.loginAttributes], ['sAMAccountName']);
  t.is(ldap.idAttribute, 'objectGUID');
  t.is(ldap.groupMembership, 'member');
});

test('bad values are CONFIG_INVALID: an unknown preset or mode, attribute names that are not names, a pool out of range', (t) => {
  for (const bad of [
    { preset: 'novell' }, { groupMembership: 'nested' }, { loginAttributes: [] }, { loginAttributes: ['uid)(x=*'] },
    { idAttribute: 'entry UUID' }, { poolSize: 0 }, { poolSize: 33 }, { poolIdleMs: 10 }, { groupManagement: 'yes' },
  ]) {
    const e = (() => { try { build(bad); return undefined; } catch (error) { return error; } })();
    t.true(isVellumError(e, 'CONFIG_INVALID'), `${JSON.stringify(bad)}: ${String(e)}`);
  }
});
