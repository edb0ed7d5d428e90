// The Directory over LDAP, with ldapts: the only file in Vellum that imports it.
//
// authenticate(login, password):
//   1. refuse, before any network traffic, what can never be a valid login:
//      an empty password (an empty simple bind is an anonymous bind and would
//      "succeed"), an empty, over-long or control-character login;
//   2. as the service account, find exactly one entry whose login attribute(s)
//      equal the login (filter objects, never a concatenated string; AD: an OR
//      of sAMAccountName and userPrincipalName);
//   3. bind as that entry's DN with the password, on a connection of its own
//      (never a pooled service connection);
//   4. as the service account, resolve the person's groups (ldap.groupMembership,
//      and the nested-group walk when configured).
// An unknown login and a wrong password fail with the same AUTH_FAILED, and an
// unknown login still costs a (failing) bind, so neither the message nor the
// number of round trips tells them apart. Anything that stops the directory
// from answering is DIRECTORY_UNAVAILABLE: the caller fails closed.
//
// Service connections come from a small pool (ServicePool): bound once, reused,
// closed when idle, discarded after any failure that may have hurt them. ldapts
// reconnects a dropped client silently and unbound, so a pooled client is
// checked to be bound right before every operation (ServiceConnection), and
// one that is not is never used: the operation fails as DIRECTORY_UNAVAILABLE
// rather than run anonymously.

import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import {
  AlreadyExistsError,
  AndFilter,
  Attribute,
  Change,
  Client,
  EqualityFilter,
  ExtensibleFilter,
  InappropriateAuthError,
  InsufficientAccessError,
  InvalidCredentialsError,
  NoSuchAttributeError,
  NoSuchObjectError,
  ObjectClassViolationError,
  OrFilter,
  ResultCodeError,
  TypeOrValueExistsError,
  type ClientOptions,
  type Entry,
  type Filter,
  type SearchOptions,
} from 'ldapts';
import { VellumError, type ComponentStatus, type Principal } from '../kernel/index.ts';
import type { Directory, DirectoryPerson, DirectorySettings, GroupDetail, GroupMembership, GroupSummary, MembershipChange } from './directory.ts';

/** Longer logins are refused without asking the directory (AD's limit is 20; uid has none). */
export const MAX_LOGIN_LENGTH = 256;
/** Longer passwords are refused without asking the directory. */
export const MAX_PASSWORD_LENGTH = 1024;
/** Page size for the group search (slapd's default size limit is 500, AD's MaxPageSize 1000). */
const GROUP_PAGE_SIZE = 500;
/** AD's LDAP_MATCHING_RULE_IN_CHAIN: `member` followed through nested groups by the server. */
export const IN_CHAIN_RULE = '1.2.840.113556.1.4.1941';
/** rootDSE supportedCapabilities of Active Directory (AD DS, AD LDS): the servers that know IN_CHAIN_RULE. */
const AD_CAPABILITIES = ['1.2.840.113556.1.4.800', '1.2.840.113556.1.4.1851'];
/** Levels of groups-in-groups the client-side walk follows. */
export const MAX_NESTING_DEPTH = 8;
/** Group DNs per OR filter in the nested-group walk. */
const WALK_CHUNK = 50;
/** Members listed in one group change (a guard against a body of thousands). */
const MAX_NEW_MEMBERS = 500;
/** A group name Vellum creates: cn and (AD) sAMAccountName. Letters, digits, '.', '_', '-'; starts with a letter or digit. */
export const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MAX_DESCRIPTION_LENGTH = 1024;
/** AD groupType of a global security group (0x80000002). */
const AD_GLOBAL_SECURITY_GROUP = '-2147483646';

// C0 controls and DEL. NUL in particular is where C code truncates.
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function openDirectory(settings: DirectorySettings): Promise<Directory> {
  return new LdapDirectory(checkSettings(settings));
}

/** The settings with every optional key filled in. */
interface Resolved extends DirectorySettings, Endpoint {
  readonly loginAttributes: readonly string[];
  readonly groupMembership: GroupMembership;
  readonly groupObjectClass: string;
  readonly nestedGroups: boolean;
  readonly poolSize: number;
  readonly poolIdleMs: number;
  readonly groupManagement: boolean;
}

interface Endpoint {
  readonly url: string;
  readonly host: string;
  readonly secure: boolean;
}

