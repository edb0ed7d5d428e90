// The append-only, hash-chained audit trail. An entry is written in the same
// synced LevelDB batch as the change it describes: callers hand their ops to
// record(). Concurrent callers are group-committed: every record() that arrives
// while a batch is being written joins the next batch, so writers don't queue
// on fsync one by one.

import { isoTime, VellumError, type Clock, systemClock } from '../kernel/index.ts';
import type { Database, Section, WriteOp } from '../db/index.ts';
import { entryHash, GENESIS_HASH, seqKey, type AuditEntry, type AuditEvent } from './entry.ts';

export interface AuditTrail {
  /**
   * Appends one entry, atomically with `ops`, synced to disk before resolving.
   * @throws VellumError STORE_UNAVAILABLE: neither the entry nor the ops were written.
   */
  record(event: AuditEvent, ops?: readonly WriteOp[]): Promise<AuditEntry>;
  /** The newest entry's seq and hash (seq 0 and the genesis hash when empty). */
  head(): { seq: number; hash: string };
  /** Entries in seq order, from `fromSeq` (inclusive). */
  entries(fromSeq?: number): AsyncIterable<AuditEntry>;
  /** Re-computes every hash and link. Reports the first broken entry. */
  verify(): Promise<ChainReport>;
}

export interface ChainReport {
  readonly ok: boolean;
  readonly checked: number;
  readonly firstBroken?: { readonly seq: number; readonly problem: string };
}

interface Pending {
  readonly event: AuditEvent;
  readonly ops: readonly WriteOp[];
  readonly resolve: (entry: AuditEntry) => void;
  readonly reject: (error: unknown) => void;
}

export async function openAuditTrail(db: Database, clock: Clock = systemClock): Promise<AuditTrail> {
  const section: Section<AuditEntry> = db.section<AuditEntry>('audit');
  let head = { seq: 0, hash: GENESIS_HASH };
  for await (const [, last] of section.entries({ reverse: true, limit: 1 })) head = { seq: last.seq, hash: last.hash };

  let queue: Pending[] = [];
  let writing = false;

  const flush = async (): Promise<void> => {
    writing = true;
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      let { seq, hash } = head;
      const accepted: Pending[] = [];
      const entries: AuditEntry[] = [];
      const ops: WriteOp[] = [];
      for (const item of batch) {
        let entry: AuditEntry;
        try {
          const unhashed = toEntry(item.event, seq + 1, isoTime(clock), hash);
          entry = { ...unhashed, hash: entryHash(unhashed) };
        } catch (e) {
          // An event that cannot be encoded fails its own caller only; it must
          // not stop the writer (which would leave every later record() hanging).
          item.reject(new VellumError('INTERNAL', `The audit event cannot be encoded: ${(e as Error).message}`, { cause: e }));
          continue;
        }
        seq = entry.seq;
        hash = entry.hash;
        accepted.push(item);
        entries.push(entry);
        ops.push(...item.ops, section.put(seqKey(entry.seq), entry));
      }
      if (accepted.length === 0) continue;
      try {
        await db.write(ops);
        head = { seq, hash };
        accepted.forEach((item, i) => item.resolve(entries[i]!));
      } catch (e) {
        const error = e instanceof VellumError ? e : new VellumError('STORE_UNAVAILABLE', (e as Error).message, { cause: e });
        accepted.forEach((item) => item.reject(error));
      }
    }
    writing = false;
  };

  return {
    record(event, ops = []) {
      return new Promise<AuditEntry>((resolve, reject) => {
        queue.push({ event, ops, resolve, reject });
        if (!writing) void flush();
      });
    },
    head: () => ({ ...head }),
    async *entries(fromSeq = 1) {
      for await (const [, entry] of section.entries({ gte: seqKey(fromSeq) })) yield entry;
    },
    async verify() {
      let expectedSeq = 1;
      let prevHash = GENESIS_HASH;
      let checked = 0;
      for await (const [key, entry] of section.entries()) {
        const problem = checkEntry(key, entry, expectedSeq, prevHash);
        if (problem !== null) return { ok: false, checked, firstBroken: { seq: expectedSeq, problem } };
        prevHash = entry.hash;
        expectedSeq++;
        checked++;
      }
      return { ok: true, checked };
    },
  };
}

function checkEntry(key: string, entry: AuditEntry, expectedSeq: number, prevHash: string): string | null {
  if (key !== seqKey(expectedSeq)) return `entry ${expectedSeq} is missing (next key is ${key})`;
  if (entry.seq !== expectedSeq) return `key ${key} holds an entry numbered ${entry.seq}`;
  if (entry.prevHash !== prevHash) return 'does not link to the previous entry';
  if (entryHash(entry) !== entry.hash) return 'content does not match its hash';
  return null;
}

function toEntry(event: AuditEvent, seq: number, time: string, prevHash: string): Omit<AuditEntry, 'hash'> {
  return {
    seq,
    time,
    action: event.action,
    outcome: event.outcome,
    actor: event.actor ? { id: event.actor.id, login: event.actor.login, dn: event.actor.dn, displayName: event.actor.displayName } : null,
    roles: [...(event.roles ?? [])],
    ip: event.ip ?? null,
    client: event.client ?? null,
    protocol: event.protocol ?? null,
    object: { ...event.object },
    oldValue: asStoredJson(event.oldValue),
    newValue: asStoredJson(event.newValue),
    reason: event.reason ?? null,
    detail: event.detail ?? null,
    session: event.session ?? null,
    prevHash,
  };
}

/**
 * The value as it reads back from the store (JSON), so the hash is computed
 * over what is stored: a Date or Buffer would otherwise hash as `{}` here but
 * read back as a string or an object, and the entry would fail verification.
 */
function asStoredJson(value: unknown): unknown {
  if (value === undefined) return null;
  const text = JSON.stringify(value);
  return text === undefined ? null : (JSON.parse(text) as unknown);
}
