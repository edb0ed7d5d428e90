// A SoftHSM2 token in a directory of its own. SoftHSM finds its configuration
// through SOFTHSM2_CONF, so initSoftHsm sets it in this process's environment
// (child processes inherit it).

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensurePackages } from './packages.ts';

const run = promisify(execFile);

export const SOFTHSM_LIBRARY = '/usr/lib/softhsm/libsofthsm2.so';

export interface SoftHsmOptions {
  /** Directory for the token and its softhsm2.conf; kept if it already holds a token. */
  readonly dir: string;
  readonly label?: string;
  readonly pin?: string;
  readonly soPin?: string;
}

export interface SoftHsmToken {
  readonly library: string;
  readonly tokenLabel: string;
  readonly pin: string;
  readonly soPin: string;
  /** Path of the softhsm2.conf; also exported as SOFTHSM2_CONF. */
  readonly conf: string;
}

export async function initSoftHsm(options: SoftHsmOptions): Promise<SoftHsmToken> {
  await ensurePackages(['softhsm2']);
  const tokenLabel = options.label ?? 'vellum';
  const pin = options.pin ?? '1234';
  const soPin = options.soPin ?? '12345678';
  const tokenDir = join(options.dir, 'tokens');
  const conf = join(options.dir, 'softhsm2.conf');
  await mkdir(tokenDir, { recursive: true, mode: 0o700 });
  await writeFile(conf, `directories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  process.env.SOFTHSM2_CONF = conf;
  const env = { ...process.env, SOFTHSM2_CONF: conf };
  const { stdout } = await run('softhsm2-util', ['--show-slots'], { env });
  const hasToken = new RegExp(`Label:\\s+${tokenLabel}\\s*$`, 'm').test(stdout);
  if (!hasToken) {
    await run('softhsm2-util', ['--init-token', '--free', '--label', tokenLabel, '--so-pin', soPin, '--pin', pin], { env });
  }
  if (!existsSync(SOFTHSM_LIBRARY)) throw new Error(`SoftHSM2 is installed but ${SOFTHSM_LIBRARY} is missing.`);
  return { library: SOFTHSM_LIBRARY, tokenLabel, pin, soPin, conf };
}
