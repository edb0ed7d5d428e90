// File pages (docs/web-ui.md). Placeholder until the pages are built.

import { html } from './html.ts';
import type { UiKit, UiRoutes } from './ui.ts';

export function addFilePages(routes: UiRoutes, kit: UiKit): void {
  void kit;
  routes.page('/studies/', async () => ({ title: 'File', section: 'study/files:studies', body: html`<p>Coming soon.</p>` }));
}
