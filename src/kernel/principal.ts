// Who is acting. Identity comes from the directory; `id` is the directory's
// immutable entry id (entryUUID / objectGUID), never the login name, so a
// re-created login is a different person (Part 11 §11.100(a)).

export interface Principal {
  /** Immutable directory id (entryUUID on OpenLDAP, objectGUID on AD). */
  readonly id: string;
  /** Login name as the directory spells it (uid / sAMAccountName); LDAP matching ignores case. */
  readonly login: string;
  readonly dn: string;
  /** Printed name at the time of authentication. */
  readonly displayName: string;
  /** DNs of the directory groups the person is a member of. */
  readonly groups: readonly string[];
}

/** Where a request came from, for the audit trail (Part 11 §11.10(h)). */
export interface RequestOrigin {
  readonly ip: string;
  readonly client: string;
  readonly protocol: 'webdav' | 'web' | 'api' | 'cli' | 'system';
  /**
   * The sign-in the request is served from: a web session's public id, or the
   * id made when an HTTP Basic sign-in was checked (`basic:...`, `app:...`) and
   * kept with the cached sign-in. Never a secret. Absent before sign-in.
   */
  readonly session?: string;
}

/** A person signed in, and the id of that sign-in (RequestOrigin.session). */
export interface SignIn {
  readonly principal: Principal;
  readonly session: string;
}

/** The audit fields of where a request came from, and which sign-in it belongs to. */
export function originFields(origin: RequestOrigin): { ip: string; client: string; protocol: RequestOrigin['protocol']; session?: string } {
  return { ip: origin.ip, client: origin.client, protocol: origin.protocol, ...(origin.session === undefined ? {} : { session: origin.session }) };
}
