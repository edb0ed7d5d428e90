// An in-memory KeyVault (the interface src/keys/vault.ts owns) for blob-format
// and blob-store unit tests, where the HSM is not what is under test. DEKs are
// random and kept in a Map keyed by their "wrapped" form, which is an opaque
// random handle bound to the study and KEK version it was issued under. It
// hands out copies, so a caller zeroing its key never corrupts the Map, and it
// counts calls so tests can check the HSM is touched once per blob. KEK
// versions are just numbers: rotation adds one, a re-wrap issues a new handle
// for the same key under another version.
//
// It is a stand-in only for unit tests: the real KeyVault (pkcs11-vault.ts) is
// tested against SoftHSM2 in test/keys/.

import { randomBytes } from 'node:crypto';
import { VellumError, type ComponentStatus } from '../../src/kernel/index.ts';
import type { DataKey, KeyVault, WrappedDataKey } from '../../src/keys/index.ts';

export const FAKE_MECHANISM = 'FAKE_WRAP';

export class FakeKeyVault implements KeyVault {
  readonly #keks = new Map<string, number>();
  readonly #deks = new Map<string, { study: string; kekVersion: number; key: Buffer }>();
  #closed = false;
  newDataKeyCalls = 0;
  unwrapCalls = 0;
  rewrapCalls = 0;
  /** Wrapped keys passed to forgetDataKey, as hex. */
  readonly forgotten: string[] = [];

  async ensureStudyKey(study: string): Promise<{ version: number }> {
    this.#open();
    const version = this.#keks.get(study) ?? 1;
    this.#keks.set(study, version);
    return { version };
  }

  /** Simulates a KEK rotation: new DEKs are wrapped under the next version. */
  rotate(study: string): number {
    const version = (this.#keks.get(study) ?? 0) + 1;
    this.#keks.set(study, version);
    return version;
  }

  async rotateStudyKey(study: string): Promise<{ version: number; previous: number }> {
    this.#open();
    const previous = this.#keks.get(study);
    if (previous === undefined) throw new VellumError('NOT_FOUND', `Study ${study} has no key.`);
    this.#keks.set(study, previous + 1);
    return { version: previous + 1, previous };
  }

  async studyKeyVersions(study: string): Promise<number[]> {
    this.#open();
    const current = this.#keks.get(study) ?? 0;
    return Array.from({ length: current }, (_, i) => i + 1);
  }

  async rewrapDataKey(wrapped: WrappedDataKey, toVersion: number): Promise<WrappedDataKey> {
    this.#open();
    this.rewrapCalls++;
    const current = this.#keks.get(wrapped.study);
    if (current === undefined || !Number.isInteger(toVersion) || toVersion < 1 || toVersion > current) {
      throw new VellumError('NOT_FOUND', `No KEK ${wrapped.study} v${toVersion}.`);
    }
    const found = this.#deks.get(wrapped.wrapped.toString('hex'));
    if (found === undefined || found.study !== wrapped.study || found.kekVersion !== wrapped.kekVersion || wrapped.mechanism !== FAKE_MECHANISM
      || wrapped.kekVersion < 1 || wrapped.kekVersion > current) {
      throw new VellumError('INTEGRITY_FAILURE', 'The wrapped key does not unwrap.');
    }
    const again = randomBytes(40);
    this.#deks.set(again.toString('hex'), { study: wrapped.study, kekVersion: toVersion, key: Buffer.from(found.key) });
    return { study: wrapped.study, kekVersion: toVersion, mechanism: FAKE_MECHANISM, wrapped: again };
  }

  forgetDataKey(wrapped: WrappedDataKey): void {
    this.forgotten.push(wrapped.wrapped.toString('hex'));
  }

  async newDataKey(study: string): Promise<DataKey> {
    this.#open();
    this.newDataKeyCalls++;
    const kekVersion = this.#keks.get(study);
    if (kekVersion === undefined) throw new VellumError('NOT_FOUND', `Study ${study} has no key.`);
    const key = randomBytes(32);
    const wrapped = randomBytes(40);
    this.#deks.set(wrapped.toString('hex'), { study, kekVersion, key: Buffer.from(key) });
    return { key, wrapped: { study, kekVersion, mechanism: FAKE_MECHANISM, wrapped } };
  }

  async unwrapDataKey(wrapped: WrappedDataKey): Promise<Buffer> {
    this.#open();
    this.unwrapCalls++;
    const kekVersion = this.#keks.get(wrapped.study);
    if (kekVersion === undefined || wrapped.kekVersion > kekVersion || wrapped.kekVersion < 1) {
      throw new VellumError('NOT_FOUND', `No KEK ${wrapped.study} v${wrapped.kekVersion}.`);
    }
    const found = this.#deks.get(wrapped.wrapped.toString('hex'));
    if (found === undefined || found.study !== wrapped.study || found.kekVersion !== wrapped.kekVersion || wrapped.mechanism !== FAKE_MECHANISM) {
      throw new VellumError('INTEGRITY_FAILURE', 'The wrapped key does not unwrap.');
    }
    return Buffer.from(found.key);
  }

  async status(): Promise<ComponentStatus> {
    return this.#closed ? { ok: false, detail: 'closed' } : { ok: true, detail: 'fake key vault' };
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const { key } of this.#deks.values()) key.fill(0);
    this.#deks.clear();
  }

  /** Every DEK handed out so far (copies), to check none of them reached the disk. */
  issuedKeys(): Buffer[] {
    return [...this.#deks.values()].map(({ key }) => Buffer.from(key));
  }

  #open(): void {
    if (this.#closed) throw new VellumError('HSM_UNAVAILABLE', 'The fake key vault is closed.');
  }
}
