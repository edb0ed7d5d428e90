// The composition root: builds every part in dependency order, serves one
// HTTPS port (and optionally plain HTTP on loopback), and shuts down in reverse.
// /dav goes to the WebDAV front end, everything else to the web app.

import { mkdir } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { isAdministrator } from '../access/index.ts';
import { openAuditTrail, type AuditTrail } from '../audit/index.ts';
import type { Config } from '../config/index.ts';
import { createDavHandler, sendDavOptions } from '../dav/index.ts';
import { openDatabase, type Database } from '../db/index.ts';
import { openDirectory, type Directory } from '../directory/index.ts';
import { openKeyVault, systemSecretKeys, type KeyVault, type SigningKeys, type SystemKeys } from '../keys/index.ts';
import { VellumError, type ComponentStatus, type Principal } from '../kernel/index.ts';
import { createAlerts, createAppPasswords, createAuthenticator, createCredentialCache, createSecondFactors, createWebSessions, openLockout } from '../identity/index.ts';
import { openAuditReview, openGroupAdmin, openSession, type AuditReviewParts, type GroupAdminParts, type Session, type SessionParts } from '../session/index.ts';
import { createVault, openBlobStore, type Vault } from '../vault/index.ts';
import { createWebHandler } from '../web/index.ts';
import { auditSigner, verifyTrailAtStart } from './audit-integrity.ts';
import { recordConfiguration } from './config-record.ts';
import { loadTlsMaterial } from './tls.ts';

export const PRODUCT = { name: 'Vellum', version: '0.1.0' } as const;
export const DAV_MOUNT = '/dav';

export interface Logger {
  info(message: string): void;
  /** Something someone should look at (alerts); loggers without it write these as errors. */
  warn?(message: string): void;
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
    const keys: KeyVault & SystemKeys & SigningKeys = await openKeyVault(config.hsm);
    closers.push(() => keys.close());
    const directory: Directory = await openDirectory({ ...config.ldap, log: (message) => log.info(message) });
    closers.push(() => directory.close());
    const db: Database = await openDatabase(join(config.dataDir, 'db'));
    closers.push(() => db.close());
    // Checkpoints are signed in the HSM by the audit key; its certificate is issued through it at first start.
    const signing = await keys.ensureSigningKey('audit');
    const audit = await openAuditTrail(db, {
      signer: auditSigner(keys, signing.publicKeyPem),
      checkpoints: config.audit.checkpoints,
      onCheckpointFailure: (e) => log.error('an audit checkpoint could not be signed; it is tried again at the next one', e),
    });
    closers.push(() => audit.close());
    if (signing.created) {
      await audit.record({ action: 'key.create', outcome: 'success', protocol: 'system', newValue: { purpose: 'audit-signing', label: signing.label, algorithm: 'RSA-3072', mechanism: 'SHA256_RSA_PKCS' } });
    }
    // 11.10(k): a configuration different from the last start's is audited before anything is served.
    await recordConfiguration(db, audit, config);
    const blobs = await openBlobStore(config.dataDir, keys);
    const vault = createVault({
      db, audit, blobs, keys, dataDir: config.dataDir, lockTimeout: config.dav.lockTimeout,
      log: (message, error) => (error === undefined ? log.info(message) : log.error(message, error)),
    });
    closers.push(() => vault.stopJobs());
    // Before anything is served: what a crash left half-written goes (and is audited).
    await vault.collectOrphans();
    const sessionParts: SessionParts = { vault, audit, administratorGroups: config.access.administratorGroups };
    const administratorGroups = config.access.administratorGroups;
    const credentialCache = createCredentialCache({ seconds: config.auth.cacheSeconds });
    const alerts = createAlerts({
      webhookUrl: config.alerts.webhookUrl, timeoutMs: config.alerts.timeoutMs, audit,
      warn: (message) => (log.warn ? log.warn(message) : log.error(message)),
    });
    closers.push(() => alerts.settled());
    const lockout = await openLockout({ db, audit, settings: config.auth.lockout, administratorGroups });
    const appPasswords = createAppPasswords({ db, audit, administratorGroups, onRevoked: (id) => credentialCache.forget({ appPasswordId: id }) });
    // TOTP secrets are sealed under data keys wrapped by a system KEK in the HSM.
    const secondFactors = createSecondFactors(db, audit, systemSecretKeys(keys, 'identity'), { issuer: config.auth.mfa.issuer });
    const authenticator = createAuthenticator({
      directory, audit, alerts, lockout, appPasswords,
      cache: credentialCache,
      directoryPassword: config.auth.appPasswords.directoryPassword,
      mfa: { requiredFor: config.auth.mfa.requiredFor, administratorGroups },
      enrolled: (personId) => secondFactors.isEnrolled(personId),
    });
    const webSessions = createWebSessions({ db, audit, authenticator, directory, secondFactors }, {
      ...config.auth.webSessions, cacheSeconds: config.auth.cacheSeconds,
      mfa: { requiredFor: config.auth.mfa.requiredFor, administratorGroups },
    });
    // A person whose groups Vellum changed loses cached sign-ins at once.
    const groupParts: GroupAdminParts = {
      directory, audit, administratorGroups,
      afterMembershipChange: (dn) => authenticator.forget({ dn }),
    };

