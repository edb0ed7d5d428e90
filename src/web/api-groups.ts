// The REST API's directory-group routes (docs/api.md): list groups, read one
// with its members, create one, add and remove members. Everything goes
// through the group administration facade (session/groups.ts), which lets only
// Administrators in and audits every change; errors become HTTP in api-errors.ts.

import { VellumError, type Principal, type RequestOrigin } from '../kernel/index.ts';
import type { GroupAdmin } from '../session/index.ts';
import { json, type ApiRoutes } from './api.ts';

export type GroupAdminFor = (principal: Principal, origin: RequestOrigin) => GroupAdmin;

const API_GROUPS = '/api/v1/groups';

export function registerGroupRoutes(routes: ApiRoutes, groupAdminFor: GroupAdminFor): void {
  routes.get('/groups', async ({ principal, origin }) => json({ groups: await groupAdminFor(principal, origin).listGroups() }));

  routes.get('/groups/:name', async ({ principal, origin, params }) => json(await groupAdminFor(principal, origin).group(params.name!)));

  routes.post('/groups', ['name', 'members', 'description'], async ({ principal, origin, body }) => {
    const { name, members, description } = body;
    if (typeof name !== 'string') throw new VellumError('BAD_REQUEST', 'Send {"name": "group-name", "members": ["login", ...], "description": "..."}.');
    if (!Array.isArray(members) || !members.every((m) => typeof m === 'string')) throw new VellumError('BAD_REQUEST', 'The field "members" is a list of login names.');
    if (description !== undefined && typeof description !== 'string') throw new VellumError('BAD_REQUEST', 'The field "description" must be a string.');
    const group = await groupAdminFor(principal, origin).createGroup(name, members, description);
    return json(group, 201, { Location: `${API_GROUPS}/${encodeURIComponent(group.name)}` });
  });

  routes.post('/groups/:name/members', ['login'], async ({ principal, origin, params, body }) => {
    if (typeof body.login !== 'string') throw new VellumError('BAD_REQUEST', 'Send {"login": "name"}.');
    return json(await groupAdminFor(principal, origin).addMember(params.name!, body.login));
  });

  routes.del('/groups/:name/members/:login', async ({ principal, origin, params }) => json(await groupAdminFor(principal, origin).removeMember(params.name!, params.login!)));
}
