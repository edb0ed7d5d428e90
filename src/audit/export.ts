// Streams an audit export (docs/audit-export-format.md) in JSON Lines or CSV:
// the header with the signing certificate, the signed checkpoint the export
// is cut at, the entries that pass the filter (each with an inclusion proof
// when the export is a subset) and the count. Every entry 1..size is scanned
// in seq order, whatever the filter, so memory stays flat and the exporter
// itself re-checks what it hands out: each entry's hash and link, the Merkle
// root and head against the checkpoint, and every proof against the signed
// root before it is written. A failed check stops the export with
// INTEGRITY_FAILURE before the `end` record, so a cut file never passes.

import { isoTime, systemClock, VellumError, type Clock } from '../kernel/index.ts';
import { checkpointSignatureValid, type SignedCheckpoint } from './checkpoint.ts';
import { canonicalJson, chainHash, entryBody, GENESIS_HASH, type AuditEntry } from './entry.ts';
import {
  CSV_BOM, CSV_COLUMNS, csvRow, entryCsvRow, entryLine, EXPORT_FORMAT, EXPORT_KIND, otherCsvRow,
  type CheckpointRecord, type EndRecord, type EntryRecord, type ExportFilterEcho, type ExportFormat, type ExportHeader,
} from './export-format.ts';
import { inclusionProof, leafHash, MerkleFrontier, rootFromInclusionProof, type SubtreeHashes } from './merkle.ts';

/** What an export reads: the trail (src/audit/trail.ts) offers exactly these. */
export interface AuditExportSource {
  /** The trail's id, 32 hex characters (the checkpoint statement's `log`). */
  readonly logId: string;
  /** Entries in seq order, from `fromSeq` (inclusive). */
  entries(fromSeq?: number): AsyncIterable<AuditEntry>;
  /**
   * The hash of the perfect subtree of 2^level leaves starting at leaf
   * index × 2^level (level 0: the leaf hash of entry index+1).
   * @throws VellumError STORE_UNAVAILABLE, INTEGRITY_FAILURE.
   */
  subtreeHash(level: number, index: number): Promise<Buffer>;
  /**
   * A signed checkpoint covering the trail's head.
   * @throws VellumError HSM_UNAVAILABLE.
   */
  checkpoint(): Promise<SignedCheckpoint>;
  /** The signing key's X.509 certificate, PEM. */
  /** null: no signing key (then there is no checkpoint either). */
  certificatePem(): string | null | Promise<string | null>;
}

export interface ExportFilter {
  readonly study?: string;
  /** The studies the reader may see (an Auditor's): entries of other studies and with no study are left out. */
  readonly studies?: Iterable<string>;
  /** ISO time, inclusive. */
  readonly from?: string;
  /** ISO time, exclusive. */
  readonly to?: string;
  /** The actor's immutable id or login, exactly. */
  readonly user?: string;
  /** An action exactly, or a prefix ending in `.` (e.g. `file.`). */
  readonly action?: string;
  readonly outcome?: string;
}

export interface ExportOptions {
  readonly format: ExportFormat;
  readonly filter?: ExportFilter;
  readonly clock?: Clock;
  /** Cut the export here (a checkpoint the caller already took, e.g. to record it first); default: source.checkpoint(). */
  readonly checkpoint?: SignedCheckpoint;
}

/** Lines are handed out in chunks of about this many characters. */
const CHUNK = 64 * 1024;

/**
 * The export, streamed. Reading it may throw VellumError INTEGRITY_FAILURE
 * (stored entries, subtree hashes or the checkpoint do not agree: nothing
 * unproven was written), BAD_REQUEST (a filter time is not a time),
 * HSM_UNAVAILABLE, STORE_UNAVAILABLE.
 */
