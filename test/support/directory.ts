// Directory settings pointing at a test slapd, and a helper that returns what a
// promise rejected with: shared by the directory tests.

import type { DirectorySettings } from '../../src/directory/index.ts';
import type { Slapd } from '../env/index.ts';

export function directorySettings(slapd: Slapd, timeoutMs: number): DirectorySettings {
  return {
    url: slapd.url,
    bindDn: slapd.serviceDn,
    bindPassword: slapd.servicePassword,
    userBase: slapd.userBase,
    groupBase: slapd.groupBase,
    loginAttribute: 'uid',
    idAttribute: 'entryUUID',
    displayNameAttribute: 'displayName',
    timeoutMs,
  };
}

/** What `promise` rejected with; throws if it resolved. */
export async function failure(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error('expected the call to fail, and it succeeded');
}
