// The one error catalog. Every failure a caller can see has a code here, a
// status that front ends translate to their protocol in exactly one place,
// and a message written for the person who reads it. docs/errors.md lists
// the same table; a test keeps the two in step.

export const errorCatalog = {
  // Input
  BAD_REQUEST: { status: 400, message: 'The request is malformed.' },
  PATH_INVALID: { status: 400, message: 'The path is not valid.' },
  BODY_TOO_LARGE: { status: 413, message: 'The request body is larger than this server accepts for this method.' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'This request body is not supported here.' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'This method is not allowed on this resource.' },
  NOT_IMPLEMENTED: { status: 501, message: 'This method is not supported.' },
  XML_INVALID: { status: 400, message: 'The XML request body is not well-formed, uses a construct this server refuses (DTDs, entities), or is not what this method expects.' },
  IF_HEADER_INVALID: { status: 400, message: 'The If header could not be parsed.' },
  DEPTH_INVALID: { status: 400, message: 'The Depth header is not valid for this method.' },
  PROPFIND_INFINITE_DEPTH: { status: 403, message: 'PROPFIND with Depth: infinity is not allowed here; ask for Depth: 0 or 1 and walk the tree.' },
  // Identity and access
  AUTH_REQUIRED: { status: 401, message: 'Authentication is required.' },
  AUTH_FAILED: { status: 401, message: 'The user name or password is not correct.' },
  FORBIDDEN: { status: 403, message: 'You do not have permission for this action.' },
  ACCOUNT_LOCKED: { status: 403, message: 'This account is locked after too many failed sign-ins.' },
  SOURCE_BLOCKED: { status: 429, message: 'Too many failed sign-ins from this address; try again later.' },
  APP_PASSWORD_REQUIRED: { status: 401, message: 'Sign in here with an app password: your account uses multi-factor sign-in, so the directory password is not accepted for this protocol.' },
  MFA_REQUIRED: { status: 401, message: 'A second sign-in step (a code from your authenticator app) is required.' },
  MFA_CODE_INVALID: { status: 401, message: 'The verification code is not correct, was already used, or has expired.' },
  SESSION_EXPIRED: { status: 401, message: 'Your session has ended (idle time, time limit, sign-out or revocation); sign in again.' },
  SIGN_IN_RATE_LIMITED: { status: 429, message: 'Too many sign-in attempts from this address in a short time; wait a minute and try again.' },
  CSRF_INVALID: { status: 403, message: 'The request did not carry this session\'s anti-forgery token; reload the page and try again.' },
  APP_PASSWORD_NOT_FOUND: { status: 404, message: 'There is no such app password.' },
  LOCKOUT_NOT_FOUND: { status: 404, message: 'That account or address is not locked.' },
  PERSON_NOT_FOUND: { status: 404, message: 'The directory has no such person.' },
  GROUP_NOT_FOUND: { status: 404, message: 'The directory has no such group.' },
  GROUP_EXISTS: { status: 409, message: 'A group with that name already exists in the directory.' },
  GROUP_NEEDS_MEMBER: { status: 409, message: 'A group of this kind must keep at least one member; add another member first.' },
  DIRECTORY_READ_ONLY: { status: 403, message: 'The directory cannot be changed from Vellum; change groups with your directory\'s own tools.' },
  // Resources
  NOT_FOUND: { status: 404, message: 'No such file or folder.' },
  ALREADY_EXISTS: { status: 405, message: 'A file or folder of that name already exists.' },
  PARENT_MISSING: { status: 409, message: 'The parent folder does not exist.' },
  NOT_A_FOLDER: { status: 409, message: 'The parent is a file, not a folder.' },
  IS_A_FOLDER: { status: 405, message: 'This is a folder; the method applies to files only.' },
  STUDY_EXISTS: { status: 409, message: 'A study with that id already exists.' },
  UPLOAD_INCOMPLETE: { status: 400, message: 'The upload ended before all of its bytes arrived; nothing was stored.' },
  DIGEST_MISMATCH: { status: 400, message: 'The uploaded bytes do not match the SHA-256 digest sent with them; nothing was stored.' },
  DESTINATION_INVALID: { status: 400, message: 'The Destination header is missing or does not name a path on this server.' },
  DESTINATION_OTHER_SERVER: { status: 502, message: 'The Destination is on another server; this server can only move and copy within itself.' },
  DESTINATION_EXISTS: { status: 412, message: 'The destination exists and Overwrite: F was sent.' },
  VERSION_NOT_FOUND: { status: 404, message: 'The file has no version with that number.' },
  NAME_TAKEN: { status: 409, message: 'Another item with that name is already there.' },
  NOT_DELETED: { status: 409, message: 'This item is not in the trash.' },
  PRECONDITION_FAILED: { status: 412, message: 'A condition of the request (If, If-Match or If-None-Match) does not hold; nothing was changed.' },
  LOCKED: { status: 423, message: 'The resource is locked; send its lock token in an If header to change it.' },
  LOCK_CONFLICT: { status: 423, message: 'The resource is already locked in a way that conflicts with this lock request.' },
  LOCK_TOKEN_MISMATCH: { status: 409, message: 'The lock token does not belong to a lock on this resource.' },
  PROPERTIES_TOO_LARGE: { status: 507, message: 'The properties do not fit in what this server keeps per file or folder; nothing was changed.' },
  REASON_REQUIRED: { status: 428, message: 'This study requires a reason for this change.' },
  CONTENT_SHREDDED: { status: 410, message: 'The content of this version was destroyed (crypto-shredded) and cannot be read.' },
  // Dependencies (fail closed)
  DIRECTORY_UNAVAILABLE: { status: 503, message: 'The user directory (LDAP) cannot be reached, so nobody can be authenticated right now. Try again shortly.' },
  HSM_UNAVAILABLE: { status: 503, message: 'The hardware security module cannot be reached, so no file can be encrypted or decrypted right now. Try again shortly.' },
  STORE_UNAVAILABLE: { status: 503, message: 'The metadata store cannot be written right now; nothing was changed.' },
  // Start-up
  CONFIG_INVALID: { status: 500, message: 'The configuration is not valid.' },
  HSM_LIBRARY_MISSING: { status: 500, message: 'The PKCS#11 library could not be loaded.' },
  HSM_TOKEN_NOT_FOUND: { status: 500, message: 'No HSM token with the configured label was found.' },
  HSM_PIN_INCORRECT: { status: 500, message: 'The HSM rejected the PIN.' },
  HSM_PIN_LOCKED: { status: 500, message: 'The HSM user PIN is locked after too many wrong attempts.' },
  TLS_SETUP_FAILED: { status: 500, message: 'The TLS certificate or key could not be loaded.' },
  LISTEN_REFUSED: { status: 500, message: 'The server refused to listen on the configured address.' },
  // Integrity
  JOB_RUNNING: { status: 409, message: 'The same job is already running.' },
  INTEGRITY_FAILURE: { status: 500, message: 'Stored data failed its integrity check; the read was stopped.' },
  INTERNAL: { status: 500, message: 'An unexpected error occurred; it has been logged.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof errorCatalog;

/** An expected failure: a catalog code, plus detail for the person reading it. */
export class VellumError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: string | undefined;

  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    const entry = errorCatalog[code];
    super(detail ? `${entry.message} ${detail}` : entry.message, options);
    this.name = 'VellumError';
    this.code = code;
    this.status = entry.status;
    this.detail = detail;
  }
}

export function isVellumError(e: unknown, code?: ErrorCode): e is VellumError {
  return e instanceof VellumError && (code === undefined || e.code === code);
}

/** Anything thrown, as a VellumError: unknown errors become INTERNAL (keeping the cause). */
export function asVellumError(e: unknown): VellumError {
  if (e instanceof VellumError) return e;
  return new VellumError('INTERNAL', undefined, { cause: e });
}
