// Authentication for every protocol. A sign-in passes, in order: the lockout
// check (no password is looked at for a blocked address or a locked login),
// the credential cache, then an app password (scrypt) or a directory bind.
// Over HTTP Basic (WebDAV, API) a policy may refuse the directory password of
// people who must use MFA. Every real check, success or failure, is audited;
// every failure counts toward lockout, and a lockout raises an alert.

import type { AuditTrail } from '../audit/index.ts';
import { isVellumError, newId, VellumError, type Principal, type RequestOrigin, type SignIn } from '../kernel/index.ts';
import { originFields } from './administrators.ts';
import type { Alerts } from './alerts.ts';
import type { AppPasswords } from './app-passwords.ts';
import { parseBasicAuth } from './basic-auth.ts';
import { normaliseLogin, type CredentialCache } from './credential-cache.ts';
import type { Lockout } from './lockout.ts';
import { mfaRequired, type MfaPolicy } from './mfa-policy.ts';

export interface Authenticator {
  /**
   * Signs in with the directory password (the web sign-in form). The sign-in's
   * audit entry and cached sign-in carry `origin.session` (the web session's id).
   * @throws VellumError SOURCE_BLOCKED, ACCOUNT_LOCKED (audited; no password checked),
   *   AUTH_FAILED (audited, counted), DIRECTORY_UNAVAILABLE (audited; never a bypass)
   */
  authenticate(login: string, password: string, origin: RequestOrigin): Promise<Principal>;
  /**
   * The same for an HTTP `Authorization: Basic` header (WebDAV, API), where an app
   * password is accepted too and the directory password only as the policy allows.
   * Resolves with the person and the id of the sign-in: made at the real check
   * (`basic:...` for a directory bind, `app:...` for an app password), recorded in
   * its `auth.login` entry, and the same for every request served from the cache.
   * @throws VellumError AUTH_REQUIRED when there is none (not audited: every client's first
   *   request looks like that), AUTH_FAILED when it is malformed (audited) or wrong (audited),
   *   APP_PASSWORD_REQUIRED (audited), SOURCE_BLOCKED, ACCOUNT_LOCKED, DIRECTORY_UNAVAILABLE
   */
  authenticateBasic(header: string | undefined, origin: RequestOrigin): Promise<SignIn>;
  /**
   * A failed step after the password (a wrong TOTP or recovery code) counts
   * toward lockout like a wrong password, and is audited as a denied sign-in.
   */
  recordFailure(login: string, origin: RequestOrigin, detail: string): Promise<void>;
  /** Drops every cached sign-in of this person (a group change, a revocation): the next request asks again. */
  forget(person: { readonly id?: string; readonly dn?: string }): void;
  /** The id of the app password this principal signed in with, if it did (app passwords may not make app passwords). */
  appPasswordOf(principal: Principal): string | undefined;
}

/** Whether WebDAV and API Basic sign-ins accept the directory password. */
export const DIRECTORY_PASSWORD_POLICIES = ['allowed', 'forbidden-when-mfa', 'forbidden'] as const;
export type DirectoryPasswordPolicy = (typeof DIRECTORY_PASSWORD_POLICIES)[number];

/** What verifies a password and re-reads a person: the directory (identity/ does not depend on how). */
export interface PasswordVerifier {
  authenticate(login: string, password: string): Promise<Principal>;
  /** The person with this directory id, with current groups; null when gone. */
  lookup(id: string): Promise<Principal | null>;
}

export interface AuthenticatorOptions {
  readonly directory: PasswordVerifier;
  readonly audit: AuditTrail;
  readonly cache: CredentialCache;
  readonly lockout: Lockout;
  readonly alerts: Alerts;
  readonly appPasswords: AppPasswords;
  /** For Basic sign-ins: whether the directory password is accepted. */
  readonly directoryPassword: DirectoryPasswordPolicy;
  readonly mfa: MfaPolicy;
  /** Whether the person enrolled a second factor of their own accord (then MFA applies to them too). */
  readonly enrolled?: (personId: string) => Promise<boolean>;
}

const MAX_LOGGED_LOGIN = 256;

/** The public id of one sign-in (RequestOrigin.session): random, names nothing secret. */
const signInId = (kind: 'basic' | 'app') => `${kind}:${newId()}`;

