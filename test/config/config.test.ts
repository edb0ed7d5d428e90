// Configuration (DESIGN invariant 1: config invalid -> fail closed, with a clear
// message): the JSON file plus VELLUM_* overrides is validated once, relative
// paths are resolved against the file's folder, secrets come only from files or
// environment variables, and the result is frozen. Every failure is
// CONFIG_INVALID and names the key (or variable) and what is wrong with it.

import test from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig, loadConfigFile, type Config } from '../../src/config/index.ts';
import { isVellumError } from '../../src/kernel/index.ts';

let root = '';
test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'vellum-config-'));
});
test.after.always(async () => {
  if (root !== '') await rm(root, { recursive: true, force: true });
});

const ENV = { TEST_BIND_PW: 'bind-secret', TEST_HSM_PIN: '123456' };

/** The smallest valid configuration: only the keys without defaults. */
function minimal(): Record<string, unknown> {
  return {
    dataDir: 'data',
    ldap: {
      url: 'ldaps://ldap.example.org:636',
      bindDn: 'cn=vellum,ou=services,dc=example,dc=org',
      bindPassword: { env: 'TEST_BIND_PW' },
      userBase: 'ou=people,dc=example,dc=org',
      groupBase: 'ou=groups,dc=example,dc=org',
    },
    hsm: { library: '/usr/lib/softhsm/libsofthsm2.so', tokenLabel: 'vellum', pin: { env: 'TEST_HSM_PIN' } },
  };
}

let counter = 0;
/** Writes `content` as a config file in a folder of its own and returns its path. */
async function configFile(content: unknown, extraFiles: Record<string, string> = {}): Promise<string> {
  const dir = join(root, `case-${++counter}`);
  await mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(extraFiles)) await writeFile(join(dir, name), text);
  const file = join(dir, 'vellum.json');
  await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return file;
}

function build(raw: unknown, env: NodeJS.ProcessEnv = ENV): Config {
  return buildConfig(raw, { source: '/etc/vellum/vellum.json', baseDir: '/etc/vellum', env });
}

/** Asserts fn throws CONFIG_INVALID whose message contains every fragment; returns the message. */
function invalid(t: import('ava').ExecutionContext, fn: () => unknown, ...fragments: (string | RegExp)[]): string {
  const error = t.throws(fn);
  t.true(isVellumError(error, 'CONFIG_INVALID'), `expected CONFIG_INVALID, got ${String(error)}`);
  const message = error?.message ?? '';
  for (const fragment of fragments) {
    if (typeof fragment === 'string') t.true(message.includes(fragment), `"${fragment}" missing from: ${message}`);
    else t.regex(message, fragment);
  }
  return message;
}

function edit(change: (c: Record<string, any>) => void): Record<string, unknown> {
  const c = minimal() as Record<string, any>;
  change(c);
  return c;
}

// --- valid -----------------------------------------------------------------

test('a minimal config file loads, with defaults applied and relative paths resolved against its folder', async (t) => {
  const file = await configFile({ ...minimal(), tls: { certFile: 'tls/cert.pem', keyFile: '/abs/key.pem' } });
  const config = loadConfigFile(file, ENV);
  const folder = join(file, '..');
  t.is(config.source, file);
  t.is(config.dataDir, join(folder, 'data'));
  t.is(config.tls.certFile, join(folder, 'tls/cert.pem'));
  t.is(config.tls.keyFile, '/abs/key.pem', 'absolute paths are kept');
  t.deepEqual(config.tls.hostnames, []);
  t.deepEqual(config.listen, { https: { host: '0.0.0.0', port: 8443 } });
  t.is(config.ldap.url, 'ldaps://ldap.example.org:636');
  t.is(config.ldap.loginAttribute, 'uid');
  t.is(config.ldap.idAttribute, 'entryUUID');
  t.is(config.ldap.displayNameAttribute, 'cn');
  t.is(config.ldap.timeoutMs, 5000);
  t.false(config.ldap.startTls);
  t.is(config.ldap.caPem, undefined);
  t.is(config.hsm.sessions, 4);
  t.deepEqual(config.access, { administratorGroups: [] });
  t.like(config.auth, { cacheSeconds: 60, realm: 'Vellum', mfa: { requiredFor: 'administrators', issuer: 'Vellum' }, webSessions: { idleMinutes: 15, absoluteHours: 12 } });
  t.deepEqual(config.limits, { xmlBodyBytes: 1024 * 1024, uploadBytes: 64 * 1024 ** 3, headerBytes: 16 * 1024, headersTimeoutMs: 20_000, idleTimeoutMs: 120_000, keepAliveTimeoutMs: 5_000 });
});

test('11.300 secrets are resolved from the environment and the secret references do not survive into the config', (t) => {
  const config = build(minimal());
  t.is(config.ldap.bindPassword, 'bind-secret');
  t.is(config.hsm.pin, '123456');
  t.false('caFile' in config.ldap);
});

