// The one check for identity's administrative actions (unlocking, revoking
// someone else's app password, listing lockouts): access/'s system decision,
// with the refusal audited before it is thrown.

import { decideSystem } from '../access/index.ts';
import type { AuditEvent, AuditTrail } from '../audit/index.ts';
import { originFields, VellumError, type Principal, type RequestOrigin } from '../kernel/index.ts';

export { originFields };

/** The audit fields of a request by this person from this origin (the trail keeps only the actor's id and names). */
export function actorFields(actor: Principal, origin: RequestOrigin) {
  return { actor, ...originFields(origin) };
}

/**
 * Resolves with the actor's roles when they are an Administrator.
 * @throws VellumError FORBIDDEN (audited as `action`, denied)
 */
export async function requireAdministrator(
  audit: AuditTrail, administratorGroups: readonly string[], actor: Principal, origin: RequestOrigin,
  action: string, object?: AuditEvent['object'],
): Promise<string[]> {
  const decision = decideSystem(actor, administratorGroups);
  if (!decision.allowed) {
    await audit.record({ ...actorFields(actor, origin), action, outcome: 'denied', ...(object ? { object } : {}), detail: `FORBIDDEN: ${decision.reason}` });
    throw new VellumError('FORBIDDEN', decision.reason);
  }
  return [...decision.roles];
}
