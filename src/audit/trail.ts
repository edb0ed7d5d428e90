// The append-only, hash-chained audit trail. An entry is written in the same
// synced LevelDB batch as the change it describes: callers hand their ops to
// record(). Concurrent callers are group-committed: every record() that arrives
// while a batch is being written joins the next batch, so writers don't queue
// on fsync one by one.

import { isoTime, VellumError, systemClock, type Clock, type ErrorCode } from '../kernel/index.ts';
import type { Database, Section, WriteOp } from '../db/index.ts';
import { certificateFacts, certificateKey, certifiesKey, logIdOf, META_SECTION, storedCertificates, type MetaSection } from './certificates.ts';
import { signCheckpoint, type CheckpointSigner, type SignedCheckpoint } from './checkpoint.ts';
import { canonicalJson, entryHash, GENESIS_HASH, inCanonicalOrder, seqKey, type AuditEntry, type AuditEvent, type AuditObject } from './entry.ts';
import { leafHash, MerkleFrontier } from './merkle.ts';
import { loadFrontier, nodePuts, rebuildTree, TREE_SECTION, treeKey } from './tree.ts';
import { verifyStore, type ChainReport, type StoredCheckpoint, type VerifyOptions } from './verify-store.ts';

export type { ChainReport, VerifyOptions } from './verify-store.ts';

export const CHECKPOINT_SECTION = 'audit-checkpoints';

export interface AuditTrail {
  /**
   * Appends one entry, atomically with `ops`, synced to disk before resolving.
   * Never waits for a checkpoint to be signed.
   * @throws VellumError STORE_UNAVAILABLE: neither the entry nor the ops were written.
   */
  record(event: AuditEvent, ops?: readonly WriteOp[]): Promise<AuditEntry>;
  /** The newest entry's seq and hash (seq 0 and the genesis hash when empty). */
  head(): { seq: number; hash: string };
  /** Entries in seq order, from `fromSeq` (inclusive). */
  entries(fromSeq?: number): AsyncIterable<AuditEntry>;
  /**
   * Re-checks the whole store in one streaming pass: keys, seqs, links, hashes,
   * stored tree nodes, and every stored checkpoint (root, head, signature).
   * Reports the first problem found. Entries appended meanwhile are not looked at.
   */
  verify(options?: VerifyOptions): Promise<ChainReport>;
  /** 32 hex characters naming this trail; made at first open and kept. */
  readonly logId: string;
  /**
   * The RFC 6962 hash of the perfect subtree of 2^level leaves starting at leaf
   * index × 2^level; level 0 is the leaf hash of entry index+1.
   * @throws VellumError INTERNAL when the subtree is not complete yet (a caller's mistake),
   *   INTEGRITY_FAILURE when a stored entry or node it needs is missing.
   */
  subtreeHash(level: number, index: number): Promise<Buffer>;
  /**
   * A signed checkpoint covering the current head: the latest one if it does,
   * else one signed now (after any signing already under way).
   * @throws VellumError HSM_UNAVAILABLE when no signer is configured or signing fails.
   * @throws VellumError STORE_UNAVAILABLE when the checkpoint cannot be stored.
   * @throws VellumError INTEGRITY_FAILURE when the trail is shorter than the latest checkpoint (a cut-off tail).
   */
  checkpoint(): Promise<SignedCheckpoint>;
  /** The newest stored checkpoint, or null when none was made yet. */
  latestCheckpoint(): SignedCheckpoint | null;
  /** The certificate of the current signing key (PEM), or null without a signer. */
  certificatePem(): string | null;
  /** Every certificate that ever verified a checkpoint of this trail. */
  certificates(): Promise<{ fingerprint: string; pem: string }[]>;
  /** Stops making checkpoints and waits for one under way. Appends still work. */
  close(): Promise<void>;
}

export interface CheckpointSchedule {
  /** A checkpoint once this many entries were appended since the last attempt. */
  readonly everyEntries: number;
  /** A checkpoint this often when there are entries the latest one does not cover. */
  readonly everySeconds: number;
}

