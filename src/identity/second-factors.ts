// Each person's second factor for the web UI: the TOTP secret (sealed), the
// last time step accepted (so no code works twice), and the hashes of their
// recovery codes. Stored in the database section `mfa`, one record per person
// id. Every change is written in the same batch as its audit entry, together
// with whatever the caller adds (e.g. the web session it completes).
//
// A TOTP secret never sits in the database in plaintext: it is encrypted with
// AES-256-GCM under a data key of its own, and that key is stored only wrapped
// by a key that stays in the HSM (SecretKeys; keys/ provides it). The person's
// id is the additional data, so a sealed secret copied to another person's
// record does not open.

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { AuditTrail } from '../audit/index.ts';
import type { Database, Section, WriteOp } from '../db/index.ts';
import { VellumError, type Clock, type Principal, type RequestOrigin, systemClock } from '../kernel/index.ts';
import { originFields } from './administrators.ts';
import { newRecoveryCodes, recoveryCodeHash } from './recovery-codes.ts';
import { newTotpSecret, otpauthUri, verifyTotp, base32Encode } from './totp.ts';

/** A data key as stored: wrapped, base64; only SecretKeys can open it. */
export interface StoredKey {
  readonly kekVersion: number;
  readonly mechanism: string;
  readonly wrapped: string;
}

/** Keys that protect secrets at rest, held by the HSM (keys/ systemSecretKeys). */
export interface SecretKeys {
  /** A fresh 256-bit key and its wrapped form. @throws VellumError HSM_UNAVAILABLE */
  newKey(): Promise<{ key: Buffer; stored: StoredKey }>;
  /** @throws VellumError INTEGRITY_FAILURE (tampered), HSM_UNAVAILABLE */
  openKey(stored: StoredKey): Promise<Buffer>;
}

interface SealedSecret {
  readonly key: StoredKey;
  readonly iv: string;
  readonly data: string;
  readonly tag: string;
}

interface MfaRecord {
  /** The confirmed secret; null until the first enrolment is confirmed. */
  readonly secret: SealedSecret | null;
  readonly enrolledAt: string | null;
  /** Last TOTP step accepted; a code for this step or an earlier one is refused. */
  readonly lastStep: number | null;
  readonly recoveryHashes: readonly string[];
  /** An enrolment started and not yet confirmed: does not count until a first code confirms it. */
  readonly pending: SealedSecret | null;
}

export interface Enrolment {
  readonly uri: string;
  /** The secret in base32, for typing into an app that cannot scan. */
  readonly secret: string;
}

export interface SecondFactors {
  /** Whether the person has a confirmed TOTP enrolment. @throws STORE_UNAVAILABLE */
  isEnrolled(personId: string): Promise<boolean>;
  /**
   * Starts (or restarts) enrolment with a fresh secret, kept beside any
   * confirmed one until confirm(). Audited (auth.mfa.enrol, detail "started").
   * @throws HSM_UNAVAILABLE, STORE_UNAVAILABLE
   */
  begin(person: Principal, origin: RequestOrigin): Promise<Enrolment>;
  /**
   * Confirms the pending enrolment with a code from it: it becomes the person's
   * secret, with ten fresh recovery codes (returned once). Audited with `ops`.
   * @returns the recovery codes, or null when the code does not verify (nothing changes; not audited here)
   * @throws BAD_REQUEST when no enrolment was started; HSM_UNAVAILABLE, STORE_UNAVAILABLE
   */
  confirm(person: Principal, code: string, origin: RequestOrigin, ops?: readonly WriteOp[]): Promise<readonly string[] | null>;
  /**
   * Checks a TOTP code against the confirmed secret and records its step, so it
   * cannot be used again. Audited (auth.mfa.verify) with `ops` when it verifies.
   * @returns false when it does not verify, was used already, or the person has no enrolment (not audited here)
   */
  verifyCode(person: Principal, code: string, origin: RequestOrigin, ops?: readonly WriteOp[]): Promise<boolean>;
  /**
   * Uses up one recovery code in place of a TOTP code. Audited
   * (auth.mfa.recovery-code, with the number left) with `ops` when it is valid.
   * @returns false when it is not one of the person's unused codes (not audited here)
   */
  useRecoveryCode(person: Principal, code: string, origin: RequestOrigin, ops?: readonly WriteOp[]): Promise<boolean>;
  /**
   * Replaces all recovery codes with ten new ones (returned once); the old ones
   * stop working. Audited (auth.mfa.recovery-codes.regenerate).
   * @throws BAD_REQUEST when the person has no enrolment
   */
  regenerateRecoveryCodes(person: Principal, origin: RequestOrigin): Promise<readonly string[]>;
}

export interface SecondFactorSettings {
  /** Issuer shown by authenticator apps (auth.mfa.issuer). */
  readonly issuer: string;
}

const SECTION = 'mfa';

