// session: the shared layer under every front end (WebDAV, web UI, API, CLI).
// Owns authentication (directory bind + short credential cache, audited) and the
// per-person facade that checks access, calls the vault and audits denials and
// failures, so every front end gets the same checks and the same audit entries.

export { createAuthenticator, type Authenticator, type PasswordVerifier } from './authenticator.ts';
export { openSession, type Session, type OpenFile, type SessionParts, type SessionOptions } from './session.ts';
export { parseBasicAuth, type Credentials } from './basic-auth.ts';
export { lingerThenDrop } from './http-body.ts';
