// Verification of the live store in one streaming pass with flat memory:
// entry keys and seqs consecutive from 1, each link and hash, the Merkle
// frontier recomputed as it goes and compared with every stored tree node and
// every stored checkpoint (root, head, signature against the certificate it
// names), and checkpoints that cover entries the store no longer holds.

import type { Section } from '../db/index.ts';
import { checkpointSignatureValid, type SignedCheckpoint } from './checkpoint.ts';
import { entryHash, GENESIS_HASH, seqKey, type AuditEntry, type AuditEvent } from './entry.ts';
import { MerkleFrontier, leafHash, type CompletedNode } from './merkle.ts';
import { treeKey } from './tree.ts';

/** A checkpoint as stored: the signed one and the fingerprint of the certificate that verifies it. */
export interface StoredCheckpoint extends SignedCheckpoint {
  readonly certificate: string;
}

export interface ChainReport {
  readonly ok: boolean;
  /** Entries that passed every check. */
  readonly checked: number;
  /** Stored checkpoints that passed every check. */
  readonly checkpoints: number;
  readonly firstBroken?: { readonly seq: number; readonly problem: string };
}

/** "entry N: problem" for a broken report, null for a sound one. */
export function brokenAt(report: ChainReport): string | null {
  return report.firstBroken ? `entry ${report.firstBroken.seq}: ${report.firstBroken.problem}` : null;
}

/** The `audit.verify` entry that records a verification of the store (failed when it found a break). */
export function verificationEvent(report: ChainReport, extra: Record<string, unknown> = {}): Pick<AuditEvent, 'action' | 'outcome' | 'newValue' | 'detail'> {
  const broken = brokenAt(report);
  return {
    action: 'audit.verify', outcome: broken ? 'failed' : 'success',
    newValue: { ok: report.ok, checked: report.checked, checkpoints: report.checkpoints, ...extra },
    ...(broken ? { detail: `INTEGRITY_FAILURE: ${broken}` } : {}),
  };
}

export interface VerifyOptions {
  /** Called now and then, and once at the end, with entries checked so far and the entries to check. */
  readonly onProgress?: (checked: number, total: number) => void;
}

export interface StoreView {
  readonly entries: Section<AuditEntry>;
  readonly tree: Section<string>;
  readonly checkpoints: Section<StoredCheckpoint>;
  readonly certificates: ReadonlyMap<string, string>;
  readonly logId: string;
  /** Entries to check: the head when the pass started (later appends are not looked at). */
  readonly size: number;
  /** The largest checkpoint size known when the pass started (checkpoints made later are not looked at). */
  readonly checkpointBound: number;
}

const PROGRESS_EVERY = 10_000;

class Broken extends Error {
  readonly seq: number;
  readonly problem: string;
  /** Entries known good, when fewer than those looked at (tree nodes are compared in batches). */
  readonly passed: number | undefined;

  constructor(seq: number, problem: string, passed?: number) {
    super(problem);
    this.seq = seq;
    this.problem = problem;
    this.passed = passed;
  }
}

/** Completed nodes are compared with the stored ones in batches of this many (one getMany each). */
const NODE_BATCH = 2048;

