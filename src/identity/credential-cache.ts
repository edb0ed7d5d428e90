// Recent successful sign-ins, so WebDAV clients (which send credentials with
// every request) don't cost a directory bind or a slow hash each time. An
// entry is found by an HMAC of the login and password under a per-process
// random key: the cache never holds a password or anything a password could
// be recovered from offline. Entries are indexed by login (normalised) so a
// wrong or changed password, or a lockout, drops all of that login's entries.

import { createHmac, randomBytes } from 'node:crypto';
import { systemClock, type Clock, type Principal } from '../kernel/index.ts';

export interface CachedSignIn {
  readonly principal: Principal;
  /** The id of the sign-in that made this entry (RequestOrigin.session): every request served from it carries it. */
  readonly session: string;
  /** The app password used, when the sign-in was with one (revoking it drops the entry). */
  readonly appPasswordId?: string;
  /**
   * For a directory password: whether the policy accepts it over HTTP Basic,
   * decided when the entry was made (an enrolment forgets the person's entries).
   */
  readonly basicAllowed?: boolean;
}

export interface CredentialCache {
  /** The cached sign-in for exactly these credentials, if it has not expired. */
  find(login: string, password: string): CachedSignIn | undefined;
  /**
   * Remembers a successful sign-in. For a directory password, the login's entries
   * for other directory passwords go: a bind that succeeds with a new password
   * means the old one changed. (App passwords, one per device, live side by side.)
   */
  remember(login: string, password: string, signIn: CachedSignIn): void;
  /** Drops every entry of this login (a wrong password, a lockout). */
  dropLogin(login: string): void;
  /** Drops every entry of this person (by directory id or DN) or made with this app password. */
  forget(match: { readonly id?: string; readonly dn?: string; readonly appPasswordId?: string }): void;
  readonly size: number;
}

export interface CredentialCacheOptions {
  /** How long an entry lives; 0 turns the cache off. */
  readonly seconds: number;
  /** At most this many entries; the oldest goes first. */
  readonly maxEntries?: number;
  readonly clock?: Clock;
}

const DEFAULT_MAX_ENTRIES = 10_000;

/** How login names are compared everywhere in identity/: as typed, trimmed, lower case, NFC. */
export function normaliseLogin(login: string): string {
  return login.trim().normalize('NFC').toLowerCase();
}

interface Entry extends CachedSignIn {
  readonly login: string;
  readonly expires: number;
}

export function createCredentialCache(options: CredentialCacheOptions): CredentialCache {
  const secret = randomBytes(32);
  const clock = options.clock ?? systemClock;
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
  const entries = new Map<string, Entry>();
  const byLogin = new Map<string, Set<string>>();

  // The login as typed goes into the key: only exactly the same credentials hit.
  const keyOf = (login: string, password: string) =>
    createHmac('sha256', secret).update(login).update('\u0000').update(password).digest('base64');

  function drop(key: string): void {
    const entry = entries.get(key);
    if (entry === undefined) return;
    entries.delete(key);
    const keys = byLogin.get(entry.login);
    keys?.delete(key);
    if (keys?.size === 0) byLogin.delete(entry.login);
  }

  const cache: CredentialCache = {
    get size() {
      return entries.size;
    },

    find(login, password) {
      const key = keyOf(login, password);
      const entry = entries.get(key);
      if (entry === undefined) return undefined;
      if (entry.expires <= clock.now().getTime()) {
        drop(key);
        return undefined;
      }
      return entry;
    },

    remember(login, password, signIn) {
      if (options.seconds <= 0) return;
      const key = keyOf(login, password);
      const normalised = normaliseLogin(login);
      if (signIn.appPasswordId === undefined) {
        for (const other of [...(byLogin.get(normalised) ?? [])]) {
          if (other !== key && entries.get(other)?.appPasswordId === undefined) drop(other);
        }
      }
      drop(key);
      while (entries.size >= maxEntries) drop(entries.keys().next().value!);
      entries.set(key, { ...signIn, login: normalised, expires: clock.now().getTime() + options.seconds * 1000 });
      let keys = byLogin.get(normalised);
      if (keys === undefined) byLogin.set(normalised, (keys = new Set()));
      keys.add(key);
    },

    dropLogin(login) {
      for (const key of [...(byLogin.get(normaliseLogin(login)) ?? [])]) drop(key);
    },

    forget(match) {
      const dn = match.dn?.toLowerCase();
      for (const [key, entry] of entries) {
        if ((match.id !== undefined && entry.principal.id === match.id)
          || (dn !== undefined && entry.principal.dn.toLowerCase() === dn)
          || (match.appPasswordId !== undefined && entry.appPasswordId === match.appPasswordId)) drop(key);
      }
    },
  };
  return cache;
}
