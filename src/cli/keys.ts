// `vellum keys status --study ID` and `vellum keys rotate --study ID`: a
// study's key versions, and a key rotation started and followed to its end,
// through the running appliance's REST API (Administrators only).

import { UsageError, type ParsedFlags } from './args.ts';
import { CONNECTION_FLAGS, CONNECTION_HELP, withClient } from './api-client.ts';
import { CommandFailure, type CommandGroup } from './command.ts';
import { elapsed, follow, progressBar } from './progress.ts';
import type { KeyStatus, RotationStatus } from '../server/index.ts';

// GET /api/v1/studies/{study}/keys answers a KeyStatus (docs/api.md).

const STUDY_FLAG = { study: { type: 'string', help: 'The study, e.g. DEMO-001.', placeholder: 'ID' } } as const;

function studyOf(flags: ParsedFlags): string {
  if (typeof flags.study !== 'string' || flags.study === '') throw new UsageError('--study ID is needed.');
  return flags.study;
}

const keysPath = (study: string) => `/studies/${encodeURIComponent(study)}/keys`;

function describeRotation(rotation: RotationStatus): string {
  const counts = `${rotation.blobsDone} of ${rotation.blobsTotal} data keys re-wrapped`;
  const when = rotation.finishedAt ? `${rotation.startedAt} to ${rotation.finishedAt} (${elapsed(rotation.startedAt, rotation.finishedAt)})` : `since ${rotation.startedAt}`;
  return `v${rotation.fromVersion} -> v${rotation.toVersion}, ${rotation.state}: ${counts}, ${when}${rotation.error ? `\n                  error: ${rotation.error}` : ''}`;
}

function describeKeys(status: KeyStatus): string {
  const byVersion = Object.entries(status.blobsByVersion).map(([version, count]) => `v${version}: ${count}`).join(', ') || 'none yet';
  return [
    `Study ${status.study}`,
    `  Key versions:   ${status.versions.map((v) => `v${v}`).join(', ')} (new writes use v${status.current})`,
    `  Data keys:      ${byVersion} (by the key version they are wrapped under)`,
    `  Last rotation:  ${status.rotation ? describeRotation(status.rotation) : 'never'}`,
  ].join('\n');
}

export const keysCommands: CommandGroup = {
  name: 'keys',
  summary: 'Study encryption keys in the HSM: status and rotation (Administrators).',
  subcommands: [
    {
      name: 'status',
      summary: 'Show a study\'s key versions, data keys per version and the last rotation.',
      flags: { ...STUDY_FLAG, ...CONNECTION_FLAGS, json: { type: 'boolean', help: 'Print the API\'s JSON answer instead.' } },
      details: `${CONNECTION_HELP}\n\nExample: VELLUM_PASSWORD=... vellum keys status --study DEMO-001 --config /etc/vellum/vellum.json --user ada`,
      async run(flags) {
        const study = studyOf(flags);
        const status = await withClient(flags, (client) => client.call<KeyStatus>('GET', keysPath(study)));
        console.log(flags.json ? JSON.stringify(status, null, 2) : describeKeys(status));
        return 0;
      },
    },
    {
      name: 'rotate',
      summary: 'Rotate a study\'s key: a new key version now, older data keys re-wrapped in the background.',
      flags: {
        ...STUDY_FLAG,
        ...CONNECTION_FLAGS,
        reason: { type: 'string', help: 'Reason for change, recorded in the audit trail.', placeholder: 'TEXT' },
        'no-wait': { type: 'boolean', help: 'Return once the rotation has started instead of following it.' },
      },
      details: [
        CONNECTION_HELP,
        '',
        'Follows the rotation with a progress bar (on stderr) and prints the study\'s key status at the',
        'end. Exit status: 0 when the rotation is done (or started, with --no-wait), 1 otherwise.',
        '',
        'Example: vellum keys rotate --study DEMO-001 --config /etc/vellum/vellum.json --user ada --reason "Annual rotation"',
      ].join('\n'),
      run: (flags) => withClient(flags, async (client) => {
        const study = studyOf(flags);
        const reason = typeof flags.reason === 'string' ? flags.reason : undefined;
        const started = await client.call<RotationStatus>('POST', `${keysPath(study)}/rotate`, { reason });
        console.log(`Key rotation of study ${study} started: v${started.fromVersion} -> v${started.toVersion}, ${started.blobsTotal} data keys to re-wrap.`);
        if (flags['no-wait']) {
          console.log(`Follow it with: vellum keys status --study ${study}`);
          return 0;
        }
        const final = await follow(
          () => client.call<KeyStatus>('GET', keysPath(study)),
          (status) => {
            const rotation = status.rotation?.toVersion === started.toVersion ? status.rotation : null;
            return {
              running: rotation?.state === 'running',
              done: rotation?.blobsDone ?? started.blobsTotal,
              total: started.blobsTotal,
              detail: `${rotation?.blobsDone ?? started.blobsTotal}/${started.blobsTotal} data keys`,
            };
          },
          progressBar(process.stderr),
        );
        console.log(describeKeys(final));
        const rotation = final.rotation?.toVersion === started.toVersion ? final.rotation : null;
        if (rotation?.state === 'failed') throw new CommandFailure(`The rotation to v${started.toVersion} failed: ${rotation.error ?? 'no detail'}. A new rotation re-wraps what is left.`);
        return 0;
      }),
    },
  ],
};