    const raiseIntegrityAlert = (problem: string) => alerts.raise({ event: 'audit.integrity', problem });
    const auditReviewParts: AuditReviewParts = { audit, vault, administratorGroups, onIntegrityFailure: raiseIntegrityAlert };
    // The whole trail is checked at every start, beside the serving; a break raises the alert.
    const integrity = verifyTrailAtStart({ audit, onIntegrityFailure: raiseIntegrityAlert, log });
    closers.push(() => integrity.settled());

    const health = async (): Promise<Record<string, ComponentStatus>> => {
      const [hsm, ldap, database] = await Promise.all([keys.status(), directory.status(), db.status()]);
      return { hsm, ldap, database, audit: integrity.status() };
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
      auditPropfind: config.audit.propfind,
      authenticator,
      sessionFor: (principal, origin, sessionOptions) => openSession(sessionParts, principal, origin, sessionOptions),
      log: logSink,
    });
    const web = createWebHandler({
      health, product: PRODUCT, davMount: DAV_MOUNT, log: logSink,
      ...(config.externalUrl === undefined ? {} : { externalUrl: config.externalUrl }),
      realm: config.auth.realm,
      authenticator,
      appPasswords,
      lockout,
      webSessions,
      sessionFor: (principal, origin, reason) => openSession(sessionParts, principal, origin, reason === undefined ? {} : { reason }),
      groupAdminFor: (principal, origin) => openGroupAdmin(groupParts, principal, origin),
      auditReviewFor: (principal, origin) => openAuditReview(auditReviewParts, principal, origin),
      isAdministrator: (principal) => isAdministrator(principal, administratorGroups),
      idleMinutes: config.auth.webSessions.idleMinutes,
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
    const https = createHttpsServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2', ...serverLimits(config.limits) }, route);
    const servers: Server[] = [tune(https, config.limits)];
    const httpsAddress = await listen(https, config.listen.https.host, config.listen.https.port);
    closers.push(() => shutdown(https));
    let httpUrl: string | null = null;
    if (config.listen.http) {
      const http = tune(createHttpServer(serverLimits(config.limits), route), config.limits);
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
    const sessionSweep = every(SESSION_SWEEP_MS, () => webSessions.sweepExpired().then(() => undefined, (e: unknown) => log.error('The sweep of expired web sessions failed', e)));
    closers.push(async () => clearInterval(sessionSweep));
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

/** Web sessions nobody came back to are removed (and their expiry audited) this often. */
const SESSION_SWEEP_MS = 60_000;

function every(ms: number, task: () => Promise<void>): NodeJS.Timeout {
  const timer = setInterval(() => void task(), ms);
  timer.unref();
  return timer;
}

type ServerLimits = Config['limits'];

/** Options that only take effect when the server is created. */
function serverLimits(limits: ServerLimits) {
  return {
    // A request head over the cap gets 431 from Node's parser before any handler runs.
    maxHeaderSize: limits.headerBytes,
    // How often Node checks the headers timeout: often enough that a trickling client is cut near the limit.
    connectionsCheckingInterval: Math.min(1_000, limits.headersTimeoutMs / 2),
  };
}

function tune(server: Server, limits: ServerLimits): Server {
  // Slow clients may not hold a connection open forever without sending headers (408, then closed).
  server.headersTimeout = limits.headersTimeoutMs;
  // Large uploads take as long as they take: no whole-request timeout...
  server.requestTimeout = 0;
  // ...but a socket on which nothing moves (no byte in or out) is destroyed, also mid-body.
  server.timeout = limits.idleTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  answerUnparsableRequestsInOrder(server);
  return server;
}

const CLIENT_ERROR_STATUS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: '413 Content Too Large',
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
};

/**
 * What Node does with bytes it cannot parse as HTTP (400, 408 or 431, then
 * close), except that when garbage follows a complete request on the same
 * connection (pipelining), that request is answered first: Node's own handler
 * would answer the garbage in its place.
 */
function answerUnparsableRequestsInOrder(server: Server): void {
  const latest = new WeakMap<Socket, { req: IncomingMessage; res: ServerResponse }>();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => latest.set(req.socket, { req, res }));
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const answer = () => {
      if (!socket.writable) return socket.destroy();
      socket.end(`HTTP/1.1 ${CLIENT_ERROR_STATUS[error.code ?? ''] ?? '400 Bad Request'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, () => socket.destroy());
    };
    const inFlight = latest.get(socket);
    if (inFlight === undefined || inFlight.res.writableFinished) return answer();
    if (inFlight.req.complete) {
      // The request before the garbage was read whole: its answer goes first.
      inFlight.res.once('finish', answer);
      inFlight.res.once('close', () => {
        if (!inFlight.res.writableFinished) socket.destroy();
      });
      return;
    }
    // The garbage is inside that request (e.g. a broken chunked body): it gets the error, if nothing was sent yet.
    if (inFlight.res.headersSent) socket.destroy();
    else answer();
  });
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

