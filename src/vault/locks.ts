// WebDAV write locks (RFC 4918 §6-7): the `locks` section, an in-memory index
// of it loaded at open (PROPFIND asks for the locks of every child it lists),
// and the one rule every change passes: each lock that guards what the change
// touches must have its token submitted, by the person who created the lock.
// Locks belong to URLs, not nodes: a lock is on `study + names`, covers its
// root and, with depth infinity, everything below it, and goes away with a
// DELETE or MOVE of its root (RFC 4918 §7.7). The table is only changed by the
// vault under the study's mutex, after the batch that records the change.

import { randomUUID } from 'node:crypto';
import type { Database, Section, WriteOp } from '../db/index.ts';
import { formatVaultPath, VellumError, type VaultPath } from '../kernel/index.ts';
import type { Actor } from './actor.ts';
import type { LockRecord } from './records.ts';

/** Lock lifetimes the server grants (seconds). */
export interface LockTimeoutBounds {
  /** Granted when the client asks for none. */
  readonly defaultSeconds: number;
  /** The most granted, whatever the client asks for (also for Infinite). */
  readonly maxSeconds: number;
}

export const DEFAULT_LOCK_TIMEOUT: LockTimeoutBounds = { defaultSeconds: 3600, maxSeconds: 86_400 };

export interface LockRequest {
  readonly scope: 'exclusive' | 'shared';
  readonly depth: 0 | 'infinity';
  /** The client's DAV:owner element, serialised, or null. */
  readonly owner: string | null;
  /** Seconds asked for, 'infinite', or undefined for the default. */
  readonly timeout?: number | 'infinite';
}

/**
 * What a change does at one path, which decides the locks that guard it:
 * `modify` changes the resource (content, properties); `create` also adds a
 * member to its folder; `remove` takes the resource and everything below it
 * away from their URLs (DELETE, MOVE source, a replaced destination).
 */
export interface Touch {
  readonly kind: 'modify' | 'create' | 'remove';
  readonly path: VaultPath;
}

const keyOf = (study: string, names: readonly string[]) => `${study}/${names.join('/')}`;

/** The lock's URL as a path. */
export function lockRootPath(lock: LockRecord): VaultPath {
  return { study: lock.study, names: lock.root };
}

function isAtOrBelow(lock: LockRecord, path: VaultPath): boolean {
  return lock.study === path.study && lock.root.length >= path.names.length && path.names.every((name, i) => lock.root[i] === name);
}

/** True when the lock applies to path: it is the lock root, or below a depth-infinity root. */
export function lockCovers(lock: LockRecord, path: VaultPath): boolean {
  if (lock.study !== path.study || lock.root.length > path.names.length) return false;
  if (!lock.root.every((name, i) => path.names[i] === name)) return false;
  return lock.root.length === path.names.length || lock.depth === 'infinity';
}

export class LockTable {
  readonly section: Section<LockRecord>;
  readonly #bounds: LockTimeoutBounds;
  readonly #now: () => number;
  readonly #byToken = new Map<string, LockRecord>();
  /** Lock root key -> tokens of the locks rooted there. */
  readonly #byRoot = new Map<string, Set<string>>();

  private constructor(section: Section<LockRecord>, bounds: LockTimeoutBounds, now: () => number) {
    this.section = section;
    this.#bounds = bounds;
    this.#now = now;
  }

  static async open(db: Database, bounds: LockTimeoutBounds = DEFAULT_LOCK_TIMEOUT, now: () => number = Date.now): Promise<LockTable> {
    const table = new LockTable(db.section<LockRecord>('locks'), bounds, now);
    for await (const [, lock] of table.section.entries()) table.remember(lock);
    return table;
  }

  isActive(lock: LockRecord): boolean {
    return Date.parse(lock.expiresAt) > this.#now();
  }

  /** Active locks that apply to path: on it, or depth-infinity locks on a folder above it. Root first. */
  covering(path: VaultPath): LockRecord[] {
    if (path.study === null) return [];
    const found: LockRecord[] = [];
    for (let length = 0; length <= path.names.length; length++) {
      const tokens = this.#byRoot.get(keyOf(path.study, path.names.slice(0, length)));
      if (!tokens) continue;
      for (const token of tokens) {
        const lock = this.#byToken.get(token)!;
        if (this.isActive(lock) && (length === path.names.length || lock.depth === 'infinity')) found.push(lock);
      }
    }
    return found;
  }

