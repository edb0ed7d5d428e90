// A private OpenLDAP slapd on a loopback port, seeded with PEOPLE and GROUPS.
// It runs in the foreground as a child of this process (as the current user),
// from a slapd.conf and an mdb database in a directory of its own. A directory
// that already holds a seeded database is reused as it is, so the demo keeps
// its directory across runs. stop()/start() take it down and bring it back on
// the same port with the same data, to test outages.

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensurePackages } from './packages.ts';
import {
  AD_NESTED_GROUP, AD_OBJECT_GUIDS, AD_UPN_SUFFIX, BASE_DN, GROUP_BASE, GROUPS, PEOPLE, READER_DN, READER_PASSWORD, ROOT_DN, ROOT_PASSWORD,
  SERVICE_DN, SERVICE_PASSWORD, USER_BASE, adGuidBytes, adPersonDn, groupMembers, personDn, type Login, type Person,
} from './people.ts';

const run = promisify(execFile);

const SBIN = '/usr/sbin';
const SCHEMA_DIR = '/etc/ldap/schema';
const MODULE_DIR = '/usr/lib/ldap';
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
/** Marker written after a successful slapadd; its presence means "reuse, don't reseed". */
const SEEDED_MARKER = 'seeded';

export interface SlapdOptions {
  /** Working directory: slapd.conf, the database (db/), pid/args files. Reused if already seeded. */
  readonly dir: string;
  /** Loopback port for ldap://. Default: a free one. */
  readonly port?: number;
  /**
   * Also listen for ldaps:// on a second loopback port, with a certificate for
   * 127.0.0.1/localhost signed by a private CA made in dir/tls (kept with the data).
   * StartTLS on the ldap:// port then works too.
   */
  readonly tls?: boolean;
  /** Loopback port for ldaps:// when tls is set. Default: a free one. */
  readonly tlsPort?: number;
  /** Receives slapd's output, line by line. */
  readonly log?: (line: string) => void;
  /**
   * 'openldap' (default): inetOrgPerson people named uid=LOGIN, groupOfNames groups.
   * 'active-directory': Debian's msuser.schema (made matchable, see adSchema), `user`
   * entries named cn=NAME with sAMAccountName, userPrincipalName, a fixed objectGUID
   * and stored memberOf, `group` groups, and one group of groups (AD_NESTED_GROUP).
   */
  readonly shape?: DirectoryShape;
}

export type DirectoryShape = 'openldap' | 'active-directory';

export interface Slapd {
  /** ldap://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  /** ldaps://127.0.0.1:TLSPORT, when started with tls. */
  readonly ldapsUrl: string | undefined;
  /** PEM of the private CA that signed slapd's certificate, when started with tls. */
  readonly caPem: string | undefined;
  readonly baseDn: string;
  readonly rootDn: string;
  readonly rootPassword: string;
  readonly serviceDn: string;
  readonly servicePassword: string;
  readonly userBase: string;
  readonly groupBase: string;
  readonly shape: DirectoryShape;
  /** A read-only service account (reads what the service account reads, writes nothing). */
  readonly readerDn: string;
  readonly readerPassword: string;
  /** DN of a seeded person's entry in this shape. */
  personDn(login: Login): string;
  /** Path of the slapd.conf (for slapcat -f). */
  readonly conf: string;
  /** Kills slapd and waits until it has exited. */
  stop(): Promise<void>;
  /** Starts slapd again on the same port with the same data. */
  start(): Promise<void>;
  /** stop(), for good. Idempotent. */
  close(): Promise<void>;
}

// Best effort: never leave a slapd behind when this process exits.
const running = new Set<ChildProcess>();
let exitHookInstalled = false;
function trackChild(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of running) c.kill('SIGTERM');
    });
  }
}

/** A port that was free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('could not allocate a loopback port'))));
    });
  });
}

/** slappasswd-style {SSHA}: base64(SHA1(password || salt) || salt), salt of 8 random bytes. */
export function sshaHash(password: string, salt: Buffer = randomBytes(8)): string {
  const digest = createHash('sha1').update(Buffer.from(password, 'utf8')).update(salt).digest();
  return `{SSHA}${Buffer.concat([digest, salt]).toString('base64')}`;
}