export function createSecondFactors(db: Database, audit: AuditTrail, keys: SecretKeys, settings: SecondFactorSettings, clock: Clock = systemClock): SecondFactors {
  const records: Section<MfaRecord> = db.section<MfaRecord>(SECTION);
  const mutex = new PersonMutex();
  const empty: MfaRecord = { secret: null, enrolledAt: null, lastStep: null, recoveryHashes: [], pending: null };

  const seal = async (personId: string, secret: Buffer): Promise<SealedSecret> => {
    const { key, stored } = await keys.newKey();
    try {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(Buffer.from(personId, 'utf8'));
      const data = Buffer.concat([cipher.update(secret), cipher.final()]);
      return { key: stored, iv: iv.toString('base64'), data: data.toString('base64'), tag: cipher.getAuthTag().toString('base64') };
    } finally {
      key.fill(0);
    }
  };

  const open = async (personId: string, sealed: SealedSecret): Promise<Buffer> => {
    const key = await keys.openKey(sealed.key);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(sealed.iv, 'base64')).setAAD(Buffer.from(personId, 'utf8'));
      decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64')), decipher.final()]);
    } catch (e) {
      throw new VellumError('INTEGRITY_FAILURE', 'A stored second-factor secret failed its integrity check.', { cause: e });
    } finally {
      key.fill(0);
    }
  };

  const where = originFields;
  const load = async (personId: string) => (await records.get(personId)) ?? empty;

  return {
    async isEnrolled(personId) {
      return (await records.get(personId))?.secret != null;
    },

    begin: (person, origin) => mutex.run(person.id, async () => {
      const secret = newTotpSecret();
      try {
        const record = await load(person.id);
        const pending = await seal(person.id, secret);
        await audit.record(
          { action: 'auth.mfa.enrol', outcome: 'success', actor: person, ...where(origin), detail: record.secret === null ? 'started' : 'started again (replaces the current secret once confirmed)' },
          [records.put(person.id, { ...record, pending })],
        );
        return { uri: otpauthUri(settings.issuer, person.login, secret), secret: base32Encode(secret) };
      } finally {
        secret.fill(0);
      }
    }),

    confirm: (person, code, origin, ops = []) => mutex.run(person.id, async () => {
      const record = await load(person.id);
      if (record.pending === null) throw new VellumError('BAD_REQUEST', 'Start the enrolment first (POST /api/v1/session/enrolment).');
      const secret = await open(person.id, record.pending);
      try {
        const step = verifyTotp(secret, code, clock.now().getTime(), null);
        if (step === null) return null;
        const { codes, hashes } = newRecoveryCodes();
        const confirmed: MfaRecord = { secret: record.pending, enrolledAt: clock.now().toISOString(), lastStep: step, recoveryHashes: hashes, pending: null };
        await audit.record(
          { action: 'auth.mfa.enrol', outcome: 'success', actor: person, ...where(origin), detail: 'confirmed', newValue: { recoveryCodes: hashes.length } },
          [...ops, records.put(person.id, confirmed)],
        );
        return codes;
      } finally {
        secret.fill(0);
      }
    }),

    verifyCode: (person, code, origin, ops = []) => mutex.run(person.id, async () => {
      const record = await load(person.id);
      if (record.secret === null) return false;
      const secret = await open(person.id, record.secret);
      try {
        const step = verifyTotp(secret, code, clock.now().getTime(), record.lastStep);
        if (step === null) return false;
        await audit.record(
          { action: 'auth.mfa.verify', outcome: 'success', actor: person, ...where(origin), detail: 'totp' },
          [...ops, records.put(person.id, { ...record, lastStep: step })],
        );
        return true;
      } finally {
        secret.fill(0);
      }
    }),

    useRecoveryCode: (person, code, origin, ops = []) => mutex.run(person.id, async () => {
      const record = await load(person.id);
      const hash = recoveryCodeHash(code);
      if (record.secret === null || hash === null || !record.recoveryHashes.includes(hash)) return false;
      const left = record.recoveryHashes.filter((stored) => stored !== hash);
      await audit.record(
        { action: 'auth.mfa.recovery-code', outcome: 'success', actor: person, ...where(origin), newValue: { recoveryCodesLeft: left.length } },
        [...ops, records.put(person.id, { ...record, recoveryHashes: left })],
      );
      return true;
    }),

    regenerateRecoveryCodes: (person, origin) => mutex.run(person.id, async () => {
      const record = await load(person.id);
      if (record.secret === null) throw new VellumError('BAD_REQUEST', 'Recovery codes belong to a TOTP enrolment; enrol first.');
      const { codes, hashes } = newRecoveryCodes();
      await audit.record(
        { action: 'auth.mfa.recovery-codes.regenerate', outcome: 'success', actor: person, ...where(origin), oldValue: { recoveryCodes: record.recoveryHashes.length }, newValue: { recoveryCodes: hashes.length } },
        [records.put(person.id, { ...record, recoveryHashes: hashes })],
      );
      return codes;
    }),
  };
}

/** One change at a time per person: a code's step is checked and recorded before the next check reads it. */
class PersonMutex {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const result = previous.then(fn, fn);
    const tail = result.catch(() => undefined);
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }
}
