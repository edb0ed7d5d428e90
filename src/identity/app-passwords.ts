// App passwords: one per device, for WebDAV (and API) clients that cannot do
// a second factor. Each is shown once, when it is made; only a slow hash
// (scrypt, its own salt) is kept. The password carries its record's id, so a
// sign-in finds the one record to check without a scan:
//   vlmap_<16 hex: id>_<32 base64url: secret>
// Revoking one works at once (the callback drops cached sign-ins) and is
// audited, as is making one (Part 11 §11.300(c): loss management).

import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import type { AuditTrail } from '../audit/index.ts';
import type { Database, Section } from '../db/index.ts';
import { isVellumError, systemClock, VellumError, type Clock, type Principal, type RequestOrigin } from '../kernel/index.ts';
import { actorFields, requireAdministrator } from './administrators.ts';

export interface AppPasswordInfo {
  readonly id: string;
  /** The owner's name for it, e.g. the device. */
  readonly name: string;
  /** The owner's immutable directory id. */
  readonly ownerId: string;
  readonly ownerLogin: string;
  readonly createdAt: string;
  /** Last successful sign-in with it (kept to within a few minutes); null: never used. */
  readonly lastUsedAt: string | null;
}

interface StoredAppPassword extends AppPasswordInfo {
  readonly salt: string;
  readonly hash: string;
  readonly cost: ScryptCost;
}

export interface ScryptCost {
  readonly N: number;
  readonly r: number;
  readonly p: number;
}

export interface AppPasswords {
  /** Whether a password has the app-password shape (then it is never tried against the directory). */
  isAppPassword(password: string): boolean;
  /**
   * The app password these characters are, or null (unknown id or wrong secret: the same work).
   * @throws STORE_UNAVAILABLE
   */
  verify(password: string): Promise<AppPasswordInfo | null>;
  /** Notes a successful use (written to the store at most every few minutes per password). */
  touch(id: string): void;
  /**
   * Makes one for the owner; the password is in the result only. `signedInWith`: the app
   * password of the request, if it was signed in with one: an app password cannot make
   * more (a stolen one must not outlive its revocation).
   * @throws FORBIDDEN (audited) when signedInWith is set; BAD_REQUEST (name empty, too long,
   *   control characters, already used, too many), STORE_UNAVAILABLE
   */
  create(owner: Principal, name: string, origin: RequestOrigin, signedInWith?: string): Promise<{ appPassword: AppPasswordInfo; password: string }>;
  /** The owner's app passwords, without secrets. @throws FORBIDDEN (audited) for someone else's, unless an Administrator */
  list(actor: Principal, ownerId: string, origin: RequestOrigin): Promise<AppPasswordInfo[]>;
  /**
   * Revokes one at once. The owner may revoke their own, an Administrator anyone's.
   * @throws APP_PASSWORD_NOT_FOUND (no such id for this owner), FORBIDDEN (audited), STORE_UNAVAILABLE
   */
  revoke(actor: Principal, ownerId: string, id: string, origin: RequestOrigin): Promise<AppPasswordInfo>;
}

export interface AppPasswordOptions {
  readonly db: Database;
  readonly audit: AuditTrail;
  readonly administratorGroups: readonly string[];
  /** Called after a revocation is stored, to drop sign-ins cached with it. */
  readonly onRevoked: (id: string) => void;
  readonly clock?: Clock;
  /** scrypt cost for new app passwords (stored with each, so it can change later). */
  readonly cost?: ScryptCost;
}

/** About 70 ms and 32 MiB per check on a current core; a sign-in is cached after it. */
export const DEFAULT_SCRYPT_COST: ScryptCost = { N: 2 ** 15, r: 8, p: 1 };
const KEY_BYTES = 32;
const FORMAT = /^vlmap_([0-9a-f]{16})_([A-Za-z0-9_-]{32})$/;
const MAX_NAME = 64;
const MAX_PER_PERSON = 50;
const TOUCH_INTERVAL_MS = 5 * 60_000;

function derive(secret: string, salt: Buffer, cost: ScryptCost): Promise<Buffer> {
  // scrypt needs 128 * N * r bytes; Node's default ceiling is exactly 32 MiB, so leave room.
  const options: ScryptOptions = { ...cost, maxmem: 256 * cost.N * cost.r };
  return new Promise((resolve, reject) => scrypt(secret, salt, KEY_BYTES, options, (e, key) => (e ? reject(e) : resolve(key))));
}

function checkName(raw: string): string {
  const name = raw.normalize('NFC').trim();
  if (name === '' || name.length > MAX_NAME || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new VellumError('BAD_REQUEST', `Name the app password after its device: 1 to ${MAX_NAME} characters, no control characters.`);
  }
  return name;
}

const info = ({ salt: _salt, hash: _hash, cost: _cost, ...rest }: StoredAppPassword): AppPasswordInfo => rest;

