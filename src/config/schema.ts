// The configuration schema: the one place that says which keys exist, their
// types, defaults and limits. Validated once at start; the result is frozen.

import { isIP } from 'node:net';
import { z } from 'zod';

/** A secret is never written inline: it comes from a file or an environment variable. */
const secretRef = z.union([
  z.strictObject({ file: z.string().min(1) }),
  z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name') }),
], { error: 'must be {"file": "PATH"} or {"env": "NAME"}; secrets are never written inline' });

const port = z.number().int().min(0).max(65535);
const host = z.string().refine((value) => isIP(value) !== 0 || value === 'localhost', 'must be an IP address');

// isIP checks every octet (127.999.0.1 is not an address).
const loopbackHost = z.string().refine(
  (value) => value === 'localhost' || value === '::1' || (isIP(value) === 4 && value.startsWith('127.')),
  'plain HTTP is allowed only on a loopback address (127.0.0.0/8 or ::1)',
);

/**
 * The URL people reach Vellum at through a reverse proxy: https, an optional
 * path prefix, nothing else. Kept without a trailing slash.
 */
const externalUrl = z.string()
  .refine((value) => {
    try {
      const url = new URL(value);
      return url.protocol === 'https:' && url.username === '' && url.password === '' && url.search === '' && url.hash === '' && !value.includes('?') && !value.includes('#');
    } catch {
      return false;
    }
  }, 'must be an absolute https:// URL without credentials, query or fragment, e.g. https://files.example.org/vellum')
  .transform((value) => value.replace(/\/+$/, ''));

/** What WebDAV does with the files macOS writes beside every file (AppleDouble `._*`, `.DS_Store`). */
export const MAC_METADATA_POLICIES = ['discard', 'store', 'refuse'] as const;

const groupDn = z.string().min(3).regex(/=/, 'must be a distinguished name, e.g. cn=admins,ou=groups,dc=example,dc=org');

const ldapAttribute = z.string().regex(/^[A-Za-z][A-Za-z0-9-]*$/, 'must be an LDAP attribute name');

export const LDAP_PRESET_NAMES = ['openldap', 'active-directory'] as const;
/** member: groupOfNames; uniqueMember: groupOfUniqueNames; memberOf: the person's memberOf; in-chain: AD's nested-group rule. */
export const GROUP_MEMBERSHIP_MODES = ['member', 'uniqueMember', 'memberOf', 'in-chain'] as const;

/** What each directory preset supplies (docs/directory.md). */
export const LDAP_PRESETS = {
  openldap: { loginAttributes: ['uid'], idAttribute: 'entryUUID', displayNameAttribute: 'cn', groupMembership: 'member', groupObjectClass: 'groupOfNames' },
  'active-directory': { loginAttributes: ['sAMAccountName', 'userPrincipalName'], idAttribute: 'objectGUID', displayNameAttribute: 'displayName', groupMembership: 'in-chain', groupObjectClass: 'group' },
} as const;

/** Fills the attribute and group keys from the preset; loginAttribute is the first login attribute. */
function applyLdapPreset<T extends { preset: keyof typeof LDAP_PRESETS; loginAttribute?: string; loginAttributes?: string[]; idAttribute?: string; displayNameAttribute?: string; groupMembership?: (typeof GROUP_MEMBERSHIP_MODES)[number]; groupObjectClass?: string }>(ldap: T) {
  const preset = LDAP_PRESETS[ldap.preset];
  const loginAttributes: readonly string[] = ldap.loginAttributes ?? (ldap.loginAttribute === undefined ? preset.loginAttributes : [ldap.loginAttribute]);
  return {
    ...ldap,
    loginAttribute: loginAttributes[0]!,
    loginAttributes,
    idAttribute: ldap.idAttribute ?? preset.idAttribute,
    displayNameAttribute: ldap.displayNameAttribute ?? preset.displayNameAttribute,
    groupMembership: ldap.groupMembership ?? preset.groupMembership,
    groupObjectClass: ldap.groupObjectClass ?? preset.groupObjectClass,
  };
}

