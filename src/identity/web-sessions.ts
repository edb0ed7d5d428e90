// Web UI sessions: server-side, in the database section `web-sessions`.
//
// - A session is named by a random 256-bit token that only the browser holds
//   (in an HttpOnly cookie); the store keys it by the token's SHA-256, so a copy
//   of the database lets nobody in.
// - After the password step a session is "second-factor" (enrolled person who
//   must use MFA) or "enrolment" (must use MFA, not enrolled yet) and can do
//   only that step; then "complete". Only a complete session authenticates.
// - Idle and absolute timeouts (auth.webSessions) that users cannot change;
//   revocable by sign-out and by an Administrator (all of a person's sessions).
// - A CSRF token per session, required on every state-changing request.
// - The person's groups are read again (Directory.lookup) once the snapshot is
//   older than auth.cacheSeconds; a person gone from the directory ends it.
// - A public id (`web:...`, random, kept in the record) names the session in
//   the audit trail: its sign-in, its start and every later entry.
// Every step, refusal, expiry and revocation is audited.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AuditTrail } from '../audit/index.ts';
import type { Database, Section, WriteOp } from '../db/index.ts';
import { newId, VellumError, systemClock, type Clock, type Principal, type RequestOrigin, type SignIn } from '../kernel/index.ts';
import { originFields, requireAdministrator } from './administrators.ts';
import { SignInRateLimitedError } from './lockout.ts';
import { createRateLimit } from './rate-limit.ts';
import type { Authenticator } from './authenticator.ts';
import { mfaRequired, type MfaPolicy } from './mfa-policy.ts';
import { qrSvg } from './qr.ts';
import type { SecondFactors } from './second-factors.ts';

export type WebSessionState = 'second-factor' | 'enrolment' | 'complete';

/** What the web UI (and GET /api/v1/session) sees of a session. */
export interface WebSessionView {
  readonly state: WebSessionState;
  readonly csrfToken: string;
  readonly person: { readonly id: string; readonly login: string; readonly displayName: string };
  readonly mfa: { readonly required: boolean; readonly enrolled: boolean };
  readonly createdAt: string;
  /** When the session ends if nothing more happens: the earlier of the idle and the absolute limit. */
  readonly expiresAt: string;
  readonly absoluteExpiresAt: string;
}

/**
 * The sign-in form's own anti-forgery check (no session exists yet): a random
 * value in a cookie and the same value in a form field. Forms only; the API's
 * JSON sign-in cannot be sent cross-site without CORS.
 */
export interface SignInFormCheck {
  readonly cookie: string | null;
  readonly field: string | null;
}

/** The second step: a TOTP code or one recovery code. */
export type SecondFactorProof = { readonly code: string } | { readonly recoveryCode: string };

/** What the request carries besides the cookie, for the CSRF check. */
export interface RequestCheck {
  /** The X-CSRF-Token header, if any. */
  readonly csrfToken: string | undefined;
  /** POST, PUT, PATCH, DELETE: must carry the session's CSRF token. */
  readonly stateChanging: boolean;
}

/** Finds a person again by immutable id, with current groups (Directory.lookup). */
export interface PersonLookup {
  /** null when the person is gone. @throws VellumError DIRECTORY_UNAVAILABLE */
  lookup(id: string): Promise<Principal | null>;
}

export interface WebSessionSettings {
  readonly idleMinutes: number;
  readonly absoluteHours: number;
  /** Password sign-ins one address may start per minute; absent: no limit. */
  readonly signInsPerMinute?: number;
  /** How old the group snapshot may get before the directory is asked again (auth.cacheSeconds). */
  readonly cacheSeconds: number;
  readonly mfa: MfaPolicy;
}

export interface WebSessionParts {
  readonly db: Database;
  readonly audit: AuditTrail;
  readonly authenticator: Authenticator;
  readonly directory: PersonLookup;
  readonly secondFactors: SecondFactors;
  readonly clock?: Clock;
}

