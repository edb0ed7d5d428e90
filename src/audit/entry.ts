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
  readonly prevHash: string;
  readonly hash: string;
}

export const GENESIS_HASH = '0'.repeat(64);

/** JSON with object keys sorted at every level and no insignificant whitespace. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

/** hash = SHA-256 over the canonical encoding of every field but `hash` (prevHash included). */
export function entryHash(entry: Omit<AuditEntry, 'hash'> & { hash?: string }): string {
  const { hash: _ignored, ...rest } = entry;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex');
}

export function seqKey(seq: number): string {
  return seq.toString().padStart(16, '0');
}
