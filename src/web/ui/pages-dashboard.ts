// Dashboard pages (docs/web-ui.md). Placeholder until the pages are built.

import { html } from './html.ts';
import type { UiKit, UiRoutes } from './ui.ts';

export function addDashboardPages(routes: UiRoutes, kit: UiKit): void {
  void kit;
  routes.page('/', async () => ({ title: 'Dashboard', section: 'dashboard', body: html`<p>Coming soon.</p>` }));
}
