// A real audit trail to export: LevelDB on disk, entries recorded through
// openAuditTrail, a checkpoint signed with an RSA-3072 key (node:crypto, as the
// HSM would: RSASSA-PKCS1-v1_5 / SHA-256) and a certificate for that key made
// by the real `openssl req -x509`. Subtree hashes are computed here from the
// trail's entries until the trail offers them.

import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { openAuditTrail, signCheckpoint, type AuditEntry, type AuditEvent, type SignedCheckpoint } from '../../src/audit/index.ts';
import { exportTrail, type AuditExportSource, type ExportOptions } from '../../src/audit/export.ts';
import { leafHash, MerkleFrontier, nodeHash, rangeHash } from '../../src/audit/merkle.ts';
import { openDatabase, type Database } from '../../src/db/index.ts';
import type { Clock } from '../../src/kernel/index.ts';

const run = promisify(execFile);

export const STUDY_A = 'STUDY-A';
export const STUDY_B = 'STUDY-B';

const people = {
  sam: { id: '3f1c0a52-0001-4e6a-9d1e-aaaaaaaaaaaa', login: 'sam', dn: 'uid=sam,ou=people,dc=example,dc=org', displayName: 'Sam Sponsor' },
  audrey: { id: '3f1c0a52-0002-4e6a-9d1e-bbbbbbbbbbbb', login: 'audrey', dn: 'uid=audrey,ou=people,dc=example,dc=org', displayName: 'Audrey Åkesson-Ng' },
};

/** A value with quotes, commas, both line ends and non-ASCII text, which must survive CSV as it is. */
export const AWKWARD_REASON = 'Correction, per "query 7";\nsecond line\r\nthird: Zürich 東京 🙂';
/** Values a spreadsheet would run as formulas. */
export const FORMULA_REASONS = ['=HYPERLINK("http://evil.example","x")', '+1+1', '-2', '@SUM(A1)', '\tindented'];

/** 40 events: two studies and none, two people and nobody, several actions and outcomes. */
export function events(): AuditEvent[] {
  const out: AuditEvent[] = [];
  for (let n = 1; n <= 40; n++) {
    const study = n % 5 === 0 ? undefined : n % 2 === 0 ? STUDY_A : STUDY_B;
    const actor = n % 7 === 0 ? null : n % 3 === 0 ? people.audrey : people.sam;
    const action = n % 5 === 0 ? 'auth.login' : n % 4 === 0 ? 'file.read' : n % 6 === 0 ? 'access.denied' : 'file.write';
    out.push({
      action, outcome: action === 'access.denied' ? 'denied' : n % 11 === 0 ? 'failed' : 'success', actor,
      roles: actor ? ['Sponsor', 'Auditor'] : [], ip: '192.0.2.7', client: 'Microsoft-WebDAV-MiniRedir/10.0', protocol: 'webdav',
      object: study ? { study, path: `/${study}/file-${n}.pdf`, nodeId: `n-${n}`, versionId: `v-${n}` } : { path: `login:${actor?.login ?? 'nobody'}` },
      oldValue: n === 3 ? 'old "quoted", text' : null,
      newValue: { size: n, sha256: 'ab'.repeat(32), note: n === 4 ? { entry: 'a key named entry inside a body' } : null },
      reason: n === 2 ? AWKWARD_REASON : n >= 12 && n < 12 + FORMULA_REASONS.length ? FORMULA_REASONS[n - 12] : `reason ${n}`,
      detail: action === 'access.denied' ? 'FORBIDDEN: no role' : undefined,
      session: `s-${n % 3}`,
    });
  }
  return out;
}

/** One millisecond per entry from 2025-01-02T03:04:05.000Z. */
export function tickingClock(): Clock {
  let ms = Date.UTC(2025, 0, 2, 3, 4, 5, 0);
  return { now: () => new Date(ms++) };
}

export interface Signing {
  readonly key: KeyObject;
  readonly certificatePem: string;
  readonly certificateFile: string;
}

