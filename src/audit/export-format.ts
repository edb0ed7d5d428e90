// The audit export format, version 1 (docs/audit-export-format.md): the
// records both the exporter writes and the verifier reads back, the CSV
// columns and the readable rendering of an entry body. One place, so that
// what is written and what is checked cannot drift apart.

import type { SignedCheckpoint } from './checkpoint.ts';
import { canonicalJson } from './entry.ts';

export const EXPORT_KIND = 'vellum-audit-export';
export const EXPORT_FORMAT = 1;

export type ExportFormat = 'jsonl' | 'csv';

/** The filter an export applied, as its header echoes it. */
export interface ExportFilterEcho {
  readonly study?: string;
  readonly from?: string;
  readonly to?: string;
  readonly user?: string;
  readonly action?: string;
  readonly outcome?: string;
  /** The studies an Auditor is limited to, sorted. */
  readonly studies?: readonly string[];
}

export interface ExportHeader {
  readonly kind: typeof EXPORT_KIND;
  readonly format: typeof EXPORT_FORMAT;
  readonly exportedAt: string;
  readonly logId: string;
  readonly complete: boolean;
  readonly filter: ExportFilterEcho;
  readonly certificate: string;
}

/** The signed checkpoint the export is cut at, as a record. */
export type CheckpointRecord = { readonly kind: 'checkpoint' } & SignedCheckpoint;

export interface EndRecord {
  readonly kind: 'end';
  readonly entries: number;
}

/** An entry record as it stands in the file: the body is kept as its exact text (what the hash covers). */
export interface EntryRecord {
  readonly kind: 'entry';
  readonly seq: number;
  readonly hash: string;
  readonly prevHash: string;
  readonly proof?: readonly string[];
  readonly bodyText: string;
}

/** One JSON Lines line (no line end). The entry's body goes last, byte for byte. */
export function entryLine(record: EntryRecord): string {
  return `${entryLinePrefix(record)}${record.bodyText}}`;
}

/** Everything of an entry line before its body: the verifier requires exactly this layout. */
export function entryLinePrefix(record: Omit<EntryRecord, 'bodyText'>): string {
  const proof = record.proof === undefined ? '' : `"proof":${JSON.stringify(record.proof)},`;
  return `{"kind":"entry","seq":${record.seq},"hash":"${record.hash}","prevHash":"${record.prevHash}",${proof}"entry":`;
}

export const CSV_COLUMNS = [
  'kind', 'seq', 'time', 'user_id', 'user_login', 'user_name', 'user_dn', 'roles', 'action', 'outcome', 'study', 'path',
  'node_id', 'version_id', 'old_value', 'new_value', 'reason', 'ip', 'client', 'protocol', 'session', 'detail', 'hash',
  'prev_hash', 'proof', 'json',
] as const;

export const CSV_BOM = '\uFEFF';

/** A readable cell: strings as they are, null or absent as empty, anything else as canonical JSON. */
function text(value: unknown): string {
  if (value === null || value === undefined) return '';
  return typeof value === 'string' ? value : canonicalJson(value);
}

/** A cell a spreadsheet would run as a formula gets a leading apostrophe, so it shows as text. */
export function formulaSafe(cell: string): string {
  return /^[=+\-@\t\r]/.test(cell) ? `'${cell}` : cell;
}

function member(value: unknown, key: string): unknown {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>)[key] : undefined;
}

/**
 * The CSV row of an entry: the readable cells rendered from the body, the
 * hashes and proof as in JSON Lines, and the body's exact text. `body` is the
 * parsed body (the verifier renders again from what it parsed and compares).
 */
export function entryCsvRow(record: EntryRecord, body: unknown): string[] {
  const actor = member(body, 'actor');
  const object = member(body, 'object');
  const roles = member(body, 'roles');
  const readable = [
    'entry', text(member(body, 'seq')), text(member(body, 'time')),
    text(member(actor, 'id')), text(member(actor, 'login')), text(member(actor, 'displayName')), text(member(actor, 'dn')),
    Array.isArray(roles) ? roles.map(text).join('; ') : text(roles),
    text(member(body, 'action')), text(member(body, 'outcome')),
    text(member(object, 'study')), text(member(object, 'path')), text(member(object, 'nodeId')), text(member(object, 'versionId')),
    text(member(body, 'oldValue')), text(member(body, 'newValue')), text(member(body, 'reason')),
    text(member(body, 'ip')), text(member(body, 'client')), text(member(body, 'protocol')), text(member(body, 'session')),
    text(member(body, 'detail')), record.hash, record.prevHash, (record.proof ?? []).join(' '),
  ];
  return [...readable.map(formulaSafe), record.bodyText];
}

/** The CSV row of a header, checkpoint or end record: its JSON in `json`, and seq, time, hash where they apply. */
export function otherCsvRow(record: ExportHeader | CheckpointRecord | EndRecord): string[] {
  const cells: string[] = CSV_COLUMNS.map(() => '');
  const set = (column: (typeof CSV_COLUMNS)[number], value: string) => {
    cells[CSV_COLUMNS.indexOf(column)] = formulaSafe(value);
  };
  set('kind', record.kind);
  if (record.kind === EXPORT_KIND) set('time', record.exportedAt);
  if (record.kind === 'checkpoint') {
    set('seq', String(record.size));
    set('time', record.time);
    set('hash', record.head);
  }
  cells[CSV_COLUMNS.length - 1] = JSON.stringify(record);
  return cells;
}

/** One CSV row with its CRLF: every field quoted, quotes doubled (RFC 4180). */
export function csvRow(cells: readonly string[]): string {
  return `${cells.map((cell) => `"${cell.replaceAll('"', '""')}"`).join(',')}\r\n`;
}