function checkSettings(settings: DirectorySettings): Resolved {
  let parsed: URL;
  try {
    parsed = new URL(settings.url);
  } catch {
    throw new VellumError('CONFIG_INVALID', `LDAP url "${settings.url}" is not a URL.`);
  }
  const scheme = parsed.protocol.replace(/:$/, '');
  if (scheme !== 'ldap' && scheme !== 'ldaps') {
    throw new VellumError('CONFIG_INVALID', `LDAP url "${settings.url}" must start with ldap:// or ldaps://.`);
  }
  const secure = scheme === 'ldaps';
  if (secure && settings.startTls) {
    throw new VellumError('CONFIG_INVALID', 'LDAP startTls applies to ldap:// URLs; an ldaps:// URL is already TLS.');
  }
  if (!Number.isFinite(settings.timeoutMs) || settings.timeoutMs <= 0) {
    throw new VellumError('CONFIG_INVALID', `LDAP timeoutMs must be a positive number of milliseconds, not ${settings.timeoutMs}.`);
  }
  for (const key of ['bindDn', 'bindPassword', 'userBase', 'groupBase', 'loginAttribute', 'idAttribute', 'displayNameAttribute'] as const) {
    if (typeof settings[key] !== 'string' || settings[key] === '') {
      throw new VellumError('CONFIG_INVALID', `LDAP ${key} must not be empty.`);
    }
  }
  const loginAttributes = settings.loginAttributes ?? [settings.loginAttribute];
  if (loginAttributes.length === 0 || loginAttributes.some((a) => typeof a !== 'string' || a === '')) {
    throw new VellumError('CONFIG_INVALID', 'LDAP loginAttributes must name at least one attribute.');
  }
  const poolSize = settings.poolSize ?? 4;
  const poolIdleMs = settings.poolIdleMs ?? 60_000;
  if (!Number.isInteger(poolSize) || poolSize < 1) throw new VellumError('CONFIG_INVALID', `LDAP poolSize must be a whole number from 1 up, not ${poolSize}.`);
  if (!Number.isFinite(poolIdleMs) || poolIdleMs <= 0) throw new VellumError('CONFIG_INVALID', `LDAP poolIdleMs must be a positive number, not ${poolIdleMs}.`);
  let host = parsed.hostname;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return {
    ...settings,
    loginAttributes,
    groupMembership: settings.groupMembership ?? 'member',
    groupObjectClass: settings.groupObjectClass ?? 'groupOfNames',
    nestedGroups: settings.nestedGroups ?? false,
    poolSize,
    poolIdleMs,
    groupManagement: settings.groupManagement ?? false,
    host: host || 'localhost',
    secure,
  };
}

/** Why a value can never be a valid login or password; undefined if it might be. */
function refusal(login: unknown, password: unknown): string | undefined {
  if (typeof login !== 'string' || login.length === 0) return 'empty login';
  if (login.length > MAX_LOGIN_LENGTH) return 'login too long';
  if (CONTROL_CHARACTERS.test(login)) return 'control character in login';
  if (typeof password !== 'string' || password.length === 0) return 'empty password';
  if (password.length > MAX_PASSWORD_LENGTH) return 'password too long';
  if (password.includes('\u0000')) return 'NUL in password';
  return undefined;
}

/**
 * An attribute value escaped for a DN (RFC 4514 section 2.4): the characters
 * with a meaning in a DN, a leading space or '#', a trailing space, and NUL.
 */
export function escapeDnValue(value: string): string {
  let out = value.replace(/[\\,+"<>;=\u0000]/g, (c) => (c === '\u0000' ? '\\00' : `\\${c}`));
  if (out.startsWith(' ') || out.startsWith('#')) out = `\\${out}`;
  if (out.endsWith(' ') && !out.endsWith('\\ ')) out = `${out.slice(0, -1)}\\ `;
  return out;
}

/**
 * A DN for comparing: lowercase, no spaces around separators. Directories
 * keep DN values case-insensitively for the attributes groups use (cn, uid, ou, dc).
 */
export function normalizeDn(dn: string): string {
  return dn.trim().replace(/\s*([,=+])\s*/g, '$1').toLowerCase();
}

function isUnder(dn: string, base: string): boolean {
  const d = normalizeDn(dn);
  const b = normalizeDn(base);
  return d === b || d.endsWith(`,${b}`);
}

/** Every value of an attribute, as text. */
function texts(value: Entry[string] | undefined): string[] {
  if (value === undefined) return [];
  const values = Array.isArray(value) ? value : [value];
  return values.map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : v)).filter((v) => v !== '');
}

/** The value of an attribute, whatever case the server spelled its name in. */
function attribute(entry: Entry, name: string): Entry[string] | undefined {
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(entry)) {
    if (key.toLowerCase() === wanted) return value;
  }
  return undefined;
}

function single(value: Entry[string] | undefined): Buffer | string | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return value.length === 1 ? value[0] : undefined;
  return value;
}

function text(value: Entry[string] | undefined): string | undefined {
  const v = single(value);
  if (v === undefined) return undefined;
  const s = Buffer.isBuffer(v) ? v.toString('utf8') : v;
  return s === '' ? undefined : s;
}

function isObjectGuid(name: string): boolean {
  return name.toLowerCase() === 'objectguid';
}

/**
 * The immutable id as a string. entryUUID arrives as text; AD's objectGUID
 * arrives as 16 bytes in Microsoft's mixed-endian GUID layout and is printed
 * the way AD tools print it. Other binary ids are lowercase hex.
 */
