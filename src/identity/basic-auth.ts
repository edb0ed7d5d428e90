// Shared by every front end that takes a password over HTTP (WebDAV, REST API).
// HTTP Basic credentials (RFC 7617), parsed here rather than by webdav-server,
// whose parser rejects base64 containing '+' or '/' and cuts passwords at ':'.
// The user name ends at the first ':'; everything after it is the password.

export interface Credentials {
  readonly login: string;
  readonly password: string;
}

const BASE64 = /^[A-Za-z0-9+/\-_]+={0,2}$/;
const MAX_HEADER = 4096;

/** null when the header is absent; 'malformed' when it is there but unusable. */
export function parseBasicAuth(header: string | undefined): Credentials | null | 'malformed' {
  if (header === undefined) return null;
  if (header.length > MAX_HEADER) return 'malformed';
  const match = /^Basic[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (!match) return 'malformed';
  const encoded = match[1]!;
  if (!BASE64.test(encoded)) return 'malformed';
  const bytes = Buffer.from(encoded.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return 'malformed';
  }
  const colon = text.indexOf(':');
  if (colon <= 0) return 'malformed';
  const login = text.slice(0, colon);
  if (/[\u0000-\u001f\u007f]/.test(login)) return 'malformed';
  return { login, password: text.slice(colon + 1) };
}
