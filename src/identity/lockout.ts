// Lockout after repeated failed sign-ins (Part 11 §11.300(d)), per account
// and per source address. Accounts are keyed by the login name as typed,
// normalised, so names that exist and names that don't lock alike and the
// answer never says which is which. Locks are kept in the database (section
// `lockout`) and survive a restart; the failure counters that lead to a lock
// live in memory only (a restart forgets failures that have not locked yet).
// Every lock and unlock is audited in the same batch that stores it.

import type { AuditTrail } from '../audit/index.ts';
import type { Database, Section } from '../db/index.ts';
import { systemClock, VellumError, type Clock, type Principal, type RequestOrigin } from '../kernel/index.ts';
import { actorFields, originFields, requireAdministrator } from './administrators.ts';
import { normaliseLogin } from './credential-cache.ts';

export interface LockoutSettings {
  /** Failed sign-ins for one login within the window that lock it. */
  readonly attempts: number;
  readonly windowSeconds: number;
  /** Who ends an account lock: an Administrator only, or the clock after lockSeconds. */
  readonly unlock: 'administrator' | 'timed';
  readonly lockSeconds: number;
  /** Failed sign-ins from one address within the window that block it (0: off). */
  readonly sourceAttempts: number;
  readonly sourceLockSeconds: number;
}

export interface LockRecord {
  readonly kind: 'account' | 'source';
  /** The normalised login name, or the address. */
  readonly key: string;
  readonly lockedAt: string;
  /** When the lock ends by itself; null: only an Administrator ends it. */
  readonly until: string | null;
  /** Failures counted in the window when it locked. */
  readonly failures: number;
  /** The address of the failure that locked it. */
  readonly ip: string;
}

