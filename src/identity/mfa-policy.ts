// Who must use a second factor in the web UI (and so, by policy, an app
// password rather than the directory password for WebDAV and the API).

import { isAdministrator } from '../access/index.ts';
import type { Principal } from '../kernel/index.ts';

export interface MfaPolicy {
  /** 'administrators': members of the administrator groups; 'everyone': all people; 'nobody': off. */
  readonly requiredFor: 'administrators' | 'everyone' | 'nobody';
  /** Directory groups whose members are system Administrators. */
  readonly administratorGroups: readonly string[];
}

/**
 * Whether the person must pass a second factor. Someone who enrolled of their
 * own accord (`enrolled`) must use it too, whatever the policy says: an
 * enrolment that could be skipped would protect nobody.
 */
export function mfaRequired(principal: Principal, policy: MfaPolicy, person: { readonly enrolled?: boolean } = {}): boolean {
  if (person.enrolled === true) return true;
  switch (policy.requiredFor) {
    case 'everyone':
      return true;
    case 'nobody':
      return false;
    case 'administrators':
      return isAdministrator(principal, policy.administratorGroups);
  }
}
