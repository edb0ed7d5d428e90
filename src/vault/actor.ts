// Who a change is attributed to, and how that becomes the actor fields of an
// audit entry. Background jobs audit as the system (actor null).

import type { AuditEvent } from '../audit/index.ts';
import { originFields, type Principal, type RequestOrigin } from '../kernel/index.ts';
import type { PersonRef } from './records.ts';

/** Who is making a change, from where, in which roles, and why. */
export interface Actor {
  readonly principal: Principal;
  readonly origin: RequestOrigin;
  readonly roles: readonly string[];
  readonly reason?: string;
  /** Lock tokens submitted with the request; a lock only yields to its own creator's token. */
  readonly lockTokens?: readonly string[];
}

export function personRef(principal: Principal): PersonRef {
  return { id: principal.id, login: principal.login, displayName: principal.displayName };
}

export function auditBase(actor: Actor | null): Omit<AuditEvent, 'action' | 'outcome'> {
  if (actor === null) return { actor: null, protocol: 'system' };
  return {
    actor: actor.principal,
    roles: actor.roles,
    ...originFields(actor.origin),
    ...(actor.reason === undefined ? {} : { reason: actor.reason }),
  };
}