export function formatId(value: Buffer | string, attributeName: string): string {
  if (typeof value === 'string') return UUID.test(value) ? value.toLowerCase() : value;
  if (value.length === 16) {
    const b = isObjectGuid(attributeName)
      ? Buffer.concat([
          Buffer.from(value.subarray(0, 4)).reverse(),
          Buffer.from(value.subarray(4, 6)).reverse(),
          Buffer.from(value.subarray(6, 8)).reverse(),
          value.subarray(8),
        ])
      : value;
    const h = b.toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
  return value.toString('hex');
}

/** The search value for an id printed by formatId: objectGUID goes back to its 16 bytes; undefined if it cannot be one. */
function idValue(id: string, attributeName: string): string | Buffer | undefined {
  if (id === '' || id.length > 256 || CONTROL_CHARACTERS.test(id)) return undefined;
  if (!isObjectGuid(attributeName)) return id;
  if (!UUID.test(id)) return undefined;
  const b = Buffer.from(id.replace(/-/g, ''), 'hex');
  return Buffer.concat([
    Buffer.from(b.subarray(0, 4)).reverse(),
    Buffer.from(b.subarray(4, 6)).reverse(),
    Buffer.from(b.subarray(6, 8)).reverse(),
    b.subarray(8),
  ]);
}

/** A one-line account of an ldapts/socket failure; never carries a password. */
function describe(e: unknown): string {
  if (e instanceof ResultCodeError) return `LDAP result ${e.code} (${e.constructor.name.replace(/Error$/, '')})`;
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    const first = e.message.split('\n')[0] ?? '';
    return typeof code === 'string' && !first.includes(code) ? `${first} (${code})` : first;
  }
  return String(e);
}

function isBadCredentials(e: unknown): boolean {
  return e instanceof InvalidCredentialsError || e instanceof InappropriateAuthError;
}

/** Why a pooled connection may not be used; also the sign it must be discarded. */
class ConnectionLost extends Error {}

/**
 * A pooled service client, checked to be bound right before each operation
 * (synchronously, so the check and the request go out in the same turn).
 */
class ServiceConnection {
  readonly #client: Client;

  constructor(client: Client) {
    this.#client = client;
  }

  #checked(): Client {
    if (!this.#client.isBound) throw new ConnectionLost('the service connection was closed');
    return this.#client;
  }

  async search(base: string, options: SearchOptions): Promise<Entry[]> {
    return (await this.#checked().search(base, options)).searchEntries;
  }

  add(dn: string, attributes: Record<string, string[] | string>): Promise<void> {
    return this.#checked().add(dn, attributes);
  }

  modify(dn: string, change: Change): Promise<void> {
    return this.#checked().modify(dn, change);
  }
}

/**
 * Bound service clients for reuse: at most `size` at once; a caller waits (up
 * to timeoutMs) when all are busy; idle ones are closed after idleMs; a client
 * that failed or lost its bind is discarded, and the next caller connects anew,
 * so the pool recovers by itself when the server comes back.
 */
class ServicePool {
  readonly #connect: () => Promise<Client>;
  readonly #close: (client: Client) => Promise<void>;
  readonly #size: number;
  readonly #idleMs: number;
  readonly #waitMs: number;
  #idle: { client: Client; since: number }[] = [];
  #count = 0;
  #waiters: (() => void)[] = [];
  #sweeper: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: { connect: () => Promise<Client>; close: (client: Client) => Promise<void>; size: number; idleMs: number; waitMs: number }) {
    this.#connect = options.connect;
    this.#close = options.close;
    this.#size = options.size;
    this.#idleMs = options.idleMs;
    this.#waitMs = options.waitMs;
  }

