// How PKCS#11 return values become Vellum errors. Works on the CKR_* name that
// pkcs11js puts in Error.message ("CKR_PIN_INCORRECT"), so it needs no import of
// pkcs11js and can be tested on its own.

import { VellumError } from '../kernel/index.ts';

/** The CKR_* name of a pkcs11js error, or null when the error did not come from the module. */
export function ckrName(e: unknown): string | null {
  if (!(e instanceof Error)) return null;
  const match = /^CKR_[A-Z0-9_]+/.exec(e.message);
  return match ? match[0] : null;
}

/**
 * Return values meaning the token, the session or the login is gone: the pool
 * drops its sessions and opens (and logs in) fresh ones on the next operation.
 */
export const LOST_SESSION = new Set([
  'CKR_DEVICE_REMOVED',
  'CKR_DEVICE_ERROR',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_TOKEN_NOT_RECOGNIZED',
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_SESSION_COUNT',
  'CKR_USER_NOT_LOGGED_IN',
]);

/** Handle values the module no longer recognises: find the object again. */
export const STALE_HANDLE = new Set([
  'CKR_OBJECT_HANDLE_INVALID',
  'CKR_KEY_HANDLE_INVALID',
  'CKR_WRAPPING_KEY_HANDLE_INVALID',
  'CKR_UNWRAPPING_KEY_HANDLE_INVALID',
]);

/**
 * What C_UnwrapKey answers for wrapped bytes that do not unwrap (tampered, or
 * another KEK). SoftHSM 2.6 reports an integrity-check failure of AES key wrap
 * as CKR_GENERAL_ERROR; the caller confirms the session still works before
 * believing that.
 */
export const BAD_WRAPPED_KEY = new Set([
  'CKR_WRAPPED_KEY_INVALID',
  'CKR_WRAPPED_KEY_LEN_RANGE',
  'CKR_ENCRYPTED_DATA_INVALID',
  'CKR_ENCRYPTED_DATA_LEN_RANGE',
  'CKR_GENERAL_ERROR',
]);

/** Return values that mean Vellum asked for something wrong: a bug, not an outage. */
const PROGRAMMING_ERROR = /^CKR_(ATTRIBUTE_|TEMPLATE_|MECHANISM_|ARGUMENTS_BAD|KEY_TYPE_INCONSISTENT|KEY_FUNCTION_NOT_PERMITTED|KEY_NOT_WRAPPABLE|KEY_UNEXTRACTABLE|OPERATION_ACTIVE|FUNCTION_NOT_SUPPORTED)/;

/**
 * A failure of a PKCS#11 call during normal operation, as a VellumError.
 * Outages (and anything not recognised) are HSM_UNAVAILABLE: callers fail closed with 503.
 */
export function hsmFailure(e: unknown, what: string): VellumError {
  if (e instanceof VellumError) return e;
  const name = ckrName(e);
  if (name !== null && PROGRAMMING_ERROR.test(name)) {
    return new VellumError('INTERNAL', `${what} failed: ${name}.`, { cause: e });
  }
  const reason = name ?? (e instanceof Error ? e.message : String(e));
  return new VellumError('HSM_UNAVAILABLE', `${what} failed: ${reason}.`, { cause: e });
}

/** A failure of C_Login while opening the vault. Never includes the PIN. */
export function loginFailure(e: unknown, tokenLabel: string): VellumError {
  const name = ckrName(e);
  if (name === 'CKR_PIN_INCORRECT') {
    return new VellumError('HSM_PIN_INCORRECT', `Token '${tokenLabel}' rejected the configured user PIN as incorrect (${name}).`, { cause: e });
  }
  if (name === 'CKR_PIN_LOCKED') {
    return new VellumError('HSM_PIN_LOCKED', `Token '${tokenLabel}' has locked its user PIN (${name}); the security officer must unlock it.`, { cause: e });
  }
  if (name === 'CKR_PIN_EXPIRED') {
    return new VellumError('HSM_PIN_INCORRECT', `Token '${tokenLabel}' rejected the user PIN because it has expired (${name}).`, { cause: e });
  }
  if (name === 'CKR_USER_ALREADY_LOGGED_IN') {
    return new VellumError('HSM_UNAVAILABLE', `Token '${tokenLabel}' is already logged in by another user of the PKCS#11 module in this process (${name}).`, { cause: e });
  }
  return hsmFailure(e, `Login to token '${tokenLabel}'`);
}
