// What one audit entry holds (the fields auditors expect, PART11.md), and the
// canonical encoding its hash is computed over.

import { createHash } from 'node:crypto';

export type Outcome = 'success' | 'denied' | 'failed';

export interface AuditActor {
  /** Immutable directory id. */
  readonly id: string;
  readonly login: string;
  readonly dn: string;
  /** Printed name at the time of the action. */
  readonly displayName: string;
}

export interface AuditObject {
  readonly study?: string;
  readonly path?: string;
  readonly nodeId?: string;
  readonly versionId?: string;
}

/** What a caller reports; the trail adds seq, time and the chain. */
export interface AuditEvent {
  /** Dotted verb, e.g. `file.write`, `auth.login`, `access.denied`. */
  readonly action: string;
  readonly outcome: Outcome;
  readonly actor?: AuditActor | null;
  /** Roles the actor held for the object, when known. */
  readonly roles?: readonly string[];
  readonly ip?: string;
  readonly client?: string;
  readonly protocol?: string;
  readonly object?: AuditObject;
  readonly oldValue?: unknown;
  readonly newValue?: unknown;
  readonly reason?: string;
  /** Why it was denied or failed: an error code and message. */
  readonly detail?: string;
  /**
   * The sign-in this request belongs to: a web session's public id, or the id
   * of the directory-password or app-password sign-in a WebDAV/API request
   * was served from. Never a secret (not the cookie, not a password hash).
   */
  readonly session?: string;
}

export interface AuditEntry {
  readonly seq: number;
  /** UTC, ISO-8601 with milliseconds, from the server clock. */
  readonly time: string;
  readonly action: string;
  readonly outcome: Outcome;
  readonly actor: AuditActor | null;
  readonly roles: readonly string[];
  readonly ip: string | null;
  readonly client: string | null;
  readonly protocol: string | null;
  readonly object: AuditObject;
  readonly oldValue: unknown;
  readonly newValue: unknown;
  readonly reason: string | null;
  readonly detail: string | null;
  readonly session: string | null;
  readonly prevHash: string;
  readonly hash: string;
}

export const GENESIS_HASH = '0'.repeat(64);

/** What the hash covers besides the previous hash: every field but the two hashes. */
export type AuditEntryBody = Omit<AuditEntry, 'hash' | 'prevHash'>;

/** JSON with object keys sorted at every level and no insignificant whitespace. */
export function canonicalJson(value: unknown): string {
  // This runs for every entry written and verified: entries are stored with their keys in
  // canonical order, and then the native JSON.stringify writes the same text much faster.
  if (typeof value === 'object' && value !== null && inCanonicalOrder(value)) return JSON.stringify(value);
  return sortedJson(value);
}

/**
 * Whether JSON.stringify(value) is its canonical JSON already: only plain
 * objects, arrays and JSON primitives, object keys in sorted order at every level.
 */
export function inCanonicalOrder(value: unknown): boolean {
  if (value === null || value === undefined) return true;
  const type = typeof value;
  if (type === 'string' || type === 'number' || type === 'boolean') return true;
  if (type !== 'object') return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!inCanonicalOrder(value[i])) return false;
    return true;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return false;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  for (let i = 0; i < keys.length; i++) {
    if (i > 0 && !(keys[i - 1]! < keys[i]!)) return false;
    if (!inCanonicalOrder(record[keys[i]!])) return false;
  }
  return true;
}

function sortedJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) out += (i === 0 ? '' : ',') + sortedJson(value[i]);
    return `${out}]`;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  let out = '{';
  for (const key of keys) {
    const member = record[key];
    if (member === undefined) continue;
    out += (out.length === 1 ? '' : ',') + JSON.stringify(key) + ':' + sortedJson(member);
  }
  return `${out}}`;
}

/** The entry without its two hashes. */
export function entryBody(entry: AuditEntryBody & { prevHash?: string; hash?: string }): AuditEntryBody {
  const { hash: _hash, prevHash: _prevHash, ...body } = entry;
  return body;
}

/**
 * hash = SHA-256( prevHash as 64 lowercase hex characters || canonicalJson(body) ),
 * over the UTF-8 bytes; hex out. `encodedBody` is the canonical JSON text of
 * the body (an export carries exactly these bytes, so a shell can hash them).
 */
export function chainHash(prevHash: string, encodedBody: string): string {
  return createHash('sha256').update(prevHash, 'latin1').update(encodedBody, 'utf8').digest('hex');
}

/** The hash an entry must carry: chainHash over its prevHash and its canonical body. */
export function entryHash(entry: AuditEntryBody & { prevHash: string; hash?: string }): string {
  return chainHash(entry.prevHash, canonicalJson(entryBody(entry)));
}

export function seqKey(seq: number): string {
  return seq.toString().padStart(16, '0');
}
