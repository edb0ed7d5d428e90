// `vellum audit verify FILE [--cert CERT] [--json]`: checks an audit export
// on the inspector's own machine, with no appliance, configuration or HSM,
// and says what it proved or the first record that breaks it.
// `vellum audit verify --db`: checks the appliance's own store (directly when
// the appliance is stopped, through its API while it runs).
// `vellum audit export` (audit-export.ts): downloads an export.

import { existsSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError, type ParsedFlags } from './args.ts';
import { CONNECTION_FLAGS, withClient } from './api-client.ts';
import { auditExportCommand } from './audit-export.ts';
import { CommandFailure, type CommandGroup } from './command.ts';
import { formatBytes, progressBar } from './progress.ts';
import { loadConfigFile } from '../config/index.ts';
import { isVellumError } from '../kernel/index.ts';
import { brokenAt, verifyAuditStore, verifyExport, type ExportReport, type StoreReport } from '../server/index.ts';

/** Below this size a file verifies too fast for a progress bar to help. */
const PROGRESS_FROM_BYTES = 8 * 1024 * 1024;

/** The report for a person: what was proven, by which certificate, or what is broken. */
export function describeReport(report: ExportReport): string {
  if (!report.ok) return `BROKEN: ${report.firstBroken?.problem ?? 'the export did not verify'}`;
  const cp = report.checkpoint!;
  const cert = report.certificate!;
  const proven = report.complete
    ? `complete: all ${report.entries} entries of log ${cp.logId} up to checkpoint ${cp.time}`
    : `subset: ${report.entries} entries proven to belong to the signed log of ${cp.size} entries (log ${cp.logId}, checkpoint ${cp.time}); a subset cannot prove that nothing was left out`;
  return [
    `OK (${report.format === 'csv' ? 'CSV' : 'JSON Lines'}). ${proven}.`,
    `Checkpoint signed by: ${cert.subject.replaceAll('\n', ', ')}`,
    `Certificate SHA-256 fingerprint: ${cert.fingerprint} (${cert.pinned ? 'pinned with --cert' : 'the one inside the file'})`,
  ].join('\n');
}

const UNPINNED_WARNING = 'Warning: no certificate was pinned, so the signature was checked with the certificate inside the file, '
  + 'which whoever made the file could have chosen. Compare the fingerprint above with the appliance\'s '
  + '(GET /api/v1/audit/certificate), or run again with --cert CERT.';

async function readText(path: string, what: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    console.error(`vellum audit verify: cannot read the ${what} ${path}: ${(e as Error).message}`);
    return null;
  }
}

/** The data directory of --db: --data-dir, or the one the configuration names. */
function dataDirOf(flags: ParsedFlags): string {
  if (typeof flags['data-dir'] === 'string') {
    if (typeof flags.config === 'string') throw new UsageError('Give --data-dir or --config, not both.');
    return flags['data-dir'];
  }
  if (typeof flags.config === 'string') return loadConfigFile(flags.config).dataDir;
  throw new UsageError('--db needs the appliance\'s --config FILE (or its --data-dir DIR).');
}

export function describeStoreReport(report: StoreReport): string {
  if (!report.ok) return `BROKEN: ${brokenAt(report) ?? 'the trail did not verify'}`;
  return `OK: ${report.checked} entries and ${report.checkpoints} signed checkpoints verified (hashes, chain, Merkle tree, signatures).`;
}

/** verify --db: the store itself, opened directly; while the appliance holds it, through the appliance. */
async function verifyStore(flags: ParsedFlags): Promise<number> {
  const dataDir = dataDirOf(flags);
  const location = join(dataDir, 'db');
  if (!existsSync(join(location, 'CURRENT'))) throw new CommandFailure(`There is no Vellum database in ${dataDir}.`);
  const bar = progressBar(process.stderr);
  const tty = process.stderr.isTTY === true;
  let report: StoreReport;
  try {
    report = await verifyAuditStore(location, tty ? (checked, total) => bar.update(checked, total, `${checked} of ${total} entries`) : undefined);
  } catch (e) {
    if (!isVellumError(e, 'STORE_UNAVAILABLE') || !/lock/i.test(e.message)) throw e;
    if (typeof flags.user !== 'string') {
      throw new CommandFailure(`The running appliance holds the database in ${dataDir}. Give --user LOGIN (with --config or --url) to have it verify the trail (POST /api/v1/audit/verification), or stop it first.`);
    }
    report = await withClient(flags, (client) => client.call<StoreReport>('POST', '/audit/verification'));
  } finally {
    if (tty) bar.end();
  }
  console.log(flags.json ? JSON.stringify(report, null, 2) : describeStoreReport(report));
  return report.ok ? 0 : 1;
}

