// Verifies an audit export (docs/audit-export-format.md) away from the
// appliance: JSON Lines or CSV (sniffed from the first bytes), streamed with
// flat memory. It proves what the file can prove and names the first record
// that breaks it: the checkpoint's signature (with a pinned certificate, or
// else the one in the file), every entry's hash over its body as it stands in
// the file, and either the whole chain and Merkle root (a complete export) or
// one inclusion proof per entry (a subset).

import { X509Certificate } from 'node:crypto';
import { VellumError } from '../kernel/index.ts';
import { checkpointSignatureValid, checkpointStatement, parseCheckpointStatement } from './checkpoint.ts';
import { chainHash, GENESIS_HASH } from './entry.ts';
import {
  CSV_COLUMNS, entryCsvRow, entryLinePrefix, EXPORT_FORMAT, EXPORT_KIND, otherCsvRow,
  type CheckpointRecord, type EndRecord, type EntryRecord, type ExportFormat, type ExportHeader,
} from './export-format.ts';
import { leafHash, MerkleFrontier, rootFromInclusionProof } from './merkle.ts';

export interface ExportReport {
  /** Every check passed. */
  readonly ok: boolean;
  /** null when the file is neither format. */
  readonly format: ExportFormat | null;
  /** The file is (or claims to be, when not ok) a complete export: every entry 1..size. */
  readonly complete: boolean;
  /** Entry records checked. */
  readonly entries: number;
  /** The signed checkpoint's values (from the statement), once it verified. */
  readonly checkpoint: { readonly size: number; readonly time: string; readonly root: string; readonly logId: string } | null;
  /** The certificate the signature was checked with: the pinned one, or else the file's. */
  readonly certificate: { readonly fingerprint: string; readonly subject: string; readonly pinned: boolean } | null;
  /** The first record that breaks the export; `problem` is a sentence naming its line and entry. */
  readonly firstBroken?: { readonly line: number; readonly seq?: number; readonly problem: string };
}

export interface VerifyOptions {
  /** The appliance's certificate, obtained independently of the file (PEM). */
  readonly certificatePem?: string;
  /** Called as bytes are read, with the total so far (for a progress bar). */
  readonly onProgress?: (bytesRead: number) => void;
}

/** A record longer than this is not one Vellum writes. */
const MAX_RECORD = 16 * 1024 * 1024;
const HEX64 = /^[0-9a-f]{64}$/;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

class Broken extends Error {
  readonly line: number;
  readonly seq: number | undefined;

  constructor(line: number, seq: number | undefined, problem: string) {
    super(`line ${line}${seq === undefined ? '' : `, entry ${seq}`}: ${problem}`);
    this.line = line;
    this.seq = seq;
  }
}

/**
 * Reads the export to its end (or its first broken record).
 * @throws VellumError BAD_REQUEST when the pinned certificate is not a PEM X.509 certificate.
 */
export async function verifyExport(input: AsyncIterable<Buffer | string>, options: VerifyOptions = {}): Promise<ExportReport> {
  const pinned = options.certificatePem === undefined ? null : readCertificate(options.certificatePem);
  if (options.certificatePem !== undefined && pinned === null) throw new VellumError('BAD_REQUEST', 'The pinned certificate is not a PEM X.509 certificate.');
  const checker = new Checker(options.certificatePem ?? null);
  let format: ExportFormat | null = null;
  let lineNo = 0;
  try {
    let csv: CsvRecords | null = null;
    for await (const bytes of physicalLines(input, options.onProgress)) {
      lineNo++;
      if (lineNo === 1) {
        format = bytes.subarray(0, 3).equals(BOM) ? 'csv' : bytes[0] === 0x7b ? 'jsonl' : null;
        if (format === null) throw new Broken(1, undefined, 'this is not a Vellum audit export (neither JSON Lines nor CSV with a byte-order mark)');
        if (format === 'csv') csv = new CsvRecords(checker);
      }
      const text = utf8(lineNo === 1 && format === 'csv' ? bytes.subarray(3) : bytes, lineNo);
      if (csv !== null) csv.line(text, lineNo);
      else checker.jsonLine(text, lineNo);
    }
    if (lineNo === 0) throw new Broken(1, undefined, 'the file is empty');
    csv?.finish(lineNo);
    checker.finish(lineNo);
    return checker.report(format, true);
  } catch (e) {
    if (!(e instanceof Broken)) throw e;
    return { ...checker.report(format, false), firstBroken: { line: e.line, ...(e.seq === undefined ? {} : { seq: e.seq }), problem: e.message } };
  }
}