test('a secret file is read relative to the config file, and its trailing newline is stripped', async (t) => {
  const file = await configFile(
    edit((c) => {
      c.hsm.pin = { file: 'secrets/pin' };
      c.ldap.bindPassword = { file: 'bind.txt' };
      c.ldap.caFile = 'ca.pem';
    }),
    { 'bind.txt': 'pass word:with spaces\r\n', 'ca.pem': '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' },
  );
  await mkdir(join(file, '..', 'secrets'));
  await writeFile(join(file, '..', 'secrets', 'pin'), '987654\n');
  const config = loadConfigFile(file, {});
  t.is(config.hsm.pin, '987654');
  t.is(config.ldap.bindPassword, 'pass word:with spaces');
  t.true(config.ldap.caPem?.startsWith('-----BEGIN CERTIFICATE-----'));
});

test('the loaded config is deeply frozen', (t) => {
  const config = build(edit((c) => (c.tls = { hostnames: ['files.example.org'] })));
  t.true(Object.isFrozen(config));
  t.true(Object.isFrozen(config.listen.https));
  t.true(Object.isFrozen(config.ldap));
  t.true(Object.isFrozen(config.tls.hostnames));
  t.throws(() => ((config as { dataDir: string }).dataDir = '/tmp/evil'), { instanceOf: TypeError });
  t.throws(() => ((config.hsm as { pin: string }).pin = 'x'), { instanceOf: TypeError });
  t.throws(() => (config.tls.hostnames as string[]).push('evil.example'), { instanceOf: TypeError });
  t.is(config.dataDir, '/etc/vellum/data');
});

test('the input object is not modified (env overrides work on a copy)', (t) => {
  const raw = minimal();
  const before = structuredClone(raw);
  build(raw, { ...ENV, VELLUM_HTTPS_PORT: '9443', VELLUM_DATA_DIR: '/srv/vellum' });
  t.deepEqual(raw, before);
});

// --- environment overrides ------------------------------------------------------

test('VELLUM_HTTPS_PORT and VELLUM_DATA_DIR override the file', async (t) => {
  const file = await configFile(edit((c) => (c.listen = { https: { host: '127.0.0.1', port: 8443 } })));
  const config = loadConfigFile(file, { ...ENV, VELLUM_HTTPS_PORT: '9443', VELLUM_DATA_DIR: '/srv/vellum/data' });
  t.is(config.listen.https.port, 9443);
  t.is(config.listen.https.host, '127.0.0.1', 'keys not overridden are kept');
  t.is(config.dataDir, '/srv/vellum/data');
});

test('an empty VELLUM_* variable is ignored', (t) => {
  const config = build(minimal(), { ...ENV, VELLUM_HTTPS_PORT: '', VELLUM_DATA_DIR: '' });
  t.is(config.listen.https.port, 8443);
  t.is(config.dataDir, '/etc/vellum/data');
});

test('a non-numeric VELLUM_HTTPS_PORT fails naming the variable', (t) => {
  invalid(t, () => build(minimal(), { ...ENV, VELLUM_HTTPS_PORT: 'https' }), 'VELLUM_HTTPS_PORT', 'whole number', '"https"');
  invalid(t, () => build(minimal(), { ...ENV, VELLUM_HTTPS_PORT: '84.43' }), 'VELLUM_HTTPS_PORT');
});

test('a port variable takes decimal digits only: blank, hex, exponent and signed forms fail naming the variable', (t) => {
  // Number(" ") is 0, which would silently listen on a random port.
  for (const value of [' ', '0x1BB', '1e3', '+443', '-1', '0b1', '443.0']) {
    invalid(t, () => build(minimal(), { ...ENV, VELLUM_HTTPS_PORT: value }), 'VELLUM_HTTPS_PORT', 'whole number');
  }
  invalid(t, () => build(minimal(), { ...ENV, VELLUM_HTTP_HOST: '127.0.0.1', VELLUM_HTTP_PORT: '80a' }), 'VELLUM_HTTP_PORT');
  t.is(build(minimal(), { ...ENV, VELLUM_HTTPS_PORT: ' 9443 ' }).listen.https.port, 9443);
  t.is(build(minimal(), { ...ENV, VELLUM_HTTPS_PORT: '0' }).listen.https.port, 0);
});

test('an overridden value is validated like one from the file', (t) => {
  invalid(t, () => build(minimal(), { ...ENV, VELLUM_HTTPS_PORT: '70000' }), 'listen.https.port');
  invalid(t, () => build(minimal(), { ...ENV, VELLUM_LDAP_URL: 'http://ldap.example.org' }), 'ldap.url', 'ldap://');
  invalid(t, () => build(minimal(), { ...ENV, VELLUM_HTTP_HOST: '0.0.0.0', VELLUM_HTTP_PORT: '8080' }), 'listen.http.host', 'loopback');
});

