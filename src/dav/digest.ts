// A digest the client sends with a PUT, so the server can prove it stored
// exactly those bytes: `X-Content-SHA256: <hex>`, `Digest: sha-256=<base64>`
// (RFC 3230) or `Content-Digest: sha-256=:<base64>:` (RFC 9530). Other
// algorithms are ignored (we can only check SHA-256); a malformed SHA-256
// value, or two that disagree, is a 400 before any byte is read.

import type { IncomingHttpHeaders } from 'node:http';
import { VellumError } from '../kernel/index.ts';

const HEX = /^[0-9a-fA-F]{64}$/;
const BASE64 = /^[A-Za-z0-9+/]{43}=$/;

/** The expected SHA-256 (lowercase hex), or undefined when the client sent none. */
export function expectedSha256(headers: IncomingHttpHeaders): string | undefined {
  const found: { header: string; hex: string }[] = [];
  const plain = headers['x-content-sha256'];
  if (typeof plain === 'string') {
    if (!HEX.test(plain.trim())) throw new VellumError('BAD_REQUEST', 'X-Content-SHA256 must be 64 hexadecimal digits.');
    found.push({ header: 'X-Content-SHA256', hex: plain.trim().toLowerCase() });
  }
  const legacy = sha256Member(joined(headers.digest), 'Digest', (value) => value);
  if (legacy !== undefined) found.push({ header: 'Digest', hex: legacy });
  const modern = sha256Member(joined(headers['content-digest']), 'Content-Digest', (value) => /^:(.*):$/.exec(value)?.[1] ?? '');
  if (modern !== undefined) found.push({ header: 'Content-Digest', hex: modern });
  const [first, ...rest] = found;
  const other = rest.find((digest) => digest.hex !== first!.hex);
  if (other) throw new VellumError('BAD_REQUEST', `${first!.header} and ${other.header} name different SHA-256 digests.`);
  return first?.hex;
}

/** A repeated header is one comma-separated list (RFC 9110 §5.3). */
function joined(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}

function sha256Member(header: string | undefined, name: string, unwrap: (value: string) => string): string | undefined {
  if (header === undefined) return undefined;
  for (const member of header.split(',')) {
    const eq = member.indexOf('=');
    if (eq < 0 || member.slice(0, eq).trim().toLowerCase() !== 'sha-256') continue;
    const base64 = unwrap(member.slice(eq + 1).trim());
    if (!BASE64.test(base64)) throw new VellumError('BAD_REQUEST', `The sha-256 value in ${name} must be base64 of 32 bytes.`);
    return Buffer.from(base64, 'base64').toString('hex');
  }
  return undefined;
}
