// How PKCS#11 return values become Vellum errors (DESIGN invariant 1, fail closed:
// an HSM that is gone is HSM_UNAVAILABLE, a 503, naming the CKR code).
// Uses pkcs11js's own error class, as thrown by the module.

import test from 'ava';
import pkcs11js from 'pkcs11js';
import { VellumError } from '../../src/kernel/index.ts';
import { ckrName, hsmFailure, loginFailure } from '../../src/keys/pkcs11-errors.ts';

const ckr = (name: string, code: number) => new pkcs11js.Pkcs11Error(`${name}:${code}`, code, 'C_Test');

test('ckrName reads the CKR name pkcs11js puts in the message', (t) => {
  t.is(ckrName(ckr('CKR_PIN_INCORRECT', 0xa0)), 'CKR_PIN_INCORRECT');
  t.is(ckrName(new Error('something else')), null);
  t.is(ckrName('CKR_X'), null);
});

test('a locked PIN is HSM_PIN_LOCKED (SoftHSM never locks its PIN, so this is checked on the mapping)', (t) => {
  const e = loginFailure(ckr('CKR_PIN_LOCKED', 0xa4), 'vellum');
  t.is(e.code, 'HSM_PIN_LOCKED');
  t.regex(e.message, /locked/);
  t.truthy(e.cause);
});

test('a wrong PIN is HSM_PIN_INCORRECT and the message says the PIN was rejected', (t) => {
  const e = loginFailure(ckr('CKR_PIN_INCORRECT', 0xa0), 'vellum');
  t.is(e.code, 'HSM_PIN_INCORRECT');
  t.regex(e.message, /rejected/);
});

for (const name of ['CKR_DEVICE_REMOVED', 'CKR_TOKEN_NOT_PRESENT', 'CKR_SESSION_HANDLE_INVALID', 'CKR_DEVICE_ERROR', 'CKR_GENERAL_ERROR', 'CKR_USER_NOT_LOGGED_IN', 'CKR_SESSION_CLOSED', 'CKR_CRYPTOKI_NOT_INITIALIZED']) {
  test(`invariant 1 fail closed: ${name} is HSM_UNAVAILABLE (503) naming the code and keeping the cause`, (t) => {
    const cause = ckr(name, 1);
    const e = hsmFailure(cause, 'Wrapping');
    t.true(e instanceof VellumError);
    t.is(e.code, 'HSM_UNAVAILABLE');
    t.is(e.status, 503);
    t.true(e.message.includes(name));
    t.is(e.cause, cause);
  });
}

test('a template or mechanism error is a bug (INTERNAL), not an outage', (t) => {
  t.is(hsmFailure(ckr('CKR_TEMPLATE_INCONSISTENT', 0xd1), 'Generating').code, 'INTERNAL');
  t.is(hsmFailure(ckr('CKR_MECHANISM_INVALID', 0x70), 'Wrapping').code, 'INTERNAL');
});