export interface WebSessions {
  /**
   * The password step. Opens a session in the state the MFA policy asks for.
   * At most settings.signInsPerMinute attempts per address, before anything else.
   * @returns the token for the cookie (shown only here) and the session
   * @throws AUTH_FAILED, ACCOUNT_LOCKED, SOURCE_BLOCKED, DIRECTORY_UNAVAILABLE (all audited by the Authenticator),
   *   SIGN_IN_RATE_LIMITED (SignInRateLimitedError), CSRF_INVALID (formCheck given and not matching; both audited), STORE_UNAVAILABLE
   */
  signIn(login: string, password: string, origin: RequestOrigin, formCheck?: SignInFormCheck): Promise<{ token: string; session: WebSessionView }>;
  /** The session in whatever state it is; does not count as activity. @throws SESSION_EXPIRED */
  view(token: string, origin: RequestOrigin): Promise<WebSessionView>;
  /**
   * The second step of a "second-factor" session; completes it.
   * @throws MFA_CODE_INVALID (audited, counts toward lockout; after 5 the session ends),
   *   BAD_REQUEST (not in that state), CSRF_INVALID, SESSION_EXPIRED
   */
  secondFactor(token: string, proof: SecondFactorProof, check: RequestCheck, origin: RequestOrigin): Promise<WebSessionView>;
  /**
   * Starts TOTP enrolment ("enrolment" sessions, or complete ones: voluntary or a new device).
   * @returns the otpauth:// URI, its QR code as inline SVG, and the secret in base32
   * @throws BAD_REQUEST (a "second-factor" session), CSRF_INVALID, SESSION_EXPIRED, HSM_UNAVAILABLE
   */
  beginEnrolment(token: string, check: RequestCheck, origin: RequestOrigin): Promise<{ uri: string; qr: string; secret: string }>;
  /**
   * Confirms enrolment with a first code; an "enrolment" session becomes complete.
   * @returns ten recovery codes, shown only here
   * @throws MFA_CODE_INVALID (audited), BAD_REQUEST, CSRF_INVALID, SESSION_EXPIRED
   */
  confirmEnrolment(token: string, code: string, check: RequestCheck, origin: RequestOrigin): Promise<{ recoveryCodes: readonly string[]; session: WebSessionView }>;
  /**
   * New recovery codes for a complete session, confirmed with a current TOTP code.
   * @throws MFA_CODE_INVALID (audited), BAD_REQUEST (not enrolled), MFA_REQUIRED, CSRF_INVALID, SESSION_EXPIRED
   */
  regenerateRecoveryCodes(token: string, code: string, check: RequestCheck, origin: RequestOrigin): Promise<readonly string[]>;
  /**
   * The person a complete session belongs to, with groups no older than auth.cacheSeconds.
   * Counts as activity for the idle timeout.
   * @throws SESSION_EXPIRED (unknown, expired, signed out, revoked, person gone), MFA_REQUIRED
   *   (a session short of its second step), CSRF_INVALID, DIRECTORY_UNAVAILABLE; all refusals audited
   */
  authenticate(token: string, check: RequestCheck, origin: RequestOrigin): Promise<Principal>;
  /** authenticate, also giving the session's public id (RequestOrigin.session) for the request's audit entries. Throws as authenticate. */
  resume(token: string, check: RequestCheck, origin: RequestOrigin): Promise<SignIn>;
  /** Ends the session (audited auth.logout). @throws SESSION_EXPIRED, CSRF_INVALID */
  signOut(token: string, check: RequestCheck, origin: RequestOrigin): Promise<void>;
  /**
   * Ends every session of a person at once (audited auth.session.revoke, the
   * administrator as actor) and drops their cached sign-ins.
   * @returns how many sessions ended
   * @throws FORBIDDEN (not an Administrator; audited)
   */
  revokePerson(personId: string, administrator: Principal, origin: RequestOrigin): Promise<number>;
  /** Removes expired sessions nobody came back to (each audited as auth.session.expire). @returns how many */
  sweepExpired(): Promise<number>;
}

interface StoredSession {
  /** Public id for the audit trail (`web:...`); absent in sessions stored before it existed. */
  readonly id?: string;
  readonly principal: Principal;
  /** When the principal's groups were last read from the directory (ms). */
  readonly snapshotAt: number;
  readonly state: WebSessionState;
  readonly csrfToken: string;
  readonly createdAt: number;
  readonly lastSeenAt: number;
  /** Wrong codes given in this session. */
  readonly failedCodes: number;
}

const SECTION = 'web-sessions';
const TOKEN_BYTES = 32;
/** Wrong second-factor codes one session may give before it is ended (and the password asked for again). */
export const MAX_FAILED_CODES = 5;
/** Activity is written down at most this often (and at most 1/20 of the idle time): an idle limit errs short, never long. */
const TOUCH_MS = 30_000;

