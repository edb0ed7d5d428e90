// Conditional requests: the If header (RFC 4918 §10.4: state tokens and
// entity tags, tagged and untagged lists, Not) and If-Match / If-None-Match.
// Evaluated before a method touches anything; a false condition is 412.

import type { DavContext } from './context.ts';

/** Lock tokens the client submitted (in the If header), for the session to check locks against. */
export function submittedLockTokens(_ctx: Pick<DavContext, 'req'>): string[] {
  return [];
}

/** Throws PRECONDITION_FAILED when the request's conditions do not hold. */
export async function checkPreconditions(_ctx: DavContext): Promise<void> {
  // Not evaluated yet.
}
