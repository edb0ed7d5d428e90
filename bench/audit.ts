// The audit trail's own numbers (issue 6): appends per second with 16
// concurrent writers, every batch synced (target >= 20,000/s), and, on a trail
// of 1,000,000 entries: verify() of the store, a complete JSON Lines export and
// its offline verification (`vellum audit verify`), and a filtered export (one
// study of four, a Merkle proof per entry) and its verification (targets
// <= 20 s each, memory flat: the growth of anonymous memory is reported). Real
// LevelDB in a temporary directory; the checkpoint is signed by an RSA-3072
// key in this process (the HSM's signing speed is not what is measured here).
//
//   node bench/audit.ts [--appends N] [--entries N] [--keep]   on its own
//   npm run bench                                              as one section of the whole run

import { generateKeyPairSync, sign as rsaSign } from 'node:crypto';
import { createReadStream, createWriteStream, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { exportTrail, openAuditTrail, verifyExport, type AuditEvent, type AuditTrail, type CheckpointSigner, type ExportFilter } from '../src/audit/index.ts';
import { issueSigningCertificate } from '../src/certs/index.ts';
import { openDatabase } from '../src/db/index.ts';
import { PeakTracker } from './memory.ts';

export interface AuditBenchOptions {
  /** Appends measured with 16 writers. */
  readonly appends: number;
  /** Size of the trail verify() is measured on. */
  readonly entries: number;
  readonly keep?: boolean;
  readonly log?: (line: string) => void;
}

export interface AuditBenchResult {
  readonly appendsPerSecond: number;
  readonly appendSeconds: number;
  readonly verifySeconds: number;
  readonly verifiedEntries: number;
  /** Growth of the process's peak RSS during verify(), in bytes. */
  readonly verifyPeakRssGrowth: number;
  /** Largest growth of anonymous memory (heaps) and of file-backed pages (LevelDB's mapped tables) seen during verify(), in bytes. */
  readonly verifyAnonGrowth: number;
  readonly verifyFileGrowth: number;
  /** Largest JS heap in use seen during verify(), in bytes. */
  readonly verifyHeapUsed: number;
  /** Exports of the big trail and their offline verification. */
  readonly exports: readonly ExportMeasure[];
}

export interface ExportMeasure {
  readonly label: string;
  readonly entries: number;
  readonly bytes: number;
  readonly exportSeconds: number;
  readonly verifySeconds: number;
  /** Largest growth of anonymous memory during the export and during the verification, in bytes. */
  readonly exportAnonGrowth: number;
  readonly verifyAnonGrowth: number;
}

/** This process's resident anonymous and file-backed memory, in bytes (Linux). */
function residentSplit(): { anon: number; file: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kB = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { anon: kB('RssAnon'), file: kB('RssFile') };
}

export const AUDIT_TARGETS = { appendsPerSecond: 20_000, verifySecondsPerMillion: 20 } as const;

const WRITERS = 16;
/** Writers used only to fill the big trail quickly (not measured). */
const FILL_WRITERS = 512;

/** An entry of a realistic size: a file write by a person, with a version as new value. */
function event(n: number): AuditEvent {
  return {
    action: 'file.update', outcome: 'success', protocol: 'webdav', ip: '192.0.2.44', client: 'Microsoft-WebDAV-MiniRedir/10.0.19045',
    actor: { id: '6f1c2a3e-55d4-4a8e-9d0b-1c2d3e4f5a6b', login: 'dana', dn: 'uid=dana,ou=people,dc=example,dc=org', displayName: 'Dana Data-Manager' },
    roles: ['Data Manager'], session: `s-${n % 97}`, reason: 'monthly data transfer',
    object: { study: `TRIAL-04${n % 4}`, path: `/TRIAL-04${n % 4}/raw/site-${n % 13}/visit-${n}.csv`, nodeId: `n-${n}`, versionId: `v-${n}` },
    oldValue: { versionId: `v-${n - 1}`, number: 3, size: 48_213, sha256: 'a1'.repeat(32) },
    newValue: { versionId: `v-${n}`, number: 4, size: 48_977, sha256: 'b2'.repeat(32) },
  };
}

/** `count` appends spread over `writers` writers, each awaiting its own append before the next. */
async function append(trail: AuditTrail, count: number, writers: number): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: writers }, async () => {
    while (next < count) await trail.record(event(next++));
  }));
}

