// The composition root: builds every part in dependency order, serves one
// HTTPS port (and optionally plain HTTP on loopback), and shuts down in reverse.
// /dav goes to the WebDAV front end, everything else to the web app.

import { mkdir } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { openAuditTrail, type AuditTrail } from '../audit/index.ts';
import type { Config } from '../config/index.ts';
import { createDavHandler, sendDavOptions } from '../dav/index.ts';
import { openDatabase, type Database } from '../db/index.ts';
import { openDirectory, type Directory } from '../directory/index.ts';
import { openKeyVault, type KeyVault } from '../keys/index.ts';
import { VellumError, type ComponentStatus, type Principal } from '../kernel/index.ts';
import { createAuthenticator, openSession, type Session, type SessionParts } from '../session/index.ts';
import { createVault, openBlobStore, type Vault } from '../vault/index.ts';
import { createWebHandler } from '../web/index.ts';
import { loadTlsMaterial } from './tls.ts';

export const PRODUCT = { name: 'Vellum', version: '0.1.0' } as const;
export const DAV_MOUNT = '/dav';

export interface Logger {
  info(message: string): void;
  error(message: string, error?: unknown): void;
}

export interface Appliance {
  readonly httpsUrl: string;
  readonly httpUrl: string | null;
  readonly vault: Vault;
  readonly audit: AuditTrail;
  /** A session for the appliance's own work (start-up seeding, CLI); unrestricted, audited as the system. */
  systemSession(reason: string): Session;
  health(): Promise<Record<string, ComponentStatus>>;
  /** Stops listening, lets requests in flight finish (up to a grace period), closes every part. */
  close(): Promise<void>;
}

export const SYSTEM_PRINCIPAL: Principal = { id: 'system', login: 'vellum', dn: '', displayName: 'Vellum system', groups: [] };