/** One LDIF line; values that are not SAFE-STRINGs (RFC 2849), and bytes, are base64-encoded. */
function ldifLine(attribute: string, value: string | Buffer): string {
  if (Buffer.isBuffer(value)) return `${attribute}:: ${value.toString('base64')}`;
  const safe = /^[\x01-\x09\x0b-\x0c\x0e-\x1f\x21-\x39\x3b\x3d-\x7f][\x01-\x09\x0b-\x0c\x0e-\x7f]*$/.test(value) && !value.endsWith(' ');
  return safe ? `${attribute}: ${value}` : `${attribute}:: ${Buffer.from(value, 'utf8').toString('base64')}`;
}

function ldifEntry(dn: string, attributes: readonly (readonly [string, string | Buffer])[]): string {
  return [ldifLine('dn', dn), ...attributes.map(([a, v]) => ldifLine(a, v))].join('\n') + '\n';
}

function seedLdif(shape: DirectoryShape): string {
  const entries: string[] = [];
  entries.push(ldifEntry(BASE_DN, [
    ['objectClass', 'dcObject'], ['objectClass', 'organization'], ['o', 'Vellum test directory'], ['dc', 'vellum'],
  ]));
  entries.push(ldifEntry(SERVICE_DN, [
    ['objectClass', 'organizationalRole'], ['objectClass', 'simpleSecurityObject'], ['cn', 'vellum-service'],
    ['description', 'Vellum service account: finds people and groups, manages ou=groups'],
    ['userPassword', sshaHash(SERVICE_PASSWORD)],
  ]));
  entries.push(ldifEntry(READER_DN, [
    ['objectClass', 'organizationalRole'], ['objectClass', 'simpleSecurityObject'], ['cn', 'vellum-reader'],
    ['description', 'Reads people and groups; may change nothing'], ['userPassword', sshaHash(READER_PASSWORD)],
  ]));
  entries.push(ldifEntry(USER_BASE, [['objectClass', 'organizationalUnit'], ['ou', 'people']]));
  entries.push(ldifEntry(GROUP_BASE, [['objectClass', 'organizationalUnit'], ['ou', 'groups']]));
  if (shape === 'active-directory') return [...entries, ...adEntries()].join('\n');
  for (const p of Object.values(PEOPLE) as Person[]) {
    const [given, ...rest] = p.displayName.split(' ');
    entries.push(ldifEntry(personDn(p.login), [
      ['objectClass', 'inetOrgPerson'], ['uid', p.login], ['cn', p.displayName], ['sn', rest.join(' ') || p.displayName],
      ['givenName', given ?? p.displayName], ['displayName', p.displayName], ['mail', p.mail],
      ['description', p.role], ['userPassword', sshaHash(p.password)],
    ]));
  }
  for (const [cn, g] of Object.entries(GROUPS)) {
    const members = groupMembers(cn);
    if (members.length === 0) throw new Error(`group ${cn} has no members; groupOfNames needs at least one`);
    entries.push(ldifEntry(g.dn, [
      ['objectClass', 'groupOfNames'], ['cn', cn], ['description', `Bound to the ${g.role} role in the demo`],
      ...members.map((m) => ['member', m] as const),
    ]));
  }
  return entries.join('\n');
}

