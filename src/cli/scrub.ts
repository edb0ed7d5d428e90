// `vellum scrub`: re-verify every blob (stored file content) on the running
// appliance (through its REST API; Administrators only), follow it with a
// progress bar and report what is damaged. Exit status 0 when all is intact,
// 3 when damage was found, 1 when the scrub could not run.

import { CONNECTION_FLAGS, CONNECTION_HELP, withClient, type ApiClient } from './api-client.ts';
import { CommandFailure, type Command } from './command.ts';
import { elapsed, follow, formatBytes, progressBar } from './progress.ts';
import type { ScrubStatus } from '../server/index.ts';

// GET /api/v1/scrub answers { scrub: ScrubStatus | null } (docs/api.md).

const EXIT_DAMAGE_FOUND = 3;

async function current(client: ApiClient): Promise<ScrubStatus> {
  const { scrub } = await client.call<{ scrub: ScrubStatus | null }>('GET', '/scrub');
  if (scrub === null) throw new CommandFailure('The appliance no longer knows the scrub (was it restarted?). Run vellum scrub again.');
  return scrub;
}

/** Starts a scrub, or finds the one already running. */
async function startOrAttach(client: ApiClient, reason: string | undefined): Promise<ScrubStatus> {
  try {
    const started = await client.call<ScrubStatus>('POST', '/scrub', { reason });
    console.log(`Scrub started: ${started.blobsTotal} blobs, ${formatBytes(started.bytesTotal)} to verify.`);
    return started;
  } catch (e) {
    if (!(e instanceof CommandFailure && e.code === 'JOB_RUNNING')) throw e;
    const running = await current(client);
    console.log(`A scrub is already running (${running.trigger === 'schedule' ? 'scheduled' : 'requested'}, started ${running.startedAt}); following it.`);
    return running;
  }
}

function report(scrub: ScrubStatus): string {
  const lines = [`Scrub ${scrub.state}: ${scrub.blobsDone} of ${scrub.blobsTotal} blobs, ${formatBytes(scrub.bytesDone)} verified in ${elapsed(scrub.startedAt, scrub.finishedAt)}.`];
  if (scrub.error) lines.push(`Error: ${scrub.error}`);
  if (scrub.damaged.length === 0) {
    if (scrub.state === 'done') lines.push('No damage found.');
    return lines.join('\n');
  }
  lines.push(`DAMAGE FOUND in ${scrub.damaged.length} blob${scrub.damaged.length === 1 ? '' : 's'} (each is an integrity alert in the audit trail):`);
  for (const blob of scrub.damaged) {
    lines.push(`  Blob ${blob.blobId} of study ${blob.study}: ${blob.code}`);
    lines.push(`    ${blob.detail}`);
    if (blob.versions.length === 0) lines.push('    No file version refers to it.');
    for (const version of blob.versions) lines.push(`    ${version.path} v${version.number} (node ${version.nodeId}${version.inTrash ? ', in the trash' : ''})`);
  }
  return lines.join('\n');
}

export const scrubCommand: Command = {
  name: 'scrub',
  summary: 'Re-verify every stored file version and report damage (Administrators).',
  flags: {
    ...CONNECTION_FLAGS,
    reason: { type: 'string', help: 'Reason, recorded in the audit trail.', placeholder: 'TEXT' },
  },
  details: [
    CONNECTION_HELP,
    '',
    'Starts a scrub, or follows the one already running, with a progress bar (on stderr), then',
    'reports every damaged blob (encrypted stored content) with the files and versions it holds.',
    `Exit status: 0 when everything verified, ${EXIT_DAMAGE_FOUND} when damage was found, 1 when the scrub could not run.`,
    '',
    'Example: vellum scrub --config /etc/vellum/vellum.json --user ada',
  ].join('\n'),
  run: (flags) => withClient(flags, async (client) => {
    const started = await startOrAttach(client, typeof flags.reason === 'string' ? flags.reason : undefined);
    const final = await follow(
      () => current(client),
      (scrub) => ({
        running: scrub.startedAt === started.startedAt && scrub.state === 'running',
        done: scrub.bytesDone,
        total: scrub.bytesTotal,
        detail: `${formatBytes(scrub.bytesDone)} of ${formatBytes(scrub.bytesTotal)}, ${scrub.blobsDone}/${scrub.blobsTotal} blobs`,
      }),
      progressBar(process.stderr),
    );
    if (final.startedAt !== started.startedAt) throw new CommandFailure('The scrub ended and another has started since; its report is lost to this run. Run vellum scrub again.');
    console.log(report(final));
    if (final.damaged.length > 0) return EXIT_DAMAGE_FOUND;
    return final.state === 'done' ? 0 : 1;
  }),
};
