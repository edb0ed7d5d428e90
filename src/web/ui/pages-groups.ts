// Group pages (docs/web-ui.md). Placeholder until the pages are built.

import { html } from './html.ts';
import type { UiKit, UiRoutes } from './ui.ts';

export function addGroupPages(routes: UiRoutes, kit: UiKit): void {
  void kit;
  routes.page('/groups', async () => ({ title: 'Group', section: 'groups', body: html`<p>Coming soon.</p>` }));
}