function readCertificate(pem: string): X509Certificate | null {
  try {
    return new X509Certificate(pem);
  } catch {
    return null;
  }
}

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function utf8(bytes: Buffer, line: number): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new Broken(line, undefined, 'the line is not valid UTF-8');
  }
}

/** The file's lines as bytes, without their `\n`; a last line without one is a line too. */
async function* physicalLines(input: AsyncIterable<Buffer | string>, onProgress?: (bytesRead: number) => void): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let partsLength = 0;
  let read = 0;
  let line = 0;
  for await (const chunk of input) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    read += buffer.length;
    let start = 0;
    for (let nl = buffer.indexOf(0x0a); nl !== -1; nl = buffer.indexOf(0x0a, start)) {
      const piece = buffer.subarray(start, nl);
      line++;
      yield partsLength === 0 ? piece : Buffer.concat([...parts, piece]);
      parts = [];
      partsLength = 0;
      start = nl + 1;
    }
    if (start < buffer.length) {
      parts.push(buffer.subarray(start));
      partsLength += buffer.length - start;
      if (partsLength > MAX_RECORD) throw new Broken(line + 1, undefined, `the line is longer than ${MAX_RECORD} bytes, which no export has`);
    }
    onProgress?.(read);
  }
  if (partsLength > 0) yield Buffer.concat(parts);
}

type Mode = 'complete' | 'subset';

/** The checks, record by record, whichever format the records came in. */
class Checker {
  readonly #pinnedPem: string | null;
  #stage: 'header' | 'checkpoint' | 'entries' | 'done' = 'header';
  #header: ExportHeader | null = null;
  #headerLine = 1;
  #mode: Mode = 'complete';
  #checkpoint: { size: number; time: string; root: string; head: string; logId: string } | null = null;
  #root: Buffer = Buffer.alloc(0);
  #certificate: ExportReport['certificate'] = null;
  #entries = 0;
  #lastSeq = 0;
  #prevHash = GENESIS_HASH;
  readonly #frontier = MerkleFrontier.empty();

  constructor(pinnedPem: string | null) {
    this.#pinnedPem = pinnedPem;
  }

  get mode(): Mode {
    return this.#mode;
  }

  get stage(): string {
    return this.#stage;
  }

  report(format: ExportFormat | null, ok: boolean): ExportReport {
    const cp = this.#checkpoint;
    return {
      ok, format, complete: this.#mode === 'complete' && this.#header !== null, entries: this.#entries,
      checkpoint: cp === null ? null : { size: cp.size, time: cp.time, root: cp.root, logId: cp.logId },
      certificate: this.#certificate,
    };
  }

  /** One JSON Lines record. */
  jsonLine(text: string, line: number): void {
    const record = parseObject(text, line, 'the line is not a JSON object');
    if (record.kind === 'entry') this.entry(jsonEntry(text, record, line), line);
    else this.other(record, line);
  }

