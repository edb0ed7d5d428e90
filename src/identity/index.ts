// identity: who is making a request. Owns authentication for every front end:
// directory passwords (verified by a Directory the caller hands in) behind a
// short credential cache keyed by a keyed hash, account and source-address
// lockout, app passwords for WebDAV, TOTP second factors and web sessions,
// and the alerts raised when someone keeps failing. Every sign-in, refusal,
// lockout and unlock is audited. Authorization is access/'s; content is session/'s.

export {
  createAuthenticator, DIRECTORY_PASSWORD_POLICIES, type Authenticator, type AuthenticatorOptions, type DirectoryPasswordPolicy, type PasswordVerifier,
} from './authenticator.ts';
export { createCredentialCache, normaliseLogin, type CredentialCache, type CachedSignIn } from './credential-cache.ts';
export { openLockout, retryAfterSeconds, SignInRateLimitedError, SourceBlockedError, type Lockout, type LockoutSettings, type LockRecord } from './lockout.ts';
export { createAlerts, type Alert, type Alerts } from './alerts.ts';
export { createAppPasswords, type AppPasswords, type AppPasswordInfo } from './app-passwords.ts';
export { parseBasicAuth, type Credentials } from './basic-auth.ts';
export { mfaRequired, type MfaPolicy } from './mfa-policy.ts';
export { createWebSessions, MAX_FAILED_CODES, type WebSessions, type WebSessionView, type WebSessionState, type WebSessionSettings, type WebSessionParts, type SecondFactorProof, type RequestCheck, type PersonLookup, type SignInFormCheck } from './web-sessions.ts';
export { createSecondFactors, type SecondFactors, type SecretKeys, type StoredKey, type Enrolment } from './second-factors.ts';