export const DEFAULT_CHECKPOINTS: CheckpointSchedule = { everyEntries: 1000, everySeconds: 300 };

export interface AuditTrailOptions {
  readonly clock?: Clock;
  /** Without a signer no checkpoint is made and checkpoint() throws HSM_UNAVAILABLE. */
  readonly signer?: CheckpointSigner;
  readonly checkpoints?: CheckpointSchedule;
  /** Called with each failed checkpoint attempt (it is retried at the next trigger). */
  readonly onCheckpointFailure?: (error: VellumError) => void;
}

interface Pending {
  readonly event: AuditEvent;
  readonly ops: readonly WriteOp[];
  readonly resolve: (entry: AuditEntry) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Opens the trail: reads the head, rebuilds the Merkle frontier from the stored
 * tree (or the whole tree once, for a trail written without it), and with a
 * signer finds or issues the signing certificate.
 * @throws VellumError STORE_UNAVAILABLE, or HSM_UNAVAILABLE when a certificate must be issued and cannot be.
 */
export async function openAuditTrail(db: Database, options: AuditTrailOptions = {}): Promise<AuditTrail> {
  const clock = options.clock ?? systemClock;
  const schedule = options.checkpoints ?? DEFAULT_CHECKPOINTS;
  const signer = options.signer;
  const section: Section<AuditEntry> = db.section<AuditEntry>('audit');
  const tree = db.section<string>(TREE_SECTION);
  const meta: MetaSection = db.section(META_SECTION);
  const checkpoints = db.section<StoredCheckpoint>(CHECKPOINT_SECTION);

  let head = { seq: 0, hash: GENESIS_HASH };
  for await (const [, last] of section.entries({ reverse: true, limit: 1 })) head = { seq: last.seq, hash: last.hash };
  let frontier = (await loadFrontier(tree, head.seq, head.hash)) ?? (await rebuildTree(db, section, tree, head.seq));
  const logId = await logIdOf(db, meta);
  let latest: SignedCheckpoint | null = null;
  for await (const [, stored] of checkpoints.entries({ reverse: true, limit: 1 })) latest = withoutCertificate(stored);

  let queue: Pending[] = [];
  let writing = false;

  const flush = async (): Promise<void> => {
    writing = true;
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      let { seq, hash } = head;
      // The frontier is only replaced once the batch is on disk.
      const next = MerkleFrontier.of(frontier.size, frontier.hashes());
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
        ops.push(...item.ops, section.put(seqKey(entry.seq), entry), ...nodePuts(tree, next.append(leafHash(entry.hash))));
      }
      if (accepted.length === 0) continue;
      try {
        await db.write(ops);
        head = { seq, hash };
        frontier = next;
        accepted.forEach((item, i) => item.resolve(entries[i]!));
        afterAppend();
      } catch (e) {
        const error = e instanceof VellumError ? e : new VellumError('STORE_UNAVAILABLE', (e as Error).message, { cause: e });
        accepted.forEach((item) => item.reject(error));
      }
    }
    writing = false;
  };

  const record = (event: AuditEvent, ops: readonly WriteOp[] = []) =>
    new Promise<AuditEntry>((resolve, reject) => {
      queue.push({ event, ops, resolve, reject });
      if (!writing) void flush();
    });

  // ---- checkpoints: signed off the writers' path, one at a time.
  let certificate: { fingerprint: string; pem: string } | null = null;
  const certificates = await storedCertificates(meta);

  /** Signing in progress (or settled); every signing is chained after the previous one. */
  let signing: Promise<unknown> = Promise.resolve();
  let busy = false;
  let closed = false;
  /** Head size at the last attempt: the entry-count trigger counts from there, so a failing HSM is not asked after every batch. */
  let lastAttemptSize = latest?.size ?? 0;
  /** Whether the current run of failures was audited already (one entry per run, not per retry). */
  let failing = false;

  const attempt = async (): Promise<SignedCheckpoint> => {
    // The state after the last batch on disk: root and head at exactly this size.
    const fields = { logId, size: head.seq, time: isoTime(clock), root: frontier.root().toString('hex'), head: head.hash };
    lastAttemptSize = fields.size;
    try {
      if (signer === undefined || certificate === null) throw new VellumError('HSM_UNAVAILABLE', 'No audit signing key is configured, so no checkpoint can be signed.');
      const signed = await signCheckpoint(fields, signer).catch((e: unknown) => {
        throw asError(e, 'HSM_UNAVAILABLE');
      });
      const stored: StoredCheckpoint = { ...signed, certificate: certificate.fingerprint };
      await db.write([checkpoints.put(seqKey(signed.size), stored)]);
      if (latest === null || signed.size >= latest.size) latest = signed;
      failing = false;
      return signed;
    } catch (e) {
      const error = asError(e, 'INTERNAL');
      options.onCheckpointFailure?.(error);
      if (!failing) {
        failing = true;
        void record({
          action: 'audit.checkpoint', outcome: 'failed', protocol: 'system',
          newValue: { size: fields.size }, detail: `${error.code}: ${error.detail ?? error.message}`,
        }).catch(() => undefined);
      }
      throw error;
    }
  };

  const serialised = <T>(task: () => Promise<T>): Promise<T> => {
    const run = signing.then(() => {
      busy = true;
      return task();
    }).finally(() => {
      busy = false;
    });
    signing = run.catch(() => undefined);
    return run;
  };

  /** Set when the entry count was reached while a signing was under way: counted again when it ends. */
  let countAgain = false;

  /** A background attempt; while one is under way, the entry count is looked at again when it ends. */
  const trigger = () => {
    if (signer === undefined || certificate === null || closed) return;
    if (busy) {
      countAgain = true;
      return;
    }
    void serialised(attempt).catch(() => undefined).finally(() => {
      if (countAgain) {
        countAgain = false;
        afterAppend();
      }
    });
  };

  function afterAppend(): void {
    if (head.seq - lastAttemptSize >= schedule.everyEntries) trigger();
  }

  // The certificate comes last: its issue is an entry, and every part that entry's append touches exists by now.
  if (signer !== undefined) {
    const current = [...certificates].find(([, pem]) => certifiesKey(pem, signer.publicKeyPem));
    certificate = current === undefined ? await issueCertificate(signer, meta, record) : { fingerprint: current[0], pem: current[1] };
    certificates.set(certificate.fingerprint, certificate.pem);
  }

  const timer = signer === undefined ? undefined : setInterval(() => {
    if (head.seq > (latest?.size ?? 0)) trigger();
  }, schedule.everySeconds * 1000);
  timer?.unref();

  return {
    logId,
    record,
    head: () => ({ ...head }),
    async *entries(fromSeq = 1) {
      for await (const [, entry] of section.entries({ gte: seqKey(fromSeq) })) yield entry;
    },
    async verify(verifyOptions = {}) {
      return verifyStore({
        entries: section, tree, checkpoints, certificates, logId,
        size: head.seq, checkpointBound: latest?.size ?? 0,
      }, verifyOptions);
    },
    async subtreeHash(level, index) {
      const complete = Number.isSafeInteger(level) && Number.isSafeInteger(index) && level >= 0 && index >= 0 && (index + 1) * 2 ** level <= head.seq;
      if (!complete) throw new VellumError('INTERNAL', `The audit trail of ${head.seq} entries has no complete subtree ${level}:${index}.`);
      if (level === 0) {
        const entry = await section.get(seqKey(index + 1));
        if (entry === undefined) throw new VellumError('INTEGRITY_FAILURE', `Audit entry ${index + 1} is missing from the store.`);
        return leafHash(entry.hash);
      }
      const hex = await tree.get(treeKey(level, index));
      if (hex === undefined) throw new VellumError('INTEGRITY_FAILURE', `The audit tree node ${treeKey(level, index)} is missing from the store.`);
      return Buffer.from(hex, 'hex');
    },
    checkpoint() {
      if (signer === undefined) return Promise.reject(new VellumError('HSM_UNAVAILABLE', 'No audit signing key is configured, so no checkpoint can be signed.'));
      return serialised(async () => {
        if (latest !== null && latest.size === head.seq) return latest;
        // Fewer entries than a signed checkpoint covers: the tail was cut off. Signing the
        // shorter trail would let an export hide that; verify() names what is missing.
        if (latest !== null && latest.size > head.seq) throw new VellumError('INTEGRITY_FAILURE', `The audit trail ends at entry ${head.seq} but checkpoint ${latest.size} covers more: entries are missing. No checkpoint is signed over it.`);
        return attempt();
      });
    },
    latestCheckpoint: () => latest,
    certificatePem: () => certificate?.pem ?? null,
    async certificates() {
      return [...(await storedCertificates(meta))].map(([fingerprint, pem]) => ({ fingerprint, pem }));
    },
    async close() {
      closed = true;
      if (timer !== undefined) clearInterval(timer);
      await signing;
    },
  };
}

