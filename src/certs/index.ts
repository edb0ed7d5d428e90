// certs: X.509 certificates (the only importer of `node-forge`). Owns the
// self-signed TLS certificate made at first start, and the self-signed
// certificate of an HSM-held signing key (signed through an async signer).

export { makeSelfSigned, type PemPair, type SelfSignedOptions } from './self-signed.ts';
export { issueSigningCertificate, type SigningCertificateOptions } from './signing-certificate.ts';
