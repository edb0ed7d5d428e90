// The Directory over LDAP, with ldapts: the only file in Vellum that imports it.
//
// authenticate(login, password):
//   1. refuse, before any network traffic, what can never be a valid login:
//      an empty password (an empty simple bind is an anonymous bind and would
//      "succeed"), an empty, over-long or control-character login;
//   2. as the service account, find exactly one entry whose loginAttribute
//      equals the login (a filter object, never a concatenated string);
//   3. bind as that entry's DN with the password, on a connection of its own;
//   4. as the service account, list the groups whose `member` is that DN.
// An unknown login and a wrong password fail with the same AUTH_FAILED, and an
// unknown login still costs a (failing) bind, so neither the message nor the
// number of round trips tells them apart. Anything that stops the directory
// from answering is DIRECTORY_UNAVAILABLE: the caller fails closed.
//
// Every operation opens its own connections and unbinds them in `finally`
// (an open ldapts client keeps the process alive). Open clients are tracked so
// that close() can end them; a pool would slot in at openClient()/release().

import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import {
  Client,
  EqualityFilter,
  InappropriateAuthError,
  InvalidCredentialsError,
  ResultCodeError,
  type ClientOptions,
  type Entry,
} from 'ldapts';
import { VellumError, type ComponentStatus, type Principal } from '../kernel/index.ts';
import type { Directory, DirectoryPerson, DirectorySettings, GroupDetail, GroupSummary, MembershipChange } from './directory.ts';

/** Longer logins are refused without asking the directory (AD's limit is 20; uid has none). */
export const MAX_LOGIN_LENGTH = 256;
/** Longer passwords are refused without asking the directory. */
export const MAX_PASSWORD_LENGTH = 1024;
/** Page size for the group search (slapd's default size limit is 500, AD's MaxPageSize 1000). */
const GROUP_PAGE_SIZE = 500;

// C0 controls and DEL. NUL in particular is where C code truncates.
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function openDirectory(settings: DirectorySettings): Promise<Directory> {
  return new LdapDirectory(checkSettings(settings));
}

interface Endpoint {
  readonly url: string;
  readonly host: string;
  readonly secure: boolean;
}

