// Paths inside the vault, parsed once at the edge. A VaultPath names a study
// and the names below it; every name has passed the rules here, so nothing
// further down ever sees '..', a NUL or an encoded slash.

import { VellumError } from './errors.ts';

export interface VaultPath {
  /** Study id, or null for the root that lists studies. */
  readonly study: string | null;
  /** Names below the study root; empty for the study root itself. */
  readonly names: readonly string[];
}

export const STUDY_ID_PATTERN = /^[A-Z0-9][A-Z0-9_-]{0,63}$/;
const MAX_NAME_BYTES = 255;
const MAX_DEPTH = 64;
// A whole path (study and names, decoded, as UTF-8), like Linux's PATH_MAX.
const MAX_PATH_BYTES = 4096;
// Control characters and the characters Windows cannot store in a name.
const FORBIDDEN_IN_NAME = /[\u0000-\u001f\u007f\\]/;

export function isStudyId(value: string): boolean {
  return STUDY_ID_PATTERN.test(value);
}

export function checkName(raw: string): string {
  // Normalise first and check what is returned: NFC can make a name longer
  // (e.g. U+0958 becomes two code points, 3 bytes become 6).
  const name = raw.normalize('NFC');
  if (name === '' || name === '.' || name === '..') throw new VellumError('PATH_INVALID', `"${name}" is not a valid name.`);
  if (FORBIDDEN_IN_NAME.test(name) || name.includes('/')) throw new VellumError('PATH_INVALID', 'Names may not contain control characters, "/" or "\\".');
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) throw new VellumError('PATH_INVALID', `A name may be at most ${MAX_NAME_BYTES} bytes long.`);
  return name;
}

/**
 * Parses the percent-encoded path of a URL below a mount point (e.g. the part
 * after `/dav`). Rejects invalid percent-encoding, invalid UTF-8, NUL, `..`,
 * names and paths that are too long and trees that are too deep. Names are NFC-normalised
 * so that macOS (NFD) and Windows (NFC) clients meet the same file.
 */
export function parseVaultPath(encoded: string): VaultPath {
  if (!encoded.startsWith('/') && encoded !== '') throw new VellumError('PATH_INVALID', 'The path must start with "/".');
  // Each byte takes at most 3 characters percent-encoded: refuse a hopeless path before splitting it.
  if (encoded.length > 3 * MAX_PATH_BYTES + MAX_DEPTH + 1) throw tooLong();
  const raw = encoded.split('/').filter((segment) => segment !== '');
  if (raw.length > MAX_DEPTH + 1) throw new VellumError('PATH_INVALID', `Folders may be nested at most ${MAX_DEPTH} deep.`);
  const names = raw.map(decodeSegment).map(checkName);
  if (names.reduce((total, name) => total + 1 + Buffer.byteLength(name, 'utf8'), 0) > MAX_PATH_BYTES) throw tooLong();
  const [study, ...rest] = names;
  if (study === undefined) return { study: null, names: [] };
  if (!isStudyId(study)) throw new VellumError('NOT_FOUND', `"${study}" is not a study.`);
  return { study, names: rest };
}

function tooLong(): VellumError {
  return new VellumError('PATH_INVALID', `A path may be at most ${MAX_PATH_BYTES} bytes long.`);
}

// decodeURIComponent throws on bad escapes and on bytes that are not UTF-8.
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new VellumError('PATH_INVALID', 'The path has an invalid percent-encoding or is not UTF-8.');
  }
}

export function formatVaultPath(path: VaultPath): string {
  if (path.study === null) return '/';
  return '/' + [path.study, ...path.names].join('/');
}

export function encodeVaultPath(path: VaultPath): string {
  if (path.study === null) return '/';
  return '/' + [path.study, ...path.names].map(encodeURIComponent).join('/');
}

export function parentOf(path: VaultPath): VaultPath {
  if (path.names.length === 0) return { study: null, names: [] };
  return { study: path.study, names: path.names.slice(0, -1) };
}

export function childOf(path: VaultPath, name: string): VaultPath {
  if (path.study === null) return { study: name, names: [] };
  return { study: path.study, names: [...path.names, name] };
}
