// PROPFIND (RFC 4918 §9.1): live properties computed from the vault's
// records, dead properties read in one batch per group of resources, the
// multistatus streamed as it is produced. Depth 0 and 1; infinity only when
// configured. Access is the session's: a resource the person may not read
// is refused (403/404) before anything is written.

import { VellumError, type VaultPath } from '../../kernel/index.ts';
import type { LockRecord, StorageUsage } from '../../vault/index.ts';
import { readBody, single, type DavContext } from '../context.ts';
import {
  ALLPROP_NAMES, hrefOf, isFolder, isLive, liveNamesOf, liveProperty, LOCKDISCOVERY, QUOTA_NAMES, type Resource,
} from '../live-properties.ts';
import { emptyProperty, MultistatusWriter, responseXml, type Propstat } from '../multistatus.ts';
import { clarkName, DAV_NS, elementsOf, isDav, parseXml } from '../xml.ts';

type PropfindRequest =
  | { readonly kind: 'allprop'; readonly include: readonly string[] }
  | { readonly kind: 'prop'; readonly names: readonly string[] }
  | { readonly kind: 'propname' };

/** Resources whose dead properties are read together (one batched read) and written before the next group. */
const GROUP_SIZE = 256;

function depthOf(ctx: DavContext): 0 | 1 | 'infinity' {
  const raw = single(ctx.req, 'Depth')?.trim().toLowerCase();
  if (raw === '0') return 0;
  if (raw === '1') return 1;
  if (raw !== undefined && raw !== 'infinity') throw new VellumError('DEPTH_INVALID', 'PROPFIND takes Depth: 0 or 1.');
  if (!ctx.options.allowInfiniteDepth) throw new VellumError('PROPFIND_INFINITE_DEPTH');
  return 'infinity';
}

function propertyNames(prop: ReturnType<typeof parseXml>): string[] {
  return [...new Set(elementsOf(prop).map(clarkName))];
}

/** An empty body is allprop (RFC 4918 §9.1); otherwise exactly one of allprop (with include), prop, propname. */
export function parsePropfind(body: string): PropfindRequest {
  if (body.trim() === '') return { kind: 'allprop', include: [] };
  const root = parseXml(body);
  if (!isDav(root, 'propfind')) throw new VellumError('XML_INVALID', 'The body of a PROPFIND must be a DAV:propfind element.');
  // Elements of other namespaces are extensions this server does not know: ignored (RFC 4918 §17).
  const parts = elementsOf(root).filter((child) => child.ns === DAV_NS);
  const only = (local: string) => parts.filter((child) => child.local === local);
  const [allprop, prop, propname, include] = [only('allprop'), only('prop'), only('propname'), only('include')];
  const known = allprop.length + prop.length + propname.length + include.length;
  const malformed = () => new VellumError('XML_INVALID', 'DAV:propfind takes one DAV:allprop (optionally with DAV:include), DAV:prop or DAV:propname.');
  if (known !== parts.length || allprop.length + prop.length + propname.length !== 1 || include.length > (allprop.length === 1 ? 1 : 0)) throw malformed();
  if (prop[0]) return { kind: 'prop', names: propertyNames(prop[0]) };
  if (propname[0]) return { kind: 'propname' };
  return { kind: 'allprop', include: include[0] ? propertyNames(include[0]) : [] };
}

export async function propfind(ctx: DavContext): Promise<void> {
  const { req, res, session, options, path } = ctx;
  const depth = depthOf(ctx);
  const request = parsePropfind(await readBody(req, options.xmlBodyBytes));
  // Looked up (and access checked) before the 207 goes out: refusals are plain 403/404.
  const node = path.study === null ? null : await session.stat(path);
  // Before the 207 goes out: a listing that cannot be audited is not answered.
  if (options.auditPropfind) await session.recordListing(path, depth, node?.id);
  const target: Resource = { path, node, href: '' };
  const writer = new MultistatusWriter(res);
  const answer = answerer(ctx, request, writer);
  writer.start();
  await answer([{ ...target, href: hrefOf(options.hrefBase, path, isFolder(target)) }]);
  if (depth !== 0 && isFolder(target)) await descend(ctx, path, depth, answer, writer);
  await writer.end();
}