export async function* exportTrail(source: AuditExportSource, options: ExportOptions): AsyncGenerator<Buffer> {
  const echo = filterEcho(options.filter ?? {});
  const matches = matcher(echo);
  const complete = Object.keys(echo).length === 0;
  const checkpoint = options.checkpoint ?? (await source.checkpoint());
  const certificate = await source.certificatePem();
  if (certificate === null) throw new VellumError('HSM_UNAVAILABLE', 'The audit trail has no signing certificate, so no export can be signed.');
  if (checkpoint.logId !== source.logId) throw integrity(`the checkpoint belongs to log ${checkpoint.logId}, not ${source.logId}`);
  if (!checkpointSignatureValid(checkpoint, certificate)) throw integrity('the checkpoint\'s signature does not verify with the signing certificate');

  const writer = recordWriter(options.format);
  const header: ExportHeader = {
    kind: EXPORT_KIND, format: EXPORT_FORMAT, exportedAt: isoTime(options.clock ?? systemClock), logId: source.logId,
    complete, filter: echo, certificate,
  };
  const { logId, size, time, root, head, statement, signature } = checkpoint;
  const checkpointRecord: CheckpointRecord = { kind: 'checkpoint', logId, size, time, root, head, statement, signature };
  let out = writer.start + writer.other(header) + writer.other(checkpointRecord);

  const signedRoot = Buffer.from(root, 'hex');
  const subtrees = new SubtreeCache(source.subtreeHash.bind(source));
  /** The split subtrees on the right edge of the checkpoint's tree, shared by every proof. */
  const rightEdge = new Map<string, Buffer>();
  const frontier = MerkleFrontier.empty();
  let prevHash = GENESIS_HASH;
  let written = 0;

  const emit = async (entry: AuditEntry, bodyText: string): Promise<string> => {
    if (complete) return writer.entry({ kind: 'entry', seq: entry.seq, hash: entry.hash, prevHash: entry.prevHash, bodyText }, entry);
    const index = entry.seq - 1;
    const proof = await inclusionProof(index, size, subtrees.get, rightEdge);
    if (!rootFromInclusionProof(index, size, leafHash(entry.hash), proof)?.equals(signedRoot)) {
      throw integrity(`the inclusion proof of entry ${entry.seq} does not lead to the checkpoint's root`);
    }
    return writer.entry({ kind: 'entry', seq: entry.seq, hash: entry.hash, prevHash: entry.prevHash, proof: proof.map((h) => h.toString('hex')), bodyText }, entry);
  };

  // One entry is held back until the next is read: its right-hand leaf sibling is that next entry.
  let held: { entry: AuditEntry; bodyText: string } | null = null;
  for await (const entry of source.entries(1)) {
    if (entry.seq > size) break;
    const expected = frontier.size + 1;
    if (entry.seq !== expected) throw integrity(`entry ${expected} is missing (the next stored entry is ${entry.seq})`);
    const bodyText = canonicalJson(entryBody(entry));
    if (entry.prevHash !== prevHash) throw integrity(`entry ${entry.seq} does not link to the previous entry`);
    if (chainHash(entry.prevHash, bodyText) !== entry.hash) throw integrity(`entry ${entry.seq}: content does not match its hash`);
    const leaf = leafHash(entry.hash);
    subtrees.leaf(entry.seq - 1, leaf);
    frontier.append(leaf);
    prevHash = entry.hash;
    if (held !== null) out += await emit(held.entry, held.bodyText);
    held = matches(entry) ? { entry, bodyText } : null;
    if (held !== null) written++;
    if (out.length >= CHUNK) {
      yield Buffer.from(out, 'utf8');
      out = '';
    }
  }
  if (held !== null) out += await emit(held.entry, held.bodyText);
  if (frontier.size !== size) throw integrity(`the checkpoint covers ${size} entries but the trail holds ${frontier.size}`);
  if (!frontier.root().equals(signedRoot) || prevHash !== head) throw integrity('the stored entries do not match the signed checkpoint (root or head differ)');
  const end: EndRecord = { kind: 'end', entries: written };
  yield Buffer.from(out + writer.other(end), 'utf8');
}

function integrity(detail: string): VellumError {
  return new VellumError('INTEGRITY_FAILURE', `Audit export stopped: ${detail}.`);
}

interface RecordWriter {
  readonly start: string;
  other(record: ExportHeader | CheckpointRecord | EndRecord): string;
  entry(record: EntryRecord, body: AuditEntry): string;
}