  async acquire(): Promise<Client> {
    const deadline = performance.now() + this.#waitMs;
    for (;;) {
      if (this.#closed) throw new VellumError('DIRECTORY_UNAVAILABLE', 'The directory connection is closed.');
      const idle = this.#idle.pop();
      if (idle) {
        if (idle.client.isBound) return idle.client;
        this.#discard(idle.client);
        continue;
      }
      if (this.#count < this.#size) {
        this.#count++;
        try {
          return await this.#connect();
        } catch (e) {
          this.#count--;
          this.#wake();
          throw e;
        }
      }
      const left = deadline - performance.now();
      if (left <= 0) throw new VellumError('DIRECTORY_UNAVAILABLE', `All ${this.#size} directory connections stayed busy for ${this.#waitMs} ms.`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.#waiters = this.#waiters.filter((w) => w !== wake);
          resolve();
        }, left);
        const wake = () => {
          clearTimeout(timer);
          resolve();
        };
        this.#waiters.push(wake);
      });
    }
  }

  /** Back into the pool if healthy and still bound; otherwise closed. */
  release(client: Client, healthy: boolean): void {
    if (!healthy || !client.isBound || this.#closed) {
      this.#discard(client);
      return;
    }
    this.#idle.push({ client, since: performance.now() });
    this.#sweep();
    this.#wake();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#sweeper) clearTimeout(this.#sweeper);
    const idle = this.#idle;
    this.#idle = [];
    for (const wake of this.#waiters.splice(0)) wake();
    await Promise.all(idle.map(({ client }) => this.#close(client)));
  }

  #discard(client: Client): void {
    this.#count--;
    void this.#close(client);
    this.#wake();
  }

  #wake(): void {
    this.#waiters.shift()?.();
  }

  /** Closes connections idle for idleMs; re-arms itself while any are idle. */
  #sweep(): void {
    if (this.#sweeper || this.#idle.length === 0) return;
    this.#sweeper = setTimeout(() => {
      this.#sweeper = undefined;
      const now = performance.now();
      const stale = this.#idle.filter(({ since }) => now - since >= this.#idleMs);
      this.#idle = this.#idle.filter(({ since }) => now - since < this.#idleMs);
      for (const { client } of stale) this.#discard(client);
      this.#sweep();
    }, Math.max(50, Math.min(this.#idleMs, 5_000)));
    this.#sweeper.unref();
  }
}

/** Groups of these object classes must keep at least one member (their schema says MUST member). */
const CLASSES_NEEDING_A_MEMBER = new Set(['groupofnames', 'groupofuniquenames']);

class LdapDirectory implements Directory {
  readonly #settings: Resolved;
  readonly #open = new Set<Client>();
  readonly #pool: ServicePool;
  /** The attribute groups list members in, for the walk and for changes. */
  readonly #memberAttribute: string;
  #inChain: Promise<boolean> | undefined;
  #closed = false;

  constructor(settings: Resolved) {
    this.#settings = settings;
    this.#memberAttribute = settings.groupMembership === 'uniqueMember' || settings.groupObjectClass.toLowerCase() === 'groupofuniquenames' ? 'uniqueMember' : 'member';
    this.groupsWritable = settings.groupManagement;
    this.#pool = new ServicePool({
      connect: () => this.#serviceClient(),
      close: (client) => this.#release(client),
      size: settings.poolSize,
      idleMs: settings.poolIdleMs,
      waitMs: settings.timeoutMs,
    });
  }

  readonly groupsWritable: boolean;

  async authenticate(login: string, password: string): Promise<Principal> {
    // Step 1: nothing here touches the network.
    if (refusal(login, password) !== undefined) throw new VellumError('AUTH_FAILED');
    return this.#withService(async (ldap) => {
      // Step 2: find the person.
      const entries = await this.#findEntries(ldap, login);
      const entry = entries.length === 1 ? entries[0] : undefined;
      if (!entry) {
        // Unknown (or ambiguous) login: spend the same bind a known one would, then refuse alike.
        await this.#userBind(`cn=vellum-no-such-person-${randomUUID()},${this.#settings.userBase}`, password);
        throw new VellumError('AUTH_FAILED');
      }
      const rawId = this.#rawId(entry);
      // Step 3: the password.
      if (!(await this.#userBind(entry.dn, password))) throw new VellumError('AUTH_FAILED');
      // Step 4: the groups.
      return await this.#principal(ldap, entry, rawId, login);
    });
  }

  async lookup(id: string): Promise<Principal | null> {
    this.#assertOpen();
    const s = this.#settings;
    const value = idValue(id, s.idAttribute);
    if (value === undefined) return null;
    return this.#withService(async (ldap) => {
      const entries = await this.#search(ldap, `Searching ${s.userBase} for the person's id failed`, s.userBase, {
        filter: new EqualityFilter({ attribute: s.idAttribute, value }),
        attributes: this.#personAttributes(),
        explicitBufferAttributes: this.#bufferAttributes(),
        sizeLimit: 2,
      });
      const entry = entries.length === 1 ? entries[0] : undefined;
      const rawId = entry ? single(attribute(entry, s.idAttribute)) : undefined;
      if (!entry || rawId === undefined || formatId(rawId, s.idAttribute) !== id) return null;
      return await this.#principal(ldap, entry, rawId, text(attribute(entry, s.loginAttributes[0]!)) ?? id);
    });
  }

  async findPerson(login: string): Promise<DirectoryPerson> {
    if (typeof login !== 'string' || login.length === 0 || login.length > MAX_LOGIN_LENGTH || CONTROL_CHARACTERS.test(login)) {
      throw new VellumError('PERSON_NOT_FOUND', 'That is not a login name.');
    }
    return this.#withService((ldap) => this.#person(ldap, login));
  }

  async listGroups(): Promise<GroupSummary[]> {
    const s = this.#settings;
    return this.#withService(async (ldap) => {
      const entries = await this.#search(ldap, `Listing the groups under ${s.groupBase} failed`, s.groupBase, {
        filter: new EqualityFilter({ attribute: 'objectClass', value: s.groupObjectClass }),
        attributes: ['cn', 'description', this.#memberAttribute],
        paged: { pageSize: GROUP_PAGE_SIZE },
      });
      return entries.map((entry) => this.#summary(entry)).sort((a, b) => a.name.localeCompare(b.name));
    });
  }

  async group(name: string): Promise<GroupDetail> {
    return this.#withService(async (ldap) => this.#detail(ldap, await this.#groupEntry(ldap, name)));
  }

  async createGroup(name: string, members: readonly string[], description?: string): Promise<GroupDetail> {
    this.#assertWritable();
    const s = this.#settings;
    if (typeof name !== 'string' || !GROUP_NAME.test(name)) {
      throw new VellumError('BAD_REQUEST', 'A group name is 1 to 64 letters (A-Z, a-z), digits, ".", "_" or "-", starting with a letter or digit.');
    }
    if (description !== undefined && (typeof description !== 'string' || description.length > MAX_DESCRIPTION_LENGTH || CONTROL_CHARACTERS.test(description))) {
      throw new VellumError('BAD_REQUEST', `A group description is text of at most ${MAX_DESCRIPTION_LENGTH} characters, on one line.`);
    }
    if (!Array.isArray(members) || members.length > MAX_NEW_MEMBERS || !members.every((m) => typeof m === 'string')) {
      throw new VellumError('BAD_REQUEST', `Members are a list of at most ${MAX_NEW_MEMBERS} login names.`);
    }
    const needsMember = CLASSES_NEEDING_A_MEMBER.has(s.groupObjectClass.toLowerCase());
    if (needsMember && members.length === 0) throw new VellumError('GROUP_NEEDS_MEMBER', `A ${s.groupObjectClass} is created with at least one member.`);
    return this.#withService(async (ldap) => {
      const people = await Promise.all(members.map((login) => this.#person(ldap, login)));
      const memberDns = [...new Map(people.map((p) => [normalizeDn(p.dn), p.dn])).values()];
      const existing = await this.#groupEntries(ldap, name);
      if (existing.length > 0) throw new VellumError('GROUP_EXISTS', `"${name}" is ${existing[0]!.dn}.`);
      const dn = `cn=${escapeDnValue(name)},${s.groupBase}`;
      const attributes: Record<string, string[] | string> = { objectClass: ['top', s.groupObjectClass], cn: name };
      if (description !== undefined && description !== '') attributes.description = description;
      if (memberDns.length > 0) attributes[this.#memberAttribute] = memberDns;
      if (s.groupObjectClass.toLowerCase() === 'group') {
        attributes.groupType = AD_GLOBAL_SECURITY_GROUP;
        attributes.sAMAccountName = name;
      }
      try {
        await ldap.add(dn, attributes);
      } catch (e) {
        if (e instanceof AlreadyExistsError) throw new VellumError('GROUP_EXISTS', `${dn} exists.`);
        throw this.#writeFailure(`Creating ${dn}`, e);
      }
      return this.#detail(ldap, await this.#groupEntry(ldap, name));
    });
  }

  async addMember(group: string, login: string): Promise<MembershipChange> {
    this.#assertWritable();
    return this.#withService(async (ldap) => {
      const entry = await this.#groupEntry(ldap, group);
      const person = await this.#person(ldap, login);
      const before = this.#memberDns(entry);
      // Already a member: nothing to change (idempotent; before and after are equal).
      if (!before.some((dn) => normalizeDn(dn) === normalizeDn(person.dn))) {
        try {
          await ldap.modify(entry.dn, new Change({ operation: 'add', modification: new Attribute({ type: this.#memberAttribute, values: [person.dn] }) }));
        } catch (e) {
          // Added by someone else a moment ago: the outcome is the one asked for.
          if (!(e instanceof TypeOrValueExistsError)) throw this.#writeFailure(`Adding ${person.dn} to ${entry.dn}`, e);
        }
      }
      const after = await this.#detail(ldap, await this.#groupEntry(ldap, group));
      return { group: after, before, after: after.memberDns, person };
    });
  }

  async removeMember(group: string, login: string): Promise<MembershipChange> {
    this.#assertWritable();
    const s = this.#settings;
    return this.#withService(async (ldap) => {
      const entry = await this.#groupEntry(ldap, group);
      const person = await this.#person(ldap, login);
      const before = this.#memberDns(entry);
      // The value as the group stores it (its spelling may differ from the person's DN).
      const stored = before.find((dn) => normalizeDn(dn) === normalizeDn(person.dn));
      if (stored === undefined) throw new VellumError('PERSON_NOT_FOUND', `${person.login} is not a member of ${group}.`);
      if (before.length === 1 && CLASSES_NEEDING_A_MEMBER.has(s.groupObjectClass.toLowerCase())) {
        throw new VellumError('GROUP_NEEDS_MEMBER', `${person.login} is the last member of ${group}.`);
      }
      try {
        await ldap.modify(entry.dn, new Change({ operation: 'delete', modification: new Attribute({ type: this.#memberAttribute, values: [stored] }) }));
      } catch (e) {
        if (e instanceof NoSuchAttributeError) throw new VellumError('PERSON_NOT_FOUND', `${person.login} is not a member of ${group}.`);
        if (e instanceof ObjectClassViolationError) throw new VellumError('GROUP_NEEDS_MEMBER', `${person.login} is the last member of ${group}.`);
        throw this.#writeFailure(`Removing ${stored} from ${entry.dn}`, e);
      }
      const after = await this.#detail(ldap, await this.#groupEntry(ldap, group));
      return { group: after, before, after: after.memberDns, person };
    });
  }

  /** Runs fn on a pooled service connection; a connection that failed is discarded, not pooled. */
  async #withService<T>(fn: (ldap: ServiceConnection) => Promise<T>): Promise<T> {
    this.#assertOpen();
    const client = await this.#pool.acquire();
    let healthy = true;
    try {
      return await fn(new ServiceConnection(client));
    } catch (e) {
      if (!(e instanceof VellumError) || e.code === 'DIRECTORY_UNAVAILABLE') healthy = false;
      throw e;
    } finally {
      this.#pool.release(client, healthy);
    }
  }

  /** A search under base (scope sub, no alias dereferencing); any failure is DIRECTORY_UNAVAILABLE with `what`. */
  async #search(ldap: ServiceConnection, what: string, base: string, options: SearchOptions): Promise<Entry[]> {
    try {
      return await ldap.search(base, { scope: 'sub', derefAliases: 'never', ...options });
    } catch (e) {
      throw this.#unavailable(what, e);
    }
  }

  /** Entries whose login attribute (any of them) equals login; at most 2 (one, or "more than one"). */
  #findEntries(ldap: ServiceConnection, login: string): Promise<Entry[]> {
    const s = this.#settings;
    const filters: Filter[] = s.loginAttributes.map((attribute) => new EqualityFilter({ attribute, value: login }));
    return this.#search(ldap, `Searching ${s.userBase} for the login failed`, s.userBase, {
      filter: filters.length === 1 ? filters[0]! : new OrFilter({ filters }),
      attributes: this.#personAttributes(),
      explicitBufferAttributes: this.#bufferAttributes(),
      sizeLimit: 2, // enough to tell "one" from "more than one"
    });
  }

  #personAttributes(): string[] {
    const s = this.#settings;
    return ['dn', s.idAttribute, s.displayNameAttribute, 'cn', ...s.loginAttributes, ...(s.groupMembership === 'memberOf' ? ['memberOf'] : [])];
  }

  #bufferAttributes(): string[] {
    return isObjectGuid(this.#settings.idAttribute) ? [this.#settings.idAttribute, 'objectGUID'] : [];
  }

  #rawId(entry: Entry): Buffer | string {
    const s = this.#settings;
    const rawId = single(attribute(entry, s.idAttribute));
    if (rawId === undefined || rawId.length === 0) {
      throw new VellumError('DIRECTORY_UNAVAILABLE', `The directory entry ${entry.dn} has no single ${s.idAttribute} (check ldap.idAttribute).`);
    }
    return rawId;
  }

  /** The one person with this login. @throws PERSON_NOT_FOUND */
  async #person(ldap: ServiceConnection, login: string): Promise<DirectoryPerson> {
    if (typeof login !== 'string' || login.length === 0 || login.length > MAX_LOGIN_LENGTH || CONTROL_CHARACTERS.test(login)) {
      throw new VellumError('PERSON_NOT_FOUND', 'That is not a login name.');
    }
    const entries = await this.#findEntries(ldap, login);
    if (entries.length !== 1) {
      throw new VellumError('PERSON_NOT_FOUND', entries.length === 0 ? `No one signs in as "${login.slice(0, 64)}".` : `"${login.slice(0, 64)}" matches more than one entry.`);
    }
    return this.#personOf(entries[0]!, login);
  }

  #personOf(entry: Entry, login: string): DirectoryPerson {
    const s = this.#settings;
    return Object.freeze({
      id: formatId(this.#rawId(entry), s.idAttribute),
      // The directory's spelling: LDAP matched `login` ignoring case and
      // surrounding spaces, so 'SAM' and ' sam' are sam; the trail says sam.
      login: text(attribute(entry, s.loginAttributes[0]!)) ?? login,
      dn: entry.dn,
      displayName: text(attribute(entry, s.displayNameAttribute)) ?? text(attribute(entry, 'cn')) ?? login,
    });
  }

  /** The Principal for a found entry: its id, names, and its groups. */
  async #principal(ldap: ServiceConnection, entry: Entry, rawId: Buffer | string, login: string): Promise<Principal> {
    const person = this.#personOf(entry, login);
    const groups = await this.#groupsOf(ldap, entry);
    return Object.freeze({ ...person, id: formatId(rawId, this.#settings.idAttribute), groups: Object.freeze(groups) });
  }

  /** The DNs of the person's groups under groupBase, as ldap.groupMembership and ldap.nestedGroups say. */
  async #groupsOf(ldap: ServiceConnection, entry: Entry): Promise<string[]> {
    const s = this.#settings;
    const what = `Searching ${s.groupBase} for the person's groups failed`;
    let walk = s.nestedGroups;
    let direct: string[];
    if (s.groupMembership === 'memberOf') {
      direct = texts(attribute(entry, 'memberOf')).filter((dn) => isUnder(dn, s.groupBase));
    } else if (s.groupMembership === 'in-chain' && (await this.#inChainSupported(ldap))) {
      const found = await this.#search(ldap, what, s.groupBase, {
        filter: new ExtensibleFilter({ matchType: 'member', rule: IN_CHAIN_RULE, value: entry.dn }),
        attributes: ['1.1'],
        paged: { pageSize: GROUP_PAGE_SIZE },
      });
      return found.map((g) => g.dn); // the server followed the nesting
    } else {
      if (s.groupMembership === 'in-chain') walk = true; // the fallback: member, walked up here
      const found = await this.#search(ldap, what, s.groupBase, {
        filter: new EqualityFilter({ attribute: this.#memberAttribute, value: entry.dn }),
        attributes: ['1.1'], // DNs only
        paged: { pageSize: GROUP_PAGE_SIZE },
      });
      direct = found.map((g) => g.dn);
    }
    return walk ? this.#walkUp(ldap, direct) : direct;
  }

  /**
   * The groups plus every group that contains one of them, level by level, at
   * most MAX_NESTING_DEPTH levels up; a group seen before is not followed
   * again, so a cycle ends the walk.
   */
  async #walkUp(ldap: ServiceConnection, groups: readonly string[]): Promise<string[]> {
    const s = this.#settings;
    const seen = new Map(groups.map((dn) => [normalizeDn(dn), dn]));
    let frontier = [...seen.values()];
    for (let depth = 0; frontier.length > 0; depth++) {
      if (depth === MAX_NESTING_DEPTH) {
        s.log?.(`LDAP: groups nested deeper than ${MAX_NESTING_DEPTH} levels under ${s.groupBase} were not followed (from ${frontier[0]}).`);
        break;
      }
      const next: string[] = [];
      for (let i = 0; i < frontier.length; i += WALK_CHUNK) {
        const filters = frontier.slice(i, i + WALK_CHUNK).map((dn) => new EqualityFilter({ attribute: this.#memberAttribute, value: dn }));
        const parents = await this.#search(ldap, `Searching ${s.groupBase} for nested groups failed`, s.groupBase, {
          filter: filters.length === 1 ? filters[0]! : new OrFilter({ filters }),
          attributes: ['1.1'],
          paged: { pageSize: GROUP_PAGE_SIZE },
        });
        for (const parent of parents) {
          const key = normalizeDn(parent.dn);
          if (seen.has(key)) continue;
          seen.set(key, parent.dn);
          next.push(parent.dn);
        }
      }
      frontier = next;
    }
    return [...seen.values()];
  }

  /**
   * Whether the server is Active Directory (rootDSE supportedCapabilities), the one
   * kind known to evaluate IN_CHAIN_RULE. Others (slapd 2.5 among them) answer a
   * filter with an unknown matching rule with no entries and no error, which would
   * read as "in no group"; for them the mode falls back to the walk, with a notice.
   */
  #inChainSupported(ldap: ServiceConnection): Promise<boolean> {
    this.#inChain ??= (async () => {
      let capabilities: string[] = [];
      try {
        const [root] = await ldap.search('', { scope: 'base', filter: '(objectClass=*)', attributes: ['supportedCapabilities'] });
        capabilities = root ? texts(attribute(root, 'supportedCapabilities')) : [];
      } catch (e) {
        if (!(e instanceof ResultCodeError)) {
          this.#inChain = undefined; // ask again on the next connection
          throw this.#unavailable('Reading the directory\'s rootDSE failed', e);
        }
      }
      const supported = capabilities.some((c) => AD_CAPABILITIES.includes(c));
      if (!supported) {
        this.#settings.log?.(`LDAP: ldap.groupMembership is in-chain, but ${this.#settings.url} does not say it is Active Directory `
          + `(no supportedCapabilities ${AD_CAPABILITIES.join(' or ')}); nested groups are followed by Vellum instead (member, ${MAX_NESTING_DEPTH} levels).`);
      }
      return supported;
    })();
    return this.#inChain;
  }

  /** Groups of the configured class under groupBase whose cn is name (at most 2). */
  #groupEntries(ldap: ServiceConnection, name: string): Promise<Entry[]> {
    const s = this.#settings;
    return this.#search(ldap, `Searching ${s.groupBase} for the group failed`, s.groupBase, {
      filter: new AndFilter({ filters: [
        new EqualityFilter({ attribute: 'objectClass', value: s.groupObjectClass }),
        new EqualityFilter({ attribute: 'cn', value: name }),
      ] }),
      attributes: ['cn', 'description', this.#memberAttribute],
      sizeLimit: 2,
    });
  }

  /** The one group named name. @throws GROUP_NOT_FOUND */
  async #groupEntry(ldap: ServiceConnection, name: string): Promise<Entry> {
    if (typeof name !== 'string' || name.length === 0 || name.length > 256 || CONTROL_CHARACTERS.test(name)) {
      throw new VellumError('GROUP_NOT_FOUND', 'That is not a group name.');
    }
    const entries = await this.#groupEntries(ldap, name);
    if (entries.length !== 1) {
      throw new VellumError('GROUP_NOT_FOUND', entries.length === 0 ? `No group "${name.slice(0, 64)}" under ${this.#settings.groupBase}.` : `"${name.slice(0, 64)}" names more than one group.`);
    }
    return entries[0]!;
  }

  #memberDns(entry: Entry): string[] {
    return texts(attribute(entry, this.#memberAttribute));
  }

  #summary(entry: Entry): GroupSummary {
    return {
      name: text(attribute(entry, 'cn')) ?? entry.dn,
      dn: entry.dn,
      description: text(attribute(entry, 'description')) ?? null,
      memberCount: this.#memberDns(entry).length,
    };
  }

  /** The group with its members: DNs under userBase that are people become people; the rest stay DNs only. */
  async #detail(ldap: ServiceConnection, entry: Entry): Promise<GroupDetail> {
    const s = this.#settings;
    const memberDns = this.#memberDns(entry);
    const found = await Promise.all(memberDns.filter((dn) => isUnder(dn, s.userBase)).map(async (dn) => {
      try {
        const [member] = await ldap.search(dn, { scope: 'base', derefAliases: 'never', attributes: this.#personAttributes(), explicitBufferAttributes: this.#bufferAttributes() });
        return member && single(attribute(member, s.idAttribute)) !== undefined ? this.#personOf(member, dn) : undefined;
      } catch (e) {
        if (e instanceof NoSuchObjectError) return undefined; // a dangling member DN
        throw this.#unavailable(`Reading the member ${dn} failed`, e);
      }
    }));
    const members = found.filter((p): p is DirectoryPerson => p !== undefined).sort((a, b) => a.login.localeCompare(b.login));
    return { ...this.#summary(entry), members, memberDns };
  }

  #assertWritable(): void {
    this.#assertOpen();
    if (!this.groupsWritable) throw new VellumError('DIRECTORY_READ_ONLY', 'Group management is off (ldap.groupManagement).');
  }

  /** A refused write: no rights is read-only; other refusals are a bad request; anything else, unavailable. */
  #writeFailure(what: string, e: unknown): VellumError {
    if (e instanceof InsufficientAccessError) return new VellumError('DIRECTORY_READ_ONLY', `The directory refused the service account: ${what}: ${describe(e)}.`, { cause: e });
    if (e instanceof ResultCodeError) return new VellumError('BAD_REQUEST', `The directory refused it: ${what}: ${describe(e)}.`, { cause: e });
    return this.#unavailable(what, e);
  }

  async status(): Promise<ComponentStatus> {
    const s = this.#settings;
    if (this.#closed) return { ok: false, detail: `LDAP ${s.url}: the directory connection is closed.` };
    const started = performance.now();
    try {
      await this.#withService((ldap) => this.#search(ldap, `Searching ${s.userBase} failed`, s.userBase, { scope: 'base', attributes: ['1.1'] }));
      const ms = (performance.now() - started).toFixed(1);
      return { ok: true, detail: `LDAP ${s.url}: service bind and search of ${s.userBase} answered in ${ms} ms.` };
    } catch (e) {
      const why = e instanceof VellumError ? (e.detail ?? e.message) : `Searching ${s.userBase} failed: ${describe(e)}.`;
      return { ok: false, detail: `LDAP ${s.url}: ${why}` };
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#pool.close();
    await Promise.all([...this.#open].map((c) => this.#release(c)));
  }

  #assertOpen(): void {
    if (this.#closed) throw new VellumError('DIRECTORY_UNAVAILABLE', 'The directory connection is closed.');
  }

  #unavailable(what: string, e: unknown): VellumError {
    if (e instanceof VellumError) return e;
    return new VellumError('DIRECTORY_UNAVAILABLE', `${what}: ${describe(e)}.`, { cause: e });
  }

  /** A connected client (TLS if configured), not yet bound. */
  async #openClient(): Promise<Client> {
    const s = this.#settings;
    const options: ClientOptions = { url: s.url, connectTimeout: s.timeoutMs, timeout: s.timeoutMs };
    // ldapts treats tlsOptions on an ldap:// URL as implicit TLS, so only ldaps:// gets them here.
    if (s.secure && s.caPem) options.tlsOptions = { ca: s.caPem };
    const client = new Client(options);
    this.#open.add(client);
    if (s.startTls) {
      const tls: ConnectionOptions = { host: s.host };
      if (isIP(s.host) === 0) tls.servername = s.host; // SNI takes names only
      if (s.caPem) tls.ca = s.caPem;
      try {
        await client.startTLS(tls);
      } catch (e) {
        await this.#release(client);
        throw this.#unavailable(`StartTLS with ${s.url} failed`, e);
      }
    }
    return client;
  }

  async #serviceClient(): Promise<Client> {
    const s = this.#settings;
    const client = await this.#openClient();
    try {
      await client.bind(s.bindDn, s.bindPassword);
      return client;
    } catch (e) {
      await this.#release(client);
      if (isBadCredentials(e)) {
        throw new VellumError('DIRECTORY_UNAVAILABLE', `The directory refused the service account ${s.bindDn} (check ldap.bindDn and ldap.bindPassword).`, { cause: e });
      }
      throw this.#unavailable(`The service bind to ${s.url} failed`, e);
    }
  }

  /** Binds as dn with password on a connection of its own: true if accepted, false if refused. */
  async #userBind(dn: string, password: string): Promise<boolean> {
    const client = await this.#openClient();
    try {
      await client.bind(dn, password);
      return true;
    } catch (e) {
      if (isBadCredentials(e)) return false;
      throw this.#unavailable(`The bind as the person to ${this.#settings.url} failed`, e);
    } finally {
      await this.#release(client);
    }
  }

  async #release(client: Client): Promise<void> {
    this.#open.delete(client);
    try {
      await client.unbind();
    } catch {
      // The connection is gone either way.
    }
  }
}
