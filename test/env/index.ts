// The test environment made of real parts, used by `npm test` and `npm run demo`:
// a private slapd on a free loopback port, seeded with people and groups, and a
// SoftHSM2 token, both in a directory of their own. Missing Debian packages are
// installed when running as root; otherwise the error says what to install.

export { startSlapd, type Slapd, type SlapdOptions } from './slapd.ts';
export { initSoftHsm, type SoftHsmToken, type SoftHsmOptions } from './softhsm.ts';
export { PEOPLE, GROUPS, BASE_DN, type Person } from './people.ts';
export { ensurePackages } from './packages.ts';
export { startTestEnv, type TestEnv, type TestEnvOptions } from './test-env.ts';
