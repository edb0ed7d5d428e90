// TLS material: the configured PEM files, or a self-signed pair made at first
// start and kept in the data directory (private key readable by owner only).

import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeSelfSigned } from '../certs/index.ts';
import { VellumError } from '../kernel/index.ts';

export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
  /** Where the certificate came from, for the start-up log. */
  readonly origin: string;
}

export async function loadTlsMaterial(
  tls: { certFile?: string | undefined; keyFile?: string | undefined; hostnames: readonly string[] },
  dataDir: string,
): Promise<TlsMaterial> {
  if (tls.certFile !== undefined && tls.keyFile !== undefined) {
    try {
      return { cert: await readFile(tls.certFile, 'utf8'), key: await readFile(tls.keyFile, 'utf8'), origin: tls.certFile };
    } catch (e) {
      throw new VellumError('TLS_SETUP_FAILED', `${(e as NodeJS.ErrnoException).path ?? ''}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
  }
  const dir = join(dataDir, 'tls');
  const certPath = join(dir, 'self-signed.crt');
  const keyPath = join(dir, 'self-signed.key');
  if (existsSync(certPath) && existsSync(keyPath)) {
    return { cert: await readFile(certPath, 'utf8'), key: await readFile(keyPath, 'utf8'), origin: `${certPath} (self-signed)` };
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const pair = makeSelfSigned({ commonName: 'Vellum', hostnames: ['localhost', '127.0.0.1', '::1', ...tls.hostnames], days: 825 });
  // Write-then-rename so a crash never leaves half a key behind.
  await writeFile(`${keyPath}.tmp`, pair.keyPem, { mode: 0o600 });
  await writeFile(`${certPath}.tmp`, pair.certPem, { mode: 0o644 });
  await rename(`${keyPath}.tmp`, keyPath);
  await rename(`${certPath}.tmp`, certPath);
  return { cert: pair.certPem, key: pair.keyPem, origin: `${certPath} (self-signed, made now)` };
}