const sessionKey = (hash: string) => `t:${hash}`;
const personKey = (personId: string, hash: string) => `p:${encodeURIComponent(personId)}:${hash}`;
const personPrefix = (personId: string) => `p:${encodeURIComponent(personId)}:`;

/** Two tokens given and equal, compared in constant time. */
function sameToken(a: string | null, b: string | null): boolean {
  if (a === null || b === null || a === '') return false;
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** The session's public id; for a session stored without one, one derived one-way from its key (not the key itself). */
function publicId(hash: string, session: StoredSession): string {
  return session.id ?? `web:${createHash('sha256').update(`public-id\u0000${hash}`).digest('base64url').slice(0, 22)}`;
}

/** Where a request of this session came from: its entries name the session. */
const inSession = (origin: RequestOrigin, hash: string, session: StoredSession): RequestOrigin => ({ ...origin, session: publicId(hash, session) });

export function createWebSessions(parts: WebSessionParts, settings: WebSessionSettings): WebSessions {
  const { db, audit, authenticator, directory, secondFactors } = parts;
  const clock = parts.clock ?? systemClock;
  const store: Section<StoredSession | true> = db.section<StoredSession | true>(SECTION);
  const idleMs = settings.idleMinutes * 60_000;
  const absoluteMs = settings.absoluteHours * 3_600_000;
  const touchMs = Math.min(TOUCH_MS, idleMs / 20);
  const now = () => clock.now().getTime();
  const where = originFields;
  const signInLimit = settings.signInsPerMinute === undefined ? null : createRateLimit({ events: settings.signInsPerMinute, windowMs: 60_000, now });

  const put = (hash: string, session: StoredSession): WriteOp[] => [store.put(sessionKey(hash), session), store.put(personKey(session.principal.id, hash), true)];
  const del = (hash: string, session: StoredSession): WriteOp[] => [store.del(sessionKey(hash)), store.del(personKey(session.principal.id, hash))];

  const expiryOf = (session: StoredSession) => ({
    absolute: session.createdAt + absoluteMs,
    idle: session.lastSeenAt + idleMs,
  });

  const viewOf = async (session: StoredSession): Promise<WebSessionView> => {
    const enrolled = await secondFactors.isEnrolled(session.principal.id);
    const { absolute, idle } = expiryOf(session);
    const { id, login, displayName } = session.principal;
    return {
      state: session.state,
      csrfToken: session.csrfToken,
      person: { id, login, displayName },
      mfa: { required: mfaRequired(session.principal, settings.mfa, { enrolled }), enrolled },
      createdAt: new Date(session.createdAt).toISOString(),
      expiresAt: new Date(Math.min(absolute, idle)).toISOString(),
      absoluteExpiresAt: new Date(absolute).toISOString(),
    };
  };

  const refuse = async (code: 'SESSION_EXPIRED' | 'MFA_REQUIRED' | 'CSRF_INVALID', origin: RequestOrigin, actor: Principal | null, detail: string): Promise<never> => {
    const error = new VellumError(code);
    await audit.record({ action: 'auth.session', outcome: 'denied', actor, ...where(origin), detail: `${code}: ${detail}` });
    throw error;
  };

  /**
   * The live session behind a token, and the request's origin naming it; an
   * expired one is removed (audited) and refused.
   */
  const load = async (token: string, anonymous: RequestOrigin): Promise<{ hash: string; session: StoredSession; origin: RequestOrigin }> => {
    if (typeof token !== 'string' || token.length === 0 || token.length > 128) return refuse('SESSION_EXPIRED', anonymous, null, 'malformed session cookie');
    const hash = tokenHash(token);
    const session = await store.get(sessionKey(hash));
    if (session === undefined || session === true) return refuse('SESSION_EXPIRED', anonymous, null, 'no such session (signed out, revoked or expired)');
    const origin = inSession(anonymous, hash, session);
    const { absolute, idle } = expiryOf(session);
    const at = now();
    if (at >= absolute || at >= idle) {
      await expire(hash, session, at >= absolute ? 'absolute' : 'idle', origin);
      throw new VellumError('SESSION_EXPIRED');
    }
    return { hash, session, origin };
  };

  const expire = (hash: string, session: StoredSession, limit: 'idle' | 'absolute', origin: RequestOrigin | null) =>
    audit.record({
      action: 'auth.session.expire', outcome: 'success', actor: session.principal, ...(origin ? where(origin) : { protocol: 'system', session: publicId(hash, session) }),
      detail: limit === 'idle' ? `idle for more than ${settings.idleMinutes} min` : `older than ${settings.absoluteHours} h`,
    }, del(hash, session));

  const checkCsrf = async (session: StoredSession, check: RequestCheck, origin: RequestOrigin) => {
    if (!check.stateChanging) return;
    const given = createHash('sha256').update(check.csrfToken ?? '').digest();
    const expected = createHash('sha256').update(session.csrfToken).digest();
    if (check.csrfToken === undefined || !timingSafeEqual(given, expected)) {
      await refuse('CSRF_INVALID', origin, session.principal, check.csrfToken === undefined ? 'no X-CSRF-Token header' : 'X-CSRF-Token does not match the session');
    }
  };

  /** A wrong code: audited and counted toward lockout by the Authenticator; too many end the session. */
  const wrongCode = async (hash: string, session: StoredSession, what: string, origin: RequestOrigin): Promise<never> => {
    await authenticator.recordFailure(session.principal.login, origin, `MFA_CODE_INVALID: ${what}`);
    const failedCodes = session.failedCodes + 1;
    if (failedCodes >= MAX_FAILED_CODES) {
      await audit.record({ action: 'auth.session.end', outcome: 'denied', actor: session.principal, ...where(origin), detail: `${failedCodes} wrong codes: sign in again` }, del(hash, session));
    } else {
      await db.write(put(hash, { ...session, failedCodes }));
    }
    throw new VellumError('MFA_CODE_INVALID');
  };

  const inState = (session: StoredSession, allowed: readonly WebSessionState[], step: string) => {
    if (!allowed.includes(session.state)) {
      throw new VellumError('BAD_REQUEST', `${step} is not a step of a session in state "${session.state}".`);
    }
  };

  const sessions: WebSessions = {
    async signIn(login, password, anonymous, formCheck) {
      // The id exists before the password is checked, so the sign-in's entry names the session too.
      const id = `web:${newId()}`;
      const origin = { ...anonymous, session: id };
      const object = { path: `login:${login.slice(0, 256)}` };
      const waitMs = signInLimit?.take(anonymous.ip) ?? 0;
      if (waitMs > 0) {
        const error = new SignInRateLimitedError(Math.ceil(waitMs / 1000));
        await audit.record({ action: 'auth.login', outcome: 'denied', actor: null, ...where(origin), object, detail: `${error.code}: more than ${settings.signInsPerMinute} sign-ins from ${anonymous.ip} in a minute` });
        throw error;
      }
      if (formCheck !== undefined && !sameToken(formCheck.cookie, formCheck.field)) {
        await audit.record({ action: 'auth.login', outcome: 'denied', actor: null, ...where(origin), object, detail: 'CSRF_INVALID: the sign-in form\'s token does not match its cookie' });
        throw new VellumError('CSRF_INVALID', 'Reload the sign-in page and try again.');
      }
      const principal = await authenticator.authenticate(login, password, origin);
      const enrolled = await secondFactors.isEnrolled(principal.id);
      const state: WebSessionState = !mfaRequired(principal, settings.mfa, { enrolled }) ? 'complete' : enrolled ? 'second-factor' : 'enrolment';
      const token = randomBytes(TOKEN_BYTES).toString('base64url');
      const hash = tokenHash(token);
      const at = now();
      const session: StoredSession = { id, principal, snapshotAt: at, state, csrfToken: randomBytes(TOKEN_BYTES).toString('base64url'), createdAt: at, lastSeenAt: at, failedCodes: 0 };
      await audit.record({ action: 'auth.session.start', outcome: 'success', actor: principal, ...where(origin), newValue: { state } }, put(hash, session));
      return { token, session: await viewOf(session) };
    },

    async view(token, origin) {
      return viewOf((await load(token, origin)).session);
    },

    async secondFactor(token, proof, check, request) {
      const { hash, session, origin } = await load(token, request);
      await checkCsrf(session, check, origin);
      inState(session, ['second-factor'], 'The second factor');
      const complete: StoredSession = { ...session, state: 'complete', lastSeenAt: now(), failedCodes: 0 };
      const ok = 'code' in proof
        ? await secondFactors.verifyCode(session.principal, proof.code, origin, put(hash, complete))
        : await secondFactors.useRecoveryCode(session.principal, proof.recoveryCode, origin, put(hash, complete));
      if (!ok) return wrongCode(hash, session, 'code' in proof ? 'TOTP code' : 'recovery code', origin);
      return viewOf(complete);
    },

    async beginEnrolment(token, check, request) {
      const { session, origin } = await load(token, request);
      await checkCsrf(session, check, origin);
      inState(session, ['enrolment', 'complete'], 'Enrolment');
      const enrolment = await secondFactors.begin(session.principal, origin);
      return { uri: enrolment.uri, qr: await qrSvg(enrolment.uri), secret: enrolment.secret };
    },

    async confirmEnrolment(token, code, check, request) {
      const { hash, session, origin } = await load(token, request);
      await checkCsrf(session, check, origin);
      inState(session, ['enrolment', 'complete'], 'Confirming an enrolment');
      const complete: StoredSession = { ...session, state: 'complete', lastSeenAt: now(), failedCodes: 0 };
      const recoveryCodes = await secondFactors.confirm(session.principal, code, origin, put(hash, complete));
      if (recoveryCodes === null) return wrongCode(hash, session, 'enrolment confirmation code', origin);
      // Cached sign-ins decided the directory-password policy before the enrolment.
      authenticator.forget({ id: session.principal.id });
      return { recoveryCodes, session: await viewOf(complete) };
    },

    async regenerateRecoveryCodes(token, code, check, request) {
      const { hash, session, origin } = await load(token, request);
      await checkCsrf(session, check, origin);
      if (session.state !== 'complete') return refuse('MFA_REQUIRED', origin, session.principal, `recovery codes from a session in state "${session.state}"`);
      if (!(await secondFactors.isEnrolled(session.principal.id))) throw new VellumError('BAD_REQUEST', 'Recovery codes belong to a TOTP enrolment; enrol first.');
      if (!(await secondFactors.verifyCode(session.principal, code, origin))) return wrongCode(hash, session, 'TOTP code to regenerate recovery codes', origin);
      return secondFactors.regenerateRecoveryCodes(session.principal, origin);
    },

    async authenticate(token, check, origin) {
      return (await sessions.resume(token, check, origin)).principal;
    },

    async resume(token, check, request) {
      const { hash, session, origin } = await load(token, request);
      if (session.state !== 'complete') return refuse('MFA_REQUIRED', origin, session.principal, `session in state "${session.state}"`);
      await checkCsrf(session, check, origin);
      const at = now();
      let current = session;
      if (at - session.snapshotAt >= settings.cacheSeconds * 1000) {
        const principal = await directory.lookup(session.principal.id);
        if (principal === null) {
          await audit.record({ action: 'auth.session.end', outcome: 'denied', actor: session.principal, ...where(origin), detail: 'the person is no longer in the directory' }, del(hash, session));
          throw new VellumError('SESSION_EXPIRED');
        }
        current = { ...session, principal, snapshotAt: at };
      }
      if (current !== session || at - session.lastSeenAt >= touchMs) await db.write(put(hash, { ...current, lastSeenAt: at }));
      return { principal: current.principal, session: publicId(hash, session) };
    },

    async signOut(token, check, request) {
      const { hash, session, origin } = await load(token, request);
      await checkCsrf(session, check, origin);
      await audit.record({ action: 'auth.logout', outcome: 'success', actor: session.principal, ...where(origin) }, del(hash, session));
    },

    async revokePerson(personId, administrator, origin) {
      const object = { path: `person:${personId.slice(0, 256)}` };
      const roles = await requireAdministrator(audit, settings.mfa.administratorGroups, administrator, origin, 'auth.session.revoke', object);
      const ops: WriteOp[] = [];
      for await (const [key] of store.withPrefix(personPrefix(personId))) {
        const hash = key.slice(personPrefix(personId).length);
        ops.push(store.del(key), store.del(sessionKey(hash)));
      }
      const revoked = ops.length / 2;
      await audit.record({ action: 'auth.session.revoke', outcome: 'success', actor: administrator, roles, ...where(origin), object, newValue: { sessionsEnded: revoked } }, ops);
      authenticator.forget({ id: personId });
      return revoked;
    },

    async sweepExpired() {
      const at = now();
      let swept = 0;
      for await (const [key, session] of store.withPrefix('t:')) {
        if (session === true) continue;
        const { absolute, idle } = expiryOf(session);
        if (at < absolute && at < idle) continue;
        await expire(key.slice(2), session, at >= absolute ? 'absolute' : 'idle', null);
        swept++;
      }
      return swept;
    },
  };
  return sessions;
}
