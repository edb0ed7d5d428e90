// The WebDAV If header (RFC 4918 §10.4): a parser for both forms (untagged
// lists that apply to the request URL, or lists tagged with the resource they
// apply to), and their evaluation against resource states the caller looks
// up. Anything outside the grammar is IF_HEADER_INVALID: never a guess,
// never a crash.
//
//   If          = 1*No-tag-list | 1*Tagged-list
//   Tagged-list = "<" Simple-ref ">" 1*List
//   List        = "(" 1*Condition ")"
//   Condition   = ["Not"] ( "<" absolute-URI ">" | "[" entity-tag "]" )

import { VellumError } from '../kernel/index.ts';

export type IfCondition =
  | { readonly not: boolean; readonly kind: 'token'; readonly token: string }
  | { readonly not: boolean; readonly kind: 'etag'; readonly etag: string; readonly weak: boolean };

/** One list: all of its conditions must hold, on `resource` (null: the request URL). */
export interface IfList {
  readonly resource: string | null;
  readonly conditions: readonly IfCondition[];
}

/** What a condition is checked against. */
export interface ResourceState {
  /** The current entity tag with its quotes, or null when there is no resource. */
  readonly etag: string | null;
  /** Tokens of the active locks that apply to the resource. */
  readonly lockTokens: ReadonlySet<string>;
}

const MAX_LISTS = 64;
const MAX_CONDITIONS = 256;
const ABSOLUTE_URI = /^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>]*$/;
const PATH = /^\/[^\s<>]*$/;
// RFC 9110 §8.8.3: etagc = %x21 / %x23-7E / obs-text
const ETAG_CHARS = /^[\x21\x23-\x7e\x80-\xff]*$/;

function invalid(detail: string): VellumError {
  return new VellumError('IF_HEADER_INVALID', detail);
}

/** Parses the header's value. @throws IF_HEADER_INVALID */
export function parseIfHeader(header: string): IfList[] {
  let at = 0;
  const skipSpace = () => {
    while (at < header.length && (header[at] === ' ' || header[at] === '\t')) at++;
  };
  /** Text up to the closing character, which is consumed. */
  const until = (close: string, what: string): string => {
    const end = header.indexOf(close, at);
    if (end < 0) throw invalid(`${what} at position ${at} is not closed with "${close}".`);
    const text = header.slice(at, end);
    at = end + 1;
    return text;
  };

  const condition = (): IfCondition => {
    let not = false;
    if (/^not(?=[\s<[])/i.test(header.slice(at, at + 4))) {
      not = true;
      at += 3;
      skipSpace();
    }
    const open = header[at++];
    if (open === '<') {
      const token = until('>', 'A state token');
      if (!ABSOLUTE_URI.test(token)) throw invalid(`"${token}" is not an absolute URI (a state token looks like <opaquelocktoken:...>).`);
      return { not, kind: 'token', token };
    }
    if (open === '[') {
      skipSpace();
      const weak = header.startsWith('W/', at);
      if (weak) at += 2;
      if (header[at] !== '"') throw invalid(`An entity tag at position ${at} must be quoted.`);
      at++;
      const opaque = until('"', 'An entity tag');
      if (!ETAG_CHARS.test(opaque)) throw invalid('An entity tag holds a character entity tags may not hold.');
      skipSpace();
      if (header[at] !== ']') throw invalid(`An entity tag at position ${at} is not closed with "]".`);
      at++;
      return { not, kind: 'etag', etag: `"${opaque}"`, weak };
    }
    throw invalid(`Expected "Not", "<" or "[" at position ${at - 1}.`);
  };

  const lists: IfList[] = [];
  let conditions = 0;
  let tagged: boolean | undefined;
  let resource: string | null = null;
  skipSpace();
  while (at < header.length) {
    if (header[at] === '<') {
      if (tagged === false) throw invalid('Tagged and untagged lists cannot be mixed.');
      tagged = true;
      at++;
      resource = until('>', 'A resource tag');
      if (!ABSOLUTE_URI.test(resource) && !PATH.test(resource)) throw invalid(`The resource tag "${resource}" is neither an absolute URL nor a path.`);
      skipSpace();
      if (header[at] !== '(') throw invalid(`The resource tag <${resource}> must be followed by a list in parentheses.`);
      continue;
    }
    if (header[at] !== '(') throw invalid(`Expected "(" or "<" at position ${at}.`);
    tagged ??= false;
    at++;
    const list: IfCondition[] = [];
    skipSpace();
    while (header[at] !== ')') {
      if (at >= header.length) throw invalid('A list is not closed with ")".');
      list.push(condition());
      if (++conditions > MAX_CONDITIONS) throw invalid(`At most ${MAX_CONDITIONS} conditions are accepted.`);
      skipSpace();
    }
    at++;
    if (list.length === 0) throw invalid('A list must hold at least one condition.');
    lists.push({ resource: tagged ? resource : null, conditions: list });
    if (lists.length > MAX_LISTS) throw invalid(`At most ${MAX_LISTS} lists are accepted.`);
    skipSpace();
  }
  if (lists.length === 0) throw invalid('The header holds no list.');
  return lists;
}

/** Every state token the header names: the lock tokens the client submits with the request. */
export function stateTokens(lists: readonly IfList[]): string[] {
  const tokens = lists.flatMap((list) => list.conditions.flatMap((condition) => (condition.kind === 'token' ? [condition.token] : [])));
  return [...new Set(tokens)];
}

/** Strong comparison (RFC 9110 §8.8.3.2): a weak tag never matches. */
function etagMatches(condition: Extract<IfCondition, { kind: 'etag' }>, etag: string | null): boolean {
  return etag !== null && !condition.weak && !etag.startsWith('W/') && condition.etag === etag;
}

/**
 * True when at least one list holds (RFC 4918 §10.4.3): every condition in
 * it matches the state of its resource (a state token matches when an
 * active lock on the resource has it; an entity tag when it is the
 * resource's current one), inverted by Not.
 */
export async function evaluateIf(lists: readonly IfList[], stateOf: (resource: string | null) => Promise<ResourceState>): Promise<boolean> {
  for (const list of lists) {
    const state = await stateOf(list.resource);
    const holds = list.conditions.every((condition) => {
      const matched = condition.kind === 'token' ? state.lockTokens.has(condition.token) : etagMatches(condition, state.etag);
      return matched !== condition.not;
    });
    if (holds) return true;
  }
  return false;
}