/** An RSA-3072 key and its self-signed certificate from `openssl req -x509`. */
export async function makeSigning(dir: string, name: string): Promise<Signing> {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 3072 });
  const keyFile = join(dir, `${name}.key.pem`);
  const certificateFile = join(dir, `${name}.cert.pem`);
  await writeFile(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await run('openssl', ['req', '-x509', '-new', '-key', keyFile, '-sha256', '-days', '2', '-subj', `/O=Vellum/CN=${name} audit signing`, '-out', certificateFile]);
  return { key: privateKey, certificatePem: await readFile(certificateFile, 'utf8'), certificateFile };
}

export async function signWith(key: KeyObject, fields: Omit<SignedCheckpoint, 'statement' | 'signature'>): Promise<SignedCheckpoint> {
  return signCheckpoint(fields, {
    publicKeyPem: '',
    sign: async (data) => sign('sha256', data, key),
    issueCertificate: async () => { throw new Error('not used'); },
  });
}

/** The perfect subtree hashes of `entries`, computed from their hashes. */
export function subtreeHashesOf(entries: readonly AuditEntry[]): (level: number, index: number) => Promise<Buffer> {
  const perfect = (level: number, index: number): Buffer => (level === 0
    ? leafHash(entries[index]!.hash)
    : nodeHash(perfect(level - 1, 2 * index), perfect(level - 1, 2 * index + 1)));
  return async (level, index) => {
    if ((index + 1) * 2 ** level > entries.length) throw new Error(`subtree ${level}/${index} is beyond the trail`);
    return rangeHash(index * 2 ** level, (index + 1) * 2 ** level, async (l, i) => perfect(l, i));
  };
}

export interface Fixture {
  readonly dir: string;
  readonly db: Database;
  readonly entries: AuditEntry[];
  readonly signing: Signing;
  /** A key and certificate that are not the appliance's. */
  readonly other: Signing;
  readonly logId: string;
  readonly checkpoint: SignedCheckpoint;
  readonly source: AuditExportSource;
  close(): Promise<void>;
}

export async function openFixture(): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'vellum-export-'));
  const db = await openDatabase(join(dir, 'db'));
  const trail = await openAuditTrail(db, { clock: tickingClock() });
  const entries: AuditEntry[] = [];
  for (const event of events()) entries.push(await trail.record(event));
  const [signing, other] = await Promise.all([makeSigning(dir, 'appliance'), makeSigning(dir, 'intruder')]);
  const logId = randomBytes(16).toString('hex');
  const frontier = MerkleFrontier.empty();
  for (const entry of entries) frontier.append(leafHash(entry.hash));
  const checkpoint = await signWith(signing.key, {
    logId, size: entries.length, time: '2025-01-02T03:05:00.000Z', root: frontier.root().toString('hex'), head: entries.at(-1)!.hash,
  });
  const source: AuditExportSource = {
    logId,
    entries: (fromSeq) => trail.entries(fromSeq),
    subtreeHash: subtreeHashesOf(entries),
    checkpoint: async () => checkpoint,
    certificatePem: () => signing.certificatePem,
  };
  return {
    dir, db, entries, signing, other, logId, checkpoint, source,
    async close() {
      await db.close().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export const EXPORTED_AT = '2025-02-03T04:05:06.000Z';

/** The whole export as one buffer. */
export async function exportBytes(source: AuditExportSource, options: ExportOptions): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of exportTrail(source, { clock: { now: () => new Date(EXPORTED_AT) }, ...options })) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** A readable that hands the bytes over in small pieces, so records straddle chunks. */
export function trickle(bytes: Buffer, size = 97): Readable {
  const pieces: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) pieces.push(bytes.subarray(i, i + size));
  return Readable.from(pieces);
}

/** An RFC 4180 reader written independently of the exporter: every field, quoted or not; CRLF or LF records. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 2;
        continue;
      }
      if (c === '"') quoted = false;
      else field += c;
      i++;
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else field += c;
    i++;
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}