/** The AD-shaped entries: people as `user`, groups as `group`, memberOf stored (AD keeps only direct groups there). */
function adEntries(): string[] {
  const entries: string[] = [];
  const system = [['instanceType', '4'], ['objectCategory', `cn=Person,cn=Schema,cn=Configuration,${BASE_DN}`]] as const;
  for (const login of Object.keys(PEOPLE) as Login[]) {
    const p: Person = PEOPLE[login];
    const [given, ...rest] = p.displayName.split(' ');
    entries.push(ldifEntry(adPersonDn(login), [
      ['objectClass', 'top'], ['objectClass', 'person'], ['objectClass', 'organizationalPerson'], ['objectClass', 'user'],
      ['cn', p.displayName], ['sn', rest.join(' ') || p.displayName], ['givenName', given ?? p.displayName], ['displayName', p.displayName],
      ['sAMAccountName', p.login], ['userPrincipalName', `${p.login}@${AD_UPN_SUFFIX}`], ['objectGUID', adGuidBytes(AD_OBJECT_GUIDS[login])],
      ['mail', p.mail], ['description', p.role], ['userPassword', sshaHash(p.password)], ...system,
      ...p.groups.map((cn) => ['memberOf', `cn=${cn},${GROUP_BASE}`] as const),
    ]));
  }
  const group = (cn: string, description: string, members: readonly string[]) => ldifEntry(`cn=${cn},${GROUP_BASE}`, [
    ['objectClass', 'top'], ['objectClass', 'group'], ['cn', cn], ['sAMAccountName', cn], ['groupType', '-2147483646'],
    ['description', description], ['instanceType', '4'], ['objectCategory', `cn=Group,cn=Schema,cn=Configuration,${BASE_DN}`],
    ...members.map((m) => ['member', m] as const),
  ]);
  for (const [cn, g] of Object.entries(GROUPS)) {
    const members = (Object.keys(PEOPLE) as Login[]).filter((login) => PEOPLE[login].groups.includes(cn)).map(adPersonDn);
    entries.push(group(cn, `Bound to the ${g.role} role in the demo`, members));
  }
  entries.push(group(AD_NESTED_GROUP.cn, 'Everyone who works on DEMO-001 (groups only)', AD_NESTED_GROUP.memberGroups.map((cn) => `cn=${cn},${GROUP_BASE}`)));
  return entries;
}

/**
 * Debian's msuser.schema, made to behave like AD for what Vellum uses. The file
 * is informational: it gives no attribute an EQUALITY rule (so slapd can match
 * nothing on sAMAccountName, objectGUID or memberOf), makes every entry carry
 * the attributes AD's server fills in itself (instanceType, nTSecurityDescriptor,
 * objectCategory), and puts sAMAccountName in no class (AD adds it through the
 * securityPrincipal auxiliary class). Each patch must apply, or the shape is refused.
 */