export async function verifyStore(view: StoreView, options: VerifyOptions = {}): Promise<ChainReport> {
  const { size } = view;
  // Both readers are made before the first await, so they see the store as it was at the start.
  const checkpointReader = view.checkpoints.entries({ lte: seqKey(Math.max(size, view.checkpointBound)) })[Symbol.asyncIterator]();
  const entryIterable = view.entries.entries({ lte: seqKey(size) });

  const frontier = MerkleFrontier.empty();
  let checked = 0;
  let checkpoints = 0;
  let prevHash = GENESIS_HASH;
  let nextCheckpoint = await checkpointReader.next();

  /** Checks every stored checkpoint of exactly `at` entries against the state after entry `at`. */
  const checkCheckpointsAt = async (at: number): Promise<void> => {
    while (!nextCheckpoint.done) {
      const [key, checkpoint] = nextCheckpoint.value;
      const claimed = Number(key);
      if (claimed > at) return;
      const problem = checkpointProblem(view, key, checkpoint, frontier, prevHash);
      if (problem !== null) throw new Broken(claimed, problem);
      checkpoints++;
      nextCheckpoint = await checkpointReader.next();
    }
  };

  /** Nodes completed so far and not asked for yet, in the order they were completed. */
  let pendingNodes: CompletedNode[] = [];
  /** The comparison of the previous batch, whose read runs while the next entries are checked. */
  let inFlight: Promise<void> = Promise.resolve();
  const compare = async (nodes: readonly CompletedNode[], reading: Promise<(string | undefined)[]>): Promise<void> => {
    const stored = await reading;
    nodes.forEach((node, i) => {
      const key = treeKey(node.level, node.index);
      const first = node.index * 2 ** node.level + 1;
      const last = (node.index + 1) * 2 ** node.level;
      if (stored[i] === undefined) throw new Broken(first, `the tree node over entries ${first}-${last} (${key}) is missing`, first - 1);
      if (stored[i] !== node.hash.toString('hex')) {
        throw new Broken(first, `entries ${first}-${last} do not match the tree node stored when they were written (${key}): one of them, or the node, was changed`, first - 1);
      }
    });
  };
  /** Starts reading the pending nodes; the batch before is compared first, so problems come out in order. */
  const askForNodes = async (): Promise<void> => {
    await inFlight;
    if (pendingNodes.length === 0) return;
    const nodes = pendingNodes;
    pendingNodes = [];
    const comparing = compare(nodes, view.tree.getMany(nodes.map((node) => treeKey(node.level, node.index))));
    comparing.catch(() => undefined);
    inFlight = comparing;
  };
  /** Every node completed so far compared. */
  const checkNodes = async (): Promise<void> => {
    await askForNodes();
    await inFlight;
  };

  try {
    await checkCheckpointsAt(0);
    for await (const [key, entry] of entryIterable) {
      const expectedSeq = checked + 1;
      const problem = entryProblem(key, entry, expectedSeq, prevHash);
      if (problem !== null) {
        // A node completed before this entry is an earlier problem.
        await checkNodes();
        throw new Broken(expectedSeq, `entry ${expectedSeq}: ${problem}`);
      }
      for (const node of frontier.append(leafHash(entry.hash))) pendingNodes.push(node);
      prevHash = entry.hash;
      checked = expectedSeq;
      if (!nextCheckpoint.done && Number(nextCheckpoint.value[0]) === checked) {
        await checkNodes();
        await checkCheckpointsAt(checked);
      }
      if (pendingNodes.length >= NODE_BATCH) await askForNodes();
      if (checked % PROGRESS_EVERY === 0) options.onProgress?.(checked, size);
    }
    await checkNodes();
    if (!nextCheckpoint.done) {
      const covering = Number(nextCheckpoint.value[0]);
      throw new Broken(checked + 1, `entries after ${checked} are missing: checkpoint ${covering} covers them`);
    }
  } catch (e) {
    if (!(e instanceof Broken)) throw e;
    options.onProgress?.(checked, size);
    return { ok: false, checked: Math.min(checked, e.passed ?? checked), checkpoints, firstBroken: { seq: e.seq, problem: e.problem } };
  }
  options.onProgress?.(checked, size);
  return { ok: true, checked, checkpoints };
}

function entryProblem(key: string, entry: AuditEntry, expectedSeq: number, prevHash: string): string | null {
  if (key !== seqKey(expectedSeq)) return `missing (the next entry stored is ${Number(key)})`;
  if (entry === null || typeof entry !== 'object') return 'is not an entry';
  if (entry.seq !== expectedSeq) return `stored in its place is an entry numbered ${entry.seq}`;
  if (entry.prevHash !== prevHash) return 'does not link to the previous entry';
  if (entryHash(entry) !== entry.hash) return 'content does not match its hash';
  return null;
}

function checkpointProblem(view: StoreView, key: string, checkpoint: StoredCheckpoint, frontier: MerkleFrontier, headHash: string): string | null {
  const size = Number(key);
  const name = `checkpoint ${size}`;
  if (checkpoint === null || typeof checkpoint !== 'object' || checkpoint.size !== size) return `${name}: stored under ${size} but states another size`;
  if (checkpoint.logId !== view.logId) return `${name}: belongs to another log (${String(checkpoint.logId)})`;
  const pem = view.certificates.get(checkpoint.certificate);
  if (pem === undefined) return `${name}: names a certificate this store does not hold (${String(checkpoint.certificate)})`;
  if (!checkpointSignatureValid(checkpoint, pem)) return `${name}: its signature does not verify with certificate ${checkpoint.certificate}, or its fields differ from the signed statement`;
  if (checkpoint.root !== frontier.root().toString('hex')) {
    return `${name}: the Merkle root of entries 1-${size} is not the one signed: an entry up to ${size} was changed after it was signed (and the chain recomputed)`;
  }
  if (checkpoint.head !== headHash) return `${name}: entry ${size}'s hash is not the head it signed`;
  return null;
}
