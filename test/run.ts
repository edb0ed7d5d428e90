// `npm test` runs this after the type check: it installs the Debian packages
// the suite needs (as root; otherwise it says what to install), runs ava with
// TAP output, passes the output through, and ends with the plain summary line
// "N passed, N failed" that CI reads.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { ensurePackages } from './env/packages.ts';

const PACKAGES = ['softhsm2', 'slapd', 'ldap-utils', 'curl', 'openssl', 'apache2', 'litmus', 'rclone', 'cadaver', 'zbar-tools', 'librsvg2-bin', 'chromium'];

await ensurePackages(PACKAGES);

const ava = spawn(process.execPath, ['node_modules/ava/entrypoints/cli.js', '--tap', ...process.argv.slice(2)], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, FORCE_COLOR: '0' },
});

let passed = 0;
let failed = 0;
let skipped = 0;
const lines = createInterface({ input: ava.stdout });
const linesClosed = new Promise((resolve) => lines.once('close', resolve));
lines.on('line', (line) => {
  console.log(line);
  if (/^ok \d+/.test(line)) {
    if (/# (SKIP|TODO)/i.test(line)) skipped++;
    else passed++;
  } else if (/^not ok \d+/.test(line)) {
    if (/# TODO/i.test(line)) skipped++;
    else failed++;
  }
});

const code: number = await new Promise((resolve) => ava.on('close', (status) => resolve(status ?? 1)));
await linesClosed;
// ava exits non-zero for reasons TAP lines don't show (a crashed worker, no tests found).
if (code !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`);
process.exit(code === 0 && failed === 0 ? 0 : 1);
