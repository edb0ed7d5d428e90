// Conditional requests: the If header (RFC 4918 §10.4: state tokens and
// entity tags, tagged and untagged lists, Not) and If-Match / If-None-Match
// (RFC 9110 §13). Evaluated before a method touches anything; a false
// condition is 412 (304 for a GET or HEAD whose If-None-Match matches).
// The lock tokens a request submits are the state tokens of its If header;
// whether they unlock anything is decided by the vault, under its lock.

import type { IncomingMessage } from 'node:http';
import { isVellumError, parseVaultPath, VellumError, type VaultPath } from '../kernel/index.ts';
import { single, stripMount, type DavContext } from './context.ts';
import { etagOf } from './etag.ts';
import { evaluateIf, parseIfHeader, stateTokens, type IfList, type ResourceState } from './if-header.ts';

/** Parsed once per request: the session's lock tokens, the conditions and LOCK refreshes all read it. */
const parsedIfHeaders = new WeakMap<IncomingMessage, IfList[] | null>();

/** The parsed If header, or null without one. @throws IF_HEADER_INVALID */
function ifHeaderOf(req: IncomingMessage): IfList[] | null {
  let lists = parsedIfHeaders.get(req);
  if (lists === undefined) {
    const header = single(req, 'If');
    lists = header === undefined ? null : parseIfHeader(header);
    parsedIfHeaders.set(req, lists);
  }
  return lists;
}

/** Lock tokens the client submitted (in the If header), for the session to check locks against. */
export function submittedLockTokens(ctx: Pick<DavContext, 'req'>): string[] {
  const lists = ifHeaderOf(ctx.req);
  return lists === null ? [] : stateTokens(lists);
}

/** An If-Match / If-None-Match value: "*" or a list of entity tags. */
type EtagList = { readonly any: true } | { readonly any: false; readonly tags: readonly { readonly weak: boolean; readonly etag: string }[] };

function etagList(req: IncomingMessage, name: string): EtagList | null {
  const value = single(req, name);
  if (value === undefined) return null;
  if (value.trim() === '*') return { any: true };
  const tags: { weak: boolean; etag: string }[] = [];
  const member = /\s*(W\/)?("[\x21\x23-\x7e\x80-\xff]*")\s*(,|$)/y;
  while (member.lastIndex < value.length) {
    const match = member.exec(value);
    if (!match) throw new VellumError('BAD_REQUEST', `${name} must be "*" or a list of quoted entity tags.`);
    tags.push({ weak: match[1] !== undefined, etag: match[2]! });
    if (match[3] === '') break;
  }
  if (tags.length === 0) throw new VellumError('BAD_REQUEST', `${name} must be "*" or a list of quoted entity tags.`);
  return { any: false, tags };
}

/**
 * The vault path a resource tag names, or null when it is not on this
 * server's WebDAV tree (such a resource has no state, so only Not matches it).
 */
function taggedPath(ctx: DavContext, tag: string): VaultPath | null {
  let url: URL;
  try {
    url = new URL(tag, 'http://request.invalid');
  } catch {
    throw new VellumError('IF_HEADER_INVALID', `The resource tag <${tag}> is not a URL.`);
  }
  if (url.host !== 'request.invalid' && url.host.toLowerCase() !== String(ctx.req.headers.host ?? '').toLowerCase()) return null;
  const { mount, hrefBase } = ctx.options;
  for (const base of new Set([hrefBase, mount])) {
    if (url.pathname !== base && !url.pathname.startsWith(`${base}/`)) continue;
    try {
      return parseVaultPath(stripMount(url.pathname, base));
    } catch (e) {
      if (isVellumError(e, 'NOT_FOUND')) return null;
      throw new VellumError('IF_HEADER_INVALID', `The resource tag <${tag}> is not a valid path: ${(e as Error).message}`);
    }
  }
  return null;
}

const NO_RESOURCE: ResourceState = { etag: null, lockTokens: new Set() };

/** Looks a resource's state up through the session (so access is checked); a missing resource has none. */
async function stateAt(ctx: DavContext, path: VaultPath): Promise<ResourceState> {
  if (path.study === null) return NO_RESOURCE;
  const absent = (e: unknown) => {
    if (isVellumError(e, 'NOT_FOUND') || isVellumError(e, 'NOT_A_FOLDER')) return null;
    throw e;
  };
  const node = await ctx.session.stat(path).catch(absent);
  const locks = await ctx.session.locksOn(path).catch(absent);
  return { etag: node ? etagOf(node) : null, lockTokens: new Set((locks ?? []).map((lock) => lock.token)) };
}

/**
 * Throws PRECONDITION_FAILED when the request's conditions do not hold.
 * Returns false when it has answered the request itself (304 Not Modified).
 */
export async function checkPreconditions(ctx: DavContext): Promise<boolean> {
  const lists = ifHeaderOf(ctx.req);
  const ifMatch = etagList(ctx.req, 'If-Match');
  const ifNoneMatch = etagList(ctx.req, 'If-None-Match');
  if (lists === null && ifMatch === null && ifNoneMatch === null) return true;

  const states = new Map<string, Promise<ResourceState>>();
  const stateOf = (path: VaultPath | null): Promise<ResourceState> => {
    if (path === null) return Promise.resolve(NO_RESOURCE);
    const key = `${path.study}/${path.names.join('/')}`;
    let state = states.get(key);
    if (!state) states.set(key, (state = stateAt(ctx, path)));
    return state;
  };

  if (lists !== null && !(await evaluateIf(lists, (resource) => stateOf(resource === null ? ctx.path : taggedPath(ctx, resource))))) {
    throw new VellumError('PRECONDITION_FAILED', 'No list of the If header holds for the resources it names.');
  }
  const { etag } = await stateOf(ctx.path);
  if (ifMatch !== null) {
    // Strong comparison: a weak tag never matches (RFC 9110 §13.1.1).
    const holds = etag !== null && (ifMatch.any || ifMatch.tags.some((tag) => !tag.weak && tag.etag === etag));
    if (!holds) throw new VellumError('PRECONDITION_FAILED', etag === null ? 'If-Match: there is no current version here.' : `If-Match: the current ETag is ${etag}.`);
  }
  if (ifNoneMatch !== null && etag !== null) {
    // Weak comparison (RFC 9110 §13.1.2).
    const matches = ifNoneMatch.any || ifNoneMatch.tags.some((tag) => tag.etag === etag);
    if (matches && (ctx.method === 'GET' || ctx.method === 'HEAD')) {
      ctx.res.writeHead(304, { ETag: etag }).end();
      return false;
    }
    if (matches) throw new VellumError('PRECONDITION_FAILED', ifNoneMatch.any ? 'If-None-Match: *: the resource exists.' : `If-None-Match: the current ETag is ${etag}.`);
  }
  return true;
}