export async function startAppliance(config: Config, log: Logger): Promise<Appliance> {
  const closers: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const close of closers.reverse()) await close().catch((e: unknown) => log.error('shutdown step failed', e));
  };
  try {
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 });

    // Keys first: a wrong PIN or a missing token refuses start before anything listens.
    const keys: KeyVault = await openKeyVault(config.hsm);
    closers.push(() => keys.close());
    const directory: Directory = await openDirectory(config.ldap);
    closers.push(() => directory.close());
    const db: Database = await openDatabase(join(config.dataDir, 'db'));
    closers.push(() => db.close());
    const audit = await openAuditTrail(db);
    const blobs = await openBlobStore(config.dataDir, keys);
    const vault = createVault({
      db, audit, blobs, keys, dataDir: config.dataDir, lockTimeout: config.dav.lockTimeout,
      log: (message, error) => (error === undefined ? log.info(message) : log.error(message, error)),
    });
    closers.push(() => vault.stopJobs());
    // Before anything is served: what a crash left half-written goes (and is audited).
    await vault.collectOrphans();
    const sessionParts: SessionParts = { vault, audit, administratorGroups: config.access.administratorGroups };
    const authenticator = createAuthenticator(directory, audit, config.auth.cacheSeconds);

    const health = async (): Promise<Record<string, ComponentStatus>> => {
      const [hsm, ldap, database] = await Promise.all([keys.status(), directory.status(), db.status()]);
      return { hsm, ldap, database };
    };

    const logSink = (message: string, error?: unknown) => log.error(message, error);
    // Behind a reverse proxy, clients see the mount under the external URL's path.
    const external = config.externalUrl === undefined ? undefined : new URL(config.externalUrl);
    const hrefBase = external === undefined ? DAV_MOUNT : `${external.pathname.replace(/\/+$/, '')}${DAV_MOUNT}`;
    const dav = createDavHandler({
      mount: DAV_MOUNT,
      hrefBase,
      ...(external === undefined ? {} : { proxied: { host: external.host.toLowerCase(), hrefBase } }),
      macMetadata: config.dav.macMetadata,
      realm: config.auth.realm,
      xmlBodyBytes: config.limits.xmlBodyBytes,
      allowInfiniteDepth: config.dav.allowInfiniteDepth,
      uploadBytes: config.limits.uploadBytes,
      authenticator,
      sessionFor: (principal, origin, sessionOptions) => openSession(sessionParts, principal, origin, sessionOptions),
      log: logSink,
    });
    const web = createWebHandler({
      health, product: PRODUCT, davMount: DAV_MOUNT, log: logSink,
      ...(config.externalUrl === undefined ? {} : { externalUrl: config.externalUrl }),
      realm: config.auth.realm,
      authenticator,
      sessionFor: (principal, origin, reason) => openSession(sessionParts, principal, origin, reason === undefined ? {} : { reason }),
    });
    const route = (req: IncomingMessage, res: ServerResponse) => {
      const url = req.url ?? '/';
      if (url === DAV_MOUNT || url.startsWith(`${DAV_MOUNT}/`) || url.startsWith(`${DAV_MOUNT}?`)) dav(req, res);
      // Windows' mini-redirector asks OPTIONS of / (and other paths) before it authenticates; the API answers its own.
      else if (req.method === 'OPTIONS' && !isApiUrl(url)) sendDavOptions(res);
      else web(req, res);
    };

    const tls = await loadTlsMaterial(config.tls, config.dataDir);
    log.info(`TLS certificate: ${tls.origin}`);
    const https = createHttpsServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' }, route);
    const servers: Server[] = [tune(https)];
    const httpsAddress = await listen(https, config.listen.https.host, config.listen.https.port);
    closers.push(() => shutdown(https));
    let httpUrl: string | null = null;
    if (config.listen.http) {
      const http = tune(createHttpServer(route));
      servers.push(http);
      const address = await listen(http, config.listen.http.host, config.listen.http.port);
      if (!isLoopback(address.address)) {
        await shutdown(http);
        throw new VellumError('LISTEN_REFUSED', `Plain HTTP is allowed only on loopback, not on ${address.address}.`);
      }
      closers.push(() => shutdown(http));
      httpUrl = `http://${hostForUrl(address)}:${address.port}`;
    }
    const httpsUrl = `https://${hostForUrl(httpsAddress)}:${httpsAddress.port}`;

    await audit.record({ action: 'system.start', outcome: 'success', protocol: 'system', newValue: { version: PRODUCT.version, https: httpsUrl, http: httpUrl } });
    await vault.resumeRotations();
    const scrubTimer = scheduleScrubs(vault, config.scrub.intervalHours, log);
    closers.push(async () => clearInterval(scrubTimer));
    const lockSweep = sweepExpiredLocks(vault, log);
    closers.push(async () => clearInterval(lockSweep));
    let closed: Promise<void> | null = null;

    return {
      httpsUrl,
      httpUrl,
      vault,
      audit,
      systemSession: (reason) => openSession(sessionParts, SYSTEM_PRINCIPAL, { ip: 'local', client: 'vellum', protocol: 'system' }, { reason, system: true }),
      health,
      close() {
        closed ??= (async () => {
          await Promise.all(servers.map((server) => shutdown(server)));
          await audit.record({ action: 'system.stop', outcome: 'success', protocol: 'system' }).catch((e: unknown) => log.error('could not audit the stop', e));
          await closeAll();
        })();
        return closed;
      },
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/** The configured scrub schedule; a scrub already running (started by hand) is left alone. */
function scheduleScrubs(vault: Vault, intervalHours: number, log: Logger): NodeJS.Timeout | undefined {
  if (intervalHours <= 0) return undefined;
  const timer = setInterval(() => {
    vault.startScrub('schedule', null).then(
      (status) => log.info(`Scheduled scrub started: ${status.blobsTotal} blobs, ${status.bytesTotal} bytes.`),
      (e: unknown) => log.error('The scheduled scrub did not start', e),
    );
  }, intervalHours * 3_600_000);
  timer.unref();
  return timer;
}

const LOCK_SWEEP_MS = 60_000;

/** Expired locks stop counting at once; their records are removed (and audited) now and then, starting now. */
function sweepExpiredLocks(vault: Vault, log: Logger): NodeJS.Timeout {
  const sweep = () => vault.sweepExpiredLocks().catch((e: unknown) => log.error('The sweep of expired locks failed', e));
  void sweep();
  const timer = setInterval(sweep, LOCK_SWEEP_MS);
  timer.unref();
  return timer;
}

function tune(server: Server): Server {
  // Slow clients may not hold a connection open forever without sending headers.
  server.headersTimeout = 20_000;
  // Large uploads take as long as they take; idle sockets are cut.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 5_000;
  server.timeout = 120_000;
  return server;
}

function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => reject(new VellumError('LISTEN_REFUSED', `${host}:${port}: ${e.code ?? e.message}`, { cause: e }));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

const GRACE_MS = 5_000;

function shutdown(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), GRACE_MS);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}

function isApiUrl(url: string): boolean {
  return url === '/api' || url.startsWith('/api/') || url.startsWith('/api?');
}

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address === '::ffff:127.0.0.1';
}

function hostForUrl(address: AddressInfo): string {
  if (address.address === '0.0.0.0' || address.address === '::') return '127.0.0.1';
  return address.family === 'IPv6' ? `[${address.address}]` : address.address;
}

