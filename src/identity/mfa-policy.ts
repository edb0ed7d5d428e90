// Who must use a second factor in the web UI (and so, by policy, an app
// password rather than the directory password for WebDAV and the API).

import type { Principal } from '../kernel/index.ts';

export interface MfaPolicy {
  /** 'administrators': members of the administrator groups; 'everyone': all people; 'nobody': off. */
  readonly requiredFor: 'administrators' | 'everyone' | 'nobody';
  /** Directory groups whose members are system Administrators. */
  readonly administratorGroups: readonly string[];
}

const sameDn = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

export function mfaRequired(principal: Principal, policy: MfaPolicy): boolean {
  switch (policy.requiredFor) {
    case 'everyone':
      return true;
    case 'nobody':
      return false;
    case 'administrators':
      return principal.groups.some((group) => policy.administratorGroups.some((admin) => sameDn(group, admin)));
  }
}
