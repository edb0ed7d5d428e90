import type { ComponentStatus, Principal } from '../kernel/index.ts';

export interface DirectorySettings {
  /** ldap:// or ldaps:// URL. */
  readonly url: string;
  /** Service account used to find people and groups. */
  readonly bindDn: string;
  readonly bindPassword: string;
  /** Where people live; searched with scope sub. */
  readonly userBase: string;
  /** Attribute holding the login name: `uid` (OpenLDAP) or `sAMAccountName` (AD). */
  readonly loginAttribute: string;
  /** Immutable id attribute: `entryUUID` (OpenLDAP) or `objectGUID` (AD). */
  readonly idAttribute: string;
  /** Printed name attribute, e.g. `displayName` or `cn`. */
  readonly displayNameAttribute: string;
  /** Where groups live; searched with scope sub for `member=<user dn>`. */
  readonly groupBase: string;
  /** Connect and operation timeout. */
  readonly timeoutMs: number;
  /** PEM CA bundle for ldaps:// or StartTLS, if the directory's CA is private. */
  readonly caPem?: string;
  readonly startTls?: boolean;
}

export interface Directory {
  /**
   * Verifies a login name and password by binding as that person.
   * The same error, with the same message, for an unknown login and a wrong password.
   * An empty password is refused before any bind (an empty simple bind is anonymous).
   * @throws VellumError AUTH_FAILED for unknown login, wrong password, empty password,
   *   or a login that matches more than one entry;
   *   DIRECTORY_UNAVAILABLE when the directory cannot be reached or the service bind fails.
   */
  authenticate(login: string, password: string): Promise<Principal>;

  /** Service bind and a base search work. Never throws. */
  status(): Promise<ComponentStatus>;

  /** Closes pooled connections. Idempotent. */
  close(): Promise<void>;
}
