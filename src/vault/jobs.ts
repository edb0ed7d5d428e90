// Shapes of the vault's long-running jobs (key rotation, scrub), as reported
// to the API and the CLI while they run and after they end.

export type JobState = 'running' | 'done' | 'failed';

export interface RotationStatus {
  readonly study: string;
  readonly fromVersion: number;
  readonly toVersion: number;
  readonly state: JobState;
  readonly startedAt: string;
  readonly finishedAt?: string;
  /** Blobs of the study still wrapped under an older KEK when the job started. */
  readonly blobsTotal: number;
  readonly blobsDone: number;
  /** Blobs that could not be re-wrapped (shredded, damaged): they stay under their KEK; the first 100 are listed. */
  readonly blobsSkipped?: number;
  readonly skipped?: readonly { readonly blobId: string; readonly code: string; readonly detail: string }[];
  readonly error?: string;
}

export interface KeyStatus {
  readonly study: string;
  /** KEK versions in the HSM, ascending; new writes use the last. */
  readonly versions: readonly number[];
  readonly current: number;
  /** Blobs of the study by the KEK version their data key is wrapped under. */
  readonly blobsByVersion: Readonly<Record<string, number>>;
  /** The latest rotation, running or finished; null when the study was never rotated. */
  readonly rotation: RotationStatus | null;
}

export interface DamagedBlob {
  readonly blobId: string;
  readonly study: string;
  /** Error code: INTEGRITY_FAILURE or CONTENT_SHREDDED. */
  readonly code: string;
  readonly detail: string;
  /** The versions whose content is in this blob. */
  readonly versions: readonly { readonly nodeId: string; readonly number: number; readonly path: string; readonly inTrash: boolean }[];
}

export interface ScrubStatus {
  readonly state: JobState;
  readonly trigger: 'request' | 'schedule';
  readonly startedAt: string;
  readonly finishedAt?: string;
  readonly blobsTotal: number;
  readonly blobsDone: number;
  readonly bytesTotal: number;
  readonly bytesDone: number;
  readonly damaged: readonly DamagedBlob[];
  readonly error?: string;
}
