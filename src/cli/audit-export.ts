// `vellum audit export`: downloads an audit export through the running
// appliance's REST API (GET /api/v1/audit/export) into a file, as the person
// signed in: Administrators get the whole trail, people who review a study's
// trail (read-audit) that study's entries. The file is written under a
// temporary name and renamed only when complete, so a cut download never
// leaves a file that looks like an export.

import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { UsageError, type ParsedFlags } from './args.ts';
import { CONNECTION_FLAGS, withClient } from './api-client.ts';
import type { Command } from './command.ts';

// --person, not --user: --user is who signs in.
const FILTERS = { study: 'study', from: 'from', to: 'to', person: 'user', action: 'action', outcome: 'outcome' } as const;

function queryOf(flags: ParsedFlags): URLSearchParams {
  const query = new URLSearchParams();
  const format = flags.format ?? 'jsonl';
  if (format !== 'jsonl' && format !== 'csv') throw new UsageError('--format is jsonl or csv.');
  query.set('format', format);
  for (const [flag, parameter] of Object.entries(FILTERS)) {
    const value = flags[flag];
    if (typeof value === 'string' && value !== '') query.set(parameter, value);
  }
  return query;
}

export const auditExportCommand: Command = {
  name: 'export',
  summary: 'Download the audit trail (all of it, or filtered) as JSON Lines or CSV, ready for `vellum audit verify`.',
  flags: {
    output: { type: 'string', help: 'Write the export to this file (required).', placeholder: 'FILE' },
    format: { type: 'string', help: 'jsonl (default) or csv (opens in Excel).', placeholder: 'FORMAT' },
    study: { type: 'string', help: 'Only this study\'s entries.', placeholder: 'ID' },
    from: { type: 'string', help: 'Entries at or after this UTC time, e.g. 2026-01-01 or 2026-01-01T08:00:00Z.', placeholder: 'TIME' },
    to: { type: 'string', help: 'Entries before this UTC time.', placeholder: 'TIME' },
    person: { type: 'string', help: 'Only this person\'s entries (login or directory id).', placeholder: 'LOGIN' },
    action: { type: 'string', help: 'Only this action (file.write), or actions starting with a prefix ending in "." (file.).', placeholder: 'ACTION' },
    outcome: { type: 'string', help: 'success, denied or failed.', placeholder: 'OUTCOME' },
    ...CONNECTION_FLAGS,
  },
  details: [
    'The appliance must be running; the export is made by it, as the person signed in, and is',
    'itself recorded in the audit trail. An export with no filter holds every entry and proves that',
    'none was left out; a filtered one carries a Merkle proof per entry that it belongs to the signed',
    'trail. Check either, anywhere, with `vellum audit verify FILE --cert CERT`',
    '(docs/audit-verification.md).',
    '',
    'Example: vellum audit export --config /etc/vellum/vellum.json --user ada --output trail.jsonl',
    '         vellum audit export --url https://vellum.example.org:8443 --user audrey --study DEMO-001 --format csv --output demo.csv',
  ].join('\n'),
  async run(flags) {
    const output = flags.output;
    if (typeof output !== 'string' || output === '') throw new UsageError('--output FILE is needed.');
    const query = queryOf(flags);
    const partial = join(dirname(output), `.${basename(output)}.part`);
    const tty = process.stderr.isTTY === true;
    const started = Date.now();
    try {
      const headers = await withClient(flags, (client) => client.download(`/audit/export?${query.toString()}`, createWriteStream(partial, { flags: 'w', mode: 0o600 }), (bytes) => {
        if (tty) process.stderr.write(`\r${(bytes / 1048576).toFixed(1)} MiB received\u001b[K`);
      }));
      if (tty) process.stderr.write('\n');
      await rename(partial, output);
      const size = String(headers['x-audit-checkpoint-size'] ?? '?');
      console.log(`Wrote ${output}: the trail up to its signed checkpoint at entry ${size} (${((Date.now() - started) / 1000).toFixed(1)} s).`);
      console.log(`Check it with: vellum audit verify ${output} --cert CERT (the certificate from GET /api/v1/audit/certificate)`);
      return 0;
    } catch (e) {
      await rm(partial, { force: true });
      throw e;
    }
  },
};