function checkSettings(settings: DirectorySettings): DirectorySettings & Endpoint {
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
  let host = parsed.hostname;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { ...settings, url: settings.url, host: host || 'localhost', secure };
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

class LdapDirectory implements Directory {
  readonly #settings: DirectorySettings & Endpoint;
  readonly #open = new Set<Client>();
  #closed = false;

  constructor(settings: DirectorySettings & Endpoint) {
    this.#settings = settings;
  }

  async authenticate(login: string, password: string): Promise<Principal> {
    // Step 1: nothing here touches the network.
    if (refusal(login, password) !== undefined) throw new VellumError('AUTH_FAILED');
    this.#assertOpen();
    const s = this.#settings;

    const service = await this.#serviceClient();
    try {
      // Step 2: find the person.
      let entries: Entry[];
      try {
        ({ searchEntries: entries } = await service.search(s.userBase, {
          scope: 'sub',
          derefAliases: 'never',
          filter: new EqualityFilter({ attribute: s.loginAttribute, value: login }),
          attributes: ['dn', s.idAttribute, s.displayNameAttribute, 'cn', s.loginAttribute],
          explicitBufferAttributes: isObjectGuid(s.idAttribute) ? [s.idAttribute, 'objectGUID'] : [],
          sizeLimit: 2, // enough to tell "one" from "more than one"
        }));
      } catch (e) {
        throw this.#unavailable(`Searching ${s.userBase} for the login failed`, e);
      }
      const entry = entries.length === 1 ? entries[0] : undefined;
      if (!entry) {
        // Unknown (or ambiguous) login: spend the same bind a known one would, then refuse alike.
        await this.#userBind(`cn=vellum-no-such-person-${randomUUID()},${s.userBase}`, password);
        throw new VellumError('AUTH_FAILED');
      }
      const rawId = single(attribute(entry, s.idAttribute));
      if (rawId === undefined || rawId.length === 0) {
        throw new VellumError('DIRECTORY_UNAVAILABLE', `The directory entry ${entry.dn} has no single ${s.idAttribute} (check ldap.idAttribute).`);
      }

      // Step 3: the password.
      if (!(await this.#userBind(entry.dn, password))) throw new VellumError('AUTH_FAILED');

      // Step 4: the groups.
      return await this.#principal(service, entry, rawId, login);
    } finally {
      await this.#release(service);
    }
  }

  async lookup(id: string): Promise<Principal | null> {
    this.#assertOpen();
    const s = this.#settings;
    const value = idValue(id, s.idAttribute);
    if (value === undefined) return null;
    const service = await this.#serviceClient();
    try {
      let entries: Entry[];
      try {
        ({ searchEntries: entries } = await service.search(s.userBase, {
          scope: 'sub',
          derefAliases: 'never',
          filter: new EqualityFilter({ attribute: s.idAttribute, value }),
          attributes: ['dn', s.idAttribute, s.displayNameAttribute, 'cn', s.loginAttribute],
          explicitBufferAttributes: isObjectGuid(s.idAttribute) ? [s.idAttribute, 'objectGUID'] : [],
          sizeLimit: 2,
        }));
      } catch (e) {
        throw this.#unavailable(`Searching ${s.userBase} for the person's id failed`, e);
      }
      const entry = entries.length === 1 ? entries[0] : undefined;
      const rawId = entry ? single(attribute(entry, s.idAttribute)) : undefined;
      if (!entry || rawId === undefined || formatId(rawId, s.idAttribute) !== id) return null;
      return await this.#principal(service, entry, rawId, text(attribute(entry, s.loginAttribute)) ?? id);
    } finally {
      await this.#release(service);
    }
  }

  // Group management and findPerson arrive with the directory work of issue 5.
  readonly groupsWritable = false;

  async findPerson(_login: string): Promise<DirectoryPerson> {
    throw new VellumError('NOT_IMPLEMENTED', 'Finding people is not available yet.');
  }

  async listGroups(): Promise<GroupSummary[]> {
    throw new VellumError('NOT_IMPLEMENTED', 'Listing groups is not available yet.');
  }

  async group(_name: string): Promise<GroupDetail> {
    throw new VellumError('NOT_IMPLEMENTED', 'Reading groups is not available yet.');
  }

  async createGroup(): Promise<GroupDetail> {
    throw new VellumError('DIRECTORY_READ_ONLY');
  }

  async addMember(): Promise<MembershipChange> {
    throw new VellumError('DIRECTORY_READ_ONLY');
  }

  async removeMember(): Promise<MembershipChange> {
    throw new VellumError('DIRECTORY_READ_ONLY');
  }

  /** The Principal for a found entry: its id, names, and the groups that list it as a member. */
  async #principal(service: Client, entry: Entry, rawId: Buffer | string, login: string): Promise<Principal> {
    const s = this.#settings;
    let groups: string[];
    try {
      const { searchEntries } = await service.search(s.groupBase, {
        scope: 'sub',
        derefAliases: 'never',
        filter: new EqualityFilter({ attribute: 'member', value: entry.dn }),
        attributes: ['1.1'], // DNs only
        paged: { pageSize: GROUP_PAGE_SIZE },
      });
      groups = searchEntries.map((g) => g.dn);
    } catch (e) {
      throw this.#unavailable(`Searching ${s.groupBase} for the person's groups failed`, e);
    }
    return Object.freeze({
      id: formatId(rawId, s.idAttribute),
      // The directory's spelling: LDAP matched `login` ignoring case and
      // surrounding spaces, so 'SAM' and ' sam' are sam; the trail says sam.
      login: text(attribute(entry, s.loginAttribute)) ?? login,
      dn: entry.dn,
      displayName: text(attribute(entry, s.displayNameAttribute)) ?? text(attribute(entry, 'cn')) ?? login,
      groups: Object.freeze(groups),
    });
  }

  async status(): Promise<ComponentStatus> {
    const s = this.#settings;
    if (this.#closed) return { ok: false, detail: `LDAP ${s.url}: the directory connection is closed.` };
    const started = performance.now();
    let client: Client | undefined;
    try {
      client = await this.#serviceClient();
      await client.search(s.userBase, { scope: 'base', attributes: ['1.1'] });
      const ms = (performance.now() - started).toFixed(1);
      return { ok: true, detail: `LDAP ${s.url}: service bind and search of ${s.userBase} answered in ${ms} ms.` };
    } catch (e) {
      const why = e instanceof VellumError ? (e.detail ?? e.message) : `Searching ${s.userBase} failed: ${describe(e)}.`;
      return { ok: false, detail: `LDAP ${s.url}: ${why}` };
    } finally {
      if (client) await this.#release(client);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
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
