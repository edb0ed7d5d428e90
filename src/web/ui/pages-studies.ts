// Study pages (docs/web-ui.md). Placeholder until the pages are built.

import { html } from './html.ts';
import type { UiKit, UiRoutes } from './ui.ts';

export function addStudyPages(routes: UiRoutes, kit: UiKit): void {
  void kit;
  routes.page('/studies', async () => ({ title: 'Study', section: 'studies', body: html`<p>Coming soon.</p>` }));
}