function recordWriter(format: ExportFormat): RecordWriter {
  if (format === 'csv') {
    return {
      start: CSV_BOM + csvRow(CSV_COLUMNS),
      other: (record) => csvRow(otherCsvRow(record)),
      entry: (record, body) => csvRow(entryCsvRow(record, body)),
    };
  }
  return { start: '', other: (record) => `${JSON.stringify(record)}\n`, entry: (record) => `${entryLine(record)}\n` };
}

/** The filter as the header echoes it: only what was given, times normalised to UTC with milliseconds. */
export function filterEcho(filter: ExportFilter): ExportFilterEcho {
  const echo: Record<string, unknown> = {};
  if (filter.study !== undefined) echo.study = filter.study;
  if (filter.from !== undefined) echo.from = filterTime(filter.from, 'from');
  if (filter.to !== undefined) echo.to = filterTime(filter.to, 'to');
  if (filter.user !== undefined) echo.user = filter.user;
  if (filter.action !== undefined) echo.action = filter.action;
  if (filter.outcome !== undefined) echo.outcome = filter.outcome;
  if (filter.studies !== undefined) echo.studies = [...new Set(filter.studies)].sort();
  return echo as ExportFilterEcho;
}

/** A filter's time as the header echoes it (UTC, milliseconds). @throws BAD_REQUEST when it is not an ISO-8601 date or time */
export function filterTime(value: string, name: string): string {
  const ms = Date.parse(value);
  if (!/^\d{4}-\d\d-\d\d/.test(value) || Number.isNaN(ms)) throw new VellumError('BAD_REQUEST', `The export filter's "${name}" is not an ISO-8601 date or time (e.g. 2026-01-31 or 2026-01-31T12:00:00Z): "${value}".`);
  return new Date(ms).toISOString();
}

function matcher(echo: ExportFilterEcho): (entry: AuditEntry) => boolean {
  const studies = echo.studies === undefined ? undefined : new Set(echo.studies);
  const action = echo.action;
  return (entry) => {
    const study = entry.object.study;
    if (echo.study !== undefined && study !== echo.study) return false;
    if (studies !== undefined && (study === undefined || !studies.has(study))) return false;
    // Entry times are UTC ISO-8601 with milliseconds, like the normalised bounds, so they compare as strings.
    if (echo.from !== undefined && entry.time < echo.from) return false;
    if (echo.to !== undefined && entry.time >= echo.to) return false;
    if (echo.user !== undefined && entry.actor?.id !== echo.user && entry.actor?.login !== echo.user) return false;
    if (action !== undefined && !(action.endsWith('.') ? entry.action.startsWith(action) : entry.action === action)) return false;
    if (echo.outcome !== undefined && entry.outcome !== echo.outcome) return false;
    return true;
  };
}

/** Per level, this many recently used subtree hashes are kept: consecutive proofs share their siblings. */
const PER_LEVEL = 4;

/**
 * The subtree hashes proofs ask for. Leaves come from the entries being
 * scanned (the one before, the one held and the one read ahead); higher
 * subtrees from the source, remembered per level so consecutive entries
 * don't read the same siblings again. O(log n) hashes in memory.
 */
class SubtreeCache {
  readonly #read: SubtreeHashes;
  /** Leaf hashes of the entries just scanned. */
  readonly #leaves = new Map<number, Buffer>();
  /** Hashes read from the source, per level. */
  readonly #levels = new Map<number, Map<number, Buffer>>();

  constructor(read: SubtreeHashes) {
    this.#read = read;
  }

  leaf(index: number, hash: Buffer): void {
    remember(this.#leaves, index, hash);
  }

  readonly get: SubtreeHashes = async (level, index) => {
    const known = (level === 0 ? this.#leaves.get(index) : undefined) ?? this.#levels.get(level)?.get(index);
    if (known !== undefined) return known;
    const hash = await this.#read(level, index);
    let cache = this.#levels.get(level);
    if (cache === undefined) this.#levels.set(level, (cache = new Map()));
    remember(cache, index, hash);
    return hash;
  };
}

/** Keeps the PER_LEVEL most recently added hashes. */
function remember(cache: Map<number, Buffer>, index: number, hash: Buffer): void {
  cache.delete(index);
  cache.set(index, hash);
  if (cache.size > PER_LEVEL) cache.delete(cache.keys().next().value!);
}
