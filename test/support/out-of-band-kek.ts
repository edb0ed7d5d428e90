// Works on the token directly, behind the KeyVault's back, the way another
// process or an operator's tool would: inspect objects, create a KEK-shaped key.

import pkcs11js from 'pkcs11js';
import type { Handle, PKCS11 } from 'pkcs11js';

export function generateKekOutOfBand(p: PKCS11, session: Handle, label: string): Handle {
  return p.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
    { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_WRAP, value: true },
    { type: pkcs11js.CKA_UNWRAP, value: true },
    { type: pkcs11js.CKA_LABEL, value: label },
  ]);
}

/** Logs in to the token with pkcs11js alone, as an operator's tool would (no vault may be open in this process). */
export function inspectToken<T>(token: { library: string; tokenLabel: string; pin: string }, fn: (p: PKCS11, session: Handle) => T): T {
  const p = new pkcs11js.PKCS11();
  p.load(token.library);
  p.C_Initialize();
  try {
    const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === token.tokenLabel);
    if (slot === undefined) throw new Error('test token not found');
    const session = p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    p.C_Login(session, pkcs11js.CKU_USER, token.pin);
    try {
      return fn(p, session);
    } finally {
      p.C_Logout(session);
      p.C_CloseSession(session);
    }
  } finally {
    p.C_Finalize();
    p.close();
  }
}

export function findByLabel(p: PKCS11, session: Handle, label: string): Handle[] {
  p.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_LABEL, value: label }]);
  try {
    return p.C_FindObjects(session, 100);
  } finally {
    p.C_FindObjectsFinal(session);
  }
}
