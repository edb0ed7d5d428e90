// Directory settings pointing at a test slapd, a slapd-plus-Directory fixture,
// a connection-counting relay, and a helper that returns what a promise
// rejected with: shared by the directory tests.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDirectory, type Directory, type DirectorySettings } from '../../src/directory/index.ts';
import { startSlapd, type DirectoryShape, type Slapd } from '../env/slapd.ts';

export function directorySettings(slapd: Slapd, timeoutMs: number): DirectorySettings {
  return {
    url: slapd.url,
    bindDn: slapd.serviceDn,
    bindPassword: slapd.servicePassword,
    userBase: slapd.userBase,
    groupBase: slapd.groupBase,
    loginAttribute: 'uid',
    idAttribute: 'entryUUID',
    displayNameAttribute: 'displayName',
    timeoutMs,
  };
}

/** What `promise` rejected with; throws if it resolved. */
export async function failure(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error('expected the call to fail, and it succeeded');
}

/**
 * A TCP relay in front of a directory that counts connections: how many were
 * ever opened, how many are open now, and a way to cut them all (a network drop).
 */
export interface ConnectionCounter {
  /** ldap://127.0.0.1:PORT of the relay. */
  readonly url: string;
  readonly opened: number;
  readonly open: number;
  dropAll(): void;
  close(): Promise<void>;
}

export async function countConnections(targetPort: number): Promise<ConnectionCounter> {
  const { createServer, connect } = await import('node:net');
  const live = new Set<import('node:net').Socket>();
  let opened = 0;
  const server = createServer((client) => {
    opened++;
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    live.add(client);
    const end = () => {
      live.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `ldap://127.0.0.1:${port}`,
    get opened() { return opened; },
    get open() { return live.size; },
    dropAll() {
      for (const socket of live) socket.destroy();
    },
    async close() {
      for (const socket of live) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Waits until check() holds, polling; throws after limitMs (a bound on the wait, not a timing assertion). */
export async function eventually(check: () => boolean, limitMs = 10_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('the condition did not come true');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A private slapd and a Directory on it, with the notices the Directory logged. */
export interface DirectoryFixture {
  readonly slapd: Slapd;
  readonly settings: DirectorySettings;
  readonly directory: Directory;
  readonly notices: string[];
  close(): Promise<void>;
}

/** Starts slapd (in a fresh temporary directory) and opens a Directory with settings(defaults); close() removes it all. */
export async function startDirectoryFixture(
  name: string, options: { shape?: DirectoryShape; settings?: (defaults: DirectorySettings) => DirectorySettings } = {},
): Promise<DirectoryFixture> {
  const dir = await mkdtemp(join(tmpdir(), `vellum-${name}-`));
  const notices: string[] = [];
  let slapd: Slapd | undefined;
  let directory: Directory | undefined;
  const close = async () => {
    await directory?.close();
    await slapd?.close();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    slapd = await startSlapd({ dir, ...(options.shape ? { shape: options.shape } : {}) });
    const defaults = { ...directorySettings(slapd, 3000), log: (message: string) => notices.push(message) };
    const settings = options.settings ? options.settings(defaults) : defaults;
    directory = await openDirectory(settings);
    return { slapd, settings, directory, notices, close };
  } catch (e) {
    await close();
    throw e;
  }
}