/** Issues a certificate for the signer's key, stores it and records `audit.certificate.issue` in the same batch. */
async function issueCertificate(
  signer: CheckpointSigner, meta: MetaSection, record: (event: AuditEvent, ops?: readonly WriteOp[]) => Promise<AuditEntry>,
): Promise<{ fingerprint: string; pem: string }> {
  const pem = await signer.issueCertificate().catch((e: unknown) => {
    throw asError(e, 'HSM_UNAVAILABLE');
  });
  const facts = certificateFacts(pem);
  if (!certifiesKey(pem, signer.publicKeyPem)) throw new VellumError('INTERNAL', 'The issued audit signing certificate does not carry the signing key.');
  const stored = { fingerprint: facts.fingerprint, pem };
  await record({
    action: 'audit.certificate.issue', outcome: 'success', protocol: 'system',
    newValue: { fingerprint: facts.fingerprint, subject: facts.subject, notAfter: facts.notAfter },
  }, [meta.put(certificateKey(facts.fingerprint), stored)]);
  return stored;
}

/** A signer's or store's error as a VellumError; anything that is not one gets `code`. */
function asError(e: unknown, code: ErrorCode): VellumError {
  return e instanceof VellumError ? e : new VellumError(code, (e as Error)?.message ?? String(e), { cause: e });
}

