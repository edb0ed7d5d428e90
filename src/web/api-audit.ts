// REST API routes for the audit trail (docs/audit-verification.md): the
// signing certificate, exports for those who may review the trail, and a
// verification of the live store. What each person may see is the review
// facade's decision (session/audit-review.ts); this module maps HTTP to it.

import { createHash, X509Certificate } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { AuditReview } from '../session/index.ts';
import type { Principal, RequestOrigin } from '../kernel/index.ts';
import { json, type ApiRoutes } from './api.ts';

export type AuditReviewFor = (principal: Principal, origin: RequestOrigin) => AuditReview;

export function addAuditRoutes(routes: ApiRoutes, reviewFor: AuditReviewFor): void {
  routes.get('/audit/certificate', async ({ principal, origin }) => {
    const pem = reviewFor(principal, origin).certificate();
    const der = new X509Certificate(pem).raw;
    return {
      status: 200, body: pem,
      headers: {
        'Content-Type': 'application/x-pem-file',
        'Content-Disposition': 'attachment; filename="vellum-audit-signing.pem"',
        'X-Certificate-SHA256': createHash('sha256').update(der).digest('hex'),
      },
    };
  });

  routes.get('/audit/scope', async ({ principal, origin }) => json(await reviewFor(principal, origin).scope()));

  routes.get('/audit/export', async ({ principal, origin, query, ctx }) => {
    const get = (name: string) => query.get(name) ?? undefined;
    const exported = await reviewFor(principal, origin).export({
      format: get('format'), study: get('study'), from: get('from'), to: get('to'), user: get('user'), action: get('action'), outcome: get('outcome'),
    });
    ctx.respond = false;
    ctx.res.writeHead(200, {
      'Content-Type': exported.contentType,
      'Content-Disposition': `attachment; filename="${exported.filename}"`,
      'Cache-Control': 'no-store',
      'X-Audit-Checkpoint-Size': String(exported.checkpoint.size),
      'X-Audit-Checkpoint-Root': exported.checkpoint.root,
    });
    try {
      await pipeline(exported.body, ctx.res);
    } catch {
      // Failed midway (audited by the facade) or the client went away: cut the
      // connection, so the file lacks its end record and no verifier accepts it.
      ctx.res.destroy();
    }
    return null;
  });

  routes.post('/audit/verification', [], async ({ principal, origin }) => json(await reviewFor(principal, origin).verify()));
}
