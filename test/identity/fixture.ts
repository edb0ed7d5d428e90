// What the identity unit tests share: a real LevelDB and audit trail in a
// temporary directory, a clock the test moves by hand, and people to sign in.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openAuditTrail, type AuditEntry, type AuditTrail } from '../../src/audit/index.ts';
import { openDatabase, type Database } from '../../src/db/index.ts';
import type { Clock, Principal, RequestOrigin } from '../../src/kernel/index.ts';

export const ADMINS = 'cn=admins,ou=groups,dc=example,dc=org';

export function person(login: string, groups: readonly string[] = []): Principal {
  return { id: `id-${login}`, login, dn: `uid=${login},ou=people,dc=example,dc=org`, displayName: login.toUpperCase(), groups };
}

export const origin = (ip = '192.0.2.10'): RequestOrigin => ({ ip, client: 'test', protocol: 'webdav' });

/** A clock that moves only when told to. */
export class ManualClock implements Clock {
  #ms: number;
  constructor(start = Date.parse('2026-03-01T09:00:00Z')) {
    this.#ms = start;
  }
  now(): Date {
    return new Date(this.#ms);
  }
  advance(seconds: number): void {
    this.#ms += seconds * 1000;
  }
}

export interface Store {
  readonly dir: string;
  db: Database;
  audit: AuditTrail;
  /** Closes and reopens the database (a restart). */
  reopen(): Promise<void>;
  entries(): Promise<AuditEntry[]>;
  close(): Promise<void>;
}

export async function openStore(clock: Clock): Promise<Store> {
  const dir = await mkdtemp(join(tmpdir(), 'vellum-identity-'));
  const store: Store = {
    dir,
    db: await openDatabase(join(dir, 'db')),
    audit: undefined as unknown as AuditTrail,
    async reopen() {
      await store.db.close();
      store.db = await openDatabase(join(dir, 'db'));
      store.audit = await openAuditTrail(store.db, { clock });
    },
    async entries() {
      const all: AuditEntry[] = [];
      for await (const entry of store.audit.entries()) all.push(entry);
      return all;
    },
    async close() {
      await store.db.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  store.audit = await openAuditTrail(store.db, { clock });
  return store;
}
