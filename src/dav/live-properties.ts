// Live properties (RFC 4918 §15, RFC 4331): computed from the vault's
// records on every PROPFIND, never stored, and protected from PROPPATCH.

import type { VaultPath } from '../kernel/index.ts';
import type { LockRecord, NodeRecord, StorageUsage } from '../vault/index.ts';
import { contentTypeFor } from './content-type.ts';
import { etagOf } from './etag.ts';
import { clarkName, DAV_NS, escapeText } from './xml.ts';

/** What a PROPFIND answers about: a file or folder, or the mount's root (no node). */
export interface Resource {
  readonly path: VaultPath;
  readonly node: NodeRecord | null;
  readonly href: string;
}

/** What some live properties need beyond the node, fetched once per batch of resources. */
export interface LiveInputs {
  readonly locks: readonly LockRecord[];
  readonly usage: StorageUsage | undefined;
  readonly hrefBase: string;
}

const dav = (local: string) => clarkName({ ns: DAV_NS, local });

/** In allprop answers (RFC 4918 §9.1: the live properties it defines). */
const ALLPROP = ['resourcetype', 'getcontentlength', 'getcontenttype', 'getetag', 'getlastmodified', 'creationdate', 'displayname', 'supportedlock', 'lockdiscovery'];
/** RFC 4331: only when asked for by name (they can be costly), and in propname. */
const QUOTA = ['quota-available-bytes', 'quota-used-bytes'];

export const ALLPROP_NAMES: readonly string[] = ALLPROP.map(dav);
export const QUOTA_NAMES: readonly string[] = QUOTA.map(dav);
const LIVE_NAMES = new Set([...ALLPROP_NAMES, ...QUOTA_NAMES]);

/** A live property: computed, never stored; PROPPATCH may not set or remove it. */
export function isLive(name: string): boolean {
  return LIVE_NAMES.has(name);
}

export const LOCKDISCOVERY = dav('lockdiscovery');

export function isFolder(resource: Resource): boolean {
  return resource.node === null || resource.node.kind === 'folder';
}

/** The href of a path: each name percent-encoded, folders ending in "/". */
export function hrefOf(hrefBase: string, path: VaultPath, folder: boolean): string {
  if (path.study === null) return `${hrefBase}/`;
  const encoded = [path.study, ...path.names].map(encodeURIComponent).join('/');
  return `${hrefBase}/${encoded}${folder ? '/' : ''}`;
}

const element = (local: string, inner: string) => (inner === '' ? `<D:${local}/>` : `<D:${local}>${inner}</D:${local}>`);

const LOCK_ENTRIES = ['exclusive', 'shared']
  .map((scope) => `<D:lockentry><D:lockscope><D:${scope}/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>`)
  .join('');

/** One DAV:activelock (RFC 4918 §14.1), in a document where the prefix D is bound to DAV:. */
export function activeLockXml(lock: LockRecord, hrefBase: string, now: number = Date.now()): string {
  const remaining = Math.max(0, Math.ceil((Date.parse(lock.expiresAt) - now) / 1000));
  return '<D:activelock>'
    + `<D:locktype><D:write/></D:locktype><D:lockscope><D:${lock.scope}/></D:lockscope>`
    + `<D:depth>${lock.depth === 0 ? '0' : 'infinity'}</D:depth>`
    // The owner element is stored as the client sent it (serialised with its namespaces).
    + (lock.owner ?? '')
    + `<D:timeout>Second-${remaining}</D:timeout>`
    + `<D:locktoken><D:href>${escapeText(lock.token)}</D:href></D:locktoken>`
    + `<D:lockroot><D:href>${escapeText(hrefOf(hrefBase, { study: lock.study, names: lock.root }, false))}</D:href></D:lockroot>`
    + '</D:activelock>';
}

/**
 * The property element for a live property of this resource, or undefined
 * when it does not apply (e.g. getcontentlength of a folder).
 */
export function liveProperty(name: string, resource: Resource, inputs: LiveInputs): string | undefined {
  if (!name.startsWith(`{${DAV_NS}}`)) return undefined;
  const local = name.slice(DAV_NS.length + 2);
  const node = resource.node;
  if (node === null) {
    // The mount's root lists the studies; it has no record of its own.
    return local === 'resourcetype' ? element(local, '<D:collection/>') : undefined;
  }
  const file = node.kind === 'file' ? node : null;
  switch (local) {
    case 'resourcetype': return element(local, file ? '' : '<D:collection/>');
    case 'getcontentlength': return file ? element(local, String(file.currentVersion?.size ?? 0)) : undefined;
    case 'getcontenttype': return file ? element(local, escapeText(contentTypeFor(file.name))) : undefined;
    case 'getetag': return element(local, escapeText(etagOf(node)));
    case 'getlastmodified': return element(local, new Date(node.modifiedAt).toUTCString());
    case 'creationdate': return element(local, new Date(node.createdAt).toISOString());
    case 'displayname': return element(local, escapeText(node.name));
    case 'supportedlock': return element(local, LOCK_ENTRIES);
    case 'lockdiscovery': {
      const now = Date.now();
      return element(local, inputs.locks.map((lock) => activeLockXml(lock, inputs.hrefBase, now)).join(''));
    }
    case 'quota-available-bytes': return inputs.usage ? element(local, String(inputs.usage.availableBytes)) : undefined;
    case 'quota-used-bytes': return inputs.usage ? element(local, String(inputs.usage.usedBytes)) : undefined;
    default: return undefined;
  }
}

/** Names of the live properties this resource has, for propname (quota included). */
export function liveNamesOf(resource: Resource): string[] {
  if (resource.node === null) return [dav('resourcetype')];
  const file = resource.node.kind === 'file';
  return [...ALLPROP_NAMES, ...QUOTA_NAMES].filter((name) => file || (name !== dav('getcontentlength') && name !== dav('getcontenttype')));
}
