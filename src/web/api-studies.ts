// REST API routes for studies and who may do what in them (docs/access.md):
// creating a study, its role bindings, its access rules, and what the caller
// may do at a path. The session checks the input (known roles, group DNs,
// known actions, folder paths) and who may change it; this module only maps
// JSON to session calls.

import { isStudyId, VellumError } from '../kernel/index.ts';
import type { ApiRoutes } from './api.ts';
import { json, pathInStudy, studyOf } from './api.ts';

const MAX_TITLE = 200;

export function addStudyRoutes(routes: ApiRoutes): void {
  routes.post('/studies', ['id', 'title', 'bindings', 'accessRules', 'changeReasonFolders'], async ({ session, body }) => {
    const { id, title, bindings, accessRules, changeReasonFolders } = body;
    if (typeof id !== 'string' || !isStudyId(id)) {
      throw new VellumError('BAD_REQUEST', 'The field "id" is the study id: capital letters, digits, "-" and "_", starting with a letter or digit, at most 64 (e.g. "TRIAL-042").');
    }
    if (typeof title !== 'string' || title.trim() === '' || title.length > MAX_TITLE) throw new VellumError('BAD_REQUEST', `The field "title" is a text of 1 to ${MAX_TITLE} characters.`);
    if (changeReasonFolders !== undefined && (!Array.isArray(changeReasonFolders) || !changeReasonFolders.every((folder) => typeof folder === 'string'))) {
      throw new VellumError('BAD_REQUEST', 'The field "changeReasonFolders" is a list of folder paths, e.g. ["/Regulatory"].');
    }
    // Bindings and rules are untrusted JSON here: the session checks them field by field (BAD_REQUEST).
    const study = await session.createStudy({
      id, title: title.trim(), bindings: bindings ?? [],
      ...(accessRules === undefined ? {} : { accessRules }),
      ...(changeReasonFolders === undefined ? {} : { changeReasonFolders: changeReasonFolders as string[] }),
    });
    return json(study, 201, { Location: `/api/v1/studies/${encodeURIComponent(study.id)}` });
  });

  routes.get('/studies/:study/bindings', async ({ session, params }) => json({ bindings: await session.bindings(studyOf(params)) }));

  routes.put('/studies/:study/bindings', ['bindings'], async ({ session, params, body }) => {
    if (body.bindings === undefined) throw new VellumError('BAD_REQUEST', 'Send {"bindings": [{"group": "<group DN>", "role": "<role>"}, ...]} ([] removes every binding).');
    const study = await session.setBindings(studyOf(params), body.bindings);
    return json({ bindings: study.bindings });
  });

  routes.get('/studies/:study/access-rules', async ({ session, params }) => json(await session.accessRules(studyOf(params))));

  routes.put('/studies/:study/access-rules', ['defaults', 'folders'], async ({ session, params, body }) => {
    if (body.defaults === undefined && body.folders === undefined) {
      throw new VellumError('BAD_REQUEST', 'Send {"defaults": {role: [actions]}, "folders": [{"path": "/Folder", "grants": {role: [actions]}}]}.');
    }
    const study = await session.setAccessRules(studyOf(params), body);
    return json(study.accessRules);
  });

  routes.get('/studies/:study/permissions', async ({ session, params, query }) => json(await session.permissions(pathInStudy(studyOf(params), query))));
}
