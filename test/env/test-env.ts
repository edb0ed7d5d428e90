// The whole test environment in one call: a seeded slapd and a SoftHSM2 token
// in one directory. Tests use a fresh temporary directory that close() removes;
// the demo passes its own directory and keep: true, so its directory and token
// survive between runs.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PEOPLE } from './people.ts';
import { startSlapd, type Slapd } from './slapd.ts';
import { initSoftHsm, type SoftHsmToken } from './softhsm.ts';

export interface TestEnvOptions {
  /** Working directory (ldap/ and hsm/ inside). Default: a fresh directory under os.tmpdir(). */
  readonly dir?: string;
  /** Keep the directory on close(). Default: false (it is removed). */
  readonly keep?: boolean;
  /** Loopback port for slapd. Default: a free one. */
  readonly ldapPort?: number;
  /** Also start ldaps:// (see SlapdOptions.tls). */
  readonly ldapTls?: boolean;
  /** Receives slapd's output, line by line. */
  readonly log?: (line: string) => void;
}

export interface TestEnv {
  readonly dir: string;
  readonly ldap: Slapd;
  readonly hsm: SoftHsmToken;
  readonly people: typeof PEOPLE;
  /** Stops slapd; removes dir unless keep. Idempotent. */
  close(): Promise<void>;
}

export async function startTestEnv(options: TestEnvOptions = {}): Promise<TestEnv> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'vellum-env-')));
  const keep = options.keep ?? false;
  let ldap: Slapd | undefined;
  let closing: Promise<void> | undefined;

  const close = (): Promise<void> => {
    closing ??= (async () => {
      try {
        await ldap?.close();
      } finally {
        if (!keep) await rm(dir, { recursive: true, force: true });
      }
    })();
    return closing;
  };

  try {
    ldap = await startSlapd({
      dir: join(dir, 'ldap'),
      ...(options.ldapPort === undefined ? {} : { port: options.ldapPort }),
      ...(options.ldapTls ? { tls: true } : {}),
      ...(options.log ? { log: options.log } : {}),
    });
    const hsm = await initSoftHsm({ dir: join(dir, 'hsm') });
    return { dir, ldap, hsm, people: PEOPLE, close };
  } catch (e) {
    await close().catch(() => undefined);
    throw e;
  }
}