export const auditCommands: CommandGroup = {
  name: 'audit',
  summary: 'The audit trail: export it, verify an export offline, verify the store.',
  subcommands: [
    auditExportCommand,
    {
      name: 'verify',
      summary: 'Verify an audit export (JSON Lines or CSV) offline: hashes, chain, proofs, signed checkpoint. Or, with --db, the store.',
      operands: ['[FILE]'],
      flags: {
        cert: { type: 'string', help: 'The appliance\'s audit signing certificate (PEM), obtained apart from the file.', placeholder: 'CERT' },
        json: { type: 'boolean', help: 'Print the report as JSON.' },
        db: { type: 'boolean', help: 'Verify the appliance\'s own store instead of a file (every entry, the tree, every checkpoint).' },
        'data-dir': { type: 'string', help: 'With --db: the appliance\'s data directory (or give --config).', placeholder: 'DIR' },
        ...CONNECTION_FLAGS,
      },
      details: [
        'A FILE needs no appliance, configuration or HSM. Without --cert the signature is checked with',
        'the certificate inside the file: compare its fingerprint with the appliance\'s.',
        '',
        'With --db the store in the data directory is checked: directly when the appliance is stopped,',
        'or, while it runs (it holds the database), by the appliance itself through its API, signed in',
        'as --user (Administrators and people who review a study\'s trail).',
        '',
        'Exit status: 0 it verifies, 1 it is broken (the first broken record is named),',
        '2 usage error or a file that cannot be read.',
        '',
        'Example: vellum audit verify audit-DEMO-001.jsonl --cert vellum-audit.pem',
        '         vellum audit verify --db --config /etc/vellum/vellum.json',
      ].join('\n'),
      async run(flags, [file]) {
        if (flags.db) {
          if (file !== undefined) throw new UsageError('Give a FILE or --db, not both.');
          return verifyStore(flags);
        }
        if (file === undefined) throw new UsageError('FILE (an export) or --db is needed.');
        if (flags.cert !== undefined && typeof flags.cert !== 'string') throw new UsageError('--cert needs a file.');
        const certificatePem = flags.cert === undefined ? undefined : await readText(flags.cert, 'certificate');
        if (certificatePem === null) return 2;
        let handle;
        try {
          handle = await open(file!, 'r');
          if (!(await handle.stat()).isFile()) throw new Error('not a regular file');
        } catch (e) {
          await handle?.close();
          console.error(`vellum audit verify: cannot read the export ${file}: ${(e as Error).message}`);
          return 2;
        }
        const size = (await handle.stat()).size;
        const showProgress = process.stderr.isTTY === true && size >= PROGRESS_FROM_BYTES;
        const bar = progressBar(process.stderr);
        let lastPercent = -1;
        let report: ExportReport;
        try {
          report = await verifyExport(handle.createReadStream(), {
            ...(certificatePem === undefined ? {} : { certificatePem }),
            ...(showProgress ? {
              onProgress: (read: number) => {
                const percent = Math.floor((read / size) * 100);
                if (percent === lastPercent) return;
                lastPercent = percent;
                bar.update(read, size, `${formatBytes(read)} of ${formatBytes(size)}`);
              },
            } : {}),
          });
        } catch (e) {
          if (isVellumError(e, 'BAD_REQUEST')) {
            console.error(`vellum audit verify: ${flags.cert}: ${e.message}`);
            return 2;
          }
          if (!(e instanceof Error && 'code' in e)) throw e;
          console.error(`vellum audit verify: cannot read the export ${file}: ${e.message}`);
          return 2;
        } finally {
          if (showProgress) bar.end();
          await handle.close();
        }
        console.log(flags.json ? JSON.stringify(report, null, 2) : describeReport(report));
        if (report.ok && !report.certificate?.pinned) console.error(UNPINNED_WARNING);
        return report.ok ? 0 : 1;
      },
    },
  ],
};