  /** Every lock rooted at path or below it, expired ones included (they go with a delete). */
  within(path: VaultPath): LockRecord[] {
    return [...this.#byToken.values()].filter((lock) => isAtOrBelow(lock, path));
  }

  /** Active locks rooted strictly below path. */
  below(path: VaultPath): LockRecord[] {
    return this.within(path).filter((lock) => lock.root.length > path.names.length && this.isActive(lock));
  }

  /** Active locks rooted exactly at path (any depth). */
  at(path: VaultPath): LockRecord[] {
    if (path.study === null) return [];
    const tokens = this.#byRoot.get(keyOf(path.study, path.names)) ?? new Set<string>();
    return [...tokens].map((token) => this.#byToken.get(token)!).filter((lock) => this.isActive(lock));
  }

  /** An active lock by token. */
  byToken(token: string): LockRecord | undefined {
    const lock = this.#byToken.get(token);
    return lock && this.isActive(lock) ? lock : undefined;
  }

  /** Locks whose time is up, per study, for the sweep. */
  expired(): Map<string, LockRecord[]> {
    const found = new Map<string, LockRecord[]>();
    for (const lock of this.#byToken.values()) {
      if (this.isActive(lock)) continue;
      const list = found.get(lock.study) ?? [];
      list.push(lock);
      found.set(lock.study, list);
    }
    return found;
  }

  /** The locks a change must hold the tokens of (RFC 4918 §7.4-7.6). */
  guarding(touches: readonly Touch[]): LockRecord[] {
    const found = new Map<string, LockRecord>();
    const add = (locks: LockRecord[]) => locks.forEach((lock) => found.set(lock.token, lock));
    for (const { kind, path } of touches) {
      add(this.covering(path));
      // Adding or removing a member changes the folder's membership, which a depth-0 lock on it protects too.
      if (kind !== 'modify' && path.names.length > 0) add(this.at({ study: path.study, names: path.names.slice(0, -1) }));
      if (kind === 'remove') add(this.below(path));
    }
    return [...found.values()];
  }

  /**
   * @throws LOCKED unless the actor submitted the token of every lock that
   *   guards the touches and created each of those locks.
   */
  assertMayChange(actor: Actor, touches: readonly Touch[]): void {
    const submitted = new Set(actor.lockTokens ?? []);
    const missing = this.guarding(touches).filter((lock) => !submitted.has(lock.token) || lock.createdBy.id !== actor.principal.id);
    if (missing.length === 0) return;
    const roots = [...new Set(missing.map((lock) => formatVaultPath(lockRootPath(lock))))];
    throw new VellumError('LOCKED', `Locked at ${roots.join(', ')}; only the person holding the lock can change it, with its token.`);
  }

  /** Existing locks a new lock would conflict with: any exclusive one it overlaps, or any at all when it is exclusive. */
  conflicts(path: VaultPath, scope: LockRequest['scope'], depth: LockRequest['depth']): LockRecord[] {
    const overlapping = [...this.covering(path), ...(depth === 'infinity' ? this.below(path) : [])];
    return overlapping.filter((lock) => scope === 'exclusive' || lock.scope === 'exclusive');
  }

  /** The seconds granted for what the client asked: at most the maximum, the default when it asked for none. */
  grant(timeout: LockRequest['timeout']): number {
    if (timeout === undefined) return Math.min(this.#bounds.defaultSeconds, this.#bounds.maxSeconds);
    if (timeout === 'infinite') return this.#bounds.maxSeconds;
    return Math.max(1, Math.min(Math.floor(timeout), this.#bounds.maxSeconds));
  }

  /** A new lock record (not yet stored): token from a CSPRNG. */
  create(path: VaultPath & { study: string }, request: LockRequest, actor: Actor): LockRecord {
    const now = this.#now();
    const timeoutSeconds = this.grant(request.timeout);
    return {
      token: `opaquelocktoken:${randomUUID()}`, study: path.study, root: [...path.names], scope: request.scope, depth: request.depth,
      owner: request.owner, timeoutSeconds, expiresAt: new Date(now + timeoutSeconds * 1000).toISOString(), createdAt: new Date(now).toISOString(),
      createdBy: { id: actor.principal.id, login: actor.principal.login, displayName: actor.principal.displayName },
    };
  }

  /** The lock with a fresh timeout. */
  refreshed(lock: LockRecord, timeout: LockRequest['timeout']): LockRecord {
    const timeoutSeconds = this.grant(timeout);
    return { ...lock, timeoutSeconds, expiresAt: new Date(this.#now() + timeoutSeconds * 1000).toISOString() };
  }

  /** Takes a stored lock into the index (after its batch is written). */
  remember(lock: LockRecord): void {
    this.forget([lock.token]);
    this.#byToken.set(lock.token, lock);
    const key = keyOf(lock.study, lock.root);
    const tokens = this.#byRoot.get(key) ?? new Set<string>();
    tokens.add(lock.token);
    this.#byRoot.set(key, tokens);
  }

  /** Drops removed locks from the index (after their batch is written). */
  forget(tokens: readonly string[]): void {
    for (const token of tokens) {
      const lock = this.#byToken.get(token);
      if (!lock) continue;
      this.#byToken.delete(token);
      const key = keyOf(lock.study, lock.root);
      const rooted = this.#byRoot.get(key);
      rooted?.delete(token);
      if (rooted?.size === 0) this.#byRoot.delete(key);
    }
  }

  /** Ops that delete these locks' records. */
  deleteOps(locks: readonly LockRecord[]): WriteOp[] {
    return locks.map((lock) => this.section.del(lock.token));
  }
}

/** What the audit trail keeps of a lock. */
export function lockSummary(lock: LockRecord) {
  return {
    token: lock.token, path: formatVaultPath(lockRootPath(lock)), scope: lock.scope, depth: lock.depth,
    timeoutSeconds: lock.timeoutSeconds, expiresAt: lock.expiresAt, owner: lock.owner,
  };
}
