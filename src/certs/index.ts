// certs: X.509 certificates (the only importer of `node-forge`). Owns the
// self-signed TLS certificate made at first start.

export { makeSelfSigned, type PemPair, type SelfSignedOptions } from './self-signed.ts';
