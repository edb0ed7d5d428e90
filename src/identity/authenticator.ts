// Authentication for every protocol: a directory bind, remembered briefly so
// WebDAV clients (which send credentials with every request) don't cost a bind
// each time. The cache is keyed by an HMAC under a per-process random key, so
// it never holds a password or anything a password could be recovered from
// offline. Every real bind, success or failure, is audited.

import { createHmac, randomBytes } from 'node:crypto';
import type { AuditTrail } from '../audit/index.ts';
import { isVellumError, VellumError, type Principal, type RequestOrigin } from '../kernel/index.ts';
import { parseBasicAuth } from './basic-auth.ts';

export interface Authenticator {
  /**
   * @throws VellumError AUTH_FAILED (audited), DIRECTORY_UNAVAILABLE (audited; never a bypass)
   */
  authenticate(login: string, password: string, origin: RequestOrigin): Promise<Principal>;
  /**
   * The same for an HTTP `Authorization: Basic` header, for every front end that takes one.
   * @throws VellumError AUTH_REQUIRED when there is none (not audited: every client's first
   *   request looks like that), AUTH_FAILED when it is malformed (audited) or wrong (audited),
   *   DIRECTORY_UNAVAILABLE
   */
  authenticateBasic(header: string | undefined, origin: RequestOrigin): Promise<Principal>;
  /**
   * A failed step after the password (a wrong TOTP or recovery code) counts
   * toward lockout like a wrong password, and is audited as a denied sign-in.
   */
  recordFailure(login: string, origin: RequestOrigin, detail: string): Promise<void>;
  /** Drops every cached sign-in of this person (a group change, a revocation): the next request asks again. */
  forget(person: { readonly id?: string; readonly dn?: string }): void;
}

const MAX_CACHED = 10_000;

/** What verifies a password: the directory (session/ does not depend on how). */
export interface PasswordVerifier {
  authenticate(login: string, password: string): Promise<Principal>;
}

export function createAuthenticator(directory: PasswordVerifier, audit: AuditTrail, cacheSeconds: number): Authenticator {
  const cacheKey = randomBytes(32);
  const cache = new Map<string, { principal: Principal; expires: number }>();

  const authenticator: Authenticator = {
    async recordFailure(login, origin, detail) {
      await audit.record({
        action: 'auth.login', outcome: 'denied', ip: origin.ip, client: origin.client, protocol: origin.protocol,
        object: { path: `login:${login.slice(0, 256)}` }, detail,
      });
    },

    forget(person) {
      for (const [key, entry] of cache) {
        if ((person.id !== undefined && entry.principal.id === person.id)
          || (person.dn !== undefined && entry.principal.dn.toLowerCase() === person.dn.toLowerCase())) cache.delete(key);
      }
    },

    async authenticateBasic(header, origin) {
      const credentials = parseBasicAuth(header);
      if (credentials === null) throw new VellumError('AUTH_REQUIRED');
      if (credentials === 'malformed') {
        const error = new VellumError('AUTH_FAILED', 'The Authorization header is not valid HTTP Basic.');
        await audit.record({ action: 'auth.login', outcome: 'denied', ip: origin.ip, client: origin.client, protocol: origin.protocol, detail: `${error.code}: ${error.message}` });
        throw error;
      }
      return authenticator.authenticate(credentials.login, credentials.password, origin);
    },

    async authenticate(login, password, origin) {
      const key = createHmac('sha256', cacheKey).update(login).update('\u0000').update(password).digest('base64');
      const hit = cache.get(key);
      if (hit && hit.expires > Date.now()) return hit.principal;
      if (hit) cache.delete(key);

      const where = { ip: origin.ip, client: origin.client, protocol: origin.protocol };
      try {
        const principal = await directory.authenticate(login, password);
        await audit.record({ action: 'auth.login', outcome: 'success', actor: principal, ...where });
        if (cacheSeconds > 0) {
          if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
          cache.set(key, { principal, expires: Date.now() + cacheSeconds * 1000 });
        }
        return principal;
      } catch (e) {
        const error = isVellumError(e) ? e : new VellumError('INTERNAL', undefined, { cause: e });
        // The login name is recorded as typed; there is no verified identity to attach.
        await audit.record({
          action: 'auth.login', outcome: error.code === 'AUTH_FAILED' ? 'denied' : 'failed', ...where,
          object: { path: `login:${login.slice(0, 256)}` }, detail: `${error.code}: ${error.message}`,
        });
        throw error;
      }
    },
  };
  return authenticator;
}