/** Writes the members of a folder (the studies, at the root), group by group; Depth infinity goes on below each folder. */
async function descend(
  ctx: DavContext, folder: VaultPath, depth: 1 | 'infinity', answer: (resources: Resource[]) => Promise<void>, writer: MultistatusWriter,
): Promise<void> {
  const { session, options } = ctx;
  let members: Resource[];
  if (folder.study === null) {
    members = [];
    for (const study of await session.listStudies()) {
      const path = { study: study.id, names: [] };
      members.push({ path, node: await session.stat(path), href: hrefOf(options.hrefBase, path, true) });
    }
  } else {
    members = (await session.list(folder)).map((node) => {
      const path = { study: folder.study, names: [...folder.names, node.name] };
      return { path, node, href: hrefOf(options.hrefBase, path, node.kind === 'folder') };
    });
  }
  for (let i = 0; i < members.length && !writer.closed; i += GROUP_SIZE) {
    const group = members.slice(i, i + GROUP_SIZE);
    await answer(group);
    if (depth !== 'infinity') continue;
    for (const member of group) if (isFolder(member) && !writer.closed) await descend(ctx, member.path, depth, answer, writer);
  }
}

/** Answers groups of resources: what they need fetched in batches, then one response each. */
function answerer(ctx: DavContext, request: PropfindRequest, writer: MultistatusWriter): (resources: Resource[]) => Promise<void> {
  const { session, options } = ctx;
  const asked = request.kind === 'prop' ? request.names : request.kind === 'allprop' ? [...ALLPROP_NAMES, ...request.include] : [];
  /** Dead properties wanted: named ones (undefined: all of them, for allprop and propname). */
  const deadNames = request.kind === 'prop' ? request.names.filter((name) => !isLive(name)) : undefined;
  const wantsLocks = asked.includes(LOCKDISCOVERY);
  const wantsUsage = asked.some((name) => QUOTA_NAMES.includes(name));
  const usageByStudy = new Map<string, Promise<StorageUsage>>();

  return async (resources) => {
    const dead = await deadPropertiesOf(ctx, resources, deadNames);
    const locks: readonly LockRecord[][] = wantsLocks
      ? await locksOf(session, resources.map((resource) => resource.path))
      : [];
    for (const [i, resource] of resources.entries()) {
      const study = resource.path.study;
      let usage: StorageUsage | undefined;
      if (wantsUsage && study !== null) {
        if (!usageByStudy.has(study)) usageByStudy.set(study, session.storageUsage(resource.path));
        usage = await usageByStudy.get(study);
      }
      const inputs = { locks: locks[i] ?? [], usage, hrefBase: options.hrefBase };
      const found: string[] = [];
      const missing: string[] = [];
      const properties = dead[i]!;
      if (request.kind === 'propname') {
        found.push(...[...liveNamesOf(resource), ...properties.keys()].map(emptyProperty));
      } else {
        const names = request.kind === 'prop' ? request.names : [...ALLPROP_NAMES, ...properties.keys(), ...request.include];
        for (const name of new Set(names)) {
          const value = liveProperty(name, resource, inputs) ?? properties.get(name);
          if (value !== undefined) found.push(value);
          // allprop lists only what exists; a name asked for that doesn't is 404.
          else if (request.kind === 'prop' || request.include.includes(name)) missing.push(emptyProperty(name));
        }
      }
      const propstats: Propstat[] = [{ status: 200, properties: found }, { status: 404, properties: missing }];
      await writer.response(responseXml(resource.href, propstats));
      if (writer.closed) return;
    }
  };
}

/** Dead properties of each resource (none where the person may only pass through), one batched read per study. */
async function deadPropertiesOf(ctx: DavContext, resources: readonly Resource[], names: readonly string[] | undefined): Promise<ReadonlyMap<string, string>[]> {
  const found: ReadonlyMap<string, string>[] = resources.map(() => new Map());
  if (names?.length === 0) return found;
  const indexes = resources.flatMap((resource, i) => (resource.node === null ? [] : [i]));
  const properties = await ctx.session.propertiesOf(indexes.map((i) => ({ path: resources[i]!.path, id: resources[i]!.node!.id })), names);
  indexes.forEach((resourceIndex, j) => (found[resourceIndex] = properties[j]!));
  return found;
}

/** Locks on each path (none on the root that lists studies), with one access decision per study. */
async function locksOf(session: DavContext['session'], paths: readonly VaultPath[]): Promise<LockRecord[][]> {
  const inStudies = paths.filter((path) => path.study !== null);
  const found = await session.locksOnEach(inStudies);
  let next = 0;
  return paths.map((path) => (path.study === null ? [] : found[next++]!));
}