// --- invalid -------------------------------------------------------------------

test('DESIGN 1 a bad ldap.url is refused naming the key', (t) => {
  invalid(t, () => build(edit((c) => (c.ldap.url = 'http://ldap.example.org'))), 'ldap.url', 'ldap:// or ldaps://');
  invalid(t, () => build(edit((c) => (c.ldap.url = 'ldap://has space'))), 'ldap.url');
});

test('DESIGN 1 an unknown key is refused (strict), naming where and which', (t) => {
  invalid(t, () => build(edit((c) => (c.ldap.bindPasswd = 'typo'))), 'ldap', 'bindPasswd');
  invalid(t, () => build(edit((c) => (c.listenn = {}))), 'listenn', /Unrecognized key/);
});

test('11.300 an inline secret string for hsm.pin is refused: secrets are never written inline', (t) => {
  invalid(t, () => build(edit((c) => (c.hsm.pin = '123456'))), 'hsm.pin', 'never written inline');
  invalid(t, () => build(edit((c) => (c.hsm.pin = { value: '123456' }))), 'hsm.pin');
  invalid(t, () => build(edit((c) => (c.ldap.bindPassword = 'secret'))), 'ldap.bindPassword', 'never written inline');
});

test('a missing secret file is refused naming the key and the file', (t) => {
  invalid(t, () => build(edit((c) => (c.hsm.pin = { file: 'no-such-pin' }))), 'hsm.pin', 'no-such-pin', 'ENOENT');
});

test('an unset secret environment variable is refused naming the key and the variable', (t) => {
  invalid(t, () => build(minimal(), { TEST_BIND_PW: 'x' }), 'hsm.pin', 'TEST_HSM_PIN', 'not set');
});

test('an empty secret is refused', (t) => {
  invalid(t, () => build(minimal(), { ...ENV, TEST_HSM_PIN: '' }), 'hsm.pin', 'empty');
});

test('every problem is reported at once, not only the first', (t) => {
  invalid(t, () => build(minimal(), {}), 'ldap.bindPassword', 'hsm.pin');
  invalid(t, () => build(edit((c) => { c.ldap.url = 'x'; c.hsm.sessions = 0; })), 'ldap.url', 'hsm.sessions');
});

test('DESIGN 7 a plain-HTTP listener on 0.0.0.0 is refused: loopback only', (t) => {
  invalid(t, () => build(edit((c) => (c.listen = { http: { host: '0.0.0.0', port: 8080 } }))), 'listen.http.host', 'loopback');
  invalid(t, () => build(edit((c) => (c.listen = { http: { host: '192.0.2.1', port: 8080 } }))), 'listen.http.host', 'loopback');
  // Looks like 127/8 but is no address at all.
  invalid(t, () => build(edit((c) => (c.listen = { http: { host: '127.999.0.1', port: 8080 } }))), 'listen.http.host', 'loopback');
  t.is(build(edit((c) => (c.listen = { http: { host: '127.0.0.1', port: 8080 } }))).listen.http?.host, '127.0.0.1');
  t.is(build(edit((c) => (c.listen = { http: { host: '::1', port: 8080 } }))).listen.http?.host, '::1');
});

test('a certFile without a keyFile is refused', (t) => {
  invalid(t, () => build(edit((c) => (c.tls = { certFile: 'cert.pem' }))), 'tls', 'certFile and keyFile');
  invalid(t, () => build(edit((c) => (c.tls = { keyFile: 'key.pem' }))), 'tls', 'certFile and keyFile');
});

test('a port out of range is refused naming the key', (t) => {
  invalid(t, () => build(edit((c) => (c.listen = { https: { port: 65536 } }))), 'listen.https.port', '65535');
  invalid(t, () => build(edit((c) => (c.listen = { https: { port: -1 } }))), 'listen.https.port');
  invalid(t, () => build(edit((c) => (c.listen = { https: { port: 443.5 } }))), 'listen.https.port');
  invalid(t, () => build(edit((c) => (c.listen = { https: { port: '443' } }))), 'listen.https.port', 'number');
});

test('a missing required key is refused naming it', (t) => {
  invalid(t, () => build(edit((c) => delete c.hsm.tokenLabel)), 'hsm.tokenLabel');
  invalid(t, () => build(edit((c) => delete c.dataDir)), 'dataDir');
});

test('a file that is not JSON is refused naming the file', async (t) => {
  const file = await configFile('{ "dataDir": "data", }');
  invalid(t, () => loadConfigFile(file, ENV), file, 'not valid JSON');
  const array = await configFile('[]');
  invalid(t, () => loadConfigFile(array, ENV), array);
});

test('a config file that does not exist is refused naming the file', (t) => {
  const file = join(root, 'missing', 'vellum.json');
  invalid(t, () => loadConfigFile(file, ENV), file, 'ENOENT');
});
