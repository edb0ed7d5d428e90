// The UI's HTML templates: every interpolated value is escaped unless it is
// markup the code made (Html); lists are joined; absent values leave nothing.

import test from 'ava';
import { escapeHtml, href, html, raw } from '../../src/web/ui/html.ts';

test('interpolated text is escaped: markup from people never becomes markup', (t) => {
  const name = `<img src=x onerror="alert('x')">&`;
  t.is(html`<td>${name}</td>`.markup, '<td>&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt;&amp;</td>');
  t.is(html`<input value="${'" autofocus onfocus="x'}">`.markup, '<input value="&quot; autofocus onfocus=&quot;x">');
});

test('Html values and lists of them are kept; null, undefined and false leave nothing; numbers are text', (t) => {
  const rows = ['a<', 'b'].map((cell) => html`<li>${cell}</li>`);
  t.is(html`<ul>${rows}</ul>${null}${undefined}${false}${0}`.markup, '<ul><li>a&lt;</li><li>b</li></ul>0');
  t.is(html`<div>${raw('<svg></svg>')}</div>`.markup, '<div><svg></svg></div>');
  t.is(escapeHtml(`'"<>&`), '&#39;&quot;&lt;&gt;&amp;');
});

test('href encodes each query value and leaves out empty ones', (t) => {
  t.is(href('/audit', { user: 'a&b=c', outcome: '', before: 42, study: undefined }), '/audit?user=a%26b%3Dc&before=42');
  t.is(href('/audit'), '/audit');
});
