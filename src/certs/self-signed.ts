// X.509 with node-forge (>= 1.4.3; earlier versions have ASN.1 and signature
// forgery CVEs). The first start with no configured certificate makes a
// self-signed one, kept in the data directory and reused afterwards.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';

export interface PemPair {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface SelfSignedOptions {
  readonly commonName: string;
  /** DNS names and IP addresses for subjectAltName. */
  readonly hostnames: readonly string[];
  readonly days: number;
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

export function makeSelfSigned(options: SelfSignedOptions): PemPair {
  // Node's OpenSSL makes the key in milliseconds; forge's pure-JS keygen takes seconds.
  const pair = generateKeyPairSync('rsa', { modulusLength: 3072, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  const privateKey = forge.pki.privateKeyFromPem(pair.privateKey) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(pair.publicKey);
  // Positive serial: first bit cleared.
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  cert.serialNumber = serial.toString('hex');
  const now = new Date();
  cert.validity.notBefore = new Date(now.getTime() - 60_000);
  cert.validity.notAfter = new Date(now.getTime() + options.days * 86_400_000);
  const subject = [{ name: 'commonName', value: options.commonName }, { name: 'organizationName', value: 'Vellum appliance (self-signed)' }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  const altNames = options.hostnames.map((name) => (IPV4.test(name) || name.includes(':') ? { type: 7, ip: name } : { type: 2, value: name }));
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: pair.privateKey };
}
