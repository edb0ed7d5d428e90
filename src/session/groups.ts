// The group administration facade: what an Administrator may do to directory
// groups, for every front end alike (REST API now, the web UI later). Only
// Administrators (decideSystem) get past it; a refusal is audited. Every
// change is audited with the group's member DNs before and after, and a change
// that fails is audited too. A membership change calls afterMembershipChange
// with the person's DN, so access they had through cached sign-ins ends at once.

import { decideSystem } from '../access/index.ts';
import type { AuditEvent, AuditTrail } from '../audit/index.ts';
import { isVellumError, originFields, VellumError, type Principal, type RequestOrigin } from '../kernel/index.ts';

/** What the facade reads of a group (the Directory's GroupDetail, passed through whole, has more). */
export interface GroupFacts {
  readonly name: string;
  readonly dn: string;
  readonly description: string | null;
  readonly memberDns: readonly string[];
}

/** What the facade reads of a membership change (the Directory's MembershipChange). */
export interface MemberChangeFacts {
  readonly group: GroupFacts;
  /** Member DNs before and after. */
  readonly before: readonly string[];
  readonly after: readonly string[];
  readonly person: { readonly dn: string };
}

/**
 * The Directory's group methods (same contract and errors, see
 * src/directory/directory.ts), declared here by what the facade needs, so that
 * session/ does not depend on directory/.
 */
export interface GroupDirectory {
  readonly groupsWritable: boolean;
  listGroups(): Promise<readonly object[]>;
  group(name: string): Promise<GroupFacts>;
  createGroup(name: string, members: readonly string[], description?: string): Promise<GroupFacts>;
  addMember(group: string, login: string): Promise<MemberChangeFacts>;
  removeMember(group: string, login: string): Promise<MemberChangeFacts>;
}

export interface GroupAdminParts {
  readonly directory: GroupDirectory;
  readonly audit: AuditTrail;
  /** Directory groups whose members are system Administrators. */
  readonly administratorGroups: readonly string[];
  /** Called after a person's membership changed: forget what was cached about them. */
  readonly afterMembershipChange: (personDn: string) => void;
}

/** The Directory's answers, passed through whole (a front end shows all they hold). */
export interface GroupAdmin {
  /** @throws FORBIDDEN (not an Administrator; audited), DIRECTORY_UNAVAILABLE */
  listGroups(): Promise<readonly object[]>;
  /** @throws FORBIDDEN, GROUP_NOT_FOUND, DIRECTORY_UNAVAILABLE */
  group(name: string): Promise<GroupFacts>;
  /** Audited as group.create. @throws FORBIDDEN and what Directory.createGroup throws */
  createGroup(name: string, members: readonly string[], description?: string): Promise<GroupFacts>;
  /** Audited as group.member.add (adding a member again changes nothing and is audited with equal lists). @throws FORBIDDEN and what Directory.addMember throws */
  addMember(group: string, login: string): Promise<MemberChangeFacts>;
  /** Audited as group.member.remove. @throws FORBIDDEN and what Directory.removeMember throws */
  removeMember(group: string, login: string): Promise<MemberChangeFacts>;
}

export function openGroupAdmin(parts: GroupAdminParts, principal: Principal, origin: RequestOrigin): GroupAdmin {
  const { directory, audit } = parts;
  const where = { actor: principal, ...originFields(origin) };

  /** Administrators only; a refusal is audited under the action asked for. */
  async function authorize(action: string, object: AuditEvent['object']): Promise<string[]> {
    const decision = decideSystem(principal, parts.administratorGroups);
    if (!decision.allowed) {
      await audit.record({ ...where, action, outcome: 'denied', roles: decision.roles, ...(object ? { object } : {}), detail: `FORBIDDEN: ${decision.reason}` });
      throw new VellumError('FORBIDDEN', `Only an Administrator manages groups. ${decision.reason}`);
    }
    return [...decision.roles];
  }

  /**
   * Runs a change on the group `name`; success and failure are audited (a refusal
   * by the directory as denied) with the group's DN once past the access check.
   */
  async function change<T>(action: string, name: string, run: () => Promise<T>, values: (result: T) => { dn: string } & Pick<AuditEvent, 'oldValue' | 'newValue'>): Promise<T> {
    const named = { path: String(name).slice(0, 256) };
    const roles = await authorize(action, named);
    let result: T;
    try {
      result = await run();
    } catch (e) {
      const code = isVellumError(e) ? e.code : 'INTERNAL';
      const outcome = code === 'DIRECTORY_READ_ONLY' ? 'denied' : 'failed';
      const object = await directory.group(name).then((g) => ({ path: g.dn }), () => named);
      await audit.record({ ...where, action, outcome, roles, object, detail: `${code}: ${(e as Error).message}` }).catch(() => undefined);
      throw e;
    }
    const { dn, ...change } = values(result);
    await audit.record({ ...where, action, outcome: 'success', roles, object: { path: dn }, ...change });
    return result;
  }

  return {
    async listGroups() {
      await authorize('group.list', undefined);
      return directory.listGroups();
    },

    async group(name) {
      await authorize('group.read', { path: String(name).slice(0, 256) });
      return directory.group(name);
    },

    async createGroup(name, members, description) {
      return change('group.create', name, () => directory.createGroup(name, members, description), (group) => ({
        dn: group.dn,
        oldValue: { members: [] },
        newValue: { dn: group.dn, members: group.memberDns, ...(group.description === null ? {} : { description: group.description }) },
      })).then((group) => {
        for (const dn of group.memberDns) parts.afterMembershipChange(dn);
        return group;
      });
    },

    async addMember(group, login) {
      const result = await change('group.member.add', group, () => directory.addMember(group, login), membership);
      parts.afterMembershipChange(result.person.dn);
      return result;
    },

    async removeMember(group, login) {
      const result = await change('group.member.remove', group, () => directory.removeMember(group, login), membership);
      parts.afterMembershipChange(result.person.dn);
      return result;
    },
  };
}

function membership(result: MemberChangeFacts): { dn: string } & Pick<AuditEvent, 'oldValue' | 'newValue'> {
  return {
    dn: result.group.dn,
    oldValue: { members: result.before },
    newValue: { members: result.after, person: result.person.dn },
  };
}