export const configSchema = z.strictObject({
  /** Where blobs, the metadata database and generated certificates live. */
  dataDir: z.string().min(1),
  listen: z.strictObject({
    https: z.strictObject({ host: host.default('0.0.0.0'), port: port.default(8443) }).prefault({}),
    /** Optional plain-HTTP listener for local tools; loopback only. */
    http: z.strictObject({ host: loopbackHost, port }).optional(),
  }).prefault({}),
  tls: z.strictObject({
    /** PEM files. Without them, a self-signed certificate is made at first start and kept in dataDir. */
    certFile: z.string().optional(),
    keyFile: z.string().optional(),
    /** Names the self-signed certificate is made for (besides localhost and 127.0.0.1). */
    hostnames: z.array(z.string()).default([]),
  }).prefault({}).refine((tls) => (tls.certFile === undefined) === (tls.keyFile === undefined), 'certFile and keyFile go together'),
  ldap: z.strictObject({
    url: z.string().regex(/^ldaps?:\/\/[^\s]+$/, 'must be an ldap:// or ldaps:// URL'),
    bindDn: z.string().min(1),
    bindPassword: secretRef,
    userBase: z.string().min(1),
    groupBase: z.string().min(1),
    /** Supplies the attribute and group defaults below (LDAP_PRESETS); explicit keys win. */
    preset: z.enum(LDAP_PRESET_NAMES).default('openldap'),
    /** One login attribute (kept for existing files); loginAttributes takes several. */
    loginAttribute: ldapAttribute.optional(),
    loginAttributes: z.array(ldapAttribute).min(1).max(4).optional(),
    idAttribute: ldapAttribute.optional(),
    displayNameAttribute: ldapAttribute.optional(),
    groupMembership: z.enum(GROUP_MEMBERSHIP_MODES).optional(),
    groupObjectClass: ldapAttribute.optional(),
    /** Follow groups inside groups, client-side, up to a bounded depth. */
    nestedGroups: z.boolean().default(false),
    timeoutMs: z.number().int().min(100).max(60_000).default(5000),
    /** Bound service connections kept for reuse. */
    poolSize: z.number().int().min(1).max(32).default(4),
    /** A pooled connection unused this long is closed. */
    poolIdleMs: z.number().int().min(1000).max(3_600_000).default(60_000),
    /** Vellum may create groups and change their members (the service account needs write rights). */
    groupManagement: z.boolean().default(false),
    caFile: z.string().optional(),
    startTls: z.boolean().default(false),
  }).transform(applyLdapPreset),
  hsm: z.strictObject({
    library: z.string().min(1),
    tokenLabel: z.string().min(1).max(32),
    pin: secretRef,
    sessions: z.number().int().min(1).max(64).default(4),
  }),
  /** The public URL behind a reverse proxy (hrefs, Destination checks, the sign-in page); absent when clients reach Vellum directly. */
  externalUrl: externalUrl.optional(),
  access: z.strictObject({
    /** Directory groups whose members are system Administrators (no study content by that alone). */
    administratorGroups: z.array(groupDn).default([]),
  }).prefault({}),
  auth: z.strictObject({
    /** How long a successful directory bind is reused for the same credentials. */
    cacheSeconds: z.number().int().min(0).max(3600).default(60),
    realm: z.string().min(1).max(64).default('Vellum'),
    /** Failed sign-ins that lock a login name, and a source address (docs/authentication.md). */
    lockout: z.strictObject({
      attempts: z.number().int().min(1).max(100).default(5),
      windowSeconds: z.number().int().min(1).max(86_400).default(900),
      /** Who ends an account lock: an Administrator only (EU GMP Annex 11 draft), or the clock after lockSeconds. */
      unlock: z.enum(['administrator', 'timed']).default('administrator'),
      lockSeconds: z.number().int().min(1).max(30 * 86_400).default(1800),
      /** Failures from one address (whatever names it tries) that block it; 0 turns this off. */
      sourceAttempts: z.number().int().min(0).max(10_000).default(20),
      sourceLockSeconds: z.number().int().min(1).max(86_400).default(900),
    }).prefault({}),
    appPasswords: z.strictObject({
      /** Whether WebDAV and API (HTTP Basic) sign-ins accept the directory password, or only app passwords. */
      directoryPassword: z.enum(['allowed', 'forbidden-when-mfa', 'forbidden']).default('forbidden-when-mfa'),
    }).prefault({}),
    /** Second factor (TOTP) for the web UI. Anyone who enrolled must use it, whatever requiredFor says. */
    mfa: z.strictObject({
      requiredFor: z.enum(['administrators', 'everyone', 'nobody']).default('administrators'),
      /** Issuer shown by authenticator apps beside the login name. */
      issuer: z.string().min(1).max(64).regex(/^[^:]+$/, 'may not contain ":"').default('Vellum'),
    }).prefault({}),
    /** Web UI sessions: limits nobody can switch off. Fractions of a minute are allowed (down to 3 s, for tests). */
    webSessions: z.strictObject({
      idleMinutes: z.number().min(0.05).max(24 * 60).default(15),
      absoluteHours: z.number().min(0.01).max(7 * 24).default(12),
      /** Password sign-ins one address may start per minute (web UI and API), right or wrong. */
      signInsPerMinute: z.number().int().min(1).max(1000).default(10),
    }).prefault({}),
  }).prefault({}),
  alerts: z.strictObject({
    /** Where alerts (lockouts) are POSTed as JSON: https, or http on a loopback address only. */
    webhookUrl: z.string().refine((value) => {
      try {
        const url = new URL(value);
        if (url.username !== '' || url.password !== '') return false;
        const hostname = url.hostname.replace(/^\[|\]$/g, '');
        return url.protocol === 'https:' || (url.protocol === 'http:' && (hostname === 'localhost' || hostname === '::1' || (isIP(hostname) === 4 && hostname.startsWith('127.'))));
      } catch {
        return false;
      }
    }, 'must be an https:// URL (http:// only on a loopback address), without credentials').optional(),
    /** How long one delivery may take before it counts as failed. */
    timeoutMs: z.number().int().min(100).max(60_000).default(5000),
  }).prefault({}),
  limits: z.strictObject({
    /** Largest XML request body (PROPFIND, PROPPATCH, LOCK). */
    xmlBodyBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
    /** Largest file a single PUT may store. */
    uploadBytes: z.number().int().min(1).default(64 * 1024 ** 3),
    /** Largest request head (request line and headers); larger gets 431. */
    headerBytes: z.number().int().min(4096).max(256 * 1024).default(16 * 1024),
    /** Time a client has to send its whole request head; a client that trickles it is cut (408). */
    headersTimeoutMs: z.number().int().min(1000).max(300_000).default(20_000),
    /** A connection on which nothing moves for this long is closed, also mid-body; a slow but steady upload is never cut. */
    idleTimeoutMs: z.number().int().min(1000).max(3_600_000).default(120_000),
    /** How long an idle keep-alive connection is kept open between requests. */
    keepAliveTimeoutMs: z.number().int().min(100).max(300_000).default(5_000),
  }).prefault({}),
  dav: z.strictObject({
    /** Lifetimes granted to WebDAV locks: the client's Timeout, at most maxSeconds; defaultSeconds when it sends none. */
    lockTimeout: z.strictObject({
      defaultSeconds: z.number().int().min(1).max(30 * 86_400).default(3600),
      maxSeconds: z.number().int().min(1).max(30 * 86_400).default(86_400),
    }).prefault({}).refine((timeout) => timeout.defaultSeconds <= timeout.maxSeconds, 'defaultSeconds may not be larger than maxSeconds'),
    /** Answer PROPFIND with Depth: infinity (a walk of the whole tree) instead of refusing it with 403. */
    allowInfiniteDepth: z.boolean().default(false),
    /** What to do with the metadata files macOS writes beside every file (._*, .DS_Store). */
    macMetadata: z.enum(MAC_METADATA_POLICIES).default('discard'),
  }).prefault({}),
  scrub: z.strictObject({
    /** Hours between scheduled scrubs (every blob re-verified); 0 turns the schedule off. At most 24 days (a timer limit). */
    intervalHours: z.number().min(0).max(24 * 24).default(24 * 7),
  }).prefault({}),
  audit: z.strictObject({
    /** Write one audit entry (node.list) per PROPFIND; denied PROPFINDs are audited either way. */
    propfind: z.boolean().default(false),
    /** When the trail signs a checkpoint: after this many new entries, or this often when there are new entries. */
    checkpoints: z.strictObject({
      everyEntries: z.number().int().min(1).max(1_000_000).default(1000),
      everySeconds: z.number().int().min(1).max(24 * 24 * 3600).default(300),
    }).prefault({}),
  }).prefault({}),
});

export type ConfigFile = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
export type SecretRef = z.output<typeof secretRef>;

/** Formats zod's issues as "key.path: what is wrong" lines. */
export function describeIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const key = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
    return `${key}: ${issue.message}`;
  });
}

export function validate(value: unknown): { ok: true; config: ParsedConfig } | { ok: false; problems: string[] } {
  const result = configSchema.safeParse(value);
  return result.success ? { ok: true, config: result.data } : { ok: false, problems: describeIssues(result.error) };
}
