// Account pages (docs/web-ui.md). Placeholder until the pages are built.

import { html } from './html.ts';
import type { UiKit, UiRoutes } from './ui.ts';

export function addAccountPages(routes: UiRoutes, kit: UiKit): void {
  void kit;
  routes.page('/account', async () => ({ title: 'Account', section: 'account', body: html`<p>Coming soon.</p>` }));
}