export function createAuthenticator(options: AuthenticatorOptions): Authenticator {
  const { directory, audit, cache, lockout, alerts, appPasswords } = options;
  const viaAppPassword = new WeakMap<Principal, string>();

  const where = originFields;
  // The login name is recorded as typed; there is no verified identity to attach.
  const typed = (login: string) => ({ path: `login:${login.slice(0, MAX_LOGGED_LOGIN)}` });

  /** Audits a refused sign-in of a known person or a typed name, then throws. */
  async function refuse(error: VellumError, login: string, origin: RequestOrigin, actor?: Principal, note?: string): Promise<never> {
    const outcome = error.status >= 500 ? 'failed' : 'denied';
    await audit.record({
      action: 'auth.login', outcome, ...where(origin), ...(actor ? { actor } : {}), object: typed(login),
      detail: `${error.code}: ${error.message}${note ? ` (${note})` : ''}`,
    });
    throw error;
  }

  /** A wrong password, unknown name or failed second step: counted; a new lock drops cached sign-ins and raises an alert. */
  async function countFailure(login: string, origin: RequestOrigin): Promise<void> {
    cache.dropLogin(login);
    for (const lock of await lockout.recordFailure(login, origin)) {
      if (lock.kind === 'account') cache.dropLogin(lock.key);
      alerts.raise({
        event: 'auth.lockout', kind: lock.kind, ...(lock.kind === 'account' ? { login: lock.key } : {}), ip: lock.ip,
        failures: lock.failures, lockedAt: lock.lockedAt, until: lock.until, protocol: origin.protocol,
      });
    }
  }

  async function failed(error: unknown, login: string, origin: RequestOrigin, actor?: Principal, note?: string): Promise<never> {
    const e = isVellumError(error) ? error : new VellumError('INTERNAL', undefined, { cause: error });
    if (e.code !== 'AUTH_FAILED') return refuse(e, login, origin, actor, note);
    try {
      return await refuse(e, login, origin, actor, note);
    } finally {
      await countFailure(login, origin);
    }
  }

  async function directoryPasswordAllowed(principal: Principal): Promise<boolean> {
    switch (options.directoryPassword) {
      case 'allowed':
        return true;
      case 'forbidden':
        return false;
      case 'forbidden-when-mfa':
        // Enrolment is read only for people the policy itself does not already cover.
        if (mfaRequired(principal, options.mfa)) return false;
        return !((await options.enrolled?.(principal.id)) ?? false);
    }
  }

  async function signInWithAppPassword(login: string, password: string, origin: RequestOrigin): Promise<SignIn> {
    const appPassword = await appPasswords.verify(password);
    if (appPassword === null) return failed(new VellumError('AUTH_FAILED'), login, origin, undefined, 'not a valid app password');
    let principal: Principal | null;
    try {
      principal = await directory.lookup(appPassword.ownerId);
    } catch (e) {
      return failed(e, login, origin);
    }
    const name = `app password "${appPassword.name}" (${appPassword.id})`;
    if (principal === null) return failed(new VellumError('AUTH_FAILED'), login, origin, undefined, `the owner of ${name} is no longer in the directory`);
    if (normaliseLogin(principal.login) !== normaliseLogin(login)) {
      return failed(new VellumError('AUTH_FAILED'), login, origin, undefined, `${name} belongs to another login`);
    }
    const session = signInId('app');
    await audit.record({ action: 'auth.login', outcome: 'success', actor: principal, ...where({ ...origin, session }), detail: `with ${name}`, newValue: { appPassword: appPassword.id } });
    lockout.recordSuccess(login);
    cache.remember(login, password, { principal, session, appPasswordId: appPassword.id });
    appPasswords.touch(appPassword.id);
    viaAppPassword.set(principal, appPassword.id);
    return { principal, session };
  }

  async function signIn(login: string, password: string, origin: RequestOrigin, basic: boolean): Promise<SignIn> {
    try {
      await lockout.check(login, origin.ip);
    } catch (e) {
      return refuse(e as VellumError, login, origin);
    }
    const refuseDirectoryPassword = (principal: Principal, session?: string) =>
      refuse(new VellumError('APP_PASSWORD_REQUIRED'), login, session === undefined ? origin : { ...origin, session }, principal, `policy auth.appPasswords.directoryPassword: ${options.directoryPassword}`);

    const hit = cache.find(login, password);
    if (hit !== undefined) {
      if (hit.appPasswordId !== undefined) appPasswords.touch(hit.appPasswordId);
      else if (basic && !hit.basicAllowed) return refuseDirectoryPassword(hit.principal, hit.session);
      return { principal: hit.principal, session: hit.session };
    }
    if (basic && appPasswords.isAppPassword(password)) return signInWithAppPassword(login, password, origin);

    let principal: Principal;
    try {
      principal = await directory.authenticate(login, password);
    } catch (e) {
      return failed(e, login, origin);
    }
    lockout.recordSuccess(login);
    const basicAllowed = await directoryPasswordAllowed(principal);
    // A right password, but not accepted here: not counted (it is not a guess), but refused.
    if (basic && !basicAllowed) return refuseDirectoryPassword(principal);
    // A web sign-in names its web session; a Basic one gets an id of its own.
    const session = (basic ? undefined : origin.session) ?? signInId('basic');
    await audit.record({ action: 'auth.login', outcome: 'success', actor: principal, ...where({ ...origin, session }) });
    cache.remember(login, password, { principal, session, basicAllowed });
    return { principal, session };
  }

  return {
    authenticate: async (login, password, origin) => (await signIn(login, password, origin, false)).principal,

    async authenticateBasic(header, origin) {
      const credentials = parseBasicAuth(header);
      if (credentials === null) throw new VellumError('AUTH_REQUIRED');
      if (credentials === 'malformed') {
        const error = new VellumError('AUTH_FAILED', 'The Authorization header is not valid HTTP Basic.');
        await audit.record({ action: 'auth.login', outcome: 'denied', ...where(origin), detail: `${error.code}: ${error.message}` });
        throw error;
      }
      return signIn(credentials.login, credentials.password, origin, true);
    },

    async recordFailure(login, origin, detail) {
      await audit.record({ action: 'auth.login', outcome: 'denied', ...where(origin), object: typed(login), detail });
      await countFailure(login, origin);
    },

    forget(person) {
      cache.forget(person);
    },

    appPasswordOf: (principal) => viaAppPassword.get(principal),
  };
}