  /** A header, checkpoint or end record (parsed). */
  other(record: Record<string, unknown>, line: number): void {
    const kind = record.kind;
    if (this.#stage === 'done') throw new Broken(line, undefined, 'there is a record after the end record');
    if (this.#stage === 'header') {
      if (kind !== EXPORT_KIND) throw new Broken(line, undefined, 'the file does not start with the export header');
      this.header(record, line);
    } else if (this.#stage === 'checkpoint') {
      if (kind !== 'checkpoint') throw new Broken(line, undefined, 'the checkpoint record must follow the header');
      this.checkpoint(record, line);
    } else if (kind === 'end') {
      this.end(record, line);
    } else {
      throw new Broken(line, undefined, `a "${String(kind)}" record is not expected here`);
    }
  }

  header(record: Record<string, unknown>, line: number): void {
    if (record.format !== EXPORT_FORMAT) throw new Broken(line, undefined, `the export format ${String(record.format)} is not one this verifier knows (1)`);
    if (typeof record.logId !== 'string' || typeof record.complete !== 'boolean' || typeof record.certificate !== 'string'
      || typeof record.exportedAt !== 'string' || record.filter === null || typeof record.filter !== 'object') {
      throw new Broken(line, undefined, 'the export header lacks one of logId, complete, exportedAt, filter, certificate');
    }
    this.#header = record as unknown as ExportHeader;
    this.#headerLine = line;
    this.#mode = record.complete ? 'complete' : 'subset';
    this.#stage = 'checkpoint';
  }

  checkpoint(record: Record<string, unknown>, line: number): void {
    const statement = typeof record.statement === 'string' ? record.statement : '';
    const signed = parseCheckpointStatement(statement);
    if (signed === null) throw new Broken(line, undefined, 'the checkpoint statement is not a Vellum checkpoint statement');
    if (checkpointStatement(record as never) !== statement) throw new Broken(line, undefined, 'the checkpoint\'s fields do not match its signed statement');
    if (signed.logId !== this.#header!.logId) throw new Broken(line, undefined, `the checkpoint is of log ${signed.logId}, the header names log ${this.#header!.logId}`);
    const pem = this.#pinnedPem ?? this.#header!.certificate;
    const certificate = readCertificate(pem);
    if (certificate === null) throw new Broken(this.#headerLine, undefined, 'the certificate in the export header cannot be read');
    this.#certificate = { fingerprint: certificate.fingerprint256, subject: certificate.subject, pinned: this.#pinnedPem !== null };
    const signature = typeof record.signature === 'string' ? record.signature : '';
    if (!checkpointSignatureValid({ ...signed, statement, signature }, pem)) {
      throw new Broken(line, undefined, `the checkpoint's signature does not verify with the ${this.#pinnedPem === null ? 'certificate in the file' : 'pinned certificate'}`);
    }
    this.#checkpoint = signed;
    this.#root = Buffer.from(signed.root, 'hex');
    this.#stage = 'entries';
  }

  entry(record: EntryRecord & { body: Record<string, unknown> }, line: number): void {
    const { seq } = record;
    if (this.#stage === 'done') throw new Broken(line, seq, 'there is a record after the end record');
    if (this.#stage !== 'entries') throw new Broken(line, seq, 'an entry comes before the header and checkpoint');
    const size = this.#checkpoint!.size;
    if (seq <= this.#lastSeq) throw new Broken(line, seq, `entries are out of order (entry ${this.#lastSeq} came before it)`);
    if (seq > size) throw new Broken(line, seq, `the signed checkpoint covers entries 1 to ${size} only`);
    if (record.body.seq !== seq) throw new Broken(line, seq, `its content says it is entry ${String(record.body.seq)}`);
    if (chainHash(record.prevHash, record.bodyText) !== record.hash) throw new Broken(line, seq, 'content does not match its hash');
    const leaf = leafHash(record.hash);
    if (this.#mode === 'complete') {
      if (seq !== this.#lastSeq + 1) throw new Broken(line, seq, `entries ${this.#lastSeq + 1} to ${seq - 1} are missing from a complete export`);
      if (record.prevHash !== this.#prevHash) throw new Broken(line, seq, 'it does not link to the previous entry (prevHash differs)');
      if (record.proof !== undefined) throw new Broken(line, seq, 'an entry of a complete export carries a proof');
      this.#frontier.append(leaf);
    } else {
      if (record.proof === undefined) throw new Broken(line, seq, 'an entry of a filtered export has no inclusion proof');
      const proof = record.proof.map((h) => Buffer.from(h, 'hex'));
      if (!rootFromInclusionProof(seq - 1, size, leaf, proof)?.equals(this.#root)) throw new Broken(line, seq, 'its inclusion proof does not lead to the signed root');
    }
    this.#prevHash = record.hash;
    this.#lastSeq = seq;
    this.#entries++;
  }

  end(record: Record<string, unknown>, line: number): void {
    if (record.entries !== this.#entries) throw new Broken(line, undefined, `the end record counts ${String(record.entries)} entries, the file has ${this.#entries}`);
    if (this.#mode === 'complete') {
      const cp = this.#checkpoint!;
      if (this.#lastSeq !== cp.size) throw new Broken(line, this.#lastSeq + 1, `entries ${this.#lastSeq + 1} to ${cp.size} are missing from a complete export`);
      if (this.#prevHash !== cp.head) throw new Broken(line, cp.size, 'the last entry\'s hash is not the signed head');
      if (!this.#frontier.root().equals(this.#root)) throw new Broken(line, undefined, 'the Merkle root over the entries is not the signed root');
    }
    this.#stage = 'done';
  }

  finish(lines: number): void {
    if (this.#stage !== 'done') throw new Broken(lines + 1, undefined, 'the file ends before its end record: it was cut off');
  }
}

function parseObject(text: string, line: number, problem: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Broken(line, undefined, problem);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Broken(line, undefined, problem);
  return value as Record<string, unknown>;
}

function isHexList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((h) => typeof h === 'string' && HEX64.test(h));
}

/** An entry line: its fields, and its body exactly as it stands (the line must have the export's layout). */
function jsonEntry(text: string, record: Record<string, unknown>, line: number): EntryRecord & { body: Record<string, unknown> } {
  const { seq, hash, prevHash, proof } = record;
  const seqOf = Number.isSafeInteger(seq) && (seq as number) > 0 ? (seq as number) : undefined;
  if (seqOf === undefined || typeof hash !== 'string' || !HEX64.test(hash) || typeof prevHash !== 'string' || !HEX64.test(prevHash)
    || (proof !== undefined && !isHexList(proof))) {
    throw new Broken(line, seqOf, 'the entry record lacks a valid seq, hash or prevHash, or its proof is not a list of hashes');
  }
  const prefix = entryLinePrefix({ kind: 'entry', seq: seqOf, hash, prevHash, ...(proof === undefined ? {} : { proof }) });
  if (!text.startsWith(prefix) || !text.endsWith('}')) throw new Broken(line, seqOf, 'the entry record is not laid out as the export format says (its body must come last)');
  const bodyText = text.slice(prefix.length, -1);
  const body = parseObject(bodyText, line, 'the entry\'s body is not a JSON object');
  return { kind: 'entry', seq: seqOf, hash, prevHash, ...(proof === undefined ? {} : { proof }), bodyText, body };
}

/**
 * CSV records from physical lines: a record ends at a line end outside
 * quotes (an even count of `"` so far), must end in CRLF and have every
 * field quoted. Each row must equal its rendering from its `json` cell.
 */
class CsvRecords {
  readonly #checker: Checker;
  #pending: string[] = [];
  #pendingLength = 0;
  #quotes = 0;
  #startLine = 0;
  #rows = 0;

  constructor(checker: Checker) {
    this.#checker = checker;
  }

  line(text: string, lineNo: number): void {
    if (this.#pending.length === 0) this.#startLine = lineNo;
    this.#pending.push(text);
    this.#pendingLength += text.length + 1;
    if (this.#pendingLength > MAX_RECORD) throw new Broken(this.#startLine, undefined, `the row is longer than ${MAX_RECORD} characters, which no export has`);
    for (let i = text.indexOf('"'); i !== -1; i = text.indexOf('"', i + 1)) this.#quotes++;
    if (this.#quotes % 2 !== 0) return;
    const record = this.#pending.join('\n');
    this.#pending = [];
    this.#pendingLength = 0;
    this.#quotes = 0;
    this.#row(record, this.#startLine);
  }

  finish(lines: number): void {
    if (this.#pending.length > 0) throw new Broken(this.#startLine, undefined, 'the file ends inside a quoted field: it was cut off');
    if (this.#rows === 0) throw new Broken(lines, undefined, 'the file has no CSV header row');
  }

  #row(record: string, line: number): void {
    if (!record.endsWith('\r')) throw new Broken(line, undefined, 'the row does not end with CRLF');
    const cells = splitQuoted(record.slice(0, -1), line);
    this.#rows++;
    if (this.#rows === 1) {
      if (cells.join(',') !== CSV_COLUMNS.join(',')) throw new Broken(line, undefined, 'the CSV header row is not the export\'s column names');
      return;
    }
    if (cells.length !== CSV_COLUMNS.length) throw new Broken(line, undefined, `the row has ${cells.length} fields, not ${CSV_COLUMNS.length}`);
    const json = cells[CSV_COLUMNS.length - 1]!;
    if (cells[0] === 'entry') {
      this.#entry(cells, json, line);
      return;
    }
    const parsed = parseObject(json, line, 'the row\'s json cell is not a JSON object');
    if (typeof parsed.kind !== 'string' || parsed.kind !== cells[0]) throw new Broken(line, undefined, 'the row\'s kind does not match its json');
    const expected = otherCsvRow(parsed as unknown as ExportHeader | CheckpointRecord | EndRecord);
    const column = firstDifference(cells, expected);
    if (column !== null) throw new Broken(line, undefined, `the cell "${column}" does not match the row's json`);
    this.#checker.other(parsed, line);
  }

  #entry(cells: readonly string[], json: string, line: number): void {
    const cell = (name: (typeof CSV_COLUMNS)[number]) => cells[CSV_COLUMNS.indexOf(name)]!;
    const seq = /^[1-9][0-9]{0,15}$/.test(cell('seq')) ? Number(cell('seq')) : undefined;
    const hash = cell('hash');
    const prevHash = cell('prev_hash');
    const proofText = cell('proof');
    const proof = proofText === '' ? [] : proofText.split(' ');
    if (seq === undefined || !HEX64.test(hash) || !HEX64.test(prevHash) || !isHexList(proof)) {
      throw new Broken(line, seq, 'the entry row lacks a valid seq, hash or prev_hash, or its proof is not hashes separated by spaces');
    }
    const body = parseObject(json, line, 'the entry\'s json cell is not a JSON object');
    const record: EntryRecord = {
      kind: 'entry', seq, hash, prevHash, bodyText: json,
      // A complete export's rows have an empty proof cell; a subset's always carry one (empty for a log of one entry).
      ...(this.#checker.mode === 'subset' ? { proof } : proofText === '' ? {} : { proof }),
    };
    const column = firstDifference(cells, entryCsvRow(record, body));
    if (column !== null) throw new Broken(line, seq, `the readable cell "${column}" does not match the entry's json`);
    this.#checker.entry({ ...record, body }, line);
  }
}

function firstDifference(cells: readonly string[], expected: readonly string[]): string | null {
  const index = expected.findIndex((value, i) => cells[i] !== value);
  return index === -1 ? null : CSV_COLUMNS[index]!;
}

/** The fields of one row (without its CRLF): each quoted, `""` for a quote, separated by commas. */
function splitQuoted(row: string, line: number): string[] {
  const cells: string[] = [];
  let i = 0;
  for (;;) {
    if (row[i] !== '"') throw new Broken(line, undefined, 'a field is not in double quotes');
    let value = '';
    let from = i + 1;
    for (;;) {
      const quote = row.indexOf('"', from);
      if (quote === -1) throw new Broken(line, undefined, 'a quoted field is not closed');
      value += row.slice(from, quote);
      if (row[quote + 1] === '"') {
        value += '"';
        from = quote + 2;
        continue;
      }
      i = quote + 1;
      break;
    }
    cells.push(value);
    if (i === row.length) return cells;
    if (row[i] !== ',') throw new Broken(line, undefined, 'a quoted field is followed by something other than a comma');
    i++;
  }
}
