// API routes for sign-in matters (docs/api.md, docs/authentication.md): a
// person's app passwords (their own; an Administrator's view of anyone's, for
// loss management) and the lockouts an Administrator lifts. Permission checks
// and audit entries are identity/'s; this module only maps HTTP to them.

import { VellumError } from '../kernel/index.ts';
import type { AppPasswords, Authenticator, Lockout } from '../identity/index.ts';
import { json, type ApiRoutes } from './api.ts';

export interface AccountRoutesOptions {
  readonly authenticator: Authenticator;
  readonly appPasswords: AppPasswords;
  readonly lockout: Lockout;
}

const noContent = { status: 204, body: null } as const;

export function addAccountRoutes(routes: ApiRoutes, options: AccountRoutesOptions): void {
  const { appPasswords, lockout, authenticator } = options;

  routes.get('/me/app-passwords', async ({ principal, origin }) => json(await appPasswords.list(principal, principal.id, origin)));

  routes.post('/me/app-passwords', ['name'], async ({ principal, origin, body }) => {
    if (typeof body.name !== 'string') throw new VellumError('BAD_REQUEST', 'Send {"name": "..."}: the device the app password is for.');
    const created = await appPasswords.create(principal, body.name, origin, authenticator.appPasswordOf(principal));
    // Shown this once; only a hash of it is kept.
    return json({ ...created.appPassword, password: created.password }, 201, { 'Cache-Control': 'no-store' });
  });

  routes.del('/me/app-passwords/:id', async ({ principal, origin, params }) => {
    await appPasswords.revoke(principal, principal.id, params.id!, origin);
    return noContent;
  });

  routes.get('/people/:personId/app-passwords', async ({ principal, origin, params }) => json(await appPasswords.list(principal, params.personId!, origin)));

  routes.del('/people/:personId/app-passwords/:id', async ({ principal, origin, params }) => {
    await appPasswords.revoke(principal, params.personId!, params.id!, origin);
    return noContent;
  });

  routes.get('/lockouts', async ({ principal, origin }) => json(await lockout.list(principal, origin)));

  routes.del('/lockouts/accounts/:login', async ({ principal, origin, params }) => {
    await lockout.unlockAccount(principal, params.login!, origin);
    return noContent;
  });

  routes.del('/lockouts/sources/:ip', async ({ principal, origin, params }) => {
    await lockout.unlockSource(principal, params.ip!, origin);
    return noContent;
  });
}
