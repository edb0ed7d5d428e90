// The vault on its real parts, without the network front ends: a SoftHSM2
// token, LevelDB and blob files in a temporary directory. For tests of vault
// behaviour (history, trash, move, copy, rotation, scrub, orphans) that need
// no LDAP and no HTTP.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openAuditTrail, type AuditEntry, type AuditTrail } from '../../src/audit/index.ts';
import { openDatabase, type Database } from '../../src/db/index.ts';
import { openKeyVault, type KeyVault } from '../../src/keys/index.ts';
import type { Principal } from '../../src/kernel/index.ts';
import { createVault, openBlobStore, type Actor, type BlobStore, type Vault } from '../../src/vault/index.ts';
import { initSoftHsm, type SoftHsmToken } from '../env/index.ts';

export const SAM: Principal = { id: 'uuid-sam', login: 'sam', dn: 'uid=sam,ou=people,dc=vellum,dc=test', displayName: 'Sam Sponsor', groups: [] };
export const ACTOR: Actor = { principal: SAM, origin: { ip: '127.0.0.1', client: 'vault test', protocol: 'cli' }, roles: ['Sponsor'] };

export interface VaultFixture {
  readonly dir: string;
  readonly hsm: SoftHsmToken;
  readonly keys: KeyVault;
  readonly db: Database;
  readonly audit: AuditTrail;
  readonly blobs: BlobStore;
  readonly vault: Vault;
  readonly logs: string[];
  /** Closes the vault's parts and opens them again on the same directory (a restart). */
  reopen(): Promise<VaultFixture>;
  close(): Promise<void>;
}

export async function openVaultFixture(existing?: { dir: string; hsm: SoftHsmToken }): Promise<VaultFixture> {
  const dir = existing?.dir ?? await mkdtemp(join(tmpdir(), 'vellum-vault-'));
  const hsm = existing?.hsm ?? await initSoftHsm({ dir: join(dir, 'hsm') });
  const keys = await openKeyVault(hsm);
  const db = await openDatabase(join(dir, 'db'));
  const audit = await openAuditTrail(db);
  const blobs = await openBlobStore(join(dir, 'data'), keys);
  const logs: string[] = [];
  const vault = createVault({ db, audit, blobs, keys, dataDir: join(dir, 'data'), log: (message) => logs.push(message) });
  let closed = false;
  const shut = async () => {
    if (closed) return;
    closed = true;
    await vault.stopJobs();
    await db.close();
    await keys.close();
  };
  return {
    dir, hsm, keys, db, audit, blobs, vault, logs,
    async reopen() {
      await shut();
      return openVaultFixture({ dir, hsm });
    },
    async close() {
      await shut();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The audit entries recorded after `fromSeq`, for asserting what one step wrote. */
export async function entriesSince(audit: AuditTrail, fromSeq: number): Promise<AuditEntry[]> {
  const found: AuditEntry[] = [];
  for await (const entry of audit.entries(fromSeq + 1)) found.push(entry);
  return found;
}