function withoutCertificate(stored: StoredCheckpoint): SignedCheckpoint {
  const { certificate: _certificate, ...signed } = stored;
  return signed;
}

/** The entry with its keys in canonical order at every level, so that its canonical JSON is JSON.stringify's. */
function toEntry(event: AuditEvent, seq: number, time: string, prevHash: string): Omit<AuditEntry, 'hash'> {
  return {
    action: event.action,
    actor: event.actor ? { displayName: event.actor.displayName, dn: event.actor.dn, id: event.actor.id, login: event.actor.login } : null,
    client: event.client ?? null,
    detail: event.detail ?? null,
    ip: event.ip ?? null,
    newValue: asStoredJson(event.newValue),
    object: asStoredJson(event.object ?? {}) as AuditObject,
    oldValue: asStoredJson(event.oldValue),
    outcome: event.outcome,
    prevHash,
    protocol: event.protocol ?? null,
    reason: event.reason ?? null,
    roles: [...(event.roles ?? [])],
    seq,
    session: event.session ?? null,
    time,
  };
}

/**
 * The value as it reads back from the store (JSON), so the hash is computed
 * over what is stored: a Date or Buffer would otherwise hash as `{}` here but
 * read back as a string or an object, and the entry would fail verification.
 * Object keys are put in canonical order.
 */
function asStoredJson(value: unknown): unknown {
  if (value === undefined) return null;
  const text = JSON.stringify(value);
  if (text === undefined) return null;
  const parsed = JSON.parse(text) as unknown;
  return inCanonicalOrder(parsed) ? parsed : (JSON.parse(canonicalJson(parsed)) as unknown);
}
