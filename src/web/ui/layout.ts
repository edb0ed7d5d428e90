// The page shell every UI page shares: skip link, header with navigation and
// sign-out, the one-time notice and the problem of a failed form, the page's
// own content, and the session's expiry for the idle-timeout notice
// (assets/app.js; without JavaScript the next click leads to the sign-in page
// with the notice instead). No inline script or style: the CSP forbids both.

import { html, type Html, type HtmlValue } from './html.ts';

export interface Chrome {
  readonly product: { readonly name: string; readonly version: string };
  /** null on the sign-in pages and for people not signed in. */
  readonly viewer: {
    readonly name: string;
    readonly login: string;
    readonly csrfToken: string;
    readonly administrator: boolean;
    /** ISO time the session ends if nothing more happens. */
    readonly expiresAt: string;
  } | null;
  readonly idleMinutes: number;
  readonly notice: string | undefined;
  readonly problem: { readonly code: string; readonly message: string } | undefined;
}

interface PageView {
  readonly title: string;
  readonly body: Html;
  readonly section?: string;
}

interface NavEntry {
  readonly section: string;
  readonly label: string;
  readonly href: string;
  readonly administrators?: boolean;
}

const NAV: readonly NavEntry[] = [
  { section: 'dashboard', label: 'Dashboard', href: '/' },
  { section: 'studies', label: 'Studies', href: '/studies' },
  { section: 'groups', label: 'Groups', href: '/groups', administrators: true },
  { section: 'audit', label: 'Audit trail', href: '/audit' },
  { section: 'account', label: 'Account', href: '/account' },
];

export function layout(chrome: Chrome, view: PageView): Html {
  const { viewer, product } = chrome;
  const nav = viewer === null ? null : html`
<nav aria-label="Main">
  <ul>
    ${NAV.filter((entry) => !entry.administrators || viewer.administrator).map((entry) => html`<li><a href="${entry.href}"${entry.section === view.section ? html` aria-current="page"` : ''}>${entry.label}</a></li>`)}
  </ul>
</nav>
<div class="who">
  <span>${viewer.name} <span class="login">(${viewer.login})</span></span>
  <form method="post" action="/logout"><input type="hidden" name="_csrf" value="${viewer.csrfToken}"><button type="submit" class="link">Sign out</button></form>
</div>`;
  const sessionData = viewer === null ? '' : html` data-session-expires="${viewer.expiresAt}" data-idle-minutes="${chrome.idleMinutes}"`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${view.title} · ${product.name}</title>
<link rel="stylesheet" href="/assets/style.css">
<script src="/assets/app.js" defer></script>
</head>
<body${sessionData}>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <a class="brand" href="/">${product.name}</a>
  ${nav}
</header>
<div id="session-notice" class="session-notice" role="status" aria-live="polite" hidden></div>
<main id="main" tabindex="-1">
<h1>${view.title}</h1>
${chrome.notice === undefined ? '' : html`<p class="notice" role="status">${chrome.notice}</p>`}
${chrome.problem === undefined ? '' : html`<div class="problem" role="alert"><p><strong>Not done.</strong> ${chrome.problem.message}</p><p class="code">Error code ${chrome.problem.code}</p></div>`}
${view.body}
</main>
<footer><p>${product.name} ${product.version}</p></footer>
</body>
</html>
`;
}

/** An error page's content (its status comes from the catalog). */
export function errorPage(status: number, code: string, message: string): PageView & { status: number } {
  const title = status === 404 ? 'Not found' : status === 403 ? 'Not allowed' : status >= 500 ? 'Something went wrong' : 'That did not work';
  return {
    title, status,
    body: html`<div class="problem" role="alert"><p>${message}</p><p class="code">Error code ${code} (HTTP ${status})</p></div>
<p><a href="/">Back to the dashboard</a></p>`,
  };
}

/** A table with a caption and column headers; rows of cells (empty: a line saying so). */
export function table(caption: string, headers: readonly string[], rows: readonly (readonly HtmlValue[])[], empty = 'None.'): Html {
  if (rows.length === 0) return html`<p class="empty">${caption}: ${empty}</p>`;
  return html`<table>
<caption>${caption}</caption>
<thead><tr>${headers.map((header) => html`<th scope="col">${header}</th>`)}</tr></thead>
<tbody>
${rows.map((row) => html`<tr>${row.map((cell) => html`<td>${cell}</td>`)}</tr>\n`)}</tbody>
</table>`;
}

/** A UTC time as people read it, in a <time> element carrying the exact value. */
export function when(iso: string | null | undefined): Html {
  if (!iso) return html`<span class="muted">never</span>`;
  return html`<time datetime="${iso}">${iso.replace('T', ' ').replace(/\.\d+Z$/, ' UTC').replace(/Z$/, ' UTC')}</time>`;
}

/** Bytes as people read them (binary units), with the exact number in a title. */
export function bytes(count: number): Html {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = unit === 0 ? `${count} bytes` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
  return html`<span title="${count} bytes">${text}</span>`;
}

/** A status badge: ok (green), warning, bad (red); always with words, never colour alone. */
export function badge(kind: 'ok' | 'warning' | 'bad', text: string): Html {
  return html`<span class="badge ${kind}">${text}</span>`;
}
