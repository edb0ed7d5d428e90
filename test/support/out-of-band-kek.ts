// Creates a KEK-shaped key directly on the token, behind the KeyVault's back,
// the way another process or an operator's tool would.

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