async function adSchema(): Promise<string> {
  let schema = await readFile(join(SCHEMA_DIR, 'msuser.schema'), 'utf8');
  const patch = (from: RegExp | string, to: string) => {
    const next = schema.replace(from, to);
    if (next === schema) throw new Error(`msuser.schema has changed: cannot patch ${String(from)}`);
    schema = next;
  };
  const matching: Record<string, string> = {
    sAMAccountName: 'EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch',
    userPrincipalName: 'EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch',
    objectGUID: 'EQUALITY octetStringMatch',
    memberOf: 'EQUALITY distinguishedNameMatch',
    objectCategory: 'EQUALITY distinguishedNameMatch',
    groupType: 'EQUALITY integerMatch',
  };
  for (const [name, rules] of Object.entries(matching)) {
    patch(new RegExp(`(NAME '${name}'\\s+)SYNTAX`), `$1${rules} SYNTAX`);
  }
  patch(/MUST \(objectClass \$ instanceType\s+\$ nTSecurityDescriptor \$ objectCategory \) MAY \(cn \$/, 'MUST (objectClass ) MAY (instanceType $ nTSecurityDescriptor $ objectCategory $ cn $');
  patch(/(NAME 'user'\s+SUP \( mstop \$ organizationalPerson \) STRUCTURAL\s+MAY \()/, '$1sAMAccountName $ ');
  patch(/(NAME 'group' SUP mstop STRUCTURAL\s+MUST \(groupType \) MAY \()/, '$1sAMAccountName $ ');
  return schema;
}

function slapdConf(dir: string, tlsDir: string | undefined, shape: DirectoryShape): string {
  const q = (s: string) => `"${s.replace(/["\\]/g, '\\$&')}"`;
  const ad = shape === 'active-directory';
  const lines = [
    '# Written by test/env/slapd.ts on every start; edits are overwritten.',
    ...['core', 'cosine', 'inetorgperson', 'nis'].map((s) => `include ${q(join(SCHEMA_DIR, `${s}.schema`))}`),
    ...(ad ? [`include ${q(join(dir, 'msuser-ad.schema'))}`] : []),
    `modulepath ${q(MODULE_DIR)}`,
    'moduleload back_mdb',
    `pidfile ${q(join(dir, 'slapd.pid'))}`,
    `argsfile ${q(join(dir, 'slapd.args'))}`,
    'loglevel none',
  ];
  if (tlsDir) {
    lines.push(
      `TLSCACertificateFile ${q(join(tlsDir, 'ca.pem'))}`,
      `TLSCertificateFile ${q(join(tlsDir, 'server.pem'))}`,
      `TLSCertificateKeyFile ${q(join(tlsDir, 'server.key'))}`,
    );
  }
  lines.push(
    '',
    'database mdb',
    `directory ${q(join(dir, 'db'))}`,
    'maxsize 67108864',
    `suffix ${q(BASE_DN)}`,
    `rootdn ${q(ROOT_DN)}`,
    `rootpw ${sshaHash(ROOT_PASSWORD)}`,
    'index objectClass eq',
    'index uid eq',
    'index member eq',
    'index entryUUID eq',
    ...(ad ? ['index sAMAccountName,userPrincipalName,objectGUID,memberOf eq'] : []),
    `limits dn.exact=${q(SERVICE_DN)} size=unlimited time=unlimited`,
    '',
    '# Access (first match wins; the rootdn bypasses all of it).',
    '# Password hashes: usable to bind, readable by nobody (not even the service account).',
    'access to attrs=userPassword',
    '  by * auth',
    '# Groups: the service account manages them (later: group management in the UI).',
    `access to dn.subtree=${q(GROUP_BASE)}`,
    `  by dn.exact=${q(SERVICE_DN)} write`,
    `  by dn.exact=${q(READER_DN)} read`,
    '  by * none',
    '# Everything else, operational attributes (entryUUID) included: the service account reads;',
    '# a person reads their own entry; anonymous gets nothing.',
    'access to *',
    `  by dn.exact=${q(SERVICE_DN)} read`,
    `  by dn.exact=${q(READER_DN)} read`,
    '  by self read',
    '  by * none',
    '',
  );
  return lines.join('\n');
}

async function ensureTlsMaterial(tlsDir: string): Promise<void> {
  if (existsSync(join(tlsDir, 'server.pem')) && existsSync(join(tlsDir, 'ca.pem'))) return;
  await ensurePackages(['openssl']);
  await mkdir(tlsDir, { recursive: true, mode: 0o700 });
  const f = (name: string) => join(tlsDir, name);
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '3650',
    '-subj', '/CN=Vellum test LDAP CA', '-keyout', f('ca.key'), '-out', f('ca.pem'),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await run('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-subj', '/CN=localhost', '-keyout', f('server.key'), '-out', f('server.csr')]);
  await writeFile(f('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
  await run('openssl', ['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
    '-days', '3650', '-extfile', f('server.ext'), '-out', f('server.pem')]);
}

/** Seeds dir/db with slapadd unless it already holds a seeded database. */
async function ensureSeeded(dir: string, conf: string, shape: DirectoryShape): Promise<void> {
  const dbDir = join(dir, 'db');
  if (existsSync(join(dir, SEEDED_MARKER)) && existsSync(join(dbDir, 'data.mdb'))) return;
  // A half-seeded database (no marker) is thrown away and made again.
  await rm(dbDir, { recursive: true, force: true });
  await mkdir(dbDir, { recursive: true, mode: 0o700 });
  const ldif = join(dir, 'seed.ldif');
  await writeFile(ldif, seedLdif(shape), { mode: 0o600 });
  try {
    await run(join(SBIN, 'slapadd'), ['-q', '-f', conf, '-l', ldif]);
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`slapadd failed to seed ${dbDir}: ${err.stderr?.trim() || err.message}`);
  }
  await writeFile(join(dir, SEEDED_MARKER), `seeded ${new Date().toISOString()}\n`);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => { socket.destroy(); resolve(false); });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startSlapd(options: SlapdOptions): Promise<Slapd> {
  await ensurePackages(['slapd', 'ldap-utils']);
  const dir = options.dir;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const port = options.port ?? (await freePort());
  const tlsPort = options.tls ? (options.tlsPort ?? (await freePort())) : undefined;
  const tlsDir = options.tls ? join(dir, 'tls') : undefined;
  if (tlsDir) await ensureTlsMaterial(tlsDir);
  const caPem = tlsDir ? await readFile(join(tlsDir, 'ca.pem'), 'utf8') : undefined;
  const shape = options.shape ?? 'openldap';
  if (shape === 'active-directory') await writeFile(join(dir, 'msuser-ad.schema'), await adSchema(), { mode: 0o600 });
  const conf = join(dir, 'slapd.conf');
  await writeFile(conf, slapdConf(dir, tlsDir, shape), { mode: 0o600 });
  await ensureSeeded(dir, conf, shape);

  const url = `ldap://127.0.0.1:${port}`;
  const ldapsUrl = tlsPort === undefined ? undefined : `ldaps://127.0.0.1:${tlsPort}`;
  const listen = [`${url}/`, ...(ldapsUrl ? [`${ldapsUrl}/`] : [])].join(' ');
  const log = options.log;

  let child: ChildProcess | undefined;
  let closed = false;
  let output: string[] = [];

  async function start(): Promise<void> {
    if (closed) throw new Error('slapd was closed');
    if (child && child.exitCode === null && child.signalCode === null) return;
    output = [];
    // -d none: stay in the foreground (we own the process) and print only errors
    // and "slapd starting" to stderr. (-d 0 also stays in the foreground but prints
    // nothing at all, not even "bind failed: Address already in use".)
    // No -u/-g: it runs as the current user.
    const proc = spawn(join(SBIN, 'slapd'), ['-f', conf, '-h', listen, '-d', 'none'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    trackChild(proc);
    // slapd alone does not keep this process alive: if a caller forgets close(),
    // the process still exits and the exit hook above takes slapd with it.
    proc.unref();
    for (const stream of [proc.stdout, proc.stderr]) (stream as { unref?: () => void } | null)?.unref?.();
    let started = false;
    const lines = (stream: NodeJS.ReadableStream | null) => {
      let partial = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        const parts = (partial + chunk).split('\n');
        partial = parts.pop() ?? '';
        for (const line of parts) {
          if (!line) continue;
          // Printed by OUR child once its listeners are bound and the database is open.
          if (line.includes('slapd starting')) started = true;
          output.push(line);
          if (output.length > 200) output.shift();
          log?.(line);
        }
      });
    };
    lines(proc.stdout);
    lines(proc.stderr);
    let spawnError: Error | undefined;
    proc.once('error', (e) => { spawnError = e; });

    const deadline = Date.now() + READY_TIMEOUT_MS;
    const ports = [port, ...(tlsPort === undefined ? [] : [tlsPort])];
    for (;;) {
      if (spawnError || proc.exitCode !== null || proc.signalCode !== null) {
        await sleep(20); // let the last of stderr arrive
        throw new Error(`slapd exited before it was ready (${spawnError?.message ?? `exit ${proc.exitCode ?? proc.signalCode}`}) `
          + `listening on ${listen}:\n${output.join('\n')}`);
      }
      // "slapd starting" comes from OUR child after its listeners are bound, so a
      // port taken by someone else cannot pass for ready; the connect proves it accepts.
      if (started && (await Promise.all(ports.map(canConnect))).every(Boolean)) return;
      if (Date.now() > deadline) {
        await stopChild(proc);
        throw new Error(`slapd did not accept connections on ${listen} within ${READY_TIMEOUT_MS} ms:\n${output.join('\n')}`);
      }
      await sleep(15);
    }
  }

  async function stopChild(proc: ChildProcess): Promise<void> {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }

  async function stop(): Promise<void> {
    if (child) await stopChild(child);
  }

  async function close(): Promise<void> {
    closed = true;
    await stop();
  }

  try {
    await start();
  } catch (e) {
    closed = true;
    throw e;
  }

  return {
    url, port, ldapsUrl, caPem, conf,
    baseDn: BASE_DN,
    rootDn: ROOT_DN,
    rootPassword: ROOT_PASSWORD,
    serviceDn: SERVICE_DN,
    servicePassword: SERVICE_PASSWORD,
    userBase: USER_BASE,
    groupBase: GROUP_BASE,
    shape,
    readerDn: READER_DN,
    readerPassword: READER_PASSWORD,
    personDn: shape === 'active-directory' ? adPersonDn : personDn,
    stop, start, close,
  };
}