/** SOURCE_BLOCKED, with the seconds until the block ends (front ends send them as Retry-After). */
export class SourceBlockedError extends VellumError {
  readonly retryAfterSeconds: number;
  constructor(retryAfterSeconds: number) {
    super('SOURCE_BLOCKED');
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** Seconds for a Retry-After header, when the error says how long to wait. */
export function retryAfterSeconds(error: unknown): number | undefined {
  return error instanceof SourceBlockedError || error instanceof SignInRateLimitedError ? error.retryAfterSeconds : undefined;
}

/** Too many sign-ins from one address in a short time (auth.webSessions.signInsPerMinute). */
export class SignInRateLimitedError extends VellumError {
  readonly retryAfterSeconds: number;
  constructor(retryAfterSeconds: number) {
    super('SIGN_IN_RATE_LIMITED');
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export interface Lockout {
  /**
   * Before any password is looked at.
   * @throws SourceBlockedError (SOURCE_BLOCKED) when the address is blocked;
   *   VellumError ACCOUNT_LOCKED when the login is locked
   */
  check(login: string, ip: string): Promise<void>;
  /** Counts a failed sign-in; returns the locks it made (audited, stored) for alerts. */
  recordFailure(login: string, origin: RequestOrigin): Promise<LockRecord[]>;
  /** A successful sign-in clears the login's failure count (not the address's). */
  recordSuccess(login: string): void;
  /** Current locks. @throws FORBIDDEN (audited) unless the actor is an Administrator */
  list(actor: Principal, origin: RequestOrigin): Promise<{ accounts: LockRecord[]; sources: LockRecord[] }>;
  /** @throws FORBIDDEN (audited), LOCKOUT_NOT_FOUND */
  unlockAccount(actor: Principal, login: string, origin: RequestOrigin): Promise<LockRecord>;
  /** @throws FORBIDDEN (audited), LOCKOUT_NOT_FOUND */
  unlockSource(actor: Principal, ip: string, origin: RequestOrigin): Promise<LockRecord>;
}

export interface LockoutOptions {
  readonly db: Database;
  readonly audit: AuditTrail;
  readonly settings: LockoutSettings;
  readonly administratorGroups: readonly string[];
  readonly clock?: Clock;
}

/** At most this many logins and addresses have failure counts in memory; the stalest go first. */
const MAX_TRACKED = 100_000;
const MAX_KEY = 256;

/** IPv4 clients on a dual-stack socket appear as ::ffff:a.b.c.d; they are the same source. */
export function normaliseAddress(ip: string): string {
  const trimmed = ip.trim().toLowerCase();
  return trimmed.startsWith('::ffff:') && trimmed.includes('.') ? trimmed.slice('::ffff:'.length) : trimmed;
}

const recordKey = (kind: LockRecord['kind'], key: string) => `${kind}/${key}`;

export async function openLockout(options: LockoutOptions): Promise<Lockout> {
  const { db, audit, settings, administratorGroups } = options;
  const clock = options.clock ?? systemClock;
  const section: Section<LockRecord> = db.section('lockout');
  const locks = new Map<string, LockRecord>();
  for await (const [key, record] of section.entries()) locks.set(key, record);
  /** Recent failure times (ms) by `account/login` or `source/ip`. */
  const failures = new Map<string, number[]>();
  const now = () => clock.now().getTime();

  const accountKey = (login: string) => recordKey('account', normaliseLogin(login).slice(0, MAX_KEY));
  const sourceKey = (ip: string) => recordKey('source', normaliseAddress(ip).slice(0, MAX_KEY));

  /** The lock under this key, if it holds now; a timed one that ran out is removed (and audited). */
  async function current(key: string): Promise<LockRecord | undefined> {
    const lock = locks.get(key);
    if (lock === undefined || lock.until === null || Date.parse(lock.until) > now()) return lock;
    locks.delete(key);
    await audit.record({
      action: 'auth.unlock', outcome: 'success', actor: null, protocol: 'system',
      object: { path: `${lock.kind === 'account' ? 'login' : 'source'}:${lock.key}` }, oldValue: lock, detail: 'The lock time ran out.',
    }, [section.del(key)]);
    return undefined;
  }

  /** Adds a failure at `at` and returns how many fall in the window. */
  function count(key: string, at: number): number {
    const since = at - settings.windowSeconds * 1000;
    const times = (failures.get(key) ?? []).filter((time) => time > since);
    times.push(at);
    failures.delete(key);
    failures.set(key, times);
    while (failures.size > MAX_TRACKED) failures.delete(failures.keys().next().value!);
    return times.length;
  }

  async function lock(kind: LockRecord['kind'], key: string, counted: number, origin: RequestOrigin): Promise<LockRecord> {
    const at = now();
    const seconds = kind === 'source' ? settings.sourceLockSeconds : settings.unlock === 'timed' ? settings.lockSeconds : null;
    const record: LockRecord = {
      kind, key: key.slice(kind.length + 1), lockedAt: new Date(at).toISOString(),
      until: seconds === null ? null : new Date(at + seconds * 1000).toISOString(), failures: counted, ip: normaliseAddress(origin.ip),
    };
    // In memory first: requests racing this one are refused while it is written.
    locks.set(key, record);
    failures.delete(key);
    await audit.record({
      action: 'auth.lockout', outcome: 'success', actor: null, ...originFields(origin),
      object: { path: `${kind === 'account' ? 'login' : 'source'}:${record.key}` }, newValue: record,
      detail: `${counted} failed sign-ins within ${settings.windowSeconds} s.`,
    }, [section.put(key, record)]);
    return record;
  }

  async function unlock(kind: LockRecord['kind'], key: string, actor: Principal, origin: RequestOrigin): Promise<LockRecord> {
    const object = { path: `${kind === 'account' ? 'login' : 'source'}:${key.slice(kind.length + 1)}` };
    const roles = await requireAdministrator(audit, administratorGroups, actor, origin, 'auth.unlock', object);
    const lock = await current(key);
    if (lock === undefined) throw new VellumError('LOCKOUT_NOT_FOUND', `${object.path} is not locked.`);
    locks.delete(key);
    failures.delete(key);
    await audit.record({ ...actorFields(actor, origin), roles, action: 'auth.unlock', outcome: 'success', object, oldValue: lock }, [section.del(key)]);
    return lock;
  }

  return {
    async check(login, ip) {
      const source = await current(sourceKey(ip));
      if (source !== undefined) throw new SourceBlockedError(Math.max(1, Math.ceil((Date.parse(source.until!) - now()) / 1000)));
      const account = await current(accountKey(login));
      if (account !== undefined) {
        throw new VellumError('ACCOUNT_LOCKED', account.until === null ? 'An administrator must unlock it.' : `It unlocks at ${account.until}.`);
      }
    },

    async recordFailure(login, origin) {
      const at = now();
      const made: LockRecord[] = [];
      const account = accountKey(login);
      const accountFailures = count(account, at);
      if (accountFailures >= settings.attempts && !locks.has(account)) made.push(await lock('account', account, accountFailures, origin));
      if (settings.sourceAttempts > 0) {
        const source = sourceKey(origin.ip);
        const sourceFailures = count(source, at);
        if (sourceFailures >= settings.sourceAttempts && !locks.has(source)) made.push(await lock('source', source, sourceFailures, origin));
      }
      return made;
    },

    recordSuccess(login) {
      failures.delete(accountKey(login));
    },

    async list(actor, origin) {
      await requireAdministrator(audit, administratorGroups, actor, origin, 'auth.lockouts.read');
      const held: LockRecord[] = [];
      for (const key of [...locks.keys()]) {
        const lock = await current(key);
        if (lock !== undefined) held.push(lock);
      }
      const byTime = (a: LockRecord, b: LockRecord) => a.lockedAt.localeCompare(b.lockedAt);
      return { accounts: held.filter((l) => l.kind === 'account').sort(byTime), sources: held.filter((l) => l.kind === 'source').sort(byTime) };
    },

    unlockAccount: (actor, login, origin) => unlock('account', accountKey(login), actor, origin),
    unlockSource: (actor, ip, origin) => unlock('source', sourceKey(ip), actor, origin),
  };
}
