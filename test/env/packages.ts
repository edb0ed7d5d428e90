// Installs the Debian packages the environment needs, when they are missing.
// As root it runs apt-get; otherwise it stops with the exact command to run.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A command each package provides, to tell whether it is installed. */
const PROBES: Record<string, string> = {
  softhsm2: 'softhsm2-util',
  slapd: 'slapd',
  'ldap-utils': 'ldapsearch',
  litmus: 'litmus',
  chromium: 'chromium',
  cadaver: 'cadaver',
  rclone: 'rclone',
  curl: 'curl',
  openssl: 'openssl',
  'zbar-tools': 'zbarimg',
  'librsvg2-bin': 'rsvg-convert',
};

const SBIN_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

async function hasCommand(command: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${command}`], { env: { ...process.env, PATH: `${process.env.PATH ?? ''}:${SBIN_PATH}` } });
    return true;
  } catch {
    return false;
  }
}

let updated = false;
let pending: Promise<void> = Promise.resolve();

export async function ensurePackages(packages: readonly string[]): Promise<void> {
  // Serialise: apt-get holds a lock, and concurrent callers may want the same packages.
  const next = pending.then(() => install(packages));
  pending = next.catch(() => undefined);
  return next;
}

async function install(packages: readonly string[]): Promise<void> {
  const missing: string[] = [];
  for (const name of packages) {
    if (!(await hasCommand(PROBES[name] ?? name))) missing.push(name);
  }
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`Missing Debian packages: ${missing.join(', ')}. Install them with: sudo apt-get install -y ${missing.join(' ')}`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const options = { env, maxBuffer: 64 * 1024 * 1024 };
  if (!updated) {
    await run('apt-get', ['update', '-qq', '-o', 'DPkg::Lock::Timeout=600'], options);
    updated = true;
  }
  await run('apt-get', ['install', '-y', '-qq', '-o', 'DPkg::Lock::Timeout=600', '--no-install-recommends', ...missing], options);
}
