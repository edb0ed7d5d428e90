// Audit pages (docs/web-ui.md). Placeholder until the pages are built.

import { html } from './html.ts';
import type { UiKit, UiRoutes } from './ui.ts';

export function addAuditPages(routes: UiRoutes, kit: UiKit): void {
  void kit;
  routes.page('/audit', async () => ({ title: 'Audit', section: 'audit', body: html`<p>Coming soon.</p>` }));
}