export function createAppPasswords(options: AppPasswordOptions): AppPasswords {
  const { db, audit, administratorGroups } = options;
  const clock = options.clock ?? systemClock;
  const cost = options.cost ?? DEFAULT_SCRYPT_COST;
  const records: Section<StoredAppPassword> = db.section('app-passwords');
  const owners: Section<string> = db.section('app-password-owners');
  const ownerPrefix = (ownerId: string) => `${encodeURIComponent(ownerId)}/`;
  /** Uses not yet written to the store, by id. */
  const usedAt = new Map<string, string>();
  // Store changes one at a time: a last-used write must never bring back a revoked record.
  let queue: Promise<unknown> = Promise.resolve();
  const serially = <T>(step: () => Promise<T>): Promise<T> => {
    const next = queue.then(step);
    queue = next.catch(() => undefined);
    return next;
  };
  // Unknown ids cost the same scrypt as known ones.
  const decoy = { salt: randomBytes(16), hash: randomBytes(KEY_BYTES) };

  const withLastUse = (record: StoredAppPassword): AppPasswordInfo => {
    const pending = usedAt.get(record.id);
    return pending === undefined ? info(record) : { ...info(record), lastUsedAt: pending };
  };

  async function ownersRecords(ownerId: string): Promise<StoredAppPassword[]> {
    const ids: string[] = [];
    for await (const [, id] of owners.withPrefix(ownerPrefix(ownerId))) ids.push(id);
    const found = await records.getMany(ids);
    return found.filter((record): record is StoredAppPassword => record !== undefined).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  return {
    isAppPassword: (password) => FORMAT.test(password),

    async verify(password) {
      const match = FORMAT.exec(password);
      if (match === null) return null;
      const [, id, secret] = match as unknown as [string, string, string];
      const record = await records.get(id);
      const salt = record === undefined ? decoy.salt : Buffer.from(record.salt, 'base64');
      const expected = record === undefined ? decoy.hash : Buffer.from(record.hash, 'base64');
      const actual = await derive(secret, salt, record?.cost ?? cost);
      const same = actual.length === expected.length && timingSafeEqual(actual, expected);
      return record !== undefined && same ? withLastUse(record) : null;
    },

    touch(id) {
      const now = clock.now();
      usedAt.set(id, now.toISOString());
      void serially(async () => {
        const record = await records.get(id);
        const pending = usedAt.get(id);
        if (record === undefined || pending === undefined) return;
        if (record.lastUsedAt !== null && Date.parse(pending) - Date.parse(record.lastUsedAt) < TOUCH_INTERVAL_MS) return;
        await db.write([records.put(id, { ...record, lastUsedAt: pending })]);
        if (usedAt.get(id) === pending) usedAt.delete(id);
      }).catch(() => undefined); // a lost last-used time is retried by the next use
    },

    async create(owner, rawName, origin, signedInWith) {
      if (signedInWith !== undefined) {
        const reason = 'App passwords are made after signing in with the directory password (or in the web UI), not with another app password.';
        await audit.record({ ...actorFields(owner, origin), action: 'app-password.create', outcome: 'denied', detail: `FORBIDDEN: ${reason}`, newValue: { signedInWith } });
        throw new VellumError('FORBIDDEN', reason);
      }
      const name = checkName(rawName);
      return serially(async () => {
        const existing = await ownersRecords(owner.id);
        if (existing.some((record) => record.name.toLowerCase() === name.toLowerCase())) {
          throw new VellumError('BAD_REQUEST', `You already have an app password named "${name}"; revoke it or choose another name.`);
        }
        if (existing.length >= MAX_PER_PERSON) throw new VellumError('BAD_REQUEST', `A person may have at most ${MAX_PER_PERSON} app passwords; revoke unused ones first.`);
        const id = randomBytes(8).toString('hex');
        const secret = randomBytes(24).toString('base64url');
        const salt = randomBytes(16);
        const hash = await derive(secret, salt, cost);
        const record: StoredAppPassword = {
          id, name, ownerId: owner.id, ownerLogin: owner.login, createdAt: clock.now().toISOString(), lastUsedAt: null,
          salt: salt.toString('base64'), hash: hash.toString('base64'), cost,
        };
        const appPassword = info(record);
        await audit.record(
          { ...actorFields(owner, origin), action: 'app-password.create', outcome: 'success', object: { path: `app-password:${id}` }, newValue: appPassword },
          [records.put(id, record), owners.put(`${ownerPrefix(owner.id)}${id}`, id)],
        );
        return { appPassword, password: `vlmap_${id}_${secret}` };
      });
    },

    async list(actor, ownerId, origin) {
      if (actor.id !== ownerId) await requireAdministrator(audit, administratorGroups, actor, origin, 'app-password.list', { path: `person:${ownerId}` });
      return (await ownersRecords(ownerId)).map(withLastUse);
    },

    async revoke(actor, ownerId, id, origin) {
      const object = { path: `app-password:${id.slice(0, 64)}` };
      const roles = actor.id === ownerId ? [] : await requireAdministrator(audit, administratorGroups, actor, origin, 'app-password.revoke', object);
      const revoked = await serially(async () => {
        const record = /^[0-9a-f]{16}$/.test(id) ? await records.get(id) : undefined;
        if (record === undefined || record.ownerId !== ownerId) throw new VellumError('APP_PASSWORD_NOT_FOUND');
        await audit.record(
          { ...actorFields(actor, origin), roles, action: 'app-password.revoke', outcome: 'success', object, oldValue: withLastUse(record) },
          [records.del(id), owners.del(`${ownerPrefix(ownerId)}${id}`)],
        );
        usedAt.delete(id);
        return info(record);
      }).catch(async (e: unknown) => {
        if (isVellumError(e, 'APP_PASSWORD_NOT_FOUND')) {
          await audit.record({ ...actorFields(actor, origin), action: 'app-password.revoke', outcome: 'denied', object, detail: 'APP_PASSWORD_NOT_FOUND' });
        }
        throw e;
      });
      options.onRevoked(id);
      return revoked;
    },
  };
}