export async function runAuditBench(options: AuditBenchOptions): Promise<AuditBenchResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const dir = await mkdtemp(join(tmpdir(), 'vellum-bench-audit-'));
  try {
    // 1. Appends, 16 writers, synced, on a fresh trail.
    const appendDb = await openDatabase(join(dir, 'appends'));
    const appendTrail = await openAuditTrail(appendDb);
    await append(appendTrail, 2000, WRITERS);
    const t0 = performance.now();
    await append(appendTrail, options.appends, WRITERS);
    const appendSeconds = (performance.now() - t0) / 1000;
    await appendDb.close();
    const appendsPerSecond = options.appends / appendSeconds;
    log(`  audit appends, ${WRITERS} writers, synced: ${appendsPerSecond.toFixed(0)}/s (${options.appends} in ${appendSeconds.toFixed(2)} s)`);

    // 2. A trail of `entries` entries, filled quickly with many writers, then verified.
    const verifyLocation = join(dir, 'verify');
    let db = await openDatabase(verifyLocation);
    let trail = await openAuditTrail(db);
    const f0 = performance.now();
    for (let done = 0; done < options.entries; done += 100_000) {
      await append(trail, Math.min(100_000, options.entries - done), FILL_WRITERS);
      log(`  audit trail filled to ${Math.min(done + 100_000, options.entries)} entries (${((performance.now() - f0) / 1000).toFixed(0)} s)`);
    }
    await db.close();
    db = await openDatabase(verifyLocation);
    trail = await openAuditTrail(db);
    const tracker = new PeakTracker(process.pid).start();
    const before = residentSplit();
    let anonGrowth = 0;
    let fileGrowth = 0;
    let heapUsed = 0;
    const v0 = performance.now();
    let lastLogged = 0;
    const report = await trail.verify({
      onProgress: (checked, total) => {
        const now = residentSplit();
        anonGrowth = Math.max(anonGrowth, now.anon - before.anon);
        fileGrowth = Math.max(fileGrowth, now.file - before.file);
        heapUsed = Math.max(heapUsed, process.memoryUsage().heapUsed);
        if (checked - lastLogged >= 250_000) {
          lastLogged = checked;
          log(`  audit verify: ${checked} of ${total}`);
        }
      },
    });
    const verifySeconds = (performance.now() - v0) / 1000;
    const peak = tracker.stop();
    await db.close();
    if (!report.ok) throw new Error(`verify() of the benchmark trail failed: ${report.firstBroken?.problem}`);
    const growth = Math.max(0, peak.hwmBytes - peak.startRssBytes);
    const mb = (bytes: number) => (bytes / 1e6).toFixed(0);
    log(`  audit verify of ${report.checked} entries: ${verifySeconds.toFixed(2)} s; peak RSS ${mb(peak.hwmBytes)} MB, ${mb(growth)} MB above the start `
      + `(anonymous +${mb(anonGrowth)} MB, file-backed LevelDB tables +${mb(fileGrowth)} MB; JS heap in use at most ${mb(heapUsed)} MB)`);

    // 3. Exports of that trail, cut at one checkpoint, and their offline verification.
    db = await openDatabase(verifyLocation);
    trail = await openAuditTrail(db, { signer: await benchSigner() });
    const checkpoint = await trail.checkpoint();
    const exports: ExportMeasure[] = [];
    for (const [label, filter] of [['complete', {}], ['one study of four, with proofs', { study: 'TRIAL-041' }]] as [string, ExportFilter][]) {
      const file = join(dir, `export-${exports.length}.jsonl`);
      const exported = await measureAnon(() => pipeline(Readable.from(exportTrail(trail, { format: 'jsonl', filter, checkpoint })), createWriteStream(file)));
      const verified = await measureAnon(() => verifyExport(createReadStream(file)));
      if (!verified.value.ok) throw new Error(`the ${label} export did not verify: ${verified.value.firstBroken?.problem}`);
      const measure = {
        label, entries: verified.value.entries, bytes: statSync(file).size,
        exportSeconds: exported.seconds, verifySeconds: verified.seconds, exportAnonGrowth: exported.anonGrowth, verifyAnonGrowth: verified.anonGrowth,
      };
      exports.push(measure);
      log(`  audit export, ${label}: ${measure.entries} entries, ${mb(measure.bytes)} MB in ${measure.exportSeconds.toFixed(2)} s (anonymous +${mb(measure.exportAnonGrowth)} MB); `
        + `verified offline in ${measure.verifySeconds.toFixed(2)} s (anonymous +${mb(measure.verifyAnonGrowth)} MB)`);
      await rm(file, { force: true });
    }
    await trail.close();
    await db.close();
    return {
      appendsPerSecond, appendSeconds, verifySeconds, verifiedEntries: report.checked, verifyPeakRssGrowth: growth,
      verifyAnonGrowth: anonGrowth, verifyFileGrowth: fileGrowth, verifyHeapUsed: heapUsed, exports,
    };
  } finally {
    if (options.keep) log(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
}

/** A checkpoint signer with an RSA-3072 key of this process and a certificate made as the appliance makes its own. */
async function benchSigner(): Promise<CheckpointSigner> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 3072 });
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const sign = async (data: Buffer) => rsaSign('sha256', data, privateKey);
  return { publicKeyPem, sign, issueCertificate: () => issueSigningCertificate({ publicKeyPem, commonName: 'Vellum benchmark signing key', days: 1, sign }) };
}

/** Runs work, sampling the growth of anonymous memory (heaps, buffers) every 100 ms. */
async function measureAnon<T>(work: () => Promise<T>): Promise<{ value: T; seconds: number; anonGrowth: number }> {
  const before = residentSplit().anon;
  let growth = 0;
  const sample = setInterval(() => (growth = Math.max(growth, residentSplit().anon - before)), 100);
  const t0 = performance.now();
  try {
    const value = await work();
    growth = Math.max(growth, residentSplit().anon - before);
    return { value, seconds: (performance.now() - t0) / 1000, anonGrowth: growth };
  } finally {
    clearInterval(sample);
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { appends: { type: 'string', default: '100000' }, entries: { type: 'string', default: '1000000' }, keep: { type: 'boolean', default: false } },
  });
  const result = await runAuditBench({ appends: Number(values.appends), entries: Number(values.entries), keep: values.keep });
  const perMillion = (result.verifySeconds * 1_000_000) / result.verifiedEntries;
  console.log(`appends/s ${result.appendsPerSecond.toFixed(0)} (target >= ${AUDIT_TARGETS.appendsPerSecond}); verify ${perMillion.toFixed(1)} s per million (target <= ${AUDIT_TARGETS.verifySecondsPerMillion})`);
  for (const measure of result.exports) {
    const scale = 1_000_000 / result.verifiedEntries;
    console.log(`export ${measure.label}: ${(measure.exportSeconds * scale).toFixed(1)} s, offline verify ${(measure.verifySeconds * scale).toFixed(1)} s per million entries in the trail (target <= ${AUDIT_TARGETS.verifySecondsPerMillion} each)`);
  }
}
